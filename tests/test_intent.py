"""Workload intent on the issue's own examples: a kube-bench-style job, a reason comment, an
init container that writes a file, a database's limits, a waiver written into .remedy.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.plan import build_plan
from bot.sources.base import Report
from bot.waivers import Waiver, remedy_yaml
from fixers.edits import load_documents
from fixers.intent import Evidence, classified, classify, comments_of, decline, written_paths
from fixers.model import AppendUnique, Finding, Fixed, ResourceRef, SourceHint
from fixers.view import ManifestPodView
from tests.conftest import corpus_path

KUBE_BENCH = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: kube-bench
spec:
  template:
    spec:
      hostPID: true
      restartPolicy: Never
      containers:
        - name: kube-bench
          image: docker.io/aquasec/kube-bench:v0.10.1
          command: ["kube-bench"]
          volumeMounts:
            - {name: var-lib-kubelet, mountPath: /var/lib/kubelet, readOnly: true}
      volumes:
        - name: var-lib-kubelet
          hostPath: {path: /var/lib/kubelet}
"""

REPORT_JOB = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly-report
  namespace: reporting
spec:
  schedule: "30 2 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          initContainers:
            - name: fetch-config
              image: registry.example.com/tools/fetch:2.0.1
              args: ["--out", "/work/config.json"]
          containers:
            - name: report
              image: registry.example.com/reporting/nightly:3.1.0
              securityContext:
                runAsUser: 0   # legacy: writes to /var/reports
"""


def _finding(control: str, kind: str, name: str, path: str, ns: str | None = None) -> Finding:
    return Finding(
        control_id=control,
        resource=ResourceRef(kind=kind, namespace=ns, name=name),
        source=SourceHint(path=path),
    )


def _view(text: str) -> ManifestPodView:
    view = ManifestPodView.from_document(load_documents(text)[0])
    assert view is not None
    return view


def test_kube_bench_keeps_host_pid_and_root() -> None:
    view = _view(KUBE_BENCH)
    intent = classify(view)
    for control in ("C-0038", "C-0013"):
        found = decline(intent, view, _finding(control, "Job", "kube-bench", "job.yaml"))
        assert found is not None and "kube-bench" in found.reason
        assert any(e.reference.startswith("https://") for e in found.evidence)


FLUENT_BIT = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: fluent-bit
spec:
  template:
    spec:
      containers:
        - name: fluent-bit
          image: cr.fluentbit.io/fluent/fluent-bit:3.2.2
          volumeMounts:
            - {name: varlog, mountPath: /var/log}
      volumes:
        - name: varlog
          hostPath: {path: /var/log}
"""


def test_a_log_shipper_that_tails_the_nodes_logs_keeps_root() -> None:
    """Fluent Bit reads the root-owned files of /var/log/pods and keeps its tail database
    in /var/log: neither the non-root fix nor a high user id (no root either) is proposed."""
    view = _view(FLUENT_BIT)
    intent = classify(view)
    for control in ("C-0013", "C-9003"):
        found = decline(intent, view, _finding(control, "DaemonSet", "fluent-bit", "fb.yaml"))
        assert found is not None and "must run as root" in found.reason, control
        assert "fluent/fluent-bit#3056" in found.reason
    # A high user id for a container that already runs as another user is no root matter.
    other = _view(
        FLUENT_BIT.replace(
            "      containers:", "      securityContext: {runAsUser: 1000}\n      containers:"
        )
    )
    assert (
        decline(classify(other), other, _finding("C-9003", "DaemonSet", "fluent-bit", "x")) is None
    )


SESSION_DB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: session-db
spec:
  template:
    spec:
      containers:
        - name: session-db
          image: redis:alpine
          securityContext:
            capabilities:
              drop: [all]
              add: [CHOWN, CAP_SETGID, setuid]
        - name: exporter
          image: oliver006/redis_exporter:v1.62.0
