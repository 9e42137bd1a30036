"""A repository's merge-request template is code from cd-config: it renders in the sandbox.

Each attack is a template committed to cd-config (or passed as cd-config's override), run on
the real code path: `service.plan_descriptions` and `publish_plan` (GitLab emulator or local
forge). Expected: the template is refused, the built-in one is used, the dashboard says why,
nothing is written by the template, and no secret appears anywhere.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from bot import render
from bot.forge.local import LocalForge
from bot.lifecycle import marker, parse_marker
from bot.markdown import Md
from bot.model import ChangeSet, FileChange, Location, PlannedFix
from bot.plan import Plan
from bot.publish import publish_plan
from bot.render import change_set_context, describe_change_set
from bot.repo_config import RepoConfig
from bot.sources.base import Report
from bot.template_sandbox import TemplateRefused, plain, render_untrusted
from fixers.model import Finding, ResourceRef, Risk
from tests.gitlab_emulator import GitLabEmulator
from tests.test_gitlab_routing import _project
from tests.test_gitlab_run import bot_mrs, example_files, run

FAKE_TOKEN = "glpat-FAKE-sandbox-9f8e7d6c5b4a"
ISSUE_PAYLOAD = "{{ cycler.__init__.__globals__.os.popen('id; env').read() }}{{ marker }}"

# One payload per SSTI family; each must be refused (none renders, none reaches the process).
SSTI = {
    "class-mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals": "{{ cs.__init__.__globals__ }}",
    "subclasses": "{{ ().__class__.__base__.__subclasses__()[0] }}",
    "lipsum": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "cycler": "{{ cycler.__init__.__globals__.os.environ }}",
    "joiner": "{{ joiner.__init__.__globals__.os.environ }}",
    "namespace": "{{ namespace.__init__.__globals__.os.environ }}",
    "attr-filter": "{{ cs | attr('__class__') | attr('__mro__') }}",
    "attr-dunder-string": "{{ (cs | attr('\\x5f\\x5fclass\\x5f\\x5f')).__base__ }}",
    "str-format": "{{ '{0.__class__.__mro__}'.format(cs) }}",
    "format-map": "{{ '{x.__class__}'.format_map({'x': cs}) }}",
    "percent-format": "{{ '%s' % cs.__class__ }}",
    "format-filter": "{{ '%s' | format(cs.__class__) }}",
    "self": "{{ self.__init__.__globals__ }}",
    "self-context": "{{ self._TemplateReference__context }}",
    "config": "{{ config.items() }}",
    "request": "{{ request.application.__globals__ }}",
    "mutation": "{% set x = cs.findings.append(1) %}{{ marker }}",
    "dict-update": "{{ cs.update({'key': 'x'}) }}{{ marker }}",
    "import": "{% import 'os' as os %}{{ marker }}",
    "include-file": "{% include '/etc/passwd' %}{{ marker }}",
    "getattr-func": "{{ range.__self__ }}",
}


def _change_set(path: str = "apps/shop/frontend.yaml", name: str = "frontend") -> ChangeSet:
    finding = Finding(
        control_id="C-0016",
        resource=ResourceRef(kind="Deployment", namespace="shop", name=name),
        container="web",
    )
    fix = PlannedFix(
        finding=finding,
        location=Location("manifest", path),
        fixer="allow_privilege_escalation",
        family="security-context",
        risk=Risk.LOW,
        edits=(),
        notes=("web: allowPrivilegeEscalation set to false",),
    )
    return ChangeSet(
        key=f"security-context/{name}",
        title=f"kube-remedy: fixes for {name}",
        family="security-context",
        risk=Risk.LOW,
        fixes=(fix,),
        files=(FileChange(path, "a: 1\n", "a: 2\n"),),
    )


def _describe(template: str, **kwargs: object) -> str:
    cs = _change_set()
    return describe_change_set(
        cs,
        marker=marker(cs.key, cs.findings_hash),
        overrides={"merge_request.md.j2": template},
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("REMEDY_GITLAB_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("REMEDY_WEBHOOK_SECRET", FAKE_TOKEN + "-hook")
    return FAKE_TOKEN


@pytest.mark.parametrize("payload", list(SSTI.values()), ids=list(SSTI))
def test_ssti_payload_is_refused(payload: str, secret_env: str) -> None:
    with pytest.raises(TemplateRefused) as refused:
        _describe(payload + "\n{{ marker }}\n")
    assert secret_env not in str(refused.value)
    assert "uid=" not in str(refused.value)


def test_issue_payload_runs_nothing_and_leaks_nothing(secret_env: str, tmp_path: Path) -> None:
    witness = tmp_path / "pwned"
    payload = ISSUE_PAYLOAD + f"{{{{ cycler.__init__.__globals__.os.system('touch {witness}') }}}}"
    with pytest.raises(TemplateRefused, match="unsafe"):
        _describe(payload)
    assert not witness.exists()


def test_context_is_plain_data_only() -> None:
    context = change_set_context(_change_set(), marker="<!-- m -->")
    as_json = json.dumps(plain(context))  # raises on any object that is not plain data
    assert "frontend" in as_json
    with pytest.raises(TypeError, match="not plain data"):
        plain({"cs": _change_set()})


@pytest.mark.parametrize(
    ("template", "why"),
    [
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "longer",
        ),
        ("{{ 'x' * 10**10 }}", "memory"),
        ("{{ '%01000000000d' | format(1) }}", "memory"),
        ("{{ range(10**9) | list }}", "Range too big"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursed"),
    ],
    ids=["nested-loops", "string-multiplication", "format-width", "huge-range", "recursion"],
)
def test_resource_exhaustion_is_stopped(template: str, why: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateRefused, match=why):
        render_untrusted(template + "{{ marker }}", {"marker": "m"}, timeout=1.5)
    assert time.monotonic() - started < 10


def test_output_is_bounded_then_summarised() -> None:
    big = "{% for i in range(100000) %}0123456789{% endfor %}\n{{ marker }}\n"
    text = _describe(big, limit=50_000)
    assert len(text) <= 50_000
    assert parse_marker(text) is not None  # the marker survives the cut


def test_template_overrides_reports_the_refusal(
    gitlab_emulator: GitLabEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    secret_env: str,
) -> None:
    """The exact payload of issue 12, committed to cd-config: end to end over GitLab's API."""
    files = example_files()
    files[".remedy/templates/merge_request.md.j2"] = ISSUE_PAYLOAD + "\n"
    pid = _project(gitlab_emulator, files, tmp_path, monkeypatch)
    run(gitlab_emulator, capsys)
    mrs = bot_mrs(gitlab_emulator, pid)
    # built-in templates: the fixes' and the waiver's (a waiver MR is never overridden)
    assert mrs and all(
        "### Failed controls" in m["description"] or "### Waived findings" in m["description"]
        for m in mrs
    )
    assert any("### Failed controls" in m["description"] for m in mrs)
    (dashboard,) = gitlab_emulator.issues(pid)
    assert "template override was not used" in dashboard["description"]
    assert "unsafe" in dashboard["description"]
    published = json.dumps([mrs, gitlab_emulator.issues(pid)])
    for secret in (secret_env, gitlab_emulator.token):
        assert secret not in published
    assert "uid=" not in published


