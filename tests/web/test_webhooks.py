"""GitHub webhooks: a signed ``issues``/``labeled`` delivery on a registered repository becomes a real
``task`` run (its model played by the replay server); unsigned, wrongly signed, replayed and
unrelated deliveries start nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from shipyard.agent.replay import ReplayServer
from shipyard.web.webhooks import signature_ok
from tests.conftest import EXAMPLES, needs_bwrap
from tests.web.conftest import WEBHOOK_SECRET, Server, make_server

LOW_STOCK = EXAMPLES / "agents" / "low-stock.json"
PATH = "/api/webhooks/github"


def labelled(
    label: str = "shipyard", repo: str = "acme/example", action: str = "labeled"
) -> dict[str, Any]:
    return {
        "action": action,
        "label": {"name": label},
        "repository": {"full_name": repo},
        "sender": {"login": "octocat"},
        "issue": {
            "number": 42,
            "title": "Report low stock",
            "body": "Add Stock.low_stock(threshold=5): items with fewer units, fewest first.",
        },
    }


def deliver(
    site: Server,
    payload: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    event: str = "issues",
    delivery: str | None = None,
    signature: str | None = None,
) -> Any:
    body = json.dumps(payload).encode()
    signed = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or secrets.token_hex(8),
    }
    if signature != "":
        headers["X-Hub-Signature-256"] = signature or signed
    return site.client.post(PATH, content=body, headers=headers)


def run_count(site: Server) -> int:
    return len(site.get("/api/runs", params={"limit": 200}).json()["runs"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with ReplayServer(LOW_STOCK) as model, pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_BASE_URL", model.url)
        env.setenv("OPENAI_API_KEY", "replay")
        yield from make_server(tmp_path_factory.mktemp("webhooks"))


@pytest.mark.slow
@needs_bwrap
def test_a_labelled_issue_becomes_a_task_run_that_implements_it(site: Server) -> None:
    done = deliver(site, labelled(), delivery="delivery-1")

    assert done.status_code == 202, done.text
    assert done.json()["action"] == "started"
    (run_id,) = done.json()["run_ids"]
    run = site.wait(run_id)
    assert run["blueprint"] == "task"
    assert run["source"] == "webhook"
    assert run["requested_by"] == "github:octocat"
    assert run["title"] == "#42 Report low stock"
    assert "Add Stock.low_stock(threshold=5)" in run["params"]["task"]
    assert run["status"] == "awaiting_review", run
    assert "low_stock" in site.get(f"/api/runs/{run_id}/diff").json()["diff"]
    transcript = site.get(f"/api/runs/{run_id}/transcript").json()["messages"]
    assert transcript

    replayed = deliver(site, labelled(), delivery="delivery-1")
    assert replayed.status_code == 200
    assert replayed.json()["action"] == "ignored"
    assert "already received" in replayed.json()["reason"]
    assert [r["run_id"] for r in site.get("/api/runs").json()["runs"]] == [run_id]


@pytest.mark.parametrize(
    ("signature", "secret"),
    [
        ("", WEBHOOK_SECRET),  # missing
        (None, "another-secret"),  # signed with the wrong secret
        ("sha256=" + "0" * 64, WEBHOOK_SECRET),  # forged
        ("sha1=" + "0" * 40, WEBHOOK_SECRET),  # the old scheme
    ],
)
def test_unsigned_or_wrongly_signed_deliveries_are_refused(
    site: Server, signature: str | None, secret: str
) -> None:
    before = run_count(site)
    delivery = secrets.token_hex(8)
    done = deliver(site, labelled(), secret=secret, signature=signature, delivery=delivery)
    assert done.status_code == 401
    assert done.json()["error"]["code"] == "unauthorized"
    assert WEBHOOK_SECRET not in done.text
    assert run_count(site) == before
    # A refused delivery does not burn its id: the genuine one is still acted on later.
    assert site.app.state.registry.first_delivery(delivery, event="issues", outcome="test")


@pytest.mark.parametrize(
    ("event", "payload", "reason"),
    [
        ("ping", {"zen": "Keep it logically awesome."}, "ping events are not acted on"),
        ("issues", labelled(action="opened"), "issue opened, not labeled"),
        ("issues", labelled(label="bug"), "label bug is not shipyard"),
        ("issues", labelled(repo="acme/elsewhere"), "'acme/elsewhere' is not registered"),
    ],
)
def test_other_deliveries_are_acknowledged_and_ignored_with_a_reason(
    site: Server, event: str, payload: dict[str, Any], reason: str
) -> None:
    before = run_count(site)
    done = deliver(site, payload, event=event)
    assert done.status_code == 200
    assert done.json()["action"] == "ignored"
    assert reason in done.json()["reason"]
    assert run_count(site) == before


def test_the_signature_check_is_exact() -> None:
    body = b'{"a": 1}'
    good = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature_ok(b"k", body, good)
    assert not signature_ok(b"k", body + b" ", good)
    assert not signature_ok(b"k", body, good.upper())
    assert not signature_ok(b"k", body, None)
    assert not signature_ok(b"k", body, good[:-1])


def test_without_a_configured_secret_webhooks_are_refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    for bare in make_server(tmp_path_factory.mktemp("nosecret"), webhook_secret=None):
        done = deliver(bare, labelled())
        assert done.status_code == 503
        assert "SHIPYARD_WEBHOOK_SECRET" in done.json()["error"]["message"]