"""


def test_a_container_that_adds_setuid_switches_user_itself_and_keeps_root() -> None:
    """SETUID and SETGID work only for a root process: a container that adds them starts as
    root and steps down itself (gosu, su-exec), so neither non-root fix is proposed; the
    reason names that container only. Once it runs as another user, it is no root matter."""
    view = _view(SESSION_DB)
    intent = classify(view)
    for control in ("C-0013", "C-9003"):
        found = decline(intent, view, _finding(control, "Deployment", "session-db", "db.yaml"))
        assert found is not None, control
        assert found.reason.startswith(
            "session-db must run as root: session-db adds the SETUID and SETGID capabilities"
        ), found.reason
    only_exporter = _finding("C-0013", "Deployment", "session-db", "db.yaml")
    only_exporter = Finding(
        control_id="C-0013", resource=only_exporter.resource, container="exporter"
    )
    assert decline(intent, view, only_exporter) is None
    stepped_down = _view(
        SESSION_DB.replace(
            "          securityContext:\n",
            "          securityContext:\n            runAsUser: 999\n",
            1,
        )
    )
    assert (
        decline(
            classify(stepped_down),
            stepped_down,
            _finding("C-0013", "Deployment", "session-db", "x"),
        )
        is None
    )


DEVICE_PLUGIN = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: gpu-device-plugin
spec:
  template:
    spec:
      containers:
        - name: plugin
          image: registry.example.com/gpu/device-plugin:0.17.0
          securityContext: {}
          volumeMounts:
            - {name: device-plugin, mountPath: /var/lib/kubelet/device-plugins}
      volumes:
        - name: device-plugin
          hostPath: {path: /var/lib/kubelet/device-plugins}
"""


def test_a_node_agent_that_writes_the_kubelets_directory_keeps_root() -> None:
    """A device plugin creates its socket in the kubelet's root-owned directory: as another
    user it could not, so it keeps root (whatever its image) with a waiver."""
    view = _view(DEVICE_PLUGIN)
    intent = classify(view)
    for control in ("C-0013", "C-9003"):
        found = decline(intent, view, _finding(control, "DaemonSet", "gpu-device-plugin", "x"))
        assert found is not None and "/var/lib/kubelet/device-plugins" in found.reason, control
    read_only = _view(DEVICE_PLUGIN.replace("/var/lib/kubelet/device-plugins", "/proc"))
    found = decline(classify(read_only), read_only, _finding("C-0013", "DaemonSet", "g", "x"))
    assert found is None


INGRESS_CONTROLLER = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ingress-nginx-controller
spec:
  template:
    spec:
      containers:
        - name: controller
          image: registry.k8s.io/ingress-nginx/controller:v1.11.2@sha256:d5f8217feeac4887cb1ed21f27c2674e58be06bd8f5184cacea2a69abaf78dce
          securityContext:
            readOnlyRootFilesystem: false
            runAsUser: 101
"""


def test_the_ingress_nginx_controller_keeps_a_writable_root_filesystem() -> None:
    """The controller writes the nginx.conf it generates and the certificates of Ingress
    secrets into its own filesystem (kubernetes/ingress-nginx#7050): no read-only root."""
    view = _view(INGRESS_CONTROLLER)
    finding = _finding("C-0017", "Deployment", "ingress-nginx-controller", "deploy.yaml")
    found = decline(classify(view), view, finding)
    assert found is not None and "ingress-nginx/issues/7050" in found.reason, found


SPEAKER = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: speaker
spec:
  template:
    spec:
      hostNetwork: true
      containers:
        - name: speaker
          image: registry.example.com/lb/speaker:0.14.9
          securityContext:
            capabilities:
              drop: [ALL]
              add: [NET_RAW]
"""


def test_a_host_network_pod_that_works_on_the_nodes_network_keeps_it_and_root() -> None:
    """A load-balancer speaker answers ARP from the node's interfaces (NET_RAW on the host
    network): neither hostNetwork nor root is taken away, whatever its image."""
    view = _view(SPEAKER)
    intent = classify(view)
    for control, words in (("C-0041", "hostNetwork: true is needed"), ("C-0013", "NET_RAW")):
        found = decline(intent, view, _finding(control, "DaemonSet", "speaker", "lb.yaml"))
        assert found is not None and words in found.reason, (control, found)
    plain = _view(SPEAKER.replace("              add: [NET_RAW]\n", ""))
    assert decline(classify(plain), plain, _finding("C-0041", "DaemonSet", "speaker", "x")) is None


CALICO_NODE = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: calico-node
spec:
  template:
    spec:
      hostNetwork: true
      containers:
        - name: calico-node
          image: docker.io/calico/node:v3.28.0
          securityContext:
            privileged: true
"""


