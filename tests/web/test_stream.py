"""Live updates as server-sent events, through a real uvicorn server: a run's stream from the start
and resumed with Last-Event-ID, and the stream of every run picking up events as they are recorded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from shipyard.events import EventType
from shipyard.model import Task
from shipyard.web import ServeSettings, create_app
from shipyard.web.auth import Role


class Live:
    def __init__(self, url: str, app: Any, tokens: dict[str, str]) -> None:
        self.url = url
        self.app = app
        self.tokens = tokens

    def headers(self, who: str = "vic", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **extra}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    home = tmp_path_factory.mktemp("stream") / "home"
    app = create_app(ServeSettings(home=home, scheduler=False, stream_poll_seconds=0.05))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    give_up = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < give_up, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    tokens = {
        "vic": app.state.tokens.create(name="vic", role=Role.VIEWER, created_by="test")[1],
    }
    yield Live(f"http://127.0.0.1:{port}", app, tokens)
    server.should_exit = True
    thread.join(timeout=30)


def read_events(lines: Iterator[str], count: int | None = None) -> list[dict[str, Any]]:
    """Parse SSE messages from a stream's lines until ``count`` messages (or the stream's end)."""
    found: list[dict[str, Any]] = []
    message: dict[str, Any] = {}
    for line in lines:
        if not line:
            if "data" in message:
                found.append(message)
                if count is not None and len(found) >= count:
                    return found
            message = {}
            continue
        key, _, value = line.partition(":")
        message[key] = value.removeprefix(" ")
    return found


def make_run(live: Live, title: str) -> str:
    store = live.app.state.shipyard.store
    run_id: str = store.create_run(Task(blueprint="submit", repo="/nowhere", title=title))
    store.append(run_id, EventType.NODE_STARTED, {"node": "prepare"})
    return run_id


def test_a_run_stream_sends_every_event_then_new_ones_then_ends(live: Live) -> None:
    store = live.app.state.shipyard.store
    run_id = make_run(live, "streamed")
    url = f"{live.url}/api/runs/{run_id}/stream"
    with httpx.Client(timeout=30) as client, client.stream("GET", url, headers=live.headers()) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        first = read_events(lines, 2)
        assert [json.loads(m["data"])["type"] for m in first] == ["run.created", "node.started"]
        assert [m["id"] for m in first] == ["1", "2"]
        # Recorded after the stream began: it arrives, then the finished run ends the stream.
        store.append(run_id, EventType.LOG, {"message": "key sk-proj-" + "Q" * 24})
        store.append(run_id, EventType.RUN_HALTED, {"reason": "stop"})
        rest = read_events(lines)
    assert [m.get("event") for m in rest] == ["run-event", "run-event", "end"]
    assert "Q" * 24 not in rest[0]["data"]
    assert json.loads(rest[-1]["data"])["status"] == "halted"

    # A client that reconnects with Last-Event-ID gets only what it missed.
    with httpx.Client(timeout=30) as client:
        resumed = client.get(url, headers=live.headers(**{"Last-Event-ID": "3"}))
    messages = read_events(resumed.iter_lines())
    assert [m.get("id") for m in messages] == ["4", None]


def test_the_stream_of_every_run_picks_up_new_events_and_resumes(live: Live) -> None:
    store = live.app.state.shipyard.store
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", f"{live.url}/api/stream", headers=live.headers()) as r,
    ):
        assert r.status_code == 200
        # The stream starts at "now": runs made before it opened are not replayed.
        run_id = make_run(live, "live")
        got = read_events(r.iter_lines(), 2)
    payloads = [json.loads(m["data"]) for m in got]
    assert [(p["run_id"], p["type"]) for p in payloads] == [
        (run_id, "run.created"),
        (run_id, "node.started"),
    ]
    store.append(run_id, EventType.LOG, {"message": "after the client left"})
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "GET",
            f"{live.url}/api/stream",
            headers=live.headers(**{"Last-Event-ID": got[-1]["id"]}),
        ) as r,
    ):
        missed = read_events(r.iter_lines(), 1)
    assert json.loads(missed[0]["data"])["data"] == {"message": "after the client left"}
    assert int(missed[0]["id"]) > int(got[-1]["id"])


def test_streams_need_a_token(live: Live, tmp_path: Path) -> None:
    with httpx.Client(timeout=30) as client:
        for path in ("/api/stream", "/api/runs/x/stream"):
            refused = client.get(f"{live.url}{path}")
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
        missing = client.get(f"{live.url}/api/runs/no-such-run/stream", headers=live.headers())
        assert missing.status_code == 404
