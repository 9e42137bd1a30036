"""bot/review.py: inline suggestions for a person's MR, anchored on the lines it added."""

from __future__ import annotations

import pytest

from bot.repo_config import RepoConfig, parse_repo_config
from bot.review import (
    ChangedFile,
    Suggestion,
    added_between,
    added_lines,
    fix_text,
    marker,
    posted_fingerprints,
    review_changes,
)
from fixers.edits import load_documents

BARE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports:
            - containerPort: 8080
"""

CONFIG = RepoConfig()


def apply(text: str, suggestion: Suggestion) -> str:
    lines = text.splitlines()
    lines[suggestion.start - 1 : suggestion.end] = suggestion.replacement
    return "\n".join(lines) + "\n"


def apply_all(text: str, suggestions: list[Suggestion] | tuple[Suggestion, ...]) -> str:
    # Bottom-up, so earlier line numbers stay valid.
    for suggestion in sorted(suggestions, key=lambda s: s.start, reverse=True):
        text = apply(text, suggestion)
    return text


def compliant(text: str) -> str:
    """What the fixers make of ``text`` (itself when they accept it as it is)."""
    return fix_text(text, CONFIG).text


def test_new_deployment_gets_one_suggestion_on_added_lines() -> None:
    review = review_changes([ChangedFile("apps/shop/web.yaml", None, BARE)], CONFIG, "a" * 40)
    assert len(review.suggestions) == 1
    suggestion = review.suggestions[0]
    added = added_between(None, BARE)
    assert set(range(suggestion.start, suggestion.end + 1)) <= added
    assert suggestion.start == 20  # the last line: the fixes go below it
    assert "suggestion:-0+0" in suggestion.body
    # The pod-level runAsUser of C-9003 gives the pod a securityContext, so C-0211 needs none.
    assert {"C-0016", "C-0017", "C-0013", "C-9003", "C-0034"} <= set(suggestion.controls)
    assert "Allow privilege escalation" in suggestion.body
    assert marker("a" * 40, suggestion.fingerprint) in suggestion.body
    fixed = apply(BARE, suggestion)
    assert "allowPrivilegeEscalation: false" in fixed
    assert compliant(fixed) == fixed


def test_compliant_file_gets_nothing() -> None:
    good = compliant(BARE)
    review = review_changes([ChangedFile("apps/shop/web.yaml", None, good)], CONFIG)
    assert review.suggestions == ()
    # The NetworkPolicy fixes add a file: noted for the scheduled run, never dropped silently.
    # The probe fixer declines (only the owners know the health endpoint): its hint is a note.
    skipped = [s.split(": ", 2)[2] for s in review.skipped]
    assert skipped[:2] == [
        f"{c} adds a new file, which cannot be an inline suggestion; left to the scheduled run"
        for c in ("C-0030", "C-0260")
    ]
    assert [s.split(" ", 1)[0] for s in skipped[2:]] == ["C-0018", "C-0056"]
    assert all("missing on web" in s and "by hand" in s for s in skipped[2:])


def test_fix_on_lines_the_mr_did_not_write_is_left_to_the_scheduled_run() -> None:
    bumped = BARE.replace("nginx:1.27", "nginx:1.28")
    review = review_changes([ChangedFile("apps/shop/web.yaml", BARE, bumped)], CONFIG)
    assert review.suggestions == ()
    assert any("did not write" in s and "C-0016" in s for s in review.skipped)


def test_added_container_in_an_existing_deployment() -> None:
    old = compliant(BARE)
    sidecar = (
        "        - name: proxy\n"
        "          image: envoyproxy/envoy:v1.31.0\n"
        "          args: [--config-path, /etc/envoy/envoy.yaml]\n"
    )
    # Right after the last line of the containers list (the next pod-spec key).
    lines = old.splitlines(keepends=True)
    first = lines.index("      containers:\n") + 1
    end = next(n for n in range(first, len(lines)) if not lines[n].startswith("        "))
    new = "".join([*lines[:end], sidecar, *lines[end:]])
    review = review_changes([ChangedFile("apps/shop/web.yaml", old, new)], CONFIG, "b" * 40)
    assert review.suggestions
    added = added_between(old, new)
    for suggestion in review.suggestions:
        assert set(range(suggestion.start, suggestion.end + 1)) <= added
    fixed = apply_all(new, review.suggestions)
    assert compliant(fixed) == fixed
    assert fixed.count("allowPrivilegeEscalation: false") == 2


def test_gitlab_diff_decides_what_was_added() -> None:
    diff = (
        "@@ -1,3 +1,4 @@\n a: 1\n-b: 2\n+b: 3\n+c: 4\n d: 5\n"
        "@@ -10,2 +11,3 @@\n x: 1\n+y: 2\n z: 3\n\\ No newline at end of file\n"
    )
    assert added_lines(diff) == {2, 3, 12}
    assert added_between("a\nb\n", "a\nc\nb\nd\n") == {2, 4}
    assert added_between(None, "a\nb\n") == {1, 2}


def test_suggestion_uses_the_diff_when_given() -> None:
    # GitLab says only line 18 (the image) was added: nothing else may be suggested on.
    diff = "@@ -18,1 +18,1 @@\n-          image: nginx:1.26\n+          image: nginx:1.27\n"
    review = review_changes([ChangedFile("web.yaml", None, BARE, diff=diff)], CONFIG)
    assert review.suggestions == ()
    assert review.skipped


def test_policy_controls_and_ignores_apply() -> None:
    only = parse_repo_config("controls: [C-0016]\n")
    review = review_changes([ChangedFile("web.yaml", None, BARE)], only)
    assert [s.controls for s in review.suggestions] == [("C-0016",)]
    assert "readOnlyRootFilesystem" not in review.suggestions[0].body
    ignored = parse_repo_config(
        "controls: [C-0016, C-0017]\n"
        "ignore:\n  - control: C-0017\n    resource: Deployment/shop/*\n    reason: writes\n"
    )
    review = review_changes([ChangedFile("web.yaml", None, BARE)], ignored)
    assert [s.controls for s in review.suggestions] == [("C-0016",)]


def test_policy_values_come_from_remedy_yaml() -> None:
    config = parse_repo_config("controls: [C-0013]\npolicy:\n  run_as_user: 4242\n")
    (suggestion,) = review_changes([ChangedFile("web.yaml", None, BARE)], config).suggestions
    assert any(line.strip() == "runAsUser: 4242" for line in suggestion.replacement)
    assert ".remedy.yaml" in suggestion.body


def test_helm_files_and_other_files_are_not_reviewed() -> None:
    files = [
        ChangedFile("charts/web/templates/deployment.yaml", None, "kind: {{ .Values.kind }}\n"),
        ChangedFile("apps/web/values-prod.yaml", None, "replicaCount: 2\n"),
        ChangedFile("README.md", None, "# hello\n"),
        ChangedFile(".remedy.yaml", None, "enabled: true\n"),
    ]
    review = review_changes(files, CONFIG)
    assert review.suggestions == ()
    assert [s.split(":")[0] for s in review.skipped] == [
        "charts/web/templates/deployment.yaml",
        "apps/web/values-prod.yaml",
    ]


def test_invalid_yaml_is_a_note_not_a_crash() -> None:
    review = review_changes([ChangedFile("web.yaml", None, "a: [1, 2\n")], CONFIG)
    assert review.suggestions == ()
    assert review.skipped and "not valid YAML" in review.skipped[0]


def test_multi_document_file_only_the_added_document() -> None:
    service = (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n"
    )
    old = BARE.replace("web", "old") + "---\n" + service
    new = old + "---\n" + BARE
    review = review_changes([ChangedFile("all.yaml", old, new)], CONFIG)
    assert len(review.suggestions) == 1
    first_new = len(old.splitlines()) + 2
    assert review.suggestions[0].start >= first_new
    fixed = apply(new, review.suggestions[0])
    assert fixed.startswith(old)
    assert fixed.count("allowPrivilegeEscalation: false") == 1


def test_credential_lines_are_never_repeated() -> None:
    secret = "c3VwZXItc2VjcmV0LXZhbHVlLTEyMzQ1Njc4OTA="
    text = BARE.replace(
        "            - containerPort: 8080\n",
        "            - containerPort: 8080\n"
        "          env:\n"
        "            - name: API_TOKEN\n"
        f"              value: {secret}\n",
    )
    (suggestion,) = review_changes([ChangedFile("web.yaml", None, text)], CONFIG).suggestions
    assert secret not in suggestion.body
    assert "suggestion:" not in suggestion.body
    assert "credential" in suggestion.body


def test_separate_changes_become_separate_suggestions() -> None:
    two = BARE.replace(
        "    spec:\n      containers:\n",
        "    spec:\n      hostNetwork: true\n      hostPID: true\n"
        "      dnsPolicy: ClusterFirst\n      restartPolicy: Always\n"
        "      terminationGracePeriodSeconds: 30\n      containers:\n",
    )
    config = parse_repo_config("controls: [C-0016, C-0041, C-0038]\n")
    review = review_changes([ChangedFile("web.yaml", None, two)], config)
    assert len(review.suggestions) == 2
    host, container = sorted(review.suggestions, key=lambda s: s.start)
    assert set(host.controls) == {"C-0041", "C-0038"}
    assert container.controls == ("C-0016",)
    assert "suggestion:-0+1" in host.body
    fixed = apply_all(two, review.suggestions)
    assert "hostNetwork" not in fixed and "hostPID" not in fixed
    assert fix_text(fixed, config).text == fixed


def test_fingerprints_round_trip_and_ignore_the_head() -> None:
    one = review_changes([ChangedFile("web.yaml", None, BARE)], CONFIG, "1" * 40).suggestions[0]
    two = review_changes([ChangedFile("web.yaml", None, BARE)], CONFIG, "2" * 40).suggestions[0]
    assert one.fingerprint == two.fingerprint
    assert posted_fingerprints([one.body, "unrelated"]) == {one.fingerprint}


@pytest.mark.parametrize("fence_text", ["```", "````"])
def test_fence_is_longer_than_any_backticks_in_the_content(fence_text: str) -> None:
    text = BARE.replace("- containerPort: 8080\n", f"- containerPort: 8080 # {fence_text}\n")
    (suggestion,) = review_changes([ChangedFile("web.yaml", None, text)], CONFIG).suggestions
    fence = "`" * (len(fence_text) + 1)
    assert f"\n{fence}suggestion:-0+0\n" in suggestion.body
    assert suggestion.body.count(f"\n{fence}\n") == 1


def test_a_line_to_delete_is_an_empty_suggestion() -> None:
    old = compliant(BARE)
    new = old.replace(
        "    spec:\n      containers:\n", "    spec:\n      hostNetwork: true\n      containers:\n"
    )
    (suggestion,) = review_changes([ChangedFile("web.yaml", old, new)], CONFIG).suggestions
    assert new.splitlines()[suggestion.start - 1] == "      hostNetwork: true"
    assert suggestion.replacement == () and suggestion.controls == ("C-0041",)
    assert "\n```suggestion:-0+0\n```\n" in suggestion.body
    assert apply(new, suggestion) == old


SNAPSHOT = """\
<!-- kube-remedy-review:ffffffffffffffffffffffffffffffffffffffff 80e5797551e692d2 -->
**kube-remedy** suggests a fix for Deployment shop/web (risk: **low**):