def test_a_privileged_cni_agent_keeps_its_root_filesystem_and_gets_no_pointless_drop() -> None:
    """calico-node writes BIRD's configuration in its own filesystem, and a privileged
    container has every capability whatever it drops: both are waived, not "fixed"."""
    view = _view(CALICO_NODE)
    intent = classify(view)
    for control, words in (
        ("C-0017", "calico/issues/5237"),
        ("C-9001", "every capability whatever it drops"),
        ("C-9002", "every capability whatever it drops"),
    ):
        found = decline(intent, view, _finding(control, "DaemonSet", "calico-node", "c.yaml"))
        assert found is not None and words in found.reason, (control, found)


def test_reason_comment_and_written_paths() -> None:
    view = _view(REPORT_JOB)
    comments = comments_of(REPORT_JOB)
    report = next(c for c in view.containers if c.name == "report")
    assert comments[report.path("securityContext", "runAsUser")].trailing == (
        "legacy: writes to /var/reports"
    )
    init = next(c for c in view.containers if c.init)
    assert written_paths(init) == ("/work/config.json",)
    intent = classify(view, comments)
    assert intent.writes("report") == ("/var/reports",)
    found = decline(intent, view, _finding("C-0013", "CronJob", "nightly-report", "j.yaml"))
    assert found is not None and "legacy: writes to /var/reports" in found.reason


def test_the_memoised_intent_of_a_view_is_that_of_its_comments_and_evidence() -> None:
    view = _view(REPORT_JOB)
    comments = comments_of(REPORT_JOB)
    extra = [Evidence("runtime", "observed writing /tmp", ("writableRoot",), "report")]
    for given, more in ((None, ()), (comments, ()), (comments, extra), (None, extra)):
        assert classified(view, given, more) == classify(view, given, more)
        assert classified(view, given, more) == classify(view, given, more)  # memoised
    assert classified(view, comments).writes("report") == ("/var/reports",)
    assert classified(view).writes("report") == ()
    other = _view(REPORT_JOB.replace("runAsUser: 0", "runAsUser: 1000"))
    assert classified(other) == classify(other)


