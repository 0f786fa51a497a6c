"""Rich rendering for the CLI: live progress from run events, summary tables, timelines, JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shipyard.agent.render import agent_line
from shipyard.errors import ShipyardError
from shipyard.events import Event, EventType, RunState, in_gate_order
from shipyard.rollout.render import describe_rollout

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

STATUS_STYLE = {
    "merged": "bold green",
    "staged": "bold cyan",
    "awaiting_review": "bold yellow",
    "halted": "bold red",
    "failed": "bold red",
    "rejected": "magenta",
    "noop": "dim",
    "queued": "dim",
    "running": "blue",
    "rolling_out": "cyan",
    "rolled_back": "bold red",
    "rollout_stopped": "yellow",
}
STATUS_LABEL = {
    "merged": "MERGED",
    "staged": "STAGING",
    "awaiting_review": "REVIEW",
    "halted": "HALTED",
    "failed": "FAILED",
    "rejected": "REJECTED",
    "noop": "NOTHING TO DO",
    "queued": "QUEUED",
    "running": "RUNNING",
    "rolling_out": "ROLLING OUT",
    "rolled_back": "ROLLED BACK",
    "rollout_stopped": "ROLLOUT STOPPED",
}


class Progress:
    """Turns the event stream of running runs into a spinner and one line per finished node."""

    def __init__(self, out: Console = console) -> None:
        self.out = out
        self.status = out.status("starting…", spinner="dots")

    def __enter__(self) -> Progress:
        self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.stop()

    def __call__(self, run_id: str, type_: str, data: dict[str, Any]) -> None:
        if type_ == EventType.RUN_CREATED.value:
            self.out.rule(f"[bold]{data.get('task', '')}[/] [dim]run {run_id}[/]", align="left")
        elif type_ == EventType.NODE_STARTED.value:
            self.status.update(f"[bold]{data['node']}[/] [dim]{run_id}[/]")
        elif type_ == EventType.NODE_FINISHED.value:
            seconds = data.get("seconds")
            took = f" [dim]({seconds:.1f} s)[/]" if isinstance(seconds, int | float) else ""
            self.out.print(f"  [green]✓[/] {data['node']:<8} {data.get('summary', '')}{took}")
        elif type_ == EventType.NODE_FAILED.value:
            self.out.print(f"  [red]✗[/] {data['node']:<8} {data.get('error', '')}")
        elif type_ == EventType.GATE_FINISHED.value:
            # Per-tree measurements of the tests, then one verdict per gate; the rest is in the record.
            phase, gate = data.get("phase"), data["gate"]
            if (phase != "verdict" and gate != "tests") or data.get("status") == "skipped":
                return
            cached = " [dim](cached)[/]" if data.get("cached") else ""
            self.out.print(
                f"    gate {gate} ({phase}): {_mark(data)} {data.get('summary', '')}{cached}"
            )
        elif type_.startswith("agent."):
            line = agent_line(type_, data)
            if line:
                self.out.print(f"    {line}")
        elif type_ == EventType.DECISION_MADE.value:
            action = data["action"]
            style = {"MERGE": "green", "REVIEW": "yellow", "HALT": "red"}.get(action, "cyan")
            self.out.print(f"    decision: [bold {style}]{action}[/]")
            for reason in data.get("reasons", []):
                self.out.print(f"      - {reason['message']} [dim]({reason['rule']})[/]")


def _mark(data: dict[str, Any]) -> str:
    status = data.get("status") or ("passed" if data.get("passed") else "failed")
    return {"passed": "[green]pass[/]", "skipped": "[dim]skip[/]"}.get(status, "[red]fail[/]")


MAX_DETAIL_LINES = 15


def gates_table(state: RunState) -> Table:
    """One row per gate: its baseline and change measurements, its verdict and why."""
    table = Table(title="Gates", title_justify="left")
    for column in ("gate", "baseline", "change", "verdict"):
        table.add_column(column)
    table.add_column("summary", overflow="fold")
    phases = state.gates
    for name in in_gate_order(name for by_gate in phases.values() for name in by_gate):
        cells = []
        for phase in ("baseline", "change", "verdict"):
            data = phases.get(phase, {}).get(name)
            cached = " (cached)" if data and data.get("cached") else ""
            cells.append(_mark(data) + cached if data else "")
        latest = phases.get("verdict", {}).get(name) or phases.get("change", {}).get(name) or {}
        table.add_row(name, *cells, str(latest.get("summary", "")))
    return table


def gate_details(state: RunState) -> list[str]:
    """The details of every gate whose verdict (or change measurement) failed, a few lines each."""
    out: list[str] = []
    for phase in ("verdict", "change"):
        by_gate = state.gates.get(phase, {})
        for name in in_gate_order(by_gate):
            data = by_gate[name]
            if data.get("status", "failed" if not data.get("passed") else "") != "failed":
                continue
            if phase == "change" and name in state.gates.get("verdict", {}):
                continue
            details = list(data.get("details", []))
            if not details:
                continue
            out.append(f"[bold]{name}[/] ({phase}): {data.get('summary', '')}")
            out += [f"  {escape(line)}" for line in details[:MAX_DETAIL_LINES]]
            if len(details) > MAX_DETAIL_LINES:
                out.append(f"  [dim]... {len(details) - MAX_DETAIL_LINES} more lines[/]")
    return out


def status_text(state: RunState) -> str:
    value = state.status.value
    return f"[{STATUS_STYLE.get(value, '')}]{STATUS_LABEL.get(value, value)}[/]"


def runs_table(states: Sequence[RunState], *, title: str = "Runs", branches: bool = False) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("run")
    table.add_column("task", overflow="fold")
    table.add_column("outcome")
    table.add_column("why", overflow="fold")
    if branches:
        table.add_column("branch")
    for state in states:
        row = [state.run_id, _title(state), status_text(state), why(state, width=140)]
        table.add_row(*row, *([state.branch or ""] if branches else []))
    return table


def why(state: RunState, *, width: int | None = None) -> str:
    """The one-line explanation of where a run ended (each reason cut to ``width`` characters)."""
    if state.error:
        return _cut(state.error, width)
    text = ""
    if state.decision:
        reasons = state.decision.get("reasons", [])
        deciding = [
            r for r in reasons if r.get("action") == state.decision.get("action")
        ] or reasons
        text = "; ".join(_cut(r["message"], width) for r in deciding[:3])
    if state.reviewed_by:
        verdict = "rejected" if state.review_status == "rejected" else "approved"
        text = f"{verdict} by {state.reviewed_by} after review ({text})"
    rollout = state.rollout or {}
    if state.status.value == "rolling_out":
        text = f"rolling out: stage {rollout.get('stage', 0)} ({rollout.get('percent', 0):g} %)"
    elif state.status.value in ("rolled_back", "rollout_stopped"):
        verb = "rolled back" if state.status.value == "rolled_back" else "rollout stopped"
        text = f"{verb}: {_cut(str(rollout.get('reason', '')), width)}"
    return text


def _cut(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _title(state: RunState) -> str:
    return str(state.task.get("title") or state.task.get("blueprint", ""))


def timeline_table(events: Sequence[Event]) -> Table:
    table = Table(title="Timeline", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("time (UTC)")
    table.add_column("event")
    table.add_column("detail", overflow="fold")
    for event in events:
        table.add_row(
            str(event.seq), f"{event.at:%H:%M:%S.%f}"[:-3], str(event.type), _detail(event)
        )
    return table


def _detail(event: Event) -> str:
    d = event.data
    if event.type.startswith("rollout."):
        return describe_rollout(event.type, d)
    if event.type.startswith("agent."):
        return agent_line(event.type, d).strip()
    if event.type == EventType.DECISION_MADE.value:
        return str(d["action"]) + "".join(f"\n- {r['message']}" for r in d.get("reasons", []))
    if event.type == EventType.GATE_FINISHED.value:
        failed = d.get("facts", {}).get("failed", [])
        extra = "".join(f"\n  ✗ {t}" for t in failed[:10])
        return f"{d['gate']} {d.get('phase', '')}: {d.get('summary', '')}{extra}"
    for key in ("summary", "message", "reason", "error", "node", "branch", "commit"):
        if d.get(key):
            return str(d[key])
    return ""


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums and datetimes as plain JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, sort_keys=True))


T = TypeVar("T")


def guard(fn: Callable[[], T]) -> T:
    """Run a command body; a user error becomes one red line and the error's exit code.

    The message is printed as text: errors name config tables such as ``[agent.external]``, which
    rich would otherwise take for markup and drop.
    """
    try:
        return fn()
    except ShipyardError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code) from None