- **C-0016** Allow privilege escalation (Medium): With privilege escalation allowed, a process \
can gain more privileges than its parent (setuid binaries).

What the change does:

- allowPrivilegeEscalation set to false on web

```suggestion:-0+0
            - containerPort: 8080
          securityContext:
            allowPrivilegeEscalation: false
```

<sub>Posted because `.remedy.yaml` enables `review_human_mrs`.</sub>
"""


def test_body_snapshot() -> None:
    config = parse_repo_config("controls: [C-0016]\n")
    (suggestion,) = review_changes(
        [ChangedFile("web.yaml", None, BARE)], config, "f" * 40
    ).suggestions
    assert suggestion.body == SNAPSHOT


PRIVILEGED = BARE.replace(
    "          ports:\n",
    "          securityContext:\n"
    "            privileged: true\n"
    "            allowPrivilegeEscalation: true\n"
    "          ports:\n",
)


def test_privileged_and_privilege_escalation_both_end_fixed() -> None:
    """C-0016 declines while the container is privileged; the shared planner retries it after
    C-0057 made it unprivileged, as the scheduled run does."""
    config = parse_repo_config("controls: [C-0016, C-0057]\n")
    review = review_changes([ChangedFile("web.yaml", None, PRIVILEGED)], config)
    fixed = apply_all(PRIVILEGED, review.suggestions)
    assert "privileged: false" in fixed or "privileged:" not in fixed
    assert "allowPrivilegeEscalation: false" in fixed
    assert "allowPrivilegeEscalation: true" not in fixed
    assert {c for s in review.suggestions for c in s.controls} == {"C-0016", "C-0057"}
    assert review.skipped == ()


def test_a_fix_the_planner_declines_is_a_note() -> None:
    """A NeedsHuman that stays after the retry is listed, never dropped."""
    config = parse_repo_config("controls: [C-0016]\n")
    review = review_changes([ChangedFile("web.yaml", None, PRIVILEGED)], config)
    assert review.suggestions == ()
    (note,) = review.skipped
    assert note.startswith("web.yaml: Deployment shop/web: C-0016 not fixed: ")


def test_policy_requests_win_over_a_limit_set_in_the_same_review() -> None:
    config = parse_repo_config(
        "controls: [C-0004, C-0009, C-0050, C-0270, C-0271]\n"
        "policy:\n  resources:\n    cpu_request: 100m\n    cpu_limit: 500m\n"
        "    memory_request: 64Mi\n    memory_limit: 128Mi\n"
    )
    review = review_changes([ChangedFile("web.yaml", None, BARE)], config)
    fixed = apply_all(BARE, review.suggestions)
    resources = load_documents(fixed)[0]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {
        "limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "100m", "memory": "64Mi"},
    }
