"""Approvals continue in the background: the request answers at once, the merge queue merges the
change once, however many times the button is pressed and whichever way (form or API)."""

from __future__ import annotations

import threading

from shipyard.delivery.queue import MergeQueue
from shipyard.events import EventType
from shipyard.forge import get_forge
from tests.web.dashboard.conftest import Site, csrf_of, git


def _merges(site: Site, run_id: str) -> list[str]:
    log = git(site.repo, "log", "--format=%H %B", "main")
    return [line for line in log.splitlines() if line.strip() == f"Shipyard-Run: {run_id}"]


def _events(site: Site, run_id: str, kind: EventType) -> int:
    return sum(1 for e in site.store.events(run_id) if e.type == kind)


def test_approving_answers_at_once_while_the_merge_queue_is_busy_and_merges_once(
    site: Site,
) -> None:
    run_id = site.review_run(requested_by="alice")
    before = git(site.repo, "rev-parse", "main")
    api = {"Authorization": f"Bearer {site.secrets['bob']}"}
    client = site.client()
    # Another merge into main holds the queue: the approval must wait for it, and so must not
    # hold up the request.
    queue = MergeQueue(get_forge("local", site.repo), home=site.home)
    with queue.lock("main"):
        first = client.post(f"/api/reviews/{run_id}/approve", json={"comment": "ok"}, headers=api)
        second = client.post(f"/api/reviews/{run_id}/approve", json={}, headers=api)
        assert first.status_code == 202, first.text
        assert first.json() == {
            "run_id": run_id,
            "started": True,
            "message": "approved by bob; merging through the merge queue",
        }
        assert second.status_code == 202, second.text
        assert second.json()["started"] is False  # the double click starts nothing
        assert git(site.repo, "rev-parse", "main") == before
        browser = site.client("bob")
        page = browser.get(f"/runs/{run_id}").text
        assert 'id="approving"' in page  # the run's page says the merge is under way
        assert 'hx-get="/runs/' in page  # and follows it live
        assert "Approve and merge" not in page
    site.app.state.approvals.wait(run_id, timeout=120)

    assert site.store.state(run_id).status.value == "merged"
    assert len(_merges(site, run_id)) == 1
    assert _events(site, run_id, EventType.DELIVERY_MERGED) == 1
    assert _events(site, run_id, EventType.REVIEW_APPROVED) == 1
    again = client.post(f"/api/reviews/{run_id}/approve", json={}, headers=api)
    assert again.status_code == 404  # it no longer waits for review


def test_a_double_click_on_the_form_merges_once(site: Site) -> None:
    run_id = site.review_run(requested_by="alice")
    browser = site.client("bob")
    form = {"csrf_token": csrf_of(browser), "comment": "ship it"}
    answers: list[int] = []

    def click() -> None:
        answers.append(browser.post(f"/runs/{run_id}/approve", data=form).status_code)

    clicks = [threading.Thread(target=click) for _ in range(2)]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join(timeout=120)
    site.app.state.approvals.wait(run_id, timeout=120)

    # Each click is answered: a redirect to the run, or (once it merged) "not waiting for review".
    assert sorted(answers)[0] == 303
    assert set(answers) <= {303, 404}
    assert site.store.state(run_id).status.value == "merged"
    assert len(_merges(site, run_id)) == 1
    assert _events(site, run_id, EventType.DELIVERY_MERGED) == 1
    assert _events(site, run_id, EventType.REVIEW_APPROVED) == 1


def test_an_approval_that_fails_in_the_background_is_recorded_on_the_run(site: Site) -> None:
    run_id = site.review_run(requested_by="alice")
    git(site.repo, "branch", "-D", f"shipyard/{run_id}")  # the branch vanished meanwhile
    api = {"Authorization": f"Bearer {site.secrets['bob']}"}
    done = site.client().post(f"/api/reviews/{run_id}/approve", json={}, headers=api)
    assert done.status_code == 202
    site.app.state.approvals.wait(run_id, timeout=120)
    state = site.store.state(run_id)
    assert state.status.value == "awaiting_review"  # nothing merged; a person can reject it
    logged = [e.data["message"] for e in site.store.events(run_id) if e.type == EventType.LOG]
    assert any("the approval by bob did not complete" in m and "is gone" in m for m in logged)
