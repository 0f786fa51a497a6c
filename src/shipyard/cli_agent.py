"""``shipyard run agent`` (bring your own agent) and ``shipyard adapter``: external agent CLIs."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from shipyard.agent.adapters import ADAPTERS, get_adapter
from shipyard.agent.adapters.base import ToolEnvMissing
from shipyard.agent.adapters.toolenv import install, locate, tools_root
from shipyard.app import AgentRecord, App
from shipyard.config import load_config, shipyard_home
from shipyard.console import Progress, console, guard, print_json, runs_table
from shipyard.events import RunState
from shipyard.model import ChangeType, RunStatus
from shipyard.workspace import inspect_repo

T = TypeVar("T")


adapter_app = typer.Typer(
    help="External agent CLIs shipyard can run in a sandbox (bring your own agent).",
    no_args_is_help=True,
)


def run_agent_command(
    task: Annotated[str, typer.Option("--task", help="What to implement or fix, in words.")],
    adapter: Annotated[
        str | None,
        typer.Option(
            "--adapter",
            help=f"The agent CLI: {', '.join(ADAPTERS)} (default: \\[agent.external] adapter).",
        ),
    ] = None,
    repo: Annotated[Path, typer.Option("--repo", help="The git repository to change.")] = Path("."),
    model: Annotated[
        str | None, typer.Option("--model", help="Model name at the endpoint.")
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="Model endpoint base URL (default: \\[agent.external] "
            "endpoint, \\[agent] base_url, then OPENAI_BASE_URL / ANTHROPIC_BASE_URL).",
        ),
    ] = None,
    allow_local: Annotated[
        str | None,
        typer.Option(
            "--allow-local",
            metavar="HOST:PORT",
            help="Let this run's sandbox reach the endpoint on loopback or a private "
            "network; must be exactly the endpoint's host:port.",
        ),
    ] = None,
    title: Annotated[str, typer.Option("--title", help="One line for the change.")] = "",
    change_type: Annotated[
        ChangeType, typer.Option("--type", help="Declared change type (checked against the diff).")
    ] = ChangeType.FEATURE,
    index_url: Annotated[
        str | None, typer.Option("--index-url", help="Package index for the gates' installs.")
    ] = None,
    requested_by: Annotated[str | None, typer.Option("--as", help="Who requests the run.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """An external agent CLI makes the change in a sandbox; the gates verify it; the policy decides."""
    from shipyard.blueprints.external import plan_external

    params: dict[str, object] = {"task": task}
    params |= {k: v for k, v in (("adapter", adapter), ("endpoint", endpoint),
                                  ("allow_local", allow_local)) if v}  # fmt: skip

    def body() -> tuple[RunState, AgentRecord]:
        info = inspect_repo(repo)
        agent = load_config(info.path).config.agent
        # Every setup mistake is one message here, before a run is recorded.
        plan_external(agent, {**params, "model": model}, home=shipyard_home(), environ=os.environ)
        listener = None if json_out else Progress()
        if listener is not None:
            listener.__enter__()
        try:
            with App(listener=listener) as shipyard:
                state = shipyard.run_agent(
                    "agent", repo=info.path, title=title or task.splitlines()[0][:72],
                    params=params, change_type=change_type, model=model, index_url=index_url,
                    requested_by=requested_by,
                )  # fmt: skip
                return state, shipyard.agent_record(state.run_id)
        finally:
            if listener is not None:
                listener.__exit__(None, None, None)

    state, record = guard(body)
    if json_out:
        print_json({"run": state, **asdict(record)})
    else:
        console.print()
        console.print(runs_table([state], title="Summary"))
    if state.status is RunStatus.FAILED:
        raise typer.Exit(1)


@adapter_app.command("list")
def adapter_list(
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """The adapters, the tool each runs, and whether it is installed here."""
    root = tools_root()
    rows = []
    for name in ADAPTERS:
        adapter = get_adapter(name)
        try:
            path: str | None = str(locate(adapter, root).path)
        except ToolEnvMissing:
            path = None
        rows.append({"adapter": name, "tool": adapter.tool.requirement, "kind": adapter.tool.kind,
                     "wire": adapter.wire, "installed": path})  # fmt: skip
    if json_out:
        print_json(rows)
        return
    table = Table(title=f"Agent adapters (tools in {root})", title_justify="left")
    for column in ("adapter", "tool", "endpoint API", "installed"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(str(row["adapter"]), str(row["tool"]), str(row["wire"]),
                      str(row["installed"] or "[yellow]no[/]"))  # fmt: skip
    console.print(table)


@adapter_app.command("install")
def adapter_install(
    name: Annotated[str, typer.Argument(help=f"One of {', '.join(ADAPTERS)}.")],
    index_url: Annotated[
        str | None,
        typer.Option("--index-url", help="Package index (pip) or registry (npm) to install from."),
    ] = None,
) -> None:
    """Install an adapter's tool on this host, once per version, for sandboxes to mount read-only."""

    def body() -> str:
        adapter = get_adapter(name)
        console.print(f"installing {adapter.tool.requirement} ({adapter.tool.kind})…")
        return str(install(adapter, tools_root(), index_url=index_url).path)

    console.print(f"{name}: installed in {guard(body)}")
