"""Workload intent: what a workload's purpose needs, from evidence, before any fixer runs.

A node agent that reads the host, a CSI or CNI driver, a job that must run as root: when the
purpose needs what a rule forbids, the fix would break the workload, so the answer is a
`Decline` (shown as NeedsHuman with a waiver proposal), never a fix.

Evidence, each an `Evidence` record naming its source:

- the manifest itself: a DaemonSet (or a node-inspecting Job/Pod) with host mounts of /proc,
  /sys, /dev, /var/lib/kubelet, /etc/kubernetes or a container-runtime socket; a container
  that adds capabilities (they reach only root; SETUID and SETGID say it switches user
  itself); a host-network pod whose containers add NET_ADMIN or NET_RAW;
- well-known agents, drivers and shippers by image (``fixers/data/workload_intent.yaml``, each
  entry with the source that says why);
- explicit settings with a comment giving the reason (``runAsUser: 0  # legacy: writes to
  /var/reports``), read from the file's text by `comments_of`;
- init-container commands that write paths (`written_paths`), used for companion edits;
- runtime observations later (Kubescape ApplicationProfiles): any caller may add `Evidence`.

Pure: no I/O beyond reading the packaged data file once.
"""

from __future__ import annotations

import bisect
import fnmatch
import hashlib
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import yaml

from fixers.memo import Memo
from fixers.model import NeedsHuman, YamlPath
from fixers.rules._capabilities import INSECURE, low_ports, normalise
from fixers.view import (
    ContainerView,
    FieldNotExposed,
    ManifestPodView,
    PodView,
    target_containers,
)

if TYPE_CHECKING:
    from fixers.model import Finding

# Shipped data, trusted: the C parser when PyYAML has it (start-up time of every command).
_DATA_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Evidence:
    """One observation that says what the workload needs.

    ``needs`` are tokens: hostNetwork, hostPID, hostIPC, privileged, hostPath, hostPath:write,
    root, writableRoot, capability:<NAME>, serviceAccountToken. ``container`` None means the
    whole pod.
    """

    source: str
    """Where it comes from: 'manifest', 'comment', 'well-known workloads', 'init command',
    or a runtime source such as 'Kubescape ApplicationProfile'."""
    detail: str
    needs: tuple[str, ...] = ()
    container: str | None = None
    reference: str = ""
    """A URL or file that backs the evidence (well-known entries cite their docs)."""
    paths: tuple[str, ...] = ()
    """Paths the container writes (from a command or a reason comment)."""


@dataclass(frozen=True)
class WorkloadIntent:
    """What the evidence says about one workload."""

    purpose: str | None = None
    """e.g. 'a node agent', 'Falco, a runtime security agent (...)'."""
    evidence: tuple[Evidence, ...] = ()

    def supporting(self, token: str, container: str | None = None) -> list[Evidence]:
        """The evidence that the pod (or ``container``) needs ``token``."""
        return [
            e
            for e in self.evidence
            if token in e.needs and (e.container is None or e.container == container)
        ]

    def capabilities(self, container: str) -> tuple[str, ...]:
        """The capabilities the evidence says ``container`` (or the whole pod) uses."""
        found: list[str] = []
        for e in self.evidence:
            if e.container is None or e.container == container:
                for token in e.needs:
                    cap = token.removeprefix("capability:")
                    if cap != token and cap not in found:
                        found.append(cap)
        return tuple(found)

    def writes(self, container: str) -> tuple[str, ...]:
        """Paths ``container`` is known to write (commands, reason comments)."""
        found: list[str] = []
        for e in self.evidence:
            if e.container == container:
                found.extend(p for p in e.paths if p not in found)
        return tuple(found)


@dataclass(frozen=True)
class Decline:
    """The workload needs what ``control_id`` forbids: a waiver, not a fix."""

    control_id: str
    reason: str
    evidence: tuple[Evidence, ...] = field(default=())


@dataclass(frozen=True)
class Comment:
    """The comment on a YAML key: on its own line(s) above, or after the value."""

    above: str = ""
    trailing: str = ""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _Entry:
    name: str
    images: tuple[str, ...]
    source: str
    purpose: str = ""
    needs: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    recommendation: str = ""
    serves: Mapping[str, Any] | None = None
    """How a container of another image is recognised as this server (see the data file)."""
    steps_down: str = ""
    """Why its official image, started as root, chowns its data and steps down (a source)."""
    owns_data: str = ""
    """Why the server refuses a data directory another user owns (a source)."""


