"""``shipyard sandbox`` (exec, shell) and ``shipyard bench``: the gates' sandbox, by hand and measured.

``exec`` is autonomous-mode plumbing a person can call: output captured, limits enforced, violations
reported. ``shell`` is supervised mode: the same sandbox with a person's terminal attached.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.markup import escape

from shipyard.console import console, err_console, guard, print_json, to_jsonable
from shipyard.errors import ConfigError, SandboxUnavailable
from shipyard.gates.environment import SANDBOX_ENV, gate_limits
from shipyard.sandbox import WORKSPACE, BwrapSandbox, CommandResult, Limits, cgroups, seccomp
from shipyard.sandbox.bwrap import DEFAULT_ENV

sandbox_app = typer.Typer(
    help="Run commands in the sandbox the gates use (exec), or open it for a person (shell).",
    no_args_is_help=True,
)
bench_app = typer.Typer(help="Measure shipyard on this host.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", min=0.1, help="Wall-time limit in seconds; the tree is killed."),
]
MemoryOpt = Annotated[int, typer.Option("--memory", min=64, help="Memory limit in MiB.")]
SHELLS = ("/bin/bash", "/bin/sh")
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def exit_status(code: int) -> int:
    """A process's status as a shell reports it: 128 + N for death by signal N."""
    return 128 - code if code < 0 else code


def _workspace(path: Path, option: str) -> Path:
    if not path.is_dir():
        raise ConfigError(
            f"{path}: no such directory; pass the directory to work in with {option}."
        )
    return path.resolve()


@sandbox_app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_command(
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.")],
    workspace: Annotated[
        Path, typer.Option("--workspace", help="Directory mounted writable at /workspace.")
    ],
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Let the command reach HOST:PORT via the egress proxy."),
    ] = None,
    timeout: TimeoutOpt = 600.0,
    memory: MemoryOpt = 4096,
    json_out: JsonOpt = False,
) -> None:
    """Run a command in the sandbox exactly as gates do, and exit with its status."""
    events: list[dict[str, object]] = []

    def record(event: dict[str, object]) -> None:
        events.append(event)
        if not json_out:
            fields = " ".join(f"{k}={v}" for k, v in event.items())
            err_console.print(f"[dim]egress: {escape(fields)}[/]")

    def body() -> CommandResult:
        where = _workspace(workspace, "--workspace")
        limits = gate_limits(timeout_seconds=timeout, memory_mb=memory)
        if not allow:
            return BwrapSandbox().run(command, workspace=where, env=SANDBOX_ENV, limits=limits)
        from shipyard.sandbox.egress import Grant, run_with_egress

        grants = [Grant.parse(text) for text in allow]
        return run_with_egress(
            BwrapSandbox(), command, workspace=where, grants=grants, on_event=record,
            env=SANDBOX_ENV, limits=limits,
        )  # fmt: skip

    result = guard(body)
    status = exit_status(result.exit_code)
    if json_out:
        print_json({**to_jsonable(result), "exit_status": status, "egress_events": events})
    else:
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.write(result.stderr)
        for problem in violations(result):
            err_console.print(f"[bold yellow]sandbox:[/] {escape(problem)}")
    raise typer.Exit(status)


def violations(result: CommandResult) -> list[str]:
    """Every limit the command ran into, one line each."""
    found = list(result.violations)
    if result.timed_out and not any(v.startswith("wall") for v in found):
        found.append("wall: the time limit passed; the process tree was killed")
    if result.output_truncated:
        found.append("output: more than the limit per stream; the rest was dropped")
    if result.exit_code < 0 and not result.timed_out:
        number = -result.exit_code
        name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
        found.append(f"killed by signal {name}")
    return found


