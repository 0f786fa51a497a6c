"""Every dashboard page for each role: redirects for strangers, escaping of what runs contain, CSRF
and role checks on the review forms, the requester barred from approving, and a real merge."""

from __future__ import annotations

import re

import pytest

from shipyard.web.auth import CSRF_FIELD, SESSION_COOKIE
from tests.web.dashboard.conftest import (
    SECRET,
    XSS_LINE,
    XSS_TITLE,
    Site,
    csrf_of,
    git,
    hidden_field,
    log_in,
)

PAGES = ["/", "/runs", "/runs/rows", "/reviews", "/insights"]


@pytest.mark.parametrize("path", [*PAGES, "/runs/some-run", "/runs/some-run/live"])
def test_a_stranger_is_sent_to_log_in_and_comes_back_after(site: Site, path: str) -> None:
    done = site.client().get(path)
    assert done.status_code == 303
    assert done.headers["location"].startswith("/login?next=")
    assert "alice" not in done.text


def test_login_with_a_token_starts_a_session_and_logout_ends_it(site: Site) -> None:
    client = site.client()
    refused = log_in(client, "shy_not-a-token", "/reviews")
    assert refused.status_code == 401
    assert "unknown or revoked" in refused.text
    assert SESSION_COOKIE not in client.cookies
    done = log_in(client, site.secrets["vic"], "/reviews")
    assert (done.status_code, done.headers["location"]) == (303, "/reviews")
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert site.secrets["vic"] not in cookie
    assert client.get("/reviews").status_code == 200
    out = client.post("/logout", data={"csrf_token": csrf_of(client)})
    assert out.status_code == 303
    assert client.get("/runs").status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil"])
def test_login_never_sends_anyone_to_another_site(site: Site, target: str) -> None:
    done = log_in(site.client(), site.secrets["vic"], target)
    assert done.headers["location"] == "/runs"


def test_a_login_posted_from_another_site_is_refused(site: Site) -> None:
    # Another site can make a browser post the login form with the attacker's own token (login
    # CSRF), but it can neither read this server's form token nor set its cookie.
    victim = site.client()
    forged = {"token": site.secrets["vic"], "next": "/runs"}
    refused = victim.post("/login", data=forged)
    assert refused.status_code == 403
    assert "sent from another site" in refused.text  # on a fresh login form
    assert SESSION_COOKIE not in victim.cookies
    # A form token the attacker fetched in a browser of its own does not match the victim's cookie.
    attacker = site.client()
    stolen = hidden_field(attacker.get("/login").text, CSRF_FIELD)
    victim.get("/login")  # the victim's browser has a login cookie of its own
    refused = victim.post("/login", data={**forged, CSRF_FIELD: stolen})
    assert refused.status_code == 403
    assert SESSION_COOKIE not in victim.cookies
    # A forged or tampered token is refused as well; the form's own token works.
    own = hidden_field(victim.get("/login").text, CSRF_FIELD)
    tampered = victim.post("/login", data={**forged, CSRF_FIELD: own[:-2] + "xx"})
    assert tampered.status_code == 403
    assert victim.post("/login", data={**forged, CSRF_FIELD: own}).status_code == 303


def test_logout_needs_the_csrf_token(site: Site) -> None:
    client = site.client("vic")
    assert client.post("/logout").status_code == 403
    assert client.get("/runs").status_code == 200  # still logged in


@pytest.mark.parametrize("path", PAGES[1:])
def test_each_page_renders_for_a_viewer_with_landmarks(site: Site, path: str) -> None:
    site.review_run()
    page = site.client("vic").get(path)
    assert page.status_code == 200
    if path != "/runs/rows":
        assert '<main id="main"' in page.text
        assert 'nav aria-label="Main"' in page.text
        assert "vic" in page.text


def test_a_bearer_token_opens_the_pages_too(site: Site) -> None:
    client = site.client()
    done = client.get("/runs", headers={"Authorization": f"Bearer {site.secrets['vic']}"})
    assert done.status_code == 200


def test_titles_diffs_reasons_and_transcripts_are_escaped_and_redacted(site: Site) -> None:
    run_id = site.review_run()
    client = site.client("bob")
    listing = client.get("/runs").text
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in listing
    assert "<script>alert(" not in listing
    page = client.get(f"/runs/{run_id}").text
    assert "<script>alert(" not in page
    assert "<img src=x" not in page
    assert "&lt;img" in page  # the diff line, highlighted, still escaped
    assert "onerror" in page
    assert "<i>is</i>" not in page
    assert "&lt;i&gt;is&lt;/i&gt;" in page
    assert "<b>first</b>" not in page
    assert "&lt;b&gt;first&lt;/b&gt;" in page
    assert "&lt;b&gt;src/x.py&lt;/b&gt;" in page  # a failed gate's details
    assert SECRET not in page
    assert "***" in page


def test_the_run_page_shows_timeline_gates_decision_agent_diff_and_record(site: Site) -> None:
    run_id = site.review_run()
    page = site.client("vic").get(f"/runs/{run_id}").text
    assert "prepare" in page
    assert "main at base" in page
    assert re.search(r"<th scope=\"row\">tests</th>\s*<td><span class=\"gate gate-none\">", page)
    assert "gate-failed" in page  # coverage's verdict
    assert "routing.type" in page
    assert "paths.outside_allowlist" in page
    assert 'id="agent-tokens">780<' in page
    assert 'id="agent-cost">$0.0123<' in page
    assert "Context compacted" in page
    assert "m1-m2" in page
    assert "900 → 120" in page
    assert "README.md" in page
    assert 'class="d-add"' in page
    assert "blueprint version" in page
    assert "change commit" in page
    assert "awaiting review" in page


