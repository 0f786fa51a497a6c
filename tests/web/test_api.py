"""The REST API against real runs: submit over HTTP, watch the run finish in the background, read its
events, gates and diff, and take it through the review queue into the repository."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shipyard.events import EventType
from shipyard.model import Task
from tests.conftest import EXAMPLES, needs_bwrap
from tests.web.conftest import Server, new_feature

sys.path.insert(0, str(EXAMPLES))
from scenario import branches, head, show

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.xdist_group("web-api")]
SECRET = "sk-proj-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2"


def test_a_submitted_patch_runs_in_the_background_and_waits_for_review(server: Server) -> None:
    before = head(server.repo)
    run_id = server.submit("feature-low-stock.patch", title=f"low stock {SECRET}")

    run = server.wait(run_id)

    assert run["status"] == "awaiting_review"
    assert run["action"] == "REVIEW"
    assert run["source"] == "api"
    assert run["requested_by"] == "alice"
    assert run["title"] == "low stock ***"  # the secret never reaches a response
    assert [r["rule"] for r in run["decision"]["reasons"]] == [
        "paths.outside_allowlist",
        "routing.type",
    ]
    assert run["reproducibility"]["blueprint"] == "submit"
    assert run["reproducibility"]["base_commit"] == before
    assert head(server.repo) == before
    assert f"shipyard/{run_id}" in branches(server.repo)

    events = server.get(f"/api/runs/{run_id}/events").json()["events"]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run.created"
    assert "decision.made" in kinds
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    later = server.get(f"/api/runs/{run_id}/events", params={"after": 5}).json()["events"]
    assert [e["seq"] for e in later] == list(range(6, len(events) + 1))
    assert SECRET not in str(events)

    gates = server.get(f"/api/runs/{run_id}/gates").json()["gates"]
    verdict = {g["gate"]: g for g in gates if g["phase"] == "verdict"}
    assert verdict["tests"]["passed"] is True
    assert "26 tests" in verdict["tests"]["summary"]
    assert {g["phase"] for g in gates} == {"baseline", "change", "verdict"}

    diff = server.get(f"/api/runs/{run_id}/diff").json()
    assert diff["base"] == before
    assert "+    def low_stock" in diff["diff"]

    missing = server.get(f"/api/runs/{run_id}/transcript")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    waiting = [r["run_id"] for r in server.get("/api/reviews").json()]
    assert run_id in waiting


def test_the_requester_cannot_approve_and_another_reviewer_merges(server: Server) -> None:
    run_id = server.submit("feature-low-stock.patch", who="alice", title="approve me")
    assert server.wait(run_id)["status"] == "awaiting_review"
    before = head(server.repo)

    refused = server.post(f"/api/reviews/{run_id}/approve", "alice", json={"comment": "mine"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "review_refused"
    assert "alice requested this run" in refused.json()["error"]["message"]
    assert head(server.repo) == before

    viewer = server.post(f"/api/reviews/{run_id}/approve", "vic", json={})
    assert viewer.status_code == 403
    assert head(server.repo) == before

    done = server.post(f"/api/reviews/{run_id}/approve", "bob", json={"comment": "looks right"})
    assert done.status_code == 202, done.text
    assert done.json()["started"] is True
    server.app.state.approvals.wait(run_id, timeout=240)  # merged in the background
    merged = server.get(f"/api/runs/{run_id}").json()
    assert merged["status"] == "merged"
    assert merged["reviewed_by"] == "bob"
    assert merged["review_comment"] == "looks right"
    assert head(server.repo) != before
    assert "def low_stock" in show(server.repo, "main", "src/inventory/stock.py")
    log = subprocess.run(
        ["git", "log", "-1", "--format=%s", "main"],
        cwd=server.repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "approved by bob" in log
    assert run_id not in [r["run_id"] for r in server.get("/api/reviews").json()]

    again = server.post(f"/api/reviews/{run_id}/approve", "bob", json={})
    assert again.status_code == 404  # it no longer waits for review


def test_reject_deletes_the_branch_and_merges_nothing(server: Server) -> None:
    run_id = server.submit(new_feature("rejected"), who="bob", title="reject me")
    assert server.wait(run_id)["status"] == "awaiting_review"
    before = head(server.repo)

    done = server.post(f"/api/reviews/{run_id}/reject", "alice", json={"comment": "not now"})

    assert done.status_code == 200, done.text
    assert done.json()["status"] == "rejected"
    assert head(server.repo) == before
    assert f"shipyard/{run_id}" not in branches(server.repo)


def test_a_forbidden_path_halts_and_publishes_nothing(server: Server) -> None:
    before = branches(server.repo)
    run_id = server.submit("auth-shortcut.patch", change_type="bugfix", title="auth")

    run = server.wait(run_id)

    assert run["status"] == "halted"
    assert run["decision"]["reasons"][0]["rule"] == "paths.forbidden"
    assert branches(server.repo) == before


def recorded(server: Server, *, requested_by: str, halted: bool) -> str:
    """A feature run recorded as blueprints record one (no execution): so that the listing tests
    do not depend on which other tests ran before them on this server."""
    store = server.app.state.shipyard.store
    run_id = str(
        store.create_run(
            Task(blueprint="submit", repo=str(server.repo), title=f"recorded by {requested_by}",
                 params={"change_type": "feature"}, source="api", requested_by=requested_by)
        )
    )  # fmt: skip
    store.append(run_id, EventType.CHANGE_CLASSIFIED, {"change_type": "feature"})
    action = "HALT" if halted else "REVIEW"
    reason = {"rule": "routing.type", "action": action, "message": "recorded"}
    store.append(run_id, EventType.DECISION_MADE, {"action": action, "reasons": [reason]})
    if halted:
        store.append(run_id, EventType.RUN_HALTED, {"reason": "recorded"})
    return run_id


def test_runs_are_listed_with_filters_and_pages(server: Server) -> None:
    recorded(server, requested_by="bob", halted=True)
    recorded(server, requested_by="alice", halted=False)
    everything = server.get("/api/runs", params={"limit": 200}).json()
    assert everything["next_cursor"] is None
    ids = [r["run_id"] for r in everything["runs"]]
    assert len(ids) >= 2

    first = server.get("/api/runs", params={"limit": 1}).json()
    second = server.get("/api/runs", params={"limit": 1, "before": first["next_cursor"]}).json()
    assert [r["run_id"] for r in first["runs"] + second["runs"]] == ids[:2]

    halted = server.get("/api/runs", params={"status": "halted"}).json()["runs"]
    assert halted
    assert {r["status"] for r in halted} == {"halted"}
    by_bob = server.get("/api/runs", params={"requested_by": "bob"}).json()["runs"]
    assert by_bob
    assert {r["requested_by"] for r in by_bob} == {"bob"}
    in_repo = server.get("/api/runs", params={"repo": "example", "limit": 200}).json()["runs"]
    assert [r["run_id"] for r in in_repo] == ids
    unknown = server.get("/api/runs", params={"repo": "nope"})
    assert unknown.status_code == 404


def test_metrics_summary_counts_the_changes(server: Server) -> None:
    recorded(server, requested_by="bob", halted=True)
    recorded(server, requested_by="alice", halted=False)
    summary = server.get("/api/metrics/summary").json()
    assert summary["runs"] >= 2
    assert summary["summary"]["changes"] >= 2
    assert {t["change_type"] for t in summary["types"]} >= {"feature"}
    assert summary["weeks"]


def test_prometheus_metrics_show_runs_gates_sandbox_starts_and_requests(server: Server) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    run_id = server.submit(new_feature("measured"), title="for metrics")
    server.wait(run_id)
    text = server.get("/metrics").text
    assert 'shipyard_runs{change_type="feature",decision="REVIEW",status="awaiting_review"}' in text
    assert 'shipyard_gate_duration_seconds_count{gate="tests",phase="verdict"}' in text
    assert "shipyard_queue_depth " in text
    assert "shipyard_reviews_waiting " in text
    assert (
        'shipyard_http_requests_total{method="GET",route="/api/runs/{run_id}",status="200"}' in text
    )
    assert "shipyard_agent_cost_usd_total" in text

    # Sandbox start latency: recorded by the real run, once per measured tree, and exported.
    events = server.get(f"/api/runs/{run_id}/events").json()["events"]
    starts = [
        e["data"]["facts"]["sandbox_start_seconds"]
        for e in events
        if e["type"] == "gate.finished"
        and e["data"]["gate"] == "tests"
        and e["data"]["phase"] == "change"
    ]
    assert len(starts) == 1  # the change's tree is measured here, never served from the cache
    assert 0 < starts[0] < 60
    assert sum("sandbox_start_seconds" in json.dumps(e["data"]) for e in events) <= 2
    families = {f.name: f for f in text_string_to_metric_families(server.get("/metrics").text)}
    samples = {s.name: s.value for s in families["shipyard_sandbox_start_seconds"].samples}
    assert samples["shipyard_sandbox_start_seconds_count"] >= 1
    assert samples["shipyard_sandbox_start_seconds_sum"] >= starts[0]