@sandbox_app.command("shell")
def shell_command(
    repo: Annotated[
        Path, typer.Option("--repo", help="Directory (a repository) mounted at /workspace.")
    ] = Path("."),
    memory: MemoryOpt = 4096,
) -> None:
    """Open the gates' sandbox over a repository with your terminal attached (supervised mode).

    Nothing inside has a controlling terminal, so it cannot type into yours: Ctrl-C does not reach
    commands inside; leave with `exit` or Ctrl-D.
    """
    raise typer.Exit(guard(lambda: open_shell(_workspace(repo, "--repo"), memory_mb=memory)))


def open_shell(workspace: Path, *, memory_mb: int) -> int:
    """Run an interactive shell in the sandbox over ``workspace``; its exit status."""
    shell = next((s for s in SHELLS if Path(s).exists()), SHELLS[-1])
    limits = Limits(memory_bytes=memory_mb * 1024**2)
    env = {**SANDBOX_ENV, "PS1": r"[sandbox \w]\$ ", "TERM": os.environ.get("TERM", "dumb")}
    filter_fd = seccomp.filter_fd()
    group = cgroups.create(max_processes=limits.max_processes, memory_bytes=limits.memory_bytes)
    try:
        argv = BwrapSandbox().argv(
            [shell], workspace=workspace, env=env, mounts=(), cwd=WORKSPACE, network=False,
            tmp_bytes=limits.tmp_bytes, seccomp_fd=filter_fd,
        )  # fmt: skip
        applied = ", ".join(group.applied) if group else "processes and memory not limited here"
        err_console.print(f"[dim]sandbox over {workspace} at {WORKSPACE} ({applied})[/]")
        # Ctrl-C must not kill the session from outside: bwrap gets its own session, we ignore it.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            done = subprocess.run(
                argv, env=dict(DEFAULT_ENV), pass_fds=(filter_fd,), start_new_session=True,
                preexec_fn=group.join if group else None, check=False,
            )  # fmt: skip
        except OSError as exc:
            raise SandboxUnavailable(f"could not start bubblewrap: {exc}") from exc
        finally:
            signal.signal(signal.SIGINT, previous)
        return exit_status(done.returncode)
    finally:
        os.close(filter_fd)
        if group is not None:
            group.remove()


@bench_app.command("sandbox")
def bench_sandbox(
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs per measurement.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Sandbox start-up against raw bubblewrap, and a ready workspace from the environment pool."""
    module = guard(lambda: _benchmark("sandbox"))
    with console.status("measuring…", spinner="dots") if not json_out else nullcontext():
        data: dict[str, Any] = module.measure(repeat)
    if json_out:
        print_json(data)
        return
    from rich.table import Table

    start, ready = data["start_up"], data["ready_workspace"]
    table = Table(title="shipyard bench sandbox", title_justify="left")
    for column in ("", "p50", "p95"):
        table.add_column(column, justify="left" if not column else "right")
    rows = [
        ("raw `bwrap --ro-bind / / true`", start["raw"]),
        ("bwrap with shipyard's arguments", start["argv"]),
        ("BwrapSandbox().run(['true'])", start["sandbox"]),
        (f"ready workspace (pool hit, {ready['mechanism']})", ready),
        ("  of which the environment layer", ready["layer"]),
    ]
    for name, row in rows:
        table.add_row(name, f"{row['p50_ms']:.1f} ms", f"{row['p95_ms']:.1f} ms")
    table.add_row("sandbox / raw", f"{start['ratio_p50']}x", f"{start['ratio_p95']}x")
    console.print(table)
    console.print(
        f"pool miss (build + first use) {ready['miss_ms']:.0f} ms; host wheel download per "
        f"measurement {ready['wheel_download_ms']:.0f} ms; {start['raw']['runs']} runs each"
        + (f"; copies because {ready['note']}" if ready["note"] else "")
    )


def _benchmark(name: str) -> ModuleType:
    """A benchmark script of the source checkout (they need its examples/ too)."""
    path = BENCHMARKS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"shipyard_bench_{name}", path)
    if not path.is_file() or spec is None or spec.loader is None:
        raise ConfigError(
            f"{path} not found: benchmarks run from a source checkout of shipyard "
            "(git clone, then `make setup`)."
        )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