def test_plan_waives_root_and_mounts_what_the_job_writes(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(REPORT_JOB)
    findings = tuple(
        _finding(c, "CronJob", "nightly-report", "job.yaml", "reporting")
        for c in ("C-0013", "C-0017")
    )
    plan = build_plan(Report("kubescape", "t", findings), tmp_path)
    (waiver,) = [cs for cs in plan.change_sets if cs.meta.get("kind") == "waiver"]
    assert [u.finding.control_id for u in waiver.unresolved] == ["C-0013"]
    (config,) = waiver.files
    assert "resource: CronJob/reporting/nightly-report" in config.after
    (fix,) = [cs for cs in plan.change_sets if cs is not waiver]
    after = fix.files[0].after
    assert "runAsUser: 0   # legacy: writes to /var/reports" in after  # never made false
    assert "mountPath: /work" in after and "mountPath: /var/reports" in after


def test_database_gets_a_recommendation_not_a_default(tmp_path: Path) -> None:
    (tmp_path / "db.yaml").write_text(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n"
        "  template:\n    spec:\n      containers:\n"
        "        - {name: db, image: 'cockroachdb/cockroach:v23.1.0'}\n"
    )
    finding = _finding("C-0271", "StatefulSet", "db", "db.yaml")
    plan = build_plan(Report("kubescape", "t", (finding,)), tmp_path)
    assert not plan.change_sets
    (left,) = plan.unfixable
    assert "CockroachDB" in left.reason and "4 GiB of memory per vCPU" in left.reason


def test_waiver_keeps_remedy_yaml_comments_and_order() -> None:
    before = (
        "# settings\ngrouping: file  # one MR per file\nignore:\n"
        "  - control: C-0017\n    resource: 'StatefulSet/shop/cart'\n    reason: redis (SEC-98)\n"
    )
    finding = _finding("C-0041", "DaemonSet", "agent", "a.yaml", "monitoring")
    after = remedy_yaml(before, [Waiver(finding, "hostNetwork: true is needed")])
    assert after is not None and after.startswith(before)
    assert "  - control: C-0041\n    resource: DaemonSet/monitoring/agent\n" in after
    assert remedy_yaml(after, [Waiver(finding, "again")]) is None


def test_the_comments_of_a_document_are_read_once_wherever_its_text_is_met_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fixers import intent

    read: list[str] = []
    real = intent._comments_in
    monkeypatch.setattr(intent, "_comments_in", lambda body: read.append(body) or real(body))
    document = "---\nkind: Pod\nspec:\n  containers:\n  - name: a  # the web server\n"
    text = f"kind: ConfigMap\n{document}"
    first = comments_of(text, 1)
    intent._comments_of.cache_clear()  # as when many files were planned in between
    assert comments_of(text, 1) == first
    # The other document of the file edited: this one's comments are not read again.
    assert (
        comments_of(f"kind: ConfigMap\ndata: {{}}\n{document}", 1)
        == first
        == {("spec", "containers", 0, "name"): intent.Comment("", "the web server")}
    )
    assert len(read) == 1
    # A document without comments is never composed; another text is read anew.
    comments_of("kind: Pod\n")
    comments_of(text.replace("web server", "proxy"), 1)
    assert len(read) == 2


_COMMENTED = """\
# header
apiVersion: apps/v1   # trailing on the first key
kind: Deployment
metadata:
  name: web
  labels: {app: web}  # flow value
spec:
  template:
    spec:
      containers:
      - name: app
        image: "registry/app#1"
        command:
        - sh
        # why it writes
        - -c
        securityContext:
          # the agent writes its own state
          readOnlyRootFilesystem: false
        args: |
          echo hi
        env: []
      - name: side   # a sidecar
        image: side:1
"""


def _variants(text: str) -> list[str]:
    """``text`` with its comment lines moved, dropped and its line ends changed."""
    lines = text.splitlines(keepends=True)
    out = [text, text.replace("\n", "\r\n"), text.replace("\n", "\r"), text.replace("#", "")]
    for n in range(len(lines)):
        out.append("".join([*lines[:n], "# moved here\n", *lines[n:]]))
        out.append("".join(line for i, line in enumerate(lines) if i != n))
    out.append(text.replace("image: side:1", "image: side:1\f"))
    return out


def _pruned_walk_agrees(texts: list[str]) -> int:
    """How many of the documents of ``texts`` have comments; asserts that the pruned walk
    finds the same ones as the walk of every node."""
    from fixers.intent import _comments_in

    found = 0
    for text in texts:
        for body in text.split("\n---"):
            whole = _comments_in(body, prune=False)
            assert _comments_in(body) == whole, body[:200]
            found += bool(whole)
    return found


def test_comments_found_by_the_pruned_walk_are_those_of_the_whole_walk() -> None:
    """Skipping collections with no '#' on their lines finds exactly the comments a walk of
    every node finds: a commented workload with a comment put on every line, each line
    dropped, CRLF, CR, form-feed and comment-free variants."""
    assert _pruned_walk_agrees(_variants(_COMMENTED)) > 40


def test_the_pruned_walk_agrees_on_every_corpus_manifest() -> None:
    corpus = corpus_path("manifests")
    texts = [p.read_text(errors="replace") for p in sorted(corpus.rglob("*.y*ml"))]
    assert _pruned_walk_agrees(texts) > 20


def test_the_fluent_bit_chart_keeps_root_with_a_waiver(tmp_path: Path) -> None:
    """The corpus's fluent-bit chart: its DaemonSet tails the node's logs, so running as
    non-root and a high user id are waived with the upstream reasons, not fixed."""
    import shutil

    shutil.copytree(corpus_path("charts", "fluent-bit"), tmp_path / "fluent-bit")
    ref = ResourceRef(kind="DaemonSet", namespace="default", name="fluent-bit")
    findings = tuple(
        Finding(control_id=c, resource=ref, source=SourceHint(chart_path="fluent-bit"))
        for c in ("C-0013", "C-9003")
    )
    plan = build_plan(Report("kubescape", "t", findings), tmp_path)
    (waiver,) = [cs for cs in plan.change_sets if cs.meta.get("kind") == "waiver"]
    assert sorted(u.finding.control_id for u in waiver.unresolved) == ["C-0013", "C-9003"]
    assert all("fluent/fluent-bit#3446" in u.reason for u in plan.unfixable)
    assert not [cs for cs in plan.change_sets if cs is not waiver]


CASSANDRA = """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: cassandra
spec:
  serviceName: cassandra
  template:
    spec:
      containers:
        - name: cassandra
          image: gcr.io/google-samples/cassandra:v13
          ports:
            - {containerPort: 9042, name: cql}
          securityContext:
            capabilities:
              add: [IPC_LOCK]
"""


def test_cassandra_keeps_root_and_a_writable_root_and_gets_back_what_its_entrypoint_uses() -> None:
    """Cassandra's entrypoint rewrites cassandra.yaml under /etc/cassandra, chowns its
    directories and steps down with su/gosu: a read-only root or a non-root user is waived,
    and dropping ALL keeps the capabilities that start-up uses."""
    from fixers.policy import FixContext
    from fixers.rules.drop_all_capabilities import DropAllCapabilities

    view = _view(CASSANDRA)
    intent = classify(view)
    for control in ("C-0017", "C-0013"):
        found = decline(intent, view, _finding(control, "StatefulSet", "cassandra", "x"))
        assert found is not None and "/etc/cassandra" in found.reason, control
    result = DropAllCapabilities().plan(
        view, _finding("C-9001", "StatefulSet", "cassandra", "x"), FixContext(intent=intent)
    )
    assert isinstance(result, Fixed), result
    added = [e.value for e in result.edits if isinstance(e, AppendUnique) and e.path[-1] == "add"]
    assert added == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"]
    assert "cassandra.yaml" in " ".join(result.notes)


NFS_PROVISIONER = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nfs-client-provisioner
spec:
  template:
    spec:
      serviceAccountName: nfs-client-provisioner
      containers:
        - name: nfs-client-provisioner
          image: registry.k8s.io/sig-storage/nfs-subdir-external-provisioner:v4.0.2
          volumeMounts:
            - {name: nfs-client-root, mountPath: /persistentvolumes}
      volumes:
        - name: nfs-client-root
          nfs: {server: 10.3.243.101, path: /ifs/kubernetes}
"""


def test_the_nfs_provisioner_keeps_root() -> None:
    """It creates and deletes every volume's directory on a root-owned export."""
    view = _view(NFS_PROVISIONER)
    found = decline(classify(view), view, _finding("C-0013", "Deployment", "n", "x"))
    assert found is not None and "export" in found.reason


WEB_ON_PORT_80 = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: frontend
spec:
  template:
    spec:
      containers:
        - name: php-redis
          image: gcr.io/google-samples/gb-frontend:v5
          ports:
            - containerPort: 80
"""


def test_a_server_that_binds_a_low_port_as_root_keeps_root() -> None:
    """A root container listening below 1024 binds the port as root and hands its workers to
    another user (Apache, nginx): no non-root user. Not so when it adds NET_BIND_SERVICE (its
    image grants the capability to its binary, as CoreDNS's does) or already runs as another
    user."""
    view = _view(WEB_ON_PORT_80)
    found = decline(classify(view), view, _finding("C-0013", "Deployment", "frontend", "x"))
    assert found is not None and "port 80" in found.reason
    for variant in (
        "          securityContext:\n            capabilities: {add: [NET_BIND_SERVICE]}\n",
        "          securityContext:\n            runAsUser: 33\n",
    ):
        other = _view(WEB_ON_PORT_80 + variant)
        assert decline(classify(other), other, _finding("C-0013", "Deployment", "f", "x")) is None


@pytest.mark.parametrize(
    ("command", "args", "found"),
    [
        (["/bin/bash", "-ec"], ["find /data -mindepth 1 | xargs -r chown -R 1001:1001"], "chown"),
        (["/bin/bash", "-ec"], ["mkdir -p /data\nchown -R 1001:1001 /data"], "chown"),
        (["sh", "-c", "find /data -exec chown 1001 {} +"], None, "chown"),
        (["tini", "--", "gosu", "app", "/server"], None, "gosu"),
        (["sh", "-c", "env HOME=/app timeout 5 su-exec app /server"], None, "su-exec"),
        (["chown", "-R", "1001:1001", "/data"], None, "chown"),
        (["sh", "-c", "echo chown is not run; ls"], None, None),
        (["/app/server", "--user", "su"], None, None),
        (["sh", "-c", "chown -R 1001 '/data"], None, "chown"),  # unbalanced quote: split plainly
        (["sh", "-c", "x" * 100_000 + "; gosu app /server"], None, "gosu"),
    ],
)
def test_root_commands_are_found_where_a_shell_would_run_them(
    command: list[str], args: list[str] | None, found: str | None
) -> None:
    from fixers.intent import root_commands

    container = {"name": "c", "image": "x", "command": command, **({"args": args} if args else {})}
    view = ManifestPodView.from_document(
        {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [container]}}
    )
    assert view is not None
    assert [name for name, *_ in root_commands(view.containers[0])] == ([found] if found else [])
