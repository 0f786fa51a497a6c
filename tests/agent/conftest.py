"""Fixtures for agent tests: a scripted model endpoint, started and stopped for you.

``replay_server(script, *, host="127.0.0.1") -> ReplayServer``
    A started ``shipyard.agent.replay.ReplayServer`` on a free port, closed at teardown. ``script``
    is a fixture file (a ``str``/``Path``; bare names such as ``"edit_and_finish.json"`` resolve
    in ``tests/agent/fixtures/``) or the fixture as a dict ``{"model": ..., "responses": [...]}``
    (format: the docstring of ``shipyard.agent.replay``). Use ``.url`` as an OpenAI base URL,
    ``.base`` as an Anthropic one, ``.requests`` (``RecordedRequest(path, body, headers)``) to see
    what the client sent, and ``.remaining`` to check the script was used up.

``replay_config(server, **overrides) -> AgentConfig``
    An ``AgentConfig`` pointing at ``server`` (``base_url``, and ``model`` when the script names
    one); OpenAI-compatible unless ``provider="anthropic"`` is passed, then ``.base`` is used.
    Retries default to 1 so failing tests stay quick. Build the provider with
    ``get_provider(config, environ={})``: localhost needs no key.

``FIXTURES``: the directory of fixture files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.agent.replay import ReplayServer
from shipyard.config import AgentConfig

FIXTURES = Path(__file__).parent / "fixtures"

ReplayFactory = Callable[..., ReplayServer]


@pytest.fixture
def replay_server() -> Iterator[ReplayFactory]:
    started: list[ReplayServer] = []

    def start(script: str | Path | dict[str, Any], *, host: str = "127.0.0.1") -> ReplayServer:
        if isinstance(script, str | Path) and not Path(script).is_absolute():
            script = FIXTURES / script
        server = ReplayServer(script, host=host).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def replay_config() -> Callable[..., AgentConfig]:
    def build(server: ReplayServer, **overrides: Any) -> AgentConfig:
        anthropic = overrides.get("provider") == "anthropic"
        values: dict[str, Any] = {
            "base_url": server.base if anthropic else server.url,
            "max_retries": 1,
        }
        if server.script.model:
            values["model"] = server.script.model
        return AgentConfig(**(values | overrides))

    return build
