"""kube-remedy fixers: a pure library (no I/O) that turns a finding into YAML edits.

`fixers` owns the contract between scanners and fixers: `Finding` (what failed), the pod-spec
view (where it is), the edit operations (what to change) and the results a fixer returns.
It never imports `bot`.
"""