def test_filters_select_runs_by_status_blueprint_repo_and_decision(site: Site) -> None:
    site.review_run(title="filter me")
    client = site.client("vic")

    def shown(**query: str) -> bool:
        return "filter me" in client.get("/runs/rows", params=query).text

    assert shown(status="awaiting_review")
    assert shown(blueprint="submit", repo=str(site.repo), decision="REVIEW")
    assert not shown(status="merged")
    assert not shown(blueprint="deps")
    assert not shown(repo="/elsewhere")
    assert not shown(decision="HALT")
    assert shown(status="not-a-status")  # an unknown status filters nothing out


def test_a_viewer_sees_no_review_form_and_cannot_approve(site: Site) -> None:
    run_id = site.review_run()
    client = site.client("vic")
    page = client.get(f"/runs/{run_id}").text
    assert "Approve and merge" not in page
    assert "needs the reviewer role" in page
    done = client.post(f"/runs/{run_id}/approve", data={"csrf_token": csrf_of(client)})
    assert done.status_code == 403
    assert site.store.state(run_id).status.value == "awaiting_review"


@pytest.mark.parametrize("token", [None, "forged"])
def test_a_review_form_without_the_session_csrf_token_is_refused(
    site: Site, token: str | None
) -> None:
    run_id = site.review_run()
    client = site.client("bob")
    data = {"comment": "looks fine"} | ({} if token is None else {"csrf_token": token})
    for action in ("approve", "reject"):
        assert client.post(f"/runs/{run_id}/{action}", data=data).status_code == 403
    assert site.store.state(run_id).status.value == "awaiting_review"


def test_the_requester_is_told_why_they_cannot_approve_their_own_run(site: Site) -> None:
    run_id = site.review_run(requested_by="alice")
    client = site.client("alice")
    page = client.get(f"/runs/{run_id}").text
    assert "You (alice) requested this run" in page
    assert re.search(r'class="approve"\s+disabled', page)
    queue = client.get("/reviews").text
    assert "You (alice) requested this run" in queue
    done = client.post(f"/runs/{run_id}/approve", data={"csrf_token": csrf_of(client)})
    assert done.status_code == 403
    assert "cannot also approve it" in done.text
    assert site.store.state(run_id).status.value == "awaiting_review"


def test_another_reviewer_approves_and_the_change_is_merged_into_main(site: Site) -> None:
    run_id = site.review_run(requested_by="alice")
    client = site.client("bob")
    assert "Approve and merge" in client.get("/reviews").text
    done = client.post(
        f"/runs/{run_id}/approve", data={"csrf_token": csrf_of(client), "comment": "ship it"}
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith(f"/runs/{run_id}?notice=approved")
    site.app.state.approvals.wait(run_id, timeout=120)  # the merge continues in the background
    state = site.store.state(run_id)
    assert state.status.value == "merged"
    assert (state.reviewed_by, state.review_comment) == ("bob", "ship it")
    assert XSS_LINE in git(site.repo, "show", "main:README.md")
    assert f"Shipyard-Run: {run_id}" in git(site.repo, "log", "-1", "--format=%B", "main")
    page = client.get(done.headers["location"]).text
    assert "approved by bob" in page
    assert 'class="status status-merged"' in page


def test_rejecting_closes_the_review_and_deletes_the_branch(site: Site) -> None:
    run_id = site.review_run()
    client = site.client("bob")
    done = client.post(
        f"/runs/{run_id}/reject", data={"csrf_token": csrf_of(client), "comment": "not now"}
    )
    assert done.status_code == 303
    assert site.store.state(run_id).status.value == "rejected"
    assert f"shipyard/{run_id}" not in git(site.repo, "branch", "--list")
    assert XSS_TITLE not in client.get("/reviews").text.replace("&lt;", "<")


def test_an_unknown_run_is_a_page_not_a_traceback(site: Site) -> None:
    page = site.client("vic").get("/runs/no-such-run")
    assert page.status_code == 404
    assert "no run" in page.text
    assert "Traceback" not in page.text


def test_the_metrics_page_reproduces_the_seed_table(site: Site) -> None:
    site.review_run()
    page = site.client("vic").get("/insights").text
    for heading in (
        "Auto-merge rate",
        "Human review required",
        "Defects caught before merge",
        "Post-merge defects",
        "Rollback rate",
        "Mean time to merge",
        "MTTR",
        "Cost per change",
    ):
        assert heading in page
    assert re.search(r'<th scope="row">feature</th><td>\d+</td>', page)
    assert 'id="chart-data"' in page
    assert '"id": "changes"' in page
    assert site.client("vic").get("/insights", params={"weeks": 0}).status_code == 422


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("vendor/htmx-2.0.11.min.js", 200),
        ("vendor/uPlot-1.6.32.iife.min.js", 200),
        ("charts.js", 200),
        ("highlight.css", 200),
        ("../pages.py", 404),
        ("..%2Fpages.py", 404),
        ("vendor/../../templating.py", 404),
    ],
)
def test_static_files_are_served_from_their_folder_only(site: Site, path: str, status: int) -> None:
    assert site.client().get(f"/static/dashboard/{path}").status_code == status
