"""MCP servers from the repository's config, run in real bubblewrap and spoken to with the real SDK.

The servers (``tests/agent/mcp_servers/``) are copied into the workspace and started by shipyard's
own venv python through the tools mount, as a repository's server would be. Security properties are
tested by trying to break them from inside a server: the network, the host's home, files and
environment, and the workspace without ``write``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.agent.mcp import McpServer, McpServerError, McpServers
from shipyard.agent.messages import ToolCall
from shipyard.agent.replay import ReplayServer
from shipyard.agent.tools.base import Capability, Granted, ToolContext
from shipyard.blueprints.agent import start_agent
from shipyard.blueprints.engine import RunContext
from shipyard.blueprints.nodes import prepare
from shipyard.config import McpServerConfig, load_config
from shipyard.errors import ConfigError
from shipyard.events import EventType
from shipyard.gates.base import TOOLS_PYTHON
from shipyard.gitcmd import git
from shipyard.model import Task
from shipyard.sandbox import BwrapSandbox
from shipyard.store import Store
from tests.conftest import needs_bwrap

SERVERS = Path(__file__).parent / "mcp_servers"
slow_sandbox = [needs_bwrap, pytest.mark.sandbox, pytest.mark.slow]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / ".mcp").mkdir(parents=True)
    for script in SERVERS.glob("*.py"):
        shutil.copy(script, ws / ".mcp" / script.name)
    (ws / "notes.txt").write_text("one two three\nfour five\n")
    return ws


def config(script: str, **values: Any) -> McpServerConfig:
    values.setdefault("capabilities", ["read"])
    return McpServerConfig(command=[TOOLS_PYTHON, f"/workspace/.mcp/{script}.py"], **values)


@pytest.fixture
def serve(workspace: Path) -> Iterator[Any]:
    started: list[McpServer] = []

    def start(name: str, script: str, **values: Any) -> McpServer:
        server = McpServer(name, config(script, **values), workspace=workspace)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.close()


_BEFORE_TEST: set[int] = set()


@pytest.fixture(autouse=True)
def _processes_before_the_test() -> None:
    """Services other fixtures keep running for the session (Prometheus, PostgreSQL) are not this
    test's leftovers: only processes that appear during the test count."""
    _BEFORE_TEST.clear()
    _BEFORE_TEST.update(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())