def _local_repo(tmp_path: Path) -> LocalForge:
    repo = tmp_path / "cd-config"
    repo.mkdir()
    (repo / "a.yaml").write_text("a: 1\n")
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "init"],
    ):
        subprocess.run(cmd, cwd=repo, check=True)
    return LocalForge(repo)


def test_publish_falls_back_per_change_set(tmp_path: Path, secret_env: str) -> None:
    """A template that passes the first change set but attacks on another: that one falls back
    to the built-in template; the run goes on."""
    forge = _local_repo(tmp_path)
    template = (
        "{% if cs.key.endswith('cart') %}{{ cycler.__init__.__globals__.os.environ }}{% endif %}"
        "Custom {{ cs.title }}\n{{ marker }}\n"
    )
    plan = Plan((_change_set("a.yaml", "frontend"), _change_set("a.yaml", "cart")), ())
    result = publish_plan(
        forge,
        plan,
        Report(scanner="kubescape", origin="test", findings=()),
        RepoConfig(),
        overrides={"merge_request.md.j2": template},
    )
    by_key = {d.key: d.change for d in result.decisions}
    frontend, cart = by_key["security-context/frontend"], by_key["security-context/cart"]
    assert frontend is not None and frontend.description.startswith("Custom ")
    assert cart is not None and "### Failed controls" in cart.description
    records = (forge.state_dir / "records").glob("*.json")
    assert secret_env not in "".join(p.read_text() for p in records)


def test_built_in_templates_get_the_same_plain_context() -> None:
    """The override sees what the built-in template sees: a template written against the
    documented fields renders in both places alike."""
    template = (
        "{{ cs.risk.label }} {{ cs.findings | length }} {{ controls[0].id }} "
        "{{ diffs[0].path | code }} {{ explanations[0].name }}\n{{ marker }}\n"
    )
    text = _describe(template)
    assert text.startswith("low 1 C-0016 `apps/shop/frontend.yaml` allow\\_privilege\\_escalation")
    assert isinstance(render.escape_markdown("x"), Md)
