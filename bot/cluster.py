"""Read custom objects (scan results) from a live cluster with the kubernetes Python client.

Credentials come from a kubeconfig (an explicit file, ``$KUBECONFIG`` or ``~/.kube/config``,
optionally one context of it) or, inside a pod, from the service account the bot runs as. Lists
are read page by page (``limit`` / ``continue``), so a cluster with thousands of scanned workloads
is never held as one response. Every failure becomes a `ReportError` that says what to fix:
missing RBAC, an API that is not installed, an unreachable or misconfigured API server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import ReportError

DEFAULT_PAGE_SIZE = 100
REQUEST_TIMEOUT = (10, 120)
"""Seconds to connect and to read one page."""


class ResourceNotServed(ReportError):
    """The API server does not serve a resource type (404): its component is not installed."""


@dataclass(frozen=True)
class ClusterAccess:
    """Where the cluster credentials come from; all None: the default kubeconfig, else in-cluster."""

    kubeconfig: str | None = None
    context: str | None = None

    def describe(self) -> str:
        where = self.kubeconfig or os.environ.get("KUBECONFIG") or "the default kubeconfig"
        if self.context:
            return f"context {self.context!r} of {where}"
        return where


@dataclass(frozen=True)
class CustomResource:
    """One custom resource type: API group, version and plural name."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def full_name(self) -> str:
        return f"{self.plural}.{self.group}"


def _in_cluster() -> bool:
    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").is_file()
    )


def _kubeconfig(access: ClusterAccess) -> str | None:
    """The kubeconfig to use (``$KUBECONFIG`` may list several files), None when none exists."""
    if access.kubeconfig:
        return access.kubeconfig
    listed = os.environ.get("KUBECONFIG") or "~/.kube/config"
    present = [p for p in listed.split(os.pathsep) if p and Path(p).expanduser().is_file()]
    return os.pathsep.join(present) or None


def api_client(access: ClusterAccess) -> Any:
    """A `kubernetes.client.ApiClient` for ``access``: its kubeconfig when there is one, else the
    pod's service account; a clear `ReportError` when there is neither."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise ReportError(
            "reading a live cluster needs the Kubernetes client: pip install 'kube-remedy[cluster]'"
        ) from None

    kubeconfig = _kubeconfig(access)
    try:
        if kubeconfig:
            return config.new_client_from_config(
                config_file=kubeconfig, context=access.context, persist_config=False
            )
        if _in_cluster() and not access.context:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
    except config.ConfigException as exc:
        raise ReportError(f"cannot use {access.describe()}: {exc}") from None
    except OSError as exc:
        raise ReportError(f"cannot read {access.describe()}: {exc}") from None
    raise ReportError(
        f"no cluster credentials: no kubeconfig at {os.environ.get('KUBECONFIG') or '~/.kube/config'}"
        " and not running in a pod (set the report's kubeconfig or $KUBECONFIG, or run the bot in "
        "the cluster with a service account)"
    )


def _status_message(body: Any) -> str:
    """The ``message`` of a Kubernetes ``Status`` response body, if it is one."""
    try:
        status = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        return ""
    message = status.get("message") if isinstance(status, Mapping) else None
    return message if isinstance(message, str) else ""


def _api_error(exc: Any, resource: CustomResource, where: str, server: str) -> ReportError:
    status = getattr(exc, "status", None)
    detail = _status_message(getattr(exc, "body", None)) or str(getattr(exc, "reason", "")).strip()
    if status == 401:
        return ReportError(
            f"{server}: the cluster rejected the credentials (401 Unauthorized); renew the token "
            "or client certificate of the kubeconfig / service account"
        )
    if status == 403:
        return ReportError(
            f"{server}: not allowed to list {resource.full_name} {where} (403 Forbidden: "
            f"{detail}); grant the bot's identity get and list on {resource.plural} in API group "
            f"{resource.group}, with a ClusterRole bound by a ClusterRoleBinding to read every "
            "namespace or a RoleBinding to read one"
        )
    if status == 404:
        return ResourceNotServed(
            f"{server}: the cluster serves no {resource.full_name} "
            f"({resource.group}/{resource.version}, 404 Not Found): is the component that "
            "provides it installed?"
        )
    if status == 410:
        return ReportError(
            f"{server}: the listing of {resource.full_name} expired while it was read page by "
            "page (410 Gone: the results changed); the next run reads it again"
        )
    if status == 429:
        return ReportError(
            f"{server}: the API server is throttling requests (429 Too Many Requests); "
            "the next run reads it again"
        )
    return ReportError(
        f"{server}: listing {resource.full_name} {where} failed "
        f"({status or 'no status'}: {detail or 'no message'})"
    )


def list_objects(
    api: Any,
    resource: CustomResource,
    namespace: str | None = None,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Iterator[Mapping[str, Any]]:
    """Every object of ``resource`` in ``namespace`` (every namespace when None), page by page."""
    from kubernetes import client
    from urllib3.exceptions import HTTPError

    objects = client.CustomObjectsApi(api)
    server = str(api.configuration.host)
    where = f"in namespace {namespace!r}" if namespace else "in any namespace"
    token: str | None = None
    while True:
        options: dict[str, Any] = {"limit": page_size, "_request_timeout": REQUEST_TIMEOUT}
        if token:
            options["_continue"] = token
        try:
            if namespace:
                page = objects.list_namespaced_custom_object(
                    resource.group, resource.version, namespace, resource.plural, **options
                )
            else:
                page = objects.list_cluster_custom_object(
                    resource.group, resource.version, resource.plural, **options
                )
        except client.ApiException as exc:
            if exc.status in (None, 0) and exc.reason:  # raised by the client, not the server
                raise ReportError(f"{server}: {exc.reason}") from None
            raise _api_error(exc, resource, where, server) from None
        except HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ReportError(f"cannot reach the cluster API server {server}: {reason}") from None
        if not isinstance(page, Mapping) or not isinstance(page.get("items"), list):
            raise ReportError(f"{server}: listing {resource.full_name} returned no items list")
        for item in page["items"]:
            if isinstance(item, Mapping):
                yield item
        metadata = page.get("metadata")
        token = metadata.get("continue") if isinstance(metadata, Mapping) else None
        if not token:
            return


def list_all(
    api: Any,
    resources: Sequence[CustomResource],
    namespace: str | None = None,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Iterator[Mapping[str, Any]]:
    """Every object of several resource types (alternatives: a type the cluster does not serve is
    passed over, unless it serves none of them). Cluster-scoped types are read only when
    ``namespace`` is None."""
    wanted = [r for r in resources if r.namespaced or namespace is None]
    missing: list[ResourceNotServed] = []
    for resource in wanted:
        try:
            yield from list_objects(api, resource, namespace, page_size=page_size)
        except ResourceNotServed as exc:
            missing.append(exc)
    if wanted and len(missing) == len(wanted):
        if len(missing) == 1:
            raise missing[0]
        names = ", ".join(r.full_name for r in wanted)
        raise ResourceNotServed(
            f"{api.configuration.host}: the cluster serves none of {names} (404 Not Found): is "
            "the component that provides them installed?"
        )
