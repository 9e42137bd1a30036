"""Runtime settings of the bot: environment (prefix ``REMEDY_``), secret files, one YAML file.

Precedence, highest first: ``REMEDY_*`` environment variables, secrets read from
``REMEDY_<NAME>_FILE``, the YAML file named by ``REMEDY_CONFIG``, the defaults below.
Secrets are `SecretStr`: their repr and str are masked and they are never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.errors import ConfigError
from bot.identity import BotIdentity
from bot.safe_load import load_yaml

# Fields that may be read from a file (REMEDY_<NAME>_FILE); redis_url because it may hold a password.
SECRET_FIELDS = ("gitlab_token", "webhook_secret", "slack_signing_secret", "mattermost_token")
FILE_FIELDS = (*SECRET_FIELDS, "redis_url")
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
MAX_CONFIG_FILE_BYTES = 1024 * 1024


def parse_cron(expression: str) -> dict[str, str]:
    """Split a 5-field cron expression into celery ``crontab`` keyword arguments, validated."""
    from celery.schedules import crontab

    parts = expression.split()
    if len(parts) != len(CRON_FIELDS):
        raise ValueError(
            f"cron expression {expression!r} has {len(parts)} fields; want 5: "
            "minute hour day-of-month month day-of-week (e.g. '0 6 * * 1-5')"
        )
    fields = dict(zip(CRON_FIELDS, parts, strict=True))
    for name, value in fields.items():
        try:
            crontab(**{name: value})
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"cron expression {expression!r}: bad {name.replace('_', '-')} field {value!r} ({exc})"
            ) from None
    return fields


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GitlabArtifactReport(_Model):
    """The report is an artifact of the latest successful CI job on the project's default branch."""

    kind: Literal["gitlab-artifact"] = "gitlab-artifact"
    job: str = "kubescape"
    artifact_path: str = "kubescape-results.json"
    ref: str | None = None
    """Branch to read the job from; the project's default branch when None."""


class FileReport(_Model):
    """The report is a file readable by the worker (for example a mounted volume)."""

    kind: Literal["file"] = "file"
    path: str


class UrlReport(_Model):
    """The report is fetched over HTTP(S)."""

    kind: Literal["url"] = "url"
    url: str


class ClusterReport(_Model):
    """The findings are read from the cluster, from the resources the scanners keep there: the
    Kubescape operator's WorkloadConfigurationScans, Kyverno's PolicyReports, Trivy-Operator's
    ConfigAuditReports. ``kind: kubescape-operator`` is the short form for the operator alone."""

    kind: Literal["cluster", "kubescape-operator"] = "cluster"
    scanners: tuple[Literal["kubescape-operator", "kyverno", "trivy"], ...] = Field(
        default=("kubescape-operator",), min_length=1
    )
    """Whose results to read; several are merged (one finding reported twice gives one edit)."""
    namespace: str | None = None
    """Only workloads in this namespace; every namespace when None (the operator keeps the scans of
    RBAC subjects in its own namespace)."""
    kubeconfig: str | None = None
    """Kubeconfig file; None: ``$KUBECONFIG`` / ``~/.kube/config``, else the pod's service account."""
    context: str | None = None
    """Kubeconfig context; None: its current context."""

    @model_validator(mode="after")
    def _short_form_is_the_operator(self) -> ClusterReport:
        if self.kind == "kubescape-operator" and self.scanners != ("kubescape-operator",):
            raise ValueError("kind kubescape-operator reads the operator only; use kind: cluster")
        return self


ReportSource = Annotated[
    GitlabArtifactReport | FileReport | UrlReport | ClusterReport,
    Field(discriminator="kind"),
]


