"""The exception tree of kube-remedy. Library errors are translated where the library is called.

    RemedyError                      a user-facing problem: one clear line, exit code 2
    ├── ReportError                  a report that cannot be read (malformed, unknown format)
    ├── ConfigError                  invalid settings or .remedy.yaml
    ├── RepositoryError              cd-config problems: missing file, path escapes the repo
    │   └── YamlEditError            a document the applier refuses (aliases, not a mapping)
    ├── ForgeError                   GitLab / git failures
    │   ├── ForgePermissionError     401/403/404: names the project and the missing permission
    │   ├── ForgeConflictError       a branch moved, or carries someone else's commit
    │   └── ForgeTransientError      429/5xx/network: retried with backoff
    └── ChartError                   a Helm chart that cannot be read or rendered

Expected outcomes (a finding nobody can fix, an MR held back by a limit) are return values,
never exceptions.
"""

from __future__ import annotations


class RemedyError(Exception):
    """Base of every error a user can cause; its message is one line saying what to do."""

    exit_code = 2


class ReportError(RemedyError):
    """A scan report cannot be read."""


class ConfigError(RemedyError):
    """Settings or ``.remedy.yaml`` are invalid."""


class RepositoryError(RemedyError):
    """The cd-config repository does not hold what a finding points at."""


class YamlEditError(RepositoryError):
    """The applier refuses to edit a document (anchors/aliases, non-mapping, path clash)."""


class ForgeError(RemedyError):
    """A GitLab or git operation failed."""


class ForgePermissionError(ForgeError):
    """401/403/404 from the forge: names the project and the permission that is missing."""


class ForgeConflictError(ForgeError):
    """A branch moved under us or carries a commit by someone else."""


class ForgeTransientError(ForgeError):
    """429, 5xx or a network error: safe to retry with backoff."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, rate_limited: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        """GitLab answered 429: every request fails until Retry-After, so a run stops asking."""


class ChartError(RemedyError):
    """A Helm chart cannot be read or rendered."""