@cache
def _data() -> dict[str, tuple[_Entry, ...]]:
    raw = yaml.load(
        files("fixers").joinpath("data", "workload_intent.yaml").read_text(), Loader=_DATA_LOADER
    )
    out: dict[str, tuple[_Entry, ...]] = {}
    for section in ("agents", "writable", "stateful", "scales"):
        out[section] = tuple(
            _Entry(
                name=str(item["name"]),
                images=tuple(item["images"]),
                source=str(item["source"]),
                purpose=str(item.get("purpose", "")),
                needs=tuple(item.get("needs", ())),
                paths=tuple(item.get("paths", ())),
                recommendation=str(item.get("recommendation", "")),
                serves=item.get("serves"),
                steps_down=str(item.get("steps_down", "")),
                owns_data=str(item.get("owns_data", "")),
            )
            for item in raw.get(section) or ()
        )
    return out


def image_name(image: Any) -> str:
    """``ghcr.io/org/app:1.2@sha256:..`` -> ``ghcr.io/org/app``."""
    text = str(image or "").strip().split("@", 1)[0]
    slash = text.rfind("/")
    colon = text.rfind(":")
    return text[:colon] if colon > slash else text


def _candidates(image: Any) -> tuple[str, ...]:
    name = image_name(image).lower()
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        return (name, "/".join(parts[1:]))
    return (name,)


def _match(section: str, image: Any) -> _Entry | None:
    names = _candidates(image)
    if not names[0]:
        return None
    return _match_names(section, names)


@lru_cache(maxsize=4096)
def _match_names(section: str, names: tuple[str, ...]) -> _Entry | None:
    """The first entry of ``section`` with a pattern matching one of ``names``, memoised: every
    container of every workload asks, and a repository runs few distinct images."""
    for entry in _data()[section]:
        if any(fnmatch.fnmatchcase(n, p.lower()) for n in names for p in entry.images):
            return entry
    return None


def well_known_agent(image: Any) -> _Entry | None:
    return _match("agents", image)


def stateful_server(image: Any) -> _Entry | None:
    """The data entry of a database or stateful server image (name, recommendation, source)."""
    return _match("stateful", image)


def scales_with_cluster(image: Any) -> _Entry | None:
    """The data entry of a cluster-wide component whose usage grows with the cluster (its
    objects or its traffic) rather than with its requests: an ingress proxy, kube-state-metrics."""
    return _match("scales", image)


def serves_stateful(container: ContainerView) -> tuple[_Entry, str] | None:
    """The database or stateful server a container runs, and how that is known: by its image
    ("", nothing more to say), or (any image, a team's own build of one) by the server's port
    among its containerPorts together with a sign of which server it is: the port's name, an
    environment variable of the server's official image, or a volume mounted where the server
    keeps its data."""
    entry = stateful_server(container.get("image"))
    if entry is not None:
        return entry, ""
    if container.init or container.ephemeral:
        return None
    ports = _listed(container.get("ports"))
    if not ports:
        return None
    env = [str(e.get("name", "")) for e in _listed(container.get("env"))]
    for entry in _data()["stateful"]:
        serves = entry.serves or {}
        port = serves.get("port")
        for declared in ports:
            if declared.get("containerPort") != port or port is None:
                continue
            name = str(declared.get("name", "")).lower()
            if any(token in name for token in serves.get("names", ())):
                return entry, f"containerPort {port} named {name}"
            var = next((v for v in env if v.startswith(tuple(serves.get("env", ())))), None)
            if var is not None:
                return entry, f"containerPort {port} and the environment variable {var}"
            data = data_mounts(container, entry)
            if data:
                return entry, f"containerPort {port} and a volume at {data[0]}"
    return None


def data_mounts(container: ContainerView, entry: _Entry) -> list[str]:
    """The container's volume mounts at or below where ``entry``'s server keeps its data."""
    paths = tuple((entry.serves or {}).get("paths", ()))
    mounts = [
        str(m.get("mountPath", "")).rstrip("/") for m in _listed(container.get("volumeMounts"))
    ]
    return [m for m in mounts for p in paths if m == p or m.startswith(p + "/")]