class RuntimeEvidenceSource(_Model):
    """Runtime evidence for a project's plans: Kubescape's ApplicationProfiles, ContainerProfiles,
    NetworkNeighborhoods, GeneratedNetworkPolicies, KnownServers and Falco alerts
    (`bot.sources.runtime`). Fixes then follow what the workloads were observed doing, a fix the
    evidence contradicts is declined, and workloads with Falco alerts are proposed first."""

    repo: tuple[str, ...] = ()
    """Files or folders in cd-config (relative paths) holding objects exported with kubectl,
    read from the commit being planned (a folder: its ``.json``, ``.yaml`` and ``.yml`` files)."""
    files: tuple[str, ...] = ()
    """Files readable by the worker (a mounted volume), such as Falco's JSON output."""
    cluster: bool = False
    """Also read Kubescape's runtime objects live from the cluster, through the same
    kubernetes-client path as the operator's scans (kubeconfig, context, namespace below)."""
    namespace: str | None = None
    """With ``cluster``: only this namespace; every namespace when None."""
    kubeconfig: str | None = None
    """With ``cluster``: kubeconfig file; None: ``$KUBECONFIG`` / ``~/.kube/config``, else the
    pod's service account."""
    context: str | None = None
    """With ``cluster``: kubeconfig context; None: its current context."""

    @field_validator("repo")
    @classmethod
    def _inside_the_repository(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            parts = PurePosixPath(path).parts
            if not parts or path.startswith("/") or ".." in parts or "\\" in path:
                raise ValueError(
                    f"evidence path {path!r} must be relative to cd-config's root, without '..'"
                )
        return value

    @model_validator(mode="after")
    def _some_source(self) -> RuntimeEvidenceSource:
        if not (self.repo or self.files or self.cluster):
            raise ValueError("evidence needs at least one of repo, files or cluster: true")
        return self


class ProjectConfig(_Model):
    """One cd-config repository the bot looks after, when it runs and where its report is."""

    id: str = Field(min_length=1)
    """GitLab project path (``group/cd-config``) or numeric id."""
    cron: str = "0 6 * * *"
    report: ReportSource = Field(default_factory=GitlabArtifactReport)
    evidence: RuntimeEvidenceSource | None = None
    """Runtime evidence the plans use; none when None (static fixes only)."""
    chart_cache_dirs: tuple[Path, ...] = ()
    """Chart caches for this project's remote charts, searched before the bot-wide ones."""

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        parse_cron(value)
        return " ".join(value.split())


class Settings(BaseSettings):
    """Everything a worker, beat or web process needs; see docs/operations.md."""

    model_config = SettingsConfigDict(
        env_prefix="REMEDY_", extra="forbid", frozen=True, env_nested_delimiter="__"
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    gitlab_url: str = "https://gitlab.com"
    gitlab_token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    mattermost_token: SecretStr | None = None
    bot_username: str = "kube-remedy"
    """The bot's GitLab username (mentions, and its identity where GitLab gives no user id)."""
    bot_user_id: int | None = Field(default=None, gt=0)
    """The bot's numeric GitLab user id; when unset, the web process looks it up from the token
    once at start. Only this id (or GitLab's username) makes an event the bot's: see
    `bot.identity`."""
    branch_prefix: str = "remedy/"
    projects: tuple[ProjectConfig, ...] = ()
    chart_cache_dirs: tuple[Path, ...] = ()
    """Directories of untarred charts and/or ``.tgz`` archives where charts that deployments
    pull from chart repositories are found (Helm's own cache is searched after them)."""
    data_dir: Path = Path("/tmp/kube-remedy")
    """The only directory the processes write to (beat schedule state)."""
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    """Port of the worker's Prometheus endpoint; 0 disables it."""
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, gt=0, le=65535)
    """Where ``remedy serve`` listens (containers set REMEDY_WEB_HOST=0.0.0.0)."""
    worker_concurrency: int = Field(default=4, gt=0)
    """Tasks one worker process runs at once (threads: tasks mostly wait on GitLab)."""
    task_time_limit: int = Field(default=600, gt=0)
    """Hard limit in seconds of one task; the longest a task may run."""
    lock_timeout: int = Field(default=900, gt=0)
    """Lifetime in seconds of a project lock if its holder dies without releasing it."""
    visibility_timeout: int = Field(default=3600, gt=0)
    """Seconds before an unacknowledged task is handed to another worker."""
    max_retries: int = Field(default=5, ge=0)
    """Retries of a transient GitLab failure: by the task (Celery, ``run-once``) or, in
    ``remedy run``, by python-gitlab; never both."""
    retry_backoff_max: int = Field(default=600, gt=0)
    assign_reviewers: bool = False
    """Also assign the first reviewer of a new MR (GitLab assignee), besides requesting review."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides what load_settings() passes in (YAML file, *_FILE secrets).
        return env_settings, init_settings

    @field_validator("projects")
    @classmethod
    def _unique_projects(cls, value: tuple[ProjectConfig, ...]) -> tuple[ProjectConfig, ...]:
        seen: set[str] = set()
        for project in value:
            if project.id in seen:
                raise ValueError(f"project {project.id!r} is configured twice")
            seen.add(project.id)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(
                f"redis_url must start with redis://, rediss:// or unix:// (got {value.split(':', 1)[0]!r})"
            )
        return value

    @field_validator("visibility_timeout")
    @classmethod
    def _visibility(cls, value: int, info: Any) -> int:
        limit = info.data.get("task_time_limit")
        if limit is not None and value <= limit:
            raise ValueError(
                f"visibility_timeout ({value}s) must be longer than task_time_limit ({limit}s), "
                "or a running task would be handed to a second worker"
            )
        return value

    def project(self, project_id: str) -> ProjectConfig:
        """The configured project with this id; ConfigError naming the known ones otherwise."""
        for project in self.projects:
            if project.id == project_id:
                return project
        known = ", ".join(p.id for p in self.projects) or "none"
        raise ConfigError(f"project {project_id!r} is not configured (configured: {known})")

    @property
    def bot(self) -> BotIdentity:
        """The bot's GitLab account, for every "is this the bot?" decision."""
        return BotIdentity(self.bot_username, self.bot_user_id)

    @property
    def redis_url_safe(self) -> str:
        """The Redis URL with any password masked, for logs."""
        return mask_url(self.redis_url)

    def summary(self) -> dict[str, Any]:
        """A log-safe view: secrets reduced to whether they are set."""
        data = self.model_dump(mode="json", exclude=set(SECRET_FIELDS))
        data["redis_url"] = self.redis_url_safe
        data.update({name: getattr(self, name) is not None for name in SECRET_FIELDS})
        return data


def mask_url(url: str) -> str:
    """``redis://:secret@host`` -> ``redis://:***@host``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _read_yaml(path: Path) -> dict[str, Any]:
    origin = f"config file {path}"
    try:
        if path.stat().st_size > MAX_CONFIG_FILE_BYTES:  # never read a huge file whole
            raise ConfigError(
                f"{origin} is over the limit of {MAX_CONFIG_FILE_BYTES // 1048576} MB; refusing it"
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {origin}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{origin} is not UTF-8 text") from None
    data = load_yaml(text, origin, max_bytes=MAX_CONFIG_FILE_BYTES, error=ConfigError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of settings, not {type(data).__name__}"
        )
    return {str(k): v for k, v in data.items()}


def _secret_files(environ: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in FILE_FIELDS:
        var = f"REMEDY_{name.upper()}"
        file_var = f"{var}_FILE"
        if file_var not in environ:
            continue
        if var in environ:
            raise ConfigError(f"both {var} and {file_var} are set; set only one")
        path = Path(environ[file_var])
        try:
            found[name] = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{file_var}: cannot read {path}: {exc.strerror or exc}") from None
    return found


def _explain(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "settings"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"invalid setting {where}: {message}{more}"


def load_settings(config_file: str | Path | None = None) -> Settings:
    """Settings from the environment, secret files and the YAML file; ConfigError when invalid."""
    environ = os.environ
    path = config_file or environ.get("REMEDY_CONFIG")
    data: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    # REMEDY_CONFIG names the file; it is not itself a setting.
    data.update(_secret_files(environ))
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
