from __future__ import annotations

import pytest

from bot.errors import ConfigError
from bot.repo_config import RepoConfig, defaults, parse_repo_config
from fixers.model import Finding, ResourceRef


def finding(control: str, kind: str = "Deployment", ns: str = "shop", name: str = "web") -> Finding:
    return Finding(control_id=control, resource=ResourceRef(kind=kind, namespace=ns, name=name))


def test_defaults_when_absent() -> None:
    config = parse_repo_config(None)
    assert config.grouping == "file-family"
    assert config.wants("C-0016")


def test_unvalidated_defaults_are_the_validated_ones() -> None:
    made, checked = defaults(), RepoConfig()
    assert made == checked and repr(made) == repr(checked)
    assert made.model_dump() == checked.model_dump()
    for part in (lambda c: c, lambda c: c.limits, lambda c: c.policy, lambda c: c.policy.resources):
        assert part(made).model_fields_set == part(checked).model_fields_set == set()
        assert type(part(made)) is type(part(checked))
    assert parse_repo_config("") == parse_repo_config("# nothing set\n") == checked


def test_ignore_rules_and_controls() -> None:
    config = parse_repo_config(
        "controls: [C-0016, C-0017]\n"
        "ignore:\n  - control: C-0017\n    resource: 'StatefulSet/shop/*'\n    reason: writes to disk\n"
        "policy:\n  run_as_user: 2000\n"
    )
    assert config.wants("C-0016") and not config.wants("C-0034")
    assert config.ignored(finding("C-0017", "StatefulSet")).reason == "writes to disk"
    assert config.ignored(finding("C-0017")) is None
    assert config.policy.run_as_user == 2000
    assert config.policy.source == ".remedy.yaml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grouping: everything\n", "grouping"),
        ("controls: [privileged]\n", "not control ids"),
        ("- a\n- b\n", "must be a mapping"),
        ("a: [\n", "not valid YAML"),
        ("unknown_key: 1\n", "unknown_key"),
        ("limits:\n  max_open: -1\n", "limits.max_open"),
    ],
)
def test_invalid_config_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_repo_config(text)
    assert "\n" not in str(info.value)
