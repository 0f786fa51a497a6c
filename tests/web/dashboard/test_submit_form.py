"""The dashboard's form to start a run: reviewers only, CSRF-protected, and validated exactly as
POST /api/tasks validates (bad input is shown on the form and starts nothing).

Starting real runs through it is exercised in tests/e2e/test_dashboard_browser.py.
"""

from __future__ import annotations

import pytest

from shipyard.web.dashboard.submit import task_body
from tests.web.dashboard.conftest import Site, csrf_of


@pytest.fixture(scope="module")
def shop(site: Site) -> str:
    site.app.state.registry.add_repo(name="shop", path=site.repo, by="test")
    return "shop"


def _count(site: Site) -> int:
    return len(site.store.list_runs(limit=10_000))


def test_a_stranger_is_sent_to_log_in_and_a_viewer_may_not_start_runs(
    site: Site, shop: str
) -> None:
    assert site.client().get("/runs/new").status_code == 303
    viewer = site.client("vic")
    assert viewer.get("/runs/new").status_code == 403
    assert "New run" not in viewer.get("/runs").text
    before = _count(site)
    done = viewer.post(
        "/runs/new",
        data={"csrf_token": csrf_of(viewer), "blueprint": "deps", "repo": shop},
    )
    assert done.status_code == 403
    assert "reviewer role" in done.text
    assert _count(site) == before


def test_the_form_lists_registered_repositories_and_the_blueprints(site: Site, shop: str) -> None:
    page = site.client("alice").get("/runs/new")
    assert page.status_code == 200
    assert f'<option value="{shop}"' in page.text
    for name in ("task", "deps", "lint-fix", "submit"):
        assert f'<option value="{name}"' in page.text
    assert 'name="csrf_token"' in page.text
    assert '<label for="patch">' in page.text


def test_the_form_needs_the_csrf_token(site: Site, shop: str) -> None:
    client = site.client("alice")
    before = _count(site)
    for token in (None, "forged-token"):
        data = {"blueprint": "deps", "repo": shop}
        if token is not None:
            data["csrf_token"] = token
        done = client.post("/runs/new", data=data)
        assert done.status_code == 403
        assert "CSRF" in done.text
    assert _count(site) == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"blueprint": "task", "task": ""}, "task: String should have at least 1 character"),
        ({"blueprint": "submit", "patch": "", "change_type": "feature"}, "patch"),
        ({"blueprint": "submit", "patch": "--- a\n+++ b\n", "change_type": "nonsense"},
         "change_type"),
        ({"blueprint": "rm -rf", "task": "x"}, "choose one of: task, deps, lint-fix, submit"),
        ({"blueprint": "task", "task": "x", "repo": "unregistered"}, "no repository named"),
        ({"blueprint": "submit", "patch": "not a diff at all", "change_type": "feature"},
         "contains no file changes"),
    ],
)  # fmt: skip
def test_bad_input_is_explained_on_the_form_and_starts_nothing(
    site: Site, shop: str, fields: dict[str, str], message: str
) -> None:
    client = site.client("alice")
    before = _count(site)
    data = {"csrf_token": csrf_of(client), "repo": shop, "title": "<b>kept</b>", **fields}
    done = client.post("/runs/new", data=data)
    assert done.status_code == 422, done.text
    assert message in done.text.replace("&#39;", "'")
    assert 'role="alert"' in done.text
    assert "&lt;b&gt;kept&lt;/b&gt;" in done.text  # what was typed is kept, escaped
    assert _count(site) == before


def test_the_form_sends_each_blueprint_only_its_own_fields() -> None:
    fields = {"repo": "shop", "title": "T", "task": "do it", "patch": "diff", "change_type": ""}
    assert task_body(blueprint="deps", **fields) == {"blueprint": "deps", "repo": "shop"}
    assert task_body(blueprint="lint-fix", **fields) == {"blueprint": "lint-fix", "repo": "shop"}
    assert task_body(blueprint="task", **fields) == {
        "blueprint": "task", "repo": "shop", "task": "do it", "title": "T"
    }  # fmt: skip
    submitted = task_body(blueprint="submit", **{**fields, "change_type": "refactor"})
    assert submitted == {
        "blueprint": "submit", "repo": "shop", "patch": "diff", "title": "T",
        "change_type": "refactor",
    }  # fmt: skip


def test_a_pasted_patch_gets_back_the_line_ends_the_browser_changed() -> None:
    # HTML forms send a textarea's line breaks as CRLF, whatever was pasted into it.
    sent = "--- a/README.md\r\n+++ b/README.md\r\n@@ -1 +1 @@\r\n-a\r\n+b\r\n"
    body = task_body(
        blueprint="submit", repo="shop", title="", task="", patch=sent, change_type="documentation"
    )
    assert body["patch"] == "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-a\n+b\n"
