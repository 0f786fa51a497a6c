"""One configured MCP server: its sandboxed process and the SDK's session, on an event loop of its own.

The agent loop is synchronous; the SDK is asyncio. Each server gets a private loop in a daemon thread,
and one task there owns the process and the session from start to close (anyio's scopes must be left
by the task that entered them). Calls cross over with ``run_coroutine_threadsafe`` and a deadline on
both sides, so a server that hangs or dies costs the model an error result, never the run.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import re
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import anyio
import mcp_types
from mcp import ClientSession
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from shipyard.agent.mcp.content import tool_result
from shipyard.agent.mcp.process import SandboxedProcess, kill_group, spawn
from shipyard.agent.tools.base import ToolResult
from shipyard.config import McpServerConfig
from shipyard.errors import ShipyardError
from shipyard.gates.environment import SANDBOX_ENV
from shipyard.sandbox.bwrap import BwrapSandbox

log = logging.getLogger(__name__)

CLIENT = mcp_types.Implementation(name="shipyard", version="1")
MARGIN_SECONDS = 5.0
"""Beyond a server's own deadline, how long the agent's thread waits before giving up on its loop."""
EXIT_SECONDS = 2.0
"""How long a server whose output ended has to be seen exiting before its call is answered."""
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Names every provider accepts for a function."""


class McpServerError(ShipyardError):
    """An MCP server could not start, list its tools, or does not offer a tool its config names."""

    exit_code = 4