def _listed(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of a manifest list field (none when it is not a list)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def known_writable(image: Any) -> tuple[tuple[str, ...], str]:
    """Paths a well-known image writes at run time, and the source that says so."""
    entry = _match("writable", image)
    return (entry.paths, entry.source) if entry else ((), "")


def container_writable(container: ContainerView) -> tuple[tuple[str, ...], str]:
    """`known_writable` of the container's image, else of the server `serves_stateful`
    recognises it as (a team's own build of PostgreSQL writes where PostgreSQL does)."""
    paths, source = known_writable(container.get("image"))
    if paths:
        return paths, source
    found = serves_stateful(container)
    if found is None:
        return (), ""
    entry, how = found
    same = next((e for e in _data()["writable"] if e.name == entry.name), None)
    if same is None:
        return (), ""
    return same.paths, f"it runs {entry.name}{f' ({how})' if how else ''}: {same.source}"


_STEP_DOWN = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID")


# --------------------------------------------------------------------------- comments

_REASON = re.compile(
    r"\b(because|legacy|needs?|needed|requires?|required|must|so that|writes?|reads?|"
    r"otherwise|cannot|can't|for the|see|ticket|exception|waiver|SEC-\d+)\b",
    re.I,
)
_PATH = re.compile(r"(?<![\w.])(/[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-*]+)*)")


def comments_of(text: str, document_index: int = 0) -> dict[YamlPath, Comment]:
    """Key path -> comment, for every mapping key of one document of ``text`` that has one."""
    return dict(_comments_of(text, document_index))


_Comments = tuple[tuple[YamlPath, Comment], ...]
_BY_DIGEST: Memo[bytes, _Comments] = Memo(16_384)
"""Comments of the documents met lately, by a digest of their text (a few hundred bytes
each, not the text): a big plan asks about each file again for every change set."""


@lru_cache(maxsize=256)
def _comments_of(text: str, document_index: int) -> _Comments:
    """`comments_of`, memoised on the text: the planner asks again for every batch of a file,
    mostly about a text it has already read; and on the document's digest, for a file whose
    change sets are planned far apart."""
    from fixers.edits import EditError, document_span

    try:
        start, end = document_span(text, document_index)
    except EditError:
        return ()
    body = text[start:end]
    if "#" not in body:
        return ()  # no comment: nothing to compose
    digest = hashlib.blake2b(body.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    found = _BY_DIGEST.get(digest)
    return _BY_DIGEST.put(digest, _comments_in(body)) if found is None else found


_OTHER_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""Characters other than CR and LF that `str.splitlines` (and for the last three, YAML) break
lines at."""


def _comments_in(body: str, *, prune: bool = True) -> _Comments:
    """The comments of one document's text, composed by the C parser (same nodes and marks).
    ``prune``: skip the collections whose lines hold no '#' (False: walk every node)."""
    from fixers.edits import compose_text

    try:
        root = compose_text(body)
    except yaml.YAMLError:
        return ()
    lines = body.splitlines()
    out: dict[YamlPath, Comment] = {}

    def trailing(index: int) -> str:
        eol = body.find("\n", index)
        eol = len(body) if eol < 0 else eol
        if body.find("#", index, eol) < 0:  # most lines have no comment
            return ""
        match = re.match(r"\s*#\s?(.*)", body[index:eol])
        return match.group(1).strip() if match else ""

    def above(line: int) -> str:
        found: list[str] = []
        n = line - 1
        while n >= 0 and lines[n].strip().startswith("#"):
            found.insert(0, lines[n].strip().lstrip("#").strip())
            n -= 1
        return " ".join(t for t in found if t)

    # Lines holding a '#' (comments, and some values). A key reads its own line, the lines
    # above it and the line its scalar ends on, all within its collection's lines and the one
    # above them: a collection without a '#' there has no comment to find. (Only where YAML,
    # `splitlines` and `trailing` break lines at the same places: at line feeds alone.)
    hashes = [n for n, line in enumerate(lines) if "#" in line]
    lone_cr = body.count("\r") != body.count("\r\n")
    prune = prune and not lone_cr and not any(c in body for c in _OTHER_BREAKS)

    def may_comment(node: yaml.Node) -> bool:
        if not prune:
            return True
        at = bisect.bisect_left(hashes, node.start_mark.line - 1)
        return at < len(hashes) and hashes[at] <= node.end_mark.line

    def walk(node: yaml.Node, path: YamlPath) -> None:
        if not may_comment(node):
            return
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue
                here = (*path, key.value)
                if isinstance(value, yaml.ScalarNode) or value.flow_style:
                    after = trailing(value.end_mark.index)
                else:
                    after = trailing(key.end_mark.index + 1)
                before = above(key.start_mark.line)
                if after or before:
                    out[here] = Comment(before, after)
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    if root is not None:
        walk(root, ())
    return tuple(out.items())


def _reason_comment(comment: Comment | None) -> str:
    """The comment's text when it gives a reason for the setting: any comment after the value
    (it is about this line), or one above it that reads like a reason."""
    if comment is None:
        return ""
    if comment.trailing:
        return comment.trailing
    if comment.above and _REASON.search(comment.above) and not comment.above.startswith("--"):
        return comment.above
    return ""


# --------------------------------------------------------------------------- commands

_WRITE_FLAGS = re.compile(r"^--?(o|O|out|output|output-file|outfile|dest|destination|target)$")
_WRITE_FLAG_EQ = re.compile(r"^--(out|output|output-file|outfile|dest|destination|target)=(/\S+)$")


def _tokens(container: ContainerView) -> list[str]:
    words: list[str] = []
    for key in ("command", "args"):
        value = container.get(key, default=[]) or []
        if isinstance(value, str):
            value = [value]
        for item in value if isinstance(value, list) else []:
            text = str(item)
            if any(c in text for c in " ;&|>") and len(text) > 2:
                try:
                    words.extend(shlex.split(text.replace(";", " ; "), posix=True))
                except ValueError:
                    words.extend(text.split())
            else:
                words.append(text)
    return words


def written_paths(container: ContainerView) -> tuple[str, ...]:
    """Absolute paths a container's command and args write: ``--out X``, ``-o X``, ``> X``,
    ``tee X``, ``cp/mv ... X``, ``mkdir X``, ``touch X``."""
    words = _tokens(container)
    found: list[str] = []

    def add(path: str) -> None:
        path = path.rstrip(";")
        if path.startswith("/") and not path.startswith("/dev/") and path not in found:
            found.append(path)

    for i, word in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if _WRITE_FLAGS.match(word) or word in (">", ">>", "tee", "touch"):
            add(nxt)
        elif (eq := _WRITE_FLAG_EQ.match(word)) is not None:
            add(eq.group(2))
        elif word.startswith(">") and len(word) > 1:
            add(word.lstrip(">"))
        elif word == "mkdir":
            rest = [w for w in words[i + 1 :] if w not in ("-p", "--parents")]
            if rest:
                add(rest[0])
        elif word in ("cp", "mv", "install"):
            args: list[str] = []
            for w in words[i + 1 :]:
                if w in (";", "&&", "||", "|"):
                    break
                if not w.startswith("-"):
                    args.append(w)
            if len(args) >= 2:
                add(args[-1])
    return tuple(found)


_SEPARATORS = frozenset({";", "&&", "||", "|", "then", "do", "else", "-exec", "-execdir"})
_WRAPPERS = frozenset(
    {"exec", "xargs", "env", "nice", "nohup", "sudo", "timeout", "tini", "dumb-init", "--"}
)
"""Programs that run the program named after their own options (``xargs -r chown``)."""

# Commands that only root can run to effect, and the default capabilities they use.
_ROOT_COMMANDS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    **dict.fromkeys(
        ("chown", "chgrp"),
        (
            "changes the owner of files, which needs root: CHOWN, and DAC_OVERRIDE and FOWNER "
            "for files and directories another user owns",
            ("CHOWN", "DAC_OVERRIDE", "FOWNER"),
        ),
    ),
    **dict.fromkeys(
        ("su", "su-exec", "gosu", "runuser", "setpriv", "setuidgid", "s6-setuidgid", "chpst"),
        (
            "starts as root and switches to another user itself, which needs SETUID and SETGID",
            ("SETUID", "SETGID"),
        ),
    ),
}


def _commands(container: ContainerView) -> list[str]:
    """The programs a container's command and args run (by name, each once): the first word
    of the command, of each line of a script item (``sh -c "..."``) and the word after a shell
    separator or after a wrapper's options (``xargs -r``, ``env A=1``, ``timeout 10``)."""
    words: list[str] = []
    for key in ("command", "args"):
        value = container.get(key, default=[]) or []
        for item in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            text = str(item)
            if not any(c.isspace() for c in text):
                words.append(text)
                continue
            for line in text.splitlines():  # a script: each line starts a command
                try:
                    words += [";", *shlex.split(line.replace(";", " ; "), posix=True)]
                except ValueError:
                    words += [";", *line.split()]
    found: list[str] = []
    expecting = True
    for word in words:
        if word in _SEPARATORS:
            expecting = True
            continue
        if not expecting:
            continue
        name = word.rsplit("/", 1)[-1]
        if name in _WRAPPERS:
            continue
        if word.startswith("-") or word.isdigit() or "=" in word.split("/", 1)[0]:
            continue  # a wrapper's option or an environment assignment
        if name and name not in found:
            found.append(name)
        expecting = False
    return found


def root_commands(container: ContainerView) -> list[tuple[str, str, tuple[str, ...]]]:
    """(program, why it needs root, the capabilities it uses) for each program of the
    container's command that only root can run to effect (chown, gosu, su)."""
    return [
        (name, *_ROOT_COMMANDS[name]) for name in _commands(container) if name in _ROOT_COMMANDS
    ]


# --------------------------------------------------------------------------- classify

NODE_PATHS = ("/proc", "/sys", "/dev", "/var/lib/kubelet", "/etc/kubernetes", "/boot")
_SOCKET = re.compile(r"^/(var/)?run/.*\.sock$|^/(var/)?run/(docker|containerd|crio|cri-dockerd)")
_WRITE_NEEDED = ("/var/lib/kubelet", "/dev")


def _node_path(path: str) -> bool:
    return bool(_SOCKET.match(path)) or any(
        path == p or path.startswith(p + "/") for p in NODE_PATHS
    )


def _host_paths(view: PodView) -> dict[str, str]:
    found: dict[str, str] = {}
    for volume in view.get("volumes", default=[]) or []:
        if isinstance(volume, Mapping) and isinstance(volume.get("hostPath"), Mapping):
            found[str(volume.get("name"))] = str(volume["hostPath"].get("path", ""))
    return found


def _comment_at(
    comments: Mapping[YamlPath, Comment], where: Any, *field_path: str | int
) -> Comment | None:
    if not comments:
        return None
    try:
        path = where.path(*field_path)
    except FieldNotExposed:
        return None
    return comments.get(path)


_EXPLICIT_POD = {"hostNetwork": True, "hostPID": True, "hostIPC": True}
_EXPLICIT_CONTAINER: Mapping[tuple[str, ...], tuple[Any, str]] = {
    ("securityContext", "privileged"): (True, "privileged"),
    ("securityContext", "runAsUser"): (0, "root"),
    ("securityContext", "runAsNonRoot"): (False, "root"),
    ("securityContext", "readOnlyRootFilesystem"): (False, "writableRoot"),
    ("securityContext", "allowPrivilegeEscalation"): (True, "privileged"),
}


def classify(
    view: PodView,
    comments: Mapping[YamlPath, Comment] | None = None,
    extra: Iterable[Evidence] = (),
) -> WorkloadIntent:
    """Everything the repository says about what this workload needs.

    ``comments`` maps the view's write paths (``view.path(...)``) to the comments on them;
    ``extra`` adds evidence from elsewhere (runtime profiles).
    """
    comments = comments or {}
    evidence: list[Evidence] = []
    purposes: list[str] = []

    for container in view.containers:
        entry = well_known_agent(container.get("image"))
        if entry is not None:
            evidence.append(
                Evidence(
                    "well-known workloads",
                    f"{container.name} runs {entry.name} ({entry.purpose})",
                    entry.needs,
                    None,
                    entry.source,
                )
            )
            purposes.append(f"{entry.name}, a {entry.purpose}")

    host = _host_paths(view)
    node_mounts = sorted({p for p in host.values() if _node_path(p)})
    inspects_node = bool(node_mounts) and (
        view.kind == "DaemonSet" or any(view.get(f) is True for f in _EXPLICIT_POD)
    )
    if inspects_node:
        needs = ["hostPath"]
        if any(p.startswith(_WRITE_NEEDED) or _SOCKET.match(p) for p in node_mounts):
            # the kubelet's directories, device nodes and runtime sockets belong to root
            needs += ["hostPath:write", "root"]
        needs += [f for f in _EXPLICIT_POD if view.get(f) is True]
        privileged = [
            c.name for c in view.containers if c.get("securityContext", "privileged") is True
        ]
        if privileged:
            needs += ["privileged", "root"]
        added = {cap for c in view.containers for cap in _added_capabilities(c)}
        if added:
            needs += [f"capability:{cap}" for cap in sorted(added)] + ["root"]
        what = "DaemonSet" if view.kind == "DaemonSet" else f"{view.kind} with host namespaces"
        evidence.append(
            Evidence(
                "manifest",
                f"a {what} that mounts {', '.join(node_mounts)} from the node is a node agent",
                tuple(dict.fromkeys(needs)),
            )
        )
        purposes.append("node agent")

    if view.get("hostNetwork") is True:
        on_node = {
            c.name: [cap for cap in _added_capabilities(c) if cap in _NODE_NETWORK]
            for c in view.containers
            if not c.ephemeral
        }
        on_node = {name: caps for name, caps in on_node.items() if caps}
        if on_node:
            said = "; ".join(f"{name} adds {', '.join(caps)}" for name, caps in on_node.items())
            evidence.append(
                Evidence(
                    "manifest",
                    f"{said} on the host network: it works on the node's own network "
                    "interfaces (ARP, routes, BGP or packet filtering), which only the host "
                    "network namespace has",
                    ("hostNetwork",),
                )
            )

    for field_name, bad in _EXPLICIT_POD.items():
        if view.get(field_name) == bad:
            reason = _reason_comment(_comment_at(comments, view, field_name))
            if reason:
                evidence.append(
                    Evidence("comment", f"{field_name}: {bad} — {reason}", (field_name,))
                )

    for container in view.containers:
        if container.ephemeral:
            continue
        for field_path, (bad, token) in _EXPLICIT_CONTAINER.items():
            value = container.get(*field_path)
            if value != bad or isinstance(value, bool) != isinstance(bad, bool):
                continue
            reason = _reason_comment(_comment_at(comments, container, *field_path))
            if reason:
                paths = tuple(_PATH.findall(reason)) if re.search(r"writ", reason, re.I) else ()
                evidence.append(
                    Evidence(
                        "comment",
                        f"{container.name}: {field_path[-1]}: {str(bad).lower()} — {reason}",
                        (token,),
                        container.name,
                        paths=paths,
                    )
                )
        kept = _root_only_capabilities(container)
        switching = [cap for cap in _USER_SWITCHING if cap in kept]
        if kept:
            shown = switching or kept
            what = f"the {' and '.join(shown)} capabilit{'ies' if len(shown) > 1 else 'y'}"
            evidence.append(
                Evidence(
                    "manifest",
                    f"{container.name} adds {what}: it starts as root and switches to its own "
                    "user itself (as gosu or su-exec do)"
                    if switching
                    else f"{container.name} adds {what}, which "
                    f"{'reach' if len(shown) > 1 else 'reaches'} only a root process "
                    "(Kubernetes gives another user no ambient capabilities): as another user "
                    f"it would lose {'them' if len(shown) > 1 else 'it'}",
                    ("root",),
                    container.name,
                )
            )
        for name, why, caps in root_commands(container):
            evidence.append(
                Evidence(
                    "init command" if container.init else "command",
                    f"{container.name} runs {name}: it {why}",
                    ("root", *(f"capability:{cap}" for cap in caps)),
                    container.name,
                )
            )
        ports = low_ports(container)
        if (
            ports
            and not container.ephemeral
            and runs_as_root(view, container)
            and "NET_BIND_SERVICE" not in _added_capabilities(container)
        ):
            listed = ", ".join(map(str, ports))
            evidence.append(
                Evidence(
                    "manifest",
                    f"{container.name} listens on port {listed}, below 1024, as root: a server "
                    "that binds such a port as root (as Apache httpd and nginx do) then hands its "
                    "workers to another user and gives them its directories (SETUID, SETGID, "
                    "CHOWN); as another user it cannot bind the port unless its image grants "
                    "NET_BIND_SERVICE to its binary",
                    (
                        "root",
                        "capability:NET_BIND_SERVICE",
                        "capability:SETUID",
                        "capability:SETGID",
                        "capability:CHOWN",
                    ),
                    container.name,
                )
            )
        server = serves_stateful(container) if not container.init else None
        if server is not None and server[0].steps_down and runs_as_root(view, container):
            entry, how = server
            evidence.append(
                Evidence(
                    "well-known workloads",
                    f"{container.name} runs {entry.name}{f' ({how})' if how else ''}, whose "
                    "official image, started as root, gives its data to its own user and "
                    "re-runs itself as that user",
                    tuple(f"capability:{cap}" for cap in _STEP_DOWN),
                    container.name,
                    entry.steps_down,
                )
            )
        writes = written_paths(container)
        if writes:
            evidence.append(
                Evidence(
                    "init command" if container.init else "command",
                    f"{container.name} writes {', '.join(writes)}",
                    (),
                    container.name,
                    paths=writes,
                )
            )

    evidence.extend(extra)
    return WorkloadIntent(purposes[0] if purposes else None, tuple(evidence))


_USER_SWITCHING = ("SETUID", "SETGID")
_NODE_NETWORK = ("NET_ADMIN", "NET_RAW", "NET_BROADCAST")


def _added_capabilities(container: ContainerView) -> list[str]:
    """The capabilities a container's securityContext adds, `normalise`d, in its order."""
    added = container.get("securityContext", "capabilities", "add", default=[]) or []
    if not isinstance(added, list):
        return []
    return list(dict.fromkeys(map(normalise, added)))


def _root_only_capabilities(container: ContainerView) -> list[str]:
    """The capabilities a container adds that it would lose as another user: added
    capabilities reach only a root process (Kubernetes sets no ambient capabilities). All but
    NET_BIND_SERVICE, which images also grant their binary as a file capability to run
    unprivileged (CoreDNS, ingress-nginx). SETUID and SETGID say the container switches user
    at start-up itself."""
    return [cap for cap in _added_capabilities(container) if cap != "NET_BIND_SERVICE"]


# --------------------------------------------------------------------------- decide


def cite(found: Sequence[Evidence]) -> str:
    """The evidence in words, each with the reference that backs it."""
    parts = []
    for e in found:
        ref = f" ({e.reference})" if e.reference else ""
        parts.append(f"{e.detail}{ref}")
    return "; ".join(dict.fromkeys(parts))


def _privileged(container: ContainerView) -> bool:
    if container.get("securityContext", "privileged") is True:
        return True
    return "SYS_ADMIN" in _added_capabilities(container)


def runs_as_root(view: PodView, container: ContainerView) -> bool:
    """Whether the container may run as root: user 0, or no user and no runAsNonRoot."""
    user = container.get("securityContext", "runAsUser")
    if user is None:
        user = view.get("securityContext", "runAsUser")
    non_root = container.get("securityContext", "runAsNonRoot")
    if non_root is None:
        non_root = view.get("securityContext", "runAsNonRoot")
    if isinstance(user, int) and not isinstance(user, bool):
        return user == 0
    return non_root is not True


def _needs(
    intent: WorkloadIntent, token: str, containers: Sequence[ContainerView]
) -> list[Evidence]:
    found: list[Evidence] = []
    for container in containers or [None]:  # type: ignore[list-item]
        for e in intent.supporting(token, container.name if container else None):
            if e not in found:
                found.append(e)
    return found


def _pod_decline(
    intent: WorkloadIntent, view: PodView, control: str, fields: Sequence[str]
) -> Decline | None:
    for field_name in fields:
        if view.get(field_name) is not True:
            continue
        found = _needs(intent, field_name, [])
        if found:
            return Decline(
                control,
                f"{field_name}: true is needed by this workload's purpose: {cite(found)}; "
                f"removing it would break it",
                tuple(found),
            )
    return None


def decline(intent: WorkloadIntent, view: PodView, finding: Finding) -> Decline | None:
    """A `Decline` when the workload needs what ``finding``'s control forbids, else None."""
    control = finding.control_id
    if control == "C-0041":
        return _pod_decline(intent, view, control, ("hostNetwork",))
    if control == "C-0038":
        return _pod_decline(intent, view, control, ("hostPID", "hostIPC"))
    if control in TOKEN_CONTROLS:
        found = _needs(intent, "serviceAccountToken", [])
        if found and view.get("automountServiceAccountToken") is not False:
            return Decline(
                control,
                f"the pod needs its service account token: {cite(found)}; without it those "
                "calls fail",
                tuple(found),
            )
        return None
    containers = [c for c in target_containers(view, finding) if not c.ephemeral]
    if control in ("C-0057", "C-0016"):
        chosen = [c for c in containers if _privileged(c)]
        found = _needs(intent, "privileged", chosen) if chosen else []
        if found:
            names = ", ".join(c.name for c in chosen)
            what = (
                "privileged access"
                if control == "C-0057"
                else "privilege escalation (Kubernetes refuses allowPrivilegeEscalation: false "
                "on a privileged container)"
            )
            return Decline(
                control,
                f"{names} needs {what}: {cite(found)}; taking it away would break the workload",
                tuple(found),
            )
        return None
    if control in ("C-0048", "C-0045"):
        host = _host_paths(view)
        if not host:
            return None
        token = "hostPath" if control == "C-0048" else "hostPath:write"
        found = _needs(intent, token, containers)
        if found:
            paths = ", ".join(sorted(set(host.values())))
            what = "its hostPath volumes" if control == "C-0048" else "writable hostPath mounts"
            return Decline(
                control,
                f"the workload needs {what} ({paths}): {cite(found)}",
                tuple(found),
            )
        return None
    if control == "C-0046":
        for container in containers:
            added = container.get("securityContext", "capabilities", "add", default=[]) or []
            insecure = [normalise(c) for c in added if normalise(c) in INSECURE]
            found = [
                e for cap in insecure for e in _needs(intent, f"capability:{cap}", [container])
            ]
            if found:
                return Decline(
                    control,
                    f"{container.name} needs {', '.join(insecure)}: {cite(found)}",
                    tuple(dict.fromkeys(found)),
                )
        return None
    if control in ("C-0013", "C-9003"):  # a user id of 10000 or more is no root either
        chosen = [c for c in containers if runs_as_root(view, c)]
        found = _needs(intent, "root", chosen) if chosen else []
        if found:
            names = ", ".join(c.name for c in chosen if intent.supporting("root", c.name))
            return Decline(
                control,
                f"{names} must run as root: {cite(found)}; a non-root user would break it",
                tuple(found),
            )
        return None
    if control in ("C-9001", "C-9002"):  # dropping capabilities
        chosen = [c for c in containers if c.get("securityContext", "privileged") is True]
        found = _needs(intent, "privileged", chosen) if chosen else []
        if found:
            names = ", ".join(c.name for c in chosen)
            return Decline(
                control,
                f"{names} must run privileged: {cite(found)}; a privileged container has "
                "every capability whatever it drops, so the change would only claim a "
                "protection it does not give",
                tuple(found),
            )
        return None
    if control == "C-0017":
        chosen = [
            c for c in containers if c.get("securityContext", "readOnlyRootFilesystem") is not True
        ]
        found = _needs(intent, "writableRoot", chosen) if chosen else []
        if found:
            names = ", ".join(c.name for c in chosen)
            return Decline(
                control,
                f"{names} needs a writable root filesystem: {cite(found)}",
                tuple(found),
            )
    return None


def intent_of(view: PodView, given: WorkloadIntent | None) -> WorkloadIntent:
    """The intent the caller gathered (with comments), else what the view alone shows."""
    if given is not None:
        return given
    return classified(view)


def classified(
    view: PodView,
    comments: Mapping[YamlPath, Comment] | None = None,
    extra: Iterable[Evidence] = (),
) -> WorkloadIntent:
    """`classify`, memoised for a manifest's view: it is immutable and memoised per text, and
    the planner asks for the intent of the same view (with the same comments) for every batch
    and finding of a document, verification once per finding it checks."""
    if type(view) is not ManifestPodView:
        return classify(view, comments, extra)
    extra = tuple(extra)
    key = (id(view), tuple(comments.items()) if comments else (), extra)
    try:
        hit = _CLASSIFIED.get(key)
    except TypeError:  # evidence holding a list: not hashable, never memoised
        return classify(view, comments, extra)
    if hit is not None and hit[0] is view:
        return hit[1]
    return _CLASSIFIED.put(key, (view, classify(view, comments, extra)))[1]


_CLASSIFIED: Memo[tuple[Any, ...], tuple[ManifestPodView, WorkloadIntent]] = Memo(1024)
"""`classify` of a manifest view, by the view's identity, its comments and the extra evidence
(the entry holds the view, so its id is not reused while it is kept)."""


def stale_comments(
    edits: Iterable[Any], comments: Mapping[YamlPath, Comment]
) -> Iterator[tuple[YamlPath, str]]:
    """(path, comment) for every edit that changes or removes a value whose comment would stay
    behind, no longer true (``runAsUser: 10001  # legacy: writes to /var/reports``)."""
    from fixers.model import Remove, Set

    for edit in edits:
        if not isinstance(edit, Set | Remove):
            continue
        comment = comments.get(edit.path)
        if comment is None:
            continue
        if comment.trailing:
            yield edit.path, comment.trailing
        elif isinstance(edit, Remove) and comment.above and _REASON.search(comment.above):
            yield edit.path, comment.above


def declined(view: PodView, finding: Finding, given: WorkloadIntent | None) -> NeedsHuman | None:
    """The fixers' intent hook: NeedsHuman with the reason when the workload's purpose needs
    what the control forbids (the planner proposes the waiver), else None."""
    found = decline(intent_of(view, given), view, finding)
    if found is None:
        return None
    return NeedsHuman(f"{WAIVE_PREFIX}{found.reason}")


WAIVE_PREFIX = "not fixed, a waiver is proposed instead: "

TOKEN_CONTROLS = ("C-0034", "C-0190")
"""The controls that turn the service account token off (`serviceAccountToken` evidence
declines them)."""
