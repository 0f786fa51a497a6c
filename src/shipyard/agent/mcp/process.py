"""An MCP server's process: bubblewrap around the configured command, spoken to over its stdio.

The SDK's ``stdio_client`` cannot hand bwrap the seccomp filter (an inherited descriptor) nor put
the process under the sandbox's rlimits and cgroup, so this starts bwrap as ``BwrapSandbox.run``
does and bridges its pipes to the SDK's session streams: one JSON-RPC message per line each way.
Everything here runs on the server's own event loop (see ``server.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import mcp_types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from shipyard.gates.base import tools_mount
from shipyard.sandbox import cgroups, seccomp
from shipyard.sandbox.base import WORKSPACE, Limits
from shipyard.sandbox.bwrap import DEFAULT_ENV, BwrapSandbox, _rlimits

SERVER_LIMITS = Limits(cpu_seconds=None, wall_seconds=86400.0)
"""The sandbox's limits, but no CPU-time cap: a server lives for the whole session and would
accumulate one (the agent's wall-time budget bounds it instead)."""
LINE_BYTES = 16 * 1024**2
"""Longest message line read from a server; a longer one ends the connection."""
STDERR_KEPT = 8192
"""How much of the end of a server's stderr is kept for error messages."""
EXIT_GRACE_SECONDS = 2.0
"""How long a server has to exit after its stdin closes, before its sandbox is killed."""


class SandboxedProcess:
    """A started server: its bwrap process, its cgroup, and the end of what it wrote to stderr."""

    def __init__(
        self, proc: asyncio.subprocess.Process, group: cgroups.CgroupLimits | None
    ) -> None:
        self.proc = proc
        self.group = group
        self.stderr = bytearray()
        self._stderr_task = asyncio.create_task(self._keep_stderr())

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def stderr_tail(self, chars: int = 2000) -> str:
        return self.stderr.decode("utf-8", errors="replace").strip()[-chars:]

    async def read_messages(self, send: MemoryObjectSendStream[SessionMessage | Exception]) -> None:
        """Server's stdout to the session, until end of file (the session then sees it closed)."""
        assert self.proc.stdout is not None
        async with send:
            while True:
                try:
                    line = await self.proc.stdout.readline()
                except (ValueError, OSError) as exc:  # a line over LINE_BYTES, or a broken pipe
                    await send.send(exc)
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except ValidationError as exc:
                    await send.send(exc)
                    continue
                await send.send(SessionMessage(message))

    async def write_messages(self, receive: MemoryObjectReceiveStream[SessionMessage]) -> None:
        """The session's messages to the server's stdin, one line each."""
        assert self.proc.stdin is not None
        async with receive:
            async for item in receive:
                data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                try:
                    self.proc.stdin.write(data.encode() + b"\n")
                    await self.proc.stdin.drain()
                except (ConnectionError, OSError):  # the server is gone; the reader sees EOF
                    return

    async def _keep_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.stderr += chunk
            del self.stderr[:-STDERR_KEPT]

    async def stop(self) -> None:
        """Close stdin and give the server a moment to exit, then kill its whole sandbox."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            with anyio.fail_after(EXIT_GRACE_SECONDS):
                await self.proc.wait()
        except TimeoutError:
            kill_group(self.proc.pid)
            with contextlib.suppress(TimeoutError), anyio.fail_after(10):
                await self.proc.wait()
        finally:
            if self.group is not None:
                self.group.remove()
        with contextlib.suppress(TimeoutError), anyio.fail_after(2):
            await self._stderr_task


def kill_group(pid: int) -> None:
    """SIGKILL bwrap's process group: ``--die-with-parent`` takes the sandbox down with bwrap."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def spawn(
    command: Sequence[str],
    *,
    sandbox: BwrapSandbox,
    workspace: Path,
    env: Mapping[str, str],
    writable: bool,
    limits: Limits = SERVER_LIMITS,
) -> SandboxedProcess:
    """Start ``command`` in a sandbox over ``workspace`` (read-only unless ``writable``), with
    shipyard's tools environment mounted and no network."""
    filter_fd = seccomp.filter_fd()
    try:
        argv = sandbox.argv(
            command, workspace=workspace, env=env, mounts=[tools_mount()], cwd=WORKSPACE,
            network=False, tmp_bytes=limits.tmp_bytes, seccomp_fd=filter_fd,
        )  # fmt: skip
        if not writable:
            # After the workspace's bind and before the filter: bwrap applies its options in order.
            at = argv.index("--seccomp")
            argv[at:at] = ["--remount-ro", WORKSPACE]
        group = cgroups.create(max_processes=limits.max_processes, memory_bytes=limits.memory_bytes)
        _, preexec = _rlimits(limits, group)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=dict(DEFAULT_ENV), pass_fds=(filter_fd,),
                start_new_session=True, preexec_fn=preexec, limit=LINE_BYTES,
            )  # fmt: skip
        except BaseException:
            if group is not None:
                group.remove()
            raise
    finally:
        os.close(filter_fd)
    return SandboxedProcess(proc, group)
