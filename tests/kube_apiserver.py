"""A Kubernetes API server for tests: real HTTP on loopback, the part of the API that lists
custom objects, so the kubernetes Python client is exercised as against a cluster.

Follows the documented API conventions: ``GET /apis/GROUP/VERSION/PLURAL`` (every namespace) and
``/apis/GROUP/VERSION/namespaces/NS/PLURAL``; bearer-token authentication (401); per-resource
denials (403) and unknown resources (404) answered with ``Status`` objects worded as the API
server words them; ``limit`` / ``continue`` pagination with an opaque token that expires (410
Gone, reason ``Expired``) when the collection changes between pages; lists sorted by namespace and
name, as etcd keys are.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from bot.cluster import CustomResource

TOKEN = "kube-remedy-test-token"
RUNTIME_GROUP = "spdx.softwarecomposition.kubescape.io"
RUNTIME_PLURALS = {
    "ApplicationProfile": "applicationprofiles",
    "ContainerProfile": "containerprofiles",
    "NetworkNeighborhood": "networkneighborhoods",
    "GeneratedNetworkPolicy": "generatednetworkpolicies",
    "KnownServer": "knownservers",
}
"""kubescape/storage's runtime resources (``pkg/apis/softwarecomposition/v1beta1``)."""
USER = "system:serviceaccount:kube-remedy:kube-remedy"


@dataclass
class Collection:
    """The objects of one custom resource type."""

    resource: CustomResource
    kind: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    revision: int = 1


class FakeKubeApiServer:
    """Serves custom object lists; ``denied`` holds (plural, namespace or None) pairs to refuse."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.collections: dict[tuple[str, str, str], Collection] = {}
        self.denied: set[tuple[str, str | None]] = set()
        self.requests: list[str] = []
        self.on_page: Any = None
        """Called with the collection after each page is served (tests change it there)."""
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ data

    def add(self, resource: CustomResource, kind: str, *objects: Any) -> Collection:
        """Register a resource type (once) and add objects of ``kind`` to it."""
        key = (resource.group, resource.version, resource.plural)
        collection = self.collections.setdefault(key, Collection(resource, kind))
        with self._lock:
            collection.objects.extend(dict(o) for o in objects)
            collection.revision += 1
        return collection

    def add_runtime(self, *objects: Mapping[str, Any]) -> None:
        """Serve Kubescape runtime objects (ApplicationProfile, NetworkNeighborhood, ...) under
        ``spdx.softwarecomposition.kubescape.io/v1beta1``, each in its resource by ``kind``."""
        for obj in objects:
            plural = RUNTIME_PLURALS[obj["kind"]]
            body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
            self.add(
                CustomResource(RUNTIME_GROUP, "v1beta1", plural, plural != "knownservers"),
                obj["kind"],
                body,
            )

    # ------------------------------------------------------------------ server

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @contextmanager
    def running(self) -> Iterator[FakeKubeApiServer]:
        server = self

        class Handler(_Handler):
            api = server

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)

    def kubeconfig(self, path: Path, *, token: str | None = None, context: str = "test") -> Path:
        """Write a kubeconfig for this server (context ``context``, bearer ``token``)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "bot", "user": {"token": token or self.token}}],
            "contexts": [{"name": context, "context": {"cluster": "fake", "user": "bot"}}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # ------------------------------------------------------------------ API

    def handle(self, method: str, target: str, headers: Any) -> tuple[int, Any]:
        """Answer one request; ``headers`` looks names up case-insensitively (an HTTP message)."""
        self.requests.append(f"{method} {target}")
        if headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        url = urlsplit(target)
        parts = [p for p in url.path.split("/") if p]
        namespace: str | None = None
        if len(parts) == 6 and parts[0] == "apis" and parts[3] == "namespaces":
            group, version, namespace, plural = parts[1], parts[2], parts[4], parts[5]
        elif len(parts) == 4 and parts[0] == "apis":
            group, version, plural = parts[1], parts[2], parts[3]
        else:
            return _not_found()
        if method != "GET":
            return _status(405, "MethodNotAllowed", "the server does not allow this method")
        collection = self.collections.get((group, version, plural))
        if collection is None:
            return _not_found()
        if (plural, namespace) in self.denied or (plural, None) in self.denied:
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            return _status(
                403,
                "Forbidden",
                f'{plural}.{group} is forbidden: User "{USER}" cannot list resource "{plural}" '
                f'in API group "{group}" {scope}',
                details={"group": group, "kind": plural},
            )
        return self._page(collection, namespace, parse_qs(url.query))

    def _page(
        self, collection: Collection, namespace: str | None, query: Mapping[str, list[str]]
    ) -> tuple[int, Any]:
        with self._lock:
            revision = collection.revision
            objects = sorted(
                (
                    o
                    for o in collection.objects
                    if namespace is None or o.get("metadata", {}).get("namespace") == namespace
                ),
                key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"].get("name", "")),
            )
        offset = 0
        if token := query.get("continue", [""])[0]:
            state = json.loads(base64.urlsafe_b64decode(token))
            if state["rv"] != revision:
                return _status(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.",
                )
            offset = state["offset"]
        limit = int(query.get("limit", ["0"])[0] or 0)
        end = offset + limit if limit else len(objects)
        metadata: dict[str, Any] = {"resourceVersion": str(revision)}
        if end < len(objects):
            state = {"rv": revision, "offset": end}
            metadata["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            metadata["remainingItemCount"] = len(objects) - end
        api_version = f"{collection.resource.group}/{collection.resource.version}"
        page = {
            "apiVersion": api_version,
            "kind": f"{collection.kind}List",
            "metadata": metadata,
            "items": [
                {"apiVersion": api_version, "kind": collection.kind, **o}
                for o in objects[offset:end]
            ],
        }
        if self.on_page is not None:
            self.on_page(collection)
        return 200, page


def _status(code: int, reason: str, message: str, **extra: Any) -> tuple[int, Any]:
    return code, {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
        **extra,
    }


def _not_found() -> tuple[int, Any]:
    return _status(404, "NotFound", "the server could not find the requested resource")


class _Handler(BaseHTTPRequestHandler):
    api: FakeKubeApiServer

    def do_GET(self) -> None:
        code, body = self.api.handle("GET", self.path, self.headers)
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