class McpServer:
    """A server from ``[agent.mcp.<name>]``: ``start`` it, ``call`` its tools, ``close`` it.

    ``close`` ends the process; a ``call`` after it starts the server again, so a blueprint can stop
    its servers between the agent's passes without losing the tools. A server that died on its own
    is not restarted within a pass: its calls answer why it died.
    """

    def __init__(
        self,
        name: str,
        config: McpServerConfig,
        *,
        workspace: Path,
        sandbox: BwrapSandbox | None = None,
    ) -> None:
        self.name, self.config, self.workspace = name, config, workspace
        self.sandbox = sandbox or BwrapSandbox()
        self.tools: list[mcp_types.Tool] = []
        """The tools it offers, after the config's allowlist; filled by ``start``."""
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._main: concurrent.futures.Future[None] | None = None
        self._stop: asyncio.Event | None = None
        self._session: ClientSession | None = None
        self._process: SandboxedProcess | None = None
        _LIVE.add(self)

    @property
    def running(self) -> bool:
        return self._session is not None

    def start(self) -> None:
        """Start the sandboxed server and list its tools; ``McpServerError`` says why it could not."""
        with self._lock:
            if self._loop is not None:
                return
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name=f"mcp-{self.name}", daemon=True
            )
            self._thread.start()
            self._stop = asyncio.Event()
            ready: concurrent.futures.Future[list[mcp_types.Tool]] = concurrent.futures.Future()
            self._main = asyncio.run_coroutine_threadsafe(self._serve(ready), self._loop)
            try:
                listed = ready.result(timeout=self.config.startup_seconds + MARGIN_SECONDS)
            except BaseException as exc:
                message = self._failure(exc)  # before shutdown forgets the process's stderr
                self._shutdown()
                raise McpServerError(message) from exc
        try:
            self.tools = self._allowed(listed)
        except McpServerError:
            self.close()
            raise

    def call(self, tool: str, arguments: dict[str, Any]) -> ToolResult:
        """Call one of its tools; every failure becomes an error result for the model."""
        label = f"{self.name}__{tool}"
        if self._loop is None:
            try:
                self.start()
            except McpServerError as exc:
                return ToolResult(content=f"error: {exc}", ok=False)
        loop, seconds = self._loop, self.config.timeout_seconds
        assert loop is not None
        future = asyncio.run_coroutine_threadsafe(self._call(tool, arguments), loop)
        try:
            result = future.result(timeout=seconds + MARGIN_SECONDS)
        except (concurrent.futures.TimeoutError, TimeoutError):
            future.cancel()
            return ToolResult(
                content=f"error: {label} failed: it took longer than {seconds:g}s", ok=False
            )
        except Exception as caught:  # MCP errors, and the SDK's own complaints (bad output...)
            cause = _cause(caught)
            if isinstance(cause, MCPError) and cause.code == mcp_types.REQUEST_TIMEOUT:
                why = f"it took longer than {seconds:g}s"
            elif isinstance(cause, MCPError) and cause.code == mcp_types.CONNECTION_CLOSED:
                why = self._gone()
            else:
                why = cause.message if isinstance(cause, MCPError) else str(cause) or repr(cause)
            return ToolResult(content=f"error: {label} failed: {why}", ok=False)
        return tool_result(result)

    def close(self) -> None:
        """End the server's process and its loop; safe to call twice, and from ``atexit``."""
        with self._lock:
            self._shutdown()

    def __enter__(self) -> McpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _serve(self, ready: concurrent.futures.Future[list[mcp_types.Tool]]) -> None:
        """The one task that owns the process and the session, from start until ``_stop``."""
        assert self._stop is not None
        failure: BaseException | None = None
        try:
            self._process = await spawn(
                self.config.command, sandbox=self.sandbox, workspace=self.workspace,
                env={**SANDBOX_ENV, **self.config.env},
                writable="write" in self.config.capabilities,
            )  # fmt: skip
        except BaseException as exc:
            ready.set_exception(exc)
            return
        process = self._process
        to_session, from_server = anyio.create_memory_object_stream[SessionMessage | Exception]()
        to_server, from_session = anyio.create_memory_object_stream[SessionMessage]()
        try:
            async with anyio.create_task_group() as pumps:
                pumps.start_soon(process.read_messages, to_session)
                pumps.start_soon(process.write_messages, from_session)
                async with ClientSession(from_server, to_server, client_info=CLIENT) as session:
                    with anyio.fail_after(self.config.startup_seconds):
                        await session.initialize()
                        listed = await _list_tools(session)
                    self._session = session
                    ready.set_result(listed)
                    await self._stop.wait()
                pumps.cancel_scope.cancel()
        except BaseException as exc:
            failure = exc
        finally:
            self._session = None
            await process.stop()  # before answering: the stderr kept must be complete
            if failure is not None and not ready.done():
                ready.set_exception(failure)

    async def _call(self, tool: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        session = self._session
        if session is None:
            raise MCPError(code=mcp_types.CONNECTION_CLOSED, message="the server is not running")
        result = await session.call_tool(
            tool, arguments, read_timeout_seconds=self.config.timeout_seconds
        )
        assert isinstance(result, mcp_types.CallToolResult)  # the SDK raises on other shapes
        return result

    def _shutdown(self) -> None:
        loop, thread, main = self._loop, self._thread, self._main
        if loop is None:
            return
        if self._stop is not None:
            loop.call_soon_threadsafe(self._stop.set)
        if main is not None:
            with contextlib.suppress(Exception):
                main.result(timeout=MARGIN_SECONDS + 15)
        if self._process is not None and self._process.returncode is None:
            kill_group(self._process.proc.pid)  # the loop did not get to it
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=MARGIN_SECONDS)
        if not loop.is_running():
            loop.close()
        self._loop = self._thread = self._main = self._stop = None
        self._process = None

    def _failure(self, exc: BaseException) -> str:
        exc = _cause(exc)
        if isinstance(exc, TimeoutError | concurrent.futures.TimeoutError):
            why = f"it did not answer within {self.config.startup_seconds:g}s"
        elif isinstance(exc, MCPError) and exc.code == mcp_types.CONNECTION_CLOSED:
            code = self._process.returncode if self._process is not None else None
            why = "it closed the connection" if code is None else f"it exited (code {code})"
            why += " before listing its tools"
        else:
            why = str(exc) or type(exc).__name__
        return (
            f"the MCP server {self.name!r} ({' '.join(self.config.command)}) could not start: "
            f"{why}. Fix [agent.mcp.{self.name}] in the repository's configuration, or remove "
            f"it.{self._stderr_note()}"
        )

    def _gone(self) -> str:
        process = self._process
        if process is None:
            return f"the MCP server {self.name!r} is not running."
        deadline = time.monotonic() + EXIT_SECONDS
        while process.returncode is None and time.monotonic() < deadline:
            time.sleep(0.01)  # its output ended; bwrap's own exit follows in a moment
        if process.returncode is None:
            return f"the connection to the MCP server {self.name!r} closed."
        return (
            f"the MCP server {self.name!r} exited (code {process.returncode}); its tools are gone "
            f"until the next pass.{self._stderr_note()}"
        )

    def _stderr_note(self) -> str:
        tail = self._process.stderr_tail() if self._process is not None else ""
        return f" Its stderr ended with:\n{tail}" if tail else " It wrote nothing to stderr."

    def _allowed(self, listed: list[mcp_types.Tool]) -> list[mcp_types.Tool]:
        """The listed tools the config allows and providers can name; asking for others is an error."""
        by_name = {t.name: t for t in listed}
        wanted = self.config.tools
        if wanted is not None:
            missing = [n for n in wanted if n not in by_name]
            if missing:
                raise McpServerError(
                    f"the MCP server {self.name!r} offers no tool {', '.join(missing)} (it offers "
                    f"{', '.join(sorted(by_name)) or 'none'}); fix [agent.mcp.{self.name}].tools."
                )
        chosen = [by_name[n] for n in wanted] if wanted is not None else listed
        bad = [t.name for t in chosen if not TOOL_NAME.match(f"{self.name}__{t.name}")]
        if bad and wanted is not None:
            raise McpServerError(
                f"the MCP server {self.name!r}'s tools {', '.join(bad)} cannot be offered: "
                "a tool's full name (<server>__<tool>) must be 1-64 letters, digits, _ or -."
            )
        if bad:
            log.warning("MCP server %s: tools left out for their names: %s", self.name, bad)
        return [t for t in chosen if t.name not in bad]


def _cause(exc: BaseException) -> BaseException:
    """The first real error inside anyio's exception groups (task groups wrap what they raise)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _list_tools(session: ClientSession) -> list[mcp_types.Tool]:
    """Every page of the server's tool list."""
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    while True:
        params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            return tools


_LIVE: weakref.WeakSet[McpServer] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """bwrap dies with its parent anyway; this lets servers exit cleanly when the host does."""
    for server in list(_LIVE):
        server.close()