def descendants() -> list[str]:
    """The processes below this one that the test started (pid and command), from /proc."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name_end = stat.rindex(")")
        parents[int(entry.name)] = int(stat[name_end + 2 :].split()[1])
        names[int(entry.name)] = stat[stat.index("(") + 1 : name_end]
    found, frontier = [], [os.getpid()]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        found += [f"{c} {names[c]}" for c in children if c not in _BEFORE_TEST]
        frontier += children
    return found


class TestRunningServer:
    pytestmark = slow_sandbox

    def test_lists_and_calls_a_tool_on_a_workspace_file(self, serve: Any) -> None:
        server = serve("words", "words")
        assert {t.name for t in server.tools} == {"word_count", "line_count"}
        result = server.call("word_count", {"path": "notes.txt"})
        assert result.ok
        assert result.content == "notes.txt: 5 words"

    def test_tools_reach_the_agent_through_the_grant(self, workspace: Path) -> None:
        servers = McpServers.start(
            {"words": config("words")}, workspace=workspace, allowed=frozenset({Capability.READ})
        )
        with servers:
            granted = servers.grant(Granted({}))
            spec = next(s for s in granted.specs if s.name == "words__line_count")
            assert spec.parameters["properties"]["path"]["type"] == "string"
            assert "lines" in spec.description
            assert granted.capabilities == {Capability.READ}
            ctx = ToolContext(run_id="t", workspace=workspace, sandbox=BwrapSandbox())
            call = ToolCall(id="c1", name="words__line_count", arguments={"path": "notes.txt"})
            assert granted.call(call, ctx).content == "notes.txt: 2 lines"

    def test_an_allowlist_hides_the_other_tools(self, workspace: Path) -> None:
        servers = McpServers.start(
            {"words": config("words", tools=["line_count"])},
            workspace=workspace,
            allowed=frozenset({Capability.READ}),
        )
        with servers:
            assert [t.spec.name for t in servers.tools] == ["words__line_count"]
            granted = servers.grant(Granted({}))
            ctx = ToolContext(run_id="t", workspace=workspace, sandbox=BwrapSandbox())
            refused = granted.call(ToolCall(id="c", name="words__word_count", arguments={}), ctx)
            assert not refused.ok
            assert "no tool 'words__word_count'" in refused.content

    def test_an_allowlist_naming_a_missing_tool_is_an_error(self, workspace: Path) -> None:
        server = McpServer("words", config("words", tools=["count_all"]), workspace=workspace)
        with pytest.raises(McpServerError, match=r"'words' offers no tool count_all"):
            server.start()
        assert descendants() == []

    def test_servers_beyond_the_grant_are_not_started(self, workspace: Path) -> None:
        configs = {
            "words": config("words"),
            "probe": config("probe", capabilities=["read", "write"]),
        }
        read_only = McpServers.start(
            configs, workspace=workspace, allowed=frozenset({Capability.READ})
        )
        with read_only:
            assert [s.name for s in read_only.servers] == ["words"]
            assert read_only.skipped == ["probe"]
        both = frozenset({Capability.READ, Capability.WRITE})
        with McpServers.start(configs, workspace=workspace, allowed=both) as everything:
            assert [s.name for s in everything.servers] == ["words", "probe"]
            writing = next(t for t in everything.tools if t.spec.name == "probe__write")
            assert writing.capabilities == both


class TestContainment:
    pytestmark = slow_sandbox

    def test_the_server_has_no_network(self, serve: Any) -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # the host itself reaches the listener
            listener.accept()[0].close()
            server = serve("probe", "probe")
            for host, to in (("127.0.0.1", port), ("1.1.1.1", 53)):
                result = server.call("connect", {"host": host, "port": to})
                assert result.ok
                assert result.content.startswith("failed:"), (host, result.content)
            listener.settimeout(0.5)
            with pytest.raises(TimeoutError):
                listener.accept()

    def test_the_server_sees_nothing_of_the_host(
        self, serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SHIPYARD_TEST_SECRET", "hunter2")
        outside = tmp_path / "outside.txt"
        outside.write_text("host secret")
        server = serve("probe", "probe", env={"GREETING": "hello"})
        variables = json.loads(server.call("environment", {}).content)
        assert variables["GREETING"] == "hello"
        assert "SHIPYARD_TEST_SECRET" not in variables
        assert "hunter2" not in json.dumps(variables)
        assert server.call("look", {"path": str(outside)}).content == "absent"
        home = Path.home()
        # The interpreter may live under the home (pyenv); its own directory is mounted read-only.
        visible = [p.name for p in home.iterdir() if not sys.base_prefix.startswith(f"{p}/")]
        assert visible, "the host's home should hold something to hide"
        seen = server.call("look", {"path": str(home)}).content
        shown = [] if seen == "absent" else json.loads(seen)
        assert not set(shown) & set(visible)

    def test_a_read_only_server_cannot_change_the_workspace(
        self, serve: Any, workspace: Path
    ) -> None:
        server = serve("probe", "probe", capabilities=["read"])
        result = server.call("write", {"path": "notes.txt", "text": "overwritten"})
        assert result.content.startswith("failed:")
        assert "Read-only file system" in result.content
        assert (workspace / "notes.txt").read_text().startswith("one two")

    def test_a_writing_server_changes_the_workspace_but_not_git(
        self, serve: Any, workspace: Path
    ) -> None:
        (workspace / ".git").mkdir()
        server = serve("probe", "probe", capabilities=["read", "write"])
        assert server.call("write", {"path": "new.txt", "text": "made"}).content == "written"
        assert (workspace / "new.txt").read_text() == "made"
        refused = server.call("write", {"path": ".git/config", "text": "[core]"})
        assert refused.content.startswith("failed:")
        assert not (workspace / ".git" / "config").exists()


class TestFailures:
    pytestmark = slow_sandbox

    def test_a_failing_tool_is_an_error_result_and_the_next_call_works(self, serve: Any) -> None:
        server = serve("probe", "probe")
        failed = server.call("fail", {"message": "the index is corrupt"})
        assert not failed.ok
        assert "fail" in failed.content
        assert server.call("look", {"path": "notes.txt"}).content.startswith("one two")

    def test_bad_arguments_are_an_error_result(self, serve: Any) -> None:
        server = serve("words", "words")
        result = server.call("word_count", {"file": "notes.txt"})
        assert not result.ok
        assert "path" in result.content

    def test_a_crashed_server_gives_clean_errors(self, serve: Any) -> None:
        server = serve("probe", "probe")
        crashed = server.call("crash", {"code": 3})
        assert not crashed.ok
        assert "'probe' exited (code 3)" in crashed.content
        assert "crashing on request" in crashed.content
        after = server.call("look", {"path": "notes.txt"})
        assert not after.ok
        assert "exited (code 3)" in after.content
        server.close()
        assert descendants() == []

    def test_a_call_past_its_deadline_is_an_error_result(self, serve: Any) -> None:
        server = serve("probe", "probe", timeout_seconds=1)
        slow = server.call("nap", {"seconds": 30})
        assert not slow.ok
        assert "took longer than 1s" in slow.content
        after = server.call("look", {"path": "notes.txt"})  # the SDK cancelled the late call
        assert after.ok
        assert after.content.startswith("one two")

    def test_a_server_that_exits_at_startup_is_named_with_its_stderr(self, workspace: Path) -> None:
        server = McpServer("indexer", config("broken"), workspace=workspace)
        with pytest.raises(McpServerError) as caught:
            server.start()
        message = str(caught.value)
        assert "'indexer'" in message
        assert "cannot open /workspace/missing-index.db" in message
        assert "[agent.mcp.indexer]" in message
        assert descendants() == []

    def test_a_server_that_never_answers_times_out_at_startup(self, workspace: Path) -> None:
        silent = McpServerConfig(command=["/bin/sleep", "600"], capabilities=[], startup_seconds=1)
        server = McpServer("silent", silent, workspace=workspace)
        with pytest.raises(McpServerError, match=r"'silent'.*did not answer within 1s"):
            server.start()
        assert descendants() == []

    def test_a_missing_program_is_a_startup_error(self, workspace: Path) -> None:
        missing = McpServerConfig(command=["/workspace/no-such-server"], capabilities=["read"])
        with pytest.raises(McpServerError, match=r"no-such-server"):
            McpServers.start(
                {"ghost": missing, "words": config("words")},
                workspace=workspace,
                allowed=frozenset({Capability.READ}),
            )
        assert descendants() == []


class TestLifetime:
    pytestmark = slow_sandbox

    def test_close_leaves_no_process_behind(self, workspace: Path) -> None:
        servers = McpServers.start(
            {"words": config("words"), "probe": config("probe")},
            workspace=workspace,
            allowed=frozenset({Capability.READ}),
        )
        running = descendants()
        assert any("bwrap" in p for p in running)
        assert any("python" in p for p in running)
        servers.close()
        assert descendants() == []
        servers.close()  # twice is harmless

    def test_a_closed_server_starts_again_on_its_next_call(self, serve: Any) -> None:
        server = serve("words", "words")
        server.close()
        assert descendants() == []
        assert server.call("word_count", {"path": "notes.txt"}).content == "notes.txt: 5 words"
        server.close()
        assert descendants() == []


@pytest.mark.parametrize(
    ("table", "field", "words"),
    [
        ('capabilities = ["read", "delete"]', "agent.mcp.files.capabilities", "unknown capability"),
        ('capabilities = ["network"]', "agent.mcp.files.capabilities", "egress"),
        ('capabilities = ["read"]\ncolor = "red"', "agent.mcp.files.color", "Extra inputs"),
        ('command = []\ncapabilities = ["read"]', "agent.mcp.files.command", "at least 1"),
        ("", "agent.mcp.files.capabilities", "add this field"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, table: str, field: str, words: str) -> None:
    command = "" if "command" in table else 'command = ["/opt/shipyard/tools/bin/python", "s.py"]\n'
    (tmp_path / "shipyard.toml").write_text(f"[agent.mcp.files]\n{command}{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert f"shipyard.toml: {field}:" in str(caught.value)
    assert words in str(caught.value)


@pytest.mark.parametrize("name", ["a b", "two__parts", "-lead", "x" * 33])
def test_server_names_must_make_tool_names(tmp_path: Path, name: str) -> None:
    (tmp_path / "shipyard.toml").write_text(
        f'[agent.mcp."{name}"]\ncommand = ["x"]\ncapabilities = ["read"]\n'
    )
    with pytest.raises(ConfigError, match=r"agent\.mcp\..*\[key\]"):
        load_config(tmp_path)


def test_a_full_server_table_loads(tmp_path: Path) -> None:
    (tmp_path / "shipyard.toml").write_text(
        "[agent.mcp.docs-index]\n"
        'command = ["/opt/shipyard/tools/bin/python", "-m", "docs_index"]\n'
        'env = { INDEX = "/workspace/docs" }\n'
        'capabilities = ["read", "execute"]\n'
        'tools = ["search_docs"]\n'
        "timeout_seconds = 30\n"
    )
    server = load_config(tmp_path).config.agent.mcp["docs-index"]
    assert server.env == {"INDEX": "/workspace/docs"}
    assert server.tools == ["search_docs"]
    assert (server.timeout_seconds, server.startup_seconds) == (30, 20)


class TestAgentBlueprint:
    """``start_agent`` starts the repository's servers, grants their tools, and stops them after
    the agent's pass; a server that cannot start fails the run."""

    pytestmark = slow_sandbox

    @staticmethod
    def context(tmp_path: Path, server: ReplayServer, mcp: str) -> RunContext:
        repo = tmp_path / "repo"
        (repo / ".mcp").mkdir(parents=True)
        for script in SERVERS.glob("*.py"):
            shutil.copy(script, repo / ".mcp" / script.name)
        (repo / "notes.txt").write_text("one two three\nfour five\n")
        (repo / "shipyard.toml").write_text(
            f'[agent]\nbase_url = "{server.url}"\nmodel = "replay-model"\nmax_retries = 1\n{mcp}'
        )
        git("init", "-q", "-b", "main", cwd=repo)
        git("add", "-A", cwd=repo)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "initial", cwd=repo)
        store = Store.open(home=tmp_path / "home")
        task = Task(blueprint="task", repo=str(repo), title="count")
        ctx = RunContext(run_id=store.create_run(task), task=task, store=store,
                         home=tmp_path / "home")  # fmt: skip
        prepare(ctx)
        return ctx

    def test_the_agent_calls_a_server_tool_and_the_server_stops_after_its_pass(
        self, tmp_path: Path, replay_server: Any
    ) -> None:
        server = replay_server({"model": "replay-model", "responses": [
            {"content": "", "tool_calls": [
                {"name": "words__word_count", "arguments": {"path": "notes.txt"}}],
             "expect": {"tools_include": ["words__word_count", "read_file"]}},
            {"content": "", "tool_calls": [{"name": "finish", "arguments": {"summary": "5"}}],
             "expect": {"last_message_contains": "notes.txt: 5 words"}},
            {"content": "", "tool_calls": [
                {"name": "words__line_count", "arguments": {"path": "notes.txt"}}]},
            {"content": "", "tool_calls": [{"name": "finish", "arguments": {"summary": "2"}}],
             "expect": {"last_message_contains": "notes.txt: 2 lines"}},
        ]})  # fmt: skip
        mcp = (
            '[agent.mcp.words]\ncommand = ["/opt/shipyard/tools/bin/python", '
            '"/workspace/.mcp/words.py"]\ncapabilities = ["read"]\n'
            '[agent.mcp.probe]\ncommand = ["/opt/shipyard/tools/bin/python", '
            '"/workspace/.mcp/probe.py"]\ncapabilities = ["read", "write", "execute"]\n'
        )
        ctx = self.context(tmp_path, server, mcp)
        start_agent(ctx, task_text="Count the words of notes.txt.", grant=("read_file", "finish"))
        assert ctx.values["agent_outcome"].finished
        started = next(e.data for e in ctx.store.events(ctx.run_id)
                       if e.type == EventType.AGENT_STARTED)  # fmt: skip
        assert "words__word_count" in started["tools"]
        assert not any(t.startswith("probe__") for t in started["tools"])
        assert any("not granted to task: probe" in line for line in logs(ctx))
        assert descendants() == []  # stopped while the agent waits for the gates
        loop = ctx.values["agent"]
        outcome = loop.continue_with("Now count its lines.")  # the server starts again
        assert outcome.finished
        ctx.values["mcp"].close()
        assert descendants() == []
        assert server.remaining == 0

    def test_a_server_that_cannot_start_fails_the_run(
        self, tmp_path: Path, replay_server: Any
    ) -> None:
        server = replay_server({"model": "replay-model", "responses": []})
        mcp = (
            '[agent.mcp.indexer]\ncommand = ["/opt/shipyard/tools/bin/python", '
            '"/workspace/.mcp/broken.py"]\ncapabilities = ["read"]\n'
        )
        ctx = self.context(tmp_path, server, mcp)
        with pytest.raises(McpServerError, match=r"'indexer'[\s\S]*missing-index\.db"):
            start_agent(ctx, task_text="Count the words of notes.txt.")
        assert descendants() == []


def logs(ctx: RunContext) -> list[str]:
    return [
        str(e.data.get("message", ""))
        for e in ctx.store.events(ctx.run_id)
        if e.type == EventType.LOG
    ]
