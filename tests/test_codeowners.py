"""CODEOWNERS parsing and matching, on GitLab's documented examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.codeowners import load_codeowners, matches, parse_codeowners, reviewers_for
from bot.forge.local import LocalForge
from bot.model import ChangeSet, FileChange
from fixers.model import Risk

# Written after the example in GitLab's "CODEOWNERS syntax" page.
EXAMPLE = r"""
# Lines that start with `#` are ignored.
* @default-codeowner
*.rb @ruby-owner
\#file_with_pound.rb @owner-file-with-pound
LICENSE @legal janedoe@gitlab.com
README @group @group/with-nested/subgroup
/docs/ @all-docs
/docs/* @root-docs
/docs/**/*.md @root-docs
lib/ @lib-owner
/config/ @config-owner @@maintainer
path\ with\ spaces/ @space-owner

[Documentation]
ee/docs    @docs
docs       @docs

^[Database][2] @database-team
model/db/
config/db/database-setup.md @docs-team
[documentation]
*.txt @writers
"""


@pytest.mark.parametrize(
    ("path", "owners"),
    [
        ("main.go", ["default-codeowner"]),
        ("app/models/user.rb", ["ruby-owner"]),
        ("#file_with_pound.rb", ["owner-file-with-pound"]),
        ("LICENSE", ["legal", "janedoe@gitlab.com"]),
        ("sub/README", ["group", "group/with-nested/subgroup"]),
        ("docs/index.html", ["root-docs", "docs"]),
        ("docs/api/users.md", ["root-docs", "docs"]),
        ("docs/api/users.html", ["all-docs", "docs"]),
        ("app/lib/util.py", ["lib-owner"]),
        ("config/app.yaml", ["config-owner"]),
        ("sub/config/app.yaml", ["default-codeowner"]),
        ("path with spaces/a.yaml", ["space-owner"]),
        ("ee/docs/x.md", ["default-codeowner", "docs"]),
        ("model/db/schema.rb", ["ruby-owner", "database-team"]),
        ("config/db/database-setup.md", ["config-owner", "docs-team"]),
        ("notes.txt", ["default-codeowner", "writers"]),
    ],
)
def test_owners_of_documented_example(path: str, owners: list[str]) -> None:
    assert parse_codeowners(EXAMPLE).owners_of(path) == owners


def test_sections_headers() -> None:
    parsed = parse_codeowners(EXAMPLE)
    by_name = {s.name.lower(): s for s in parsed.sections}
    assert by_name["database"].optional and by_name["database"].approvals == 2
    assert by_name["database"].default_owners == ("database-team",)
    # duplicate section names (any case) are combined
    assert [e.pattern for e in by_name["documentation"].entries] == ["ee/docs", "docs", "*.txt"]


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*", ".gitlab-ci.yml", True),
        ("/docs/*", "docs/a/b.md", False),
        ("/docs/**/*.md", "docs/a.md", True),
        ("**/*.rb", "config/database.rb", True),
        ("apps/*.yaml", "apps/a.yaml", True),
        ("apps/*.yaml", "apps/x/a.yaml", False),
        ("/apps/", "team/apps/a.yaml", False),
        ("apps/", "team/apps/a.yaml", True),
        ("values-?.yaml", "charts/values-a.yaml", True),
        ("[ab].yaml", "b.yaml", True),
    ],
)
def test_pattern_semantics(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


def _change_set(*paths: str) -> ChangeSet:
    return ChangeSet(
        key="k",
        title="t",
        family="f",
        risk=Risk.LOW,
        fixes=(),
        files=tuple(FileChange(path=p, before="a", after="b") for p in paths),
    )


def test_reviewers_fall_back_to_teams_and_skip_the_bot() -> None:
    owners = parse_codeowners("/apps/shop/ @alice @kube-remedy\n")
    teams = {"apps/pay/**": ["@bob"], "charts/*": ["carol"]}
    pick = reviewers_for(owners, teams, exclude=["kube-remedy"])
    assert pick(_change_set("apps/shop/frontend.yaml")) == ["alice"]
    assert pick(_change_set("apps/pay/api.yaml", "charts/x")) == ["bob", "carol"]
    assert pick(_change_set("other.yaml")) == []
    assert reviewers_for(None, teams)(_change_set("charts/x")) == ["carol"]


def test_load_uses_first_location() -> None:
    files = {"docs/CODEOWNERS": "* @docs", ".gitlab/CODEOWNERS": "* @gl"}
    loaded = load_codeowners(files.get)
    assert loaded is not None and loaded.owners_of("x") == ["docs"]
    assert load_codeowners({}.get) is None


def test_local_apply_routes_by_the_repository_codeowners(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the example cd-config's CODEOWNERS gives /apps/shop/ to @team-web
    assert main(["demo", "--into", str(tmp_path)]) in (0, 1)
    capsys.readouterr()
    changes = LocalForge(tmp_path / "cd-config").find_changes()
    reviewers = {c.branch: c.extra.get("reviewers") for c in changes}
    shop = [b for b in reviewers if "apps-shop-" in b]
    assert shop and all(reviewers[b] == "team-web" for b in shop)
