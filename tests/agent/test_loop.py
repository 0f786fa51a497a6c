"""The agent loop with the real openai client against the replay server and real sandboxed tools."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipyard.agent.budget import Budget
from shipyard.agent.loop import AgentLoop
from shipyard.agent.providers import get_provider
from shipyard.agent.tools.base import ToolContext
from shipyard.agent.tools.builtin import default_toolshed
from shipyard.agent.transcript import Transcript
from shipyard.config import AgentConfig
from shipyard.gitcmd import git
from shipyard.sandbox import BwrapSandbox
from tests.conftest import needs_bwrap

pytestmark = [needs_bwrap]

SECRET_LOOKING = "postgresql://app:app-password@db.internal/app"


def test_tools_get_the_models_words_while_the_record_is_masked(
    tmp_path: Path, replay_server: Callable[..., Any], replay_config: Callable[..., AgentConfig]
) -> None:
    """A test fixture's fake credentials must reach the file as written; only the record masks."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    git("init", "-q", cwd=workspace)
    content = f'DATABASE_URL = "{SECRET_LOOKING}"\n'
    server = replay_server({"model": "m", "responses": [
        {"tool_calls": [{"name": "write_file",
                         "arguments": {"path": "settings.py", "content": content}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "wrote the settings"}}]},
    ]})  # fmt: skip
    config = replay_config(server)
    events: list[tuple[str, dict[str, Any]]] = []
    transcript = Transcript.for_run(tmp_path / "run")
    loop = AgentLoop(
        provider=get_provider(config, environ={}), model="m",
        tools=default_toolshed().grant(["write_file", "finish"]),
        ctx=ToolContext(run_id="r", workspace=workspace, sandbox=BwrapSandbox()),
        config=config, transcript=transcript, budget=Budget(config),
        emit=lambda kind, data: events.append((kind.value, data)),
    )  # fmt: skip
    outcome = loop.start("system", "write the settings")
    assert outcome.finished
    assert outcome.summary == "wrote the settings"
    assert (workspace / "settings.py").read_text() == content
    recorded = transcript.path.read_text()
    assert "app-password" not in recorded
    assert "app-password" not in repr(events)
