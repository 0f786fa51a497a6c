"""``shipyard rollout``: advance staged rollouts, show their health, resume or roll back by hand."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from shipyard.app import App, identity
from shipyard.console import console, guard, print_json, status_text, why
from shipyard.rollout.plan import Progress
from shipyard.rollout.render import bars, describe_rollout, when
from shipyard.rollout.stats import rollout_stats

if TYPE_CHECKING:
    from shipyard.rollout.runner import Advanced

rollout_app = typer.Typer(
    help="Staged rollouts of merged changes: watch health, revert on a breach.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
RunArg = Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")]


class RolloutProgress:
    """One line per rollout event as it is recorded."""

    def __call__(self, run_id: str, type_: str, data: dict[str, Any]) -> None:
        line = describe_rollout(type_, data)
        if line:
            console.print(f"[dim]{run_id}[/] {line}")


@rollout_app.command("watch")
def watch(
    runs: Annotated[
        list[str] | None, typer.Argument(help="Runs to advance (default: every rollout under way).")
    ] = None,
    max_seconds: Annotated[
        float | None,
        typer.Option("--max-seconds", help="Return after this long even if rollouts go on."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Advance rollouts until each is rolled out, rolled back or stopped (or --max-seconds)."""
    with App() as shipyard:
        runner = shipyard.rollouts(listener=None if json_out else RolloutProgress())
        ids = [_resolve(shipyard, r) for r in runs] if runs else None
        results: list[Advanced] = guard(lambda: runner.watch(ids, max_seconds=max_seconds))
        states = [shipyard.store.state(r.run_id) for r in results]
    if json_out:
        print_json(states)
        return
    if not results:
        console.print("no rollout under way")
    for state in states:
        console.print(f"{state.run_id}: {status_text(state)} {why(state)}")


@rollout_app.command("status")
def status(run_id: RunArg, json_out: JsonOpt = False) -> None:
    """A rollout's stage, baseline, threshold and every health reading, plotted."""
    with App() as shipyard:
        state = guard(lambda: shipyard.run(run_id))
        p: Progress = guard(lambda: shipyard.rollouts().progress_of(state.run_id))
    if json_out:
        print_json({"run": state, "rollout": _progress_data(p)})
        return
    console.print(f"run {state.run_id}  {status_text(state)}  {why(state)}")
    console.print(
        f"stage {p.stage}/{len(p.config.stages)} ({p.percent:g} %), baseline "
        f"{_num(p.baseline)}, threshold {_num(p.threshold)}, merged {when(p.merged_at)}"
    )
    if p.readings:
        console.print(health_plot(p))


def health_plot(p: Progress) -> Table:
    """Each reading as a bar, the threshold as a line: a breach sticks out past it."""
    top, rows = bars(p)
    table = Table(title="Health readings", title_justify="left", box=None, pad_edge=False)
    table.add_column("time (UTC)")
    table.add_column("value", justify="right")
    limit = f" (│ threshold {p.threshold:.3g})" if p.threshold is not None else ""
    table.add_column(f"0 … {top:.3g}{limit}")
    for row in rows:
        style = "red" if row.breach else "green"
        table.add_row(row.when, f"{row.value:.3g}", f"[{style}]{row.bar}[/]")
    return table


@rollout_app.command("stats")
def stats(
    repo: Annotated[
        Path | None, typer.Option("--repo", help="Only this repository's runs.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Rollback rate, post-merge defects and time to recover over every rollout recorded."""
    with App() as shipyard:
        states = shipyard.store.list_runs(
            limit=1_000_000, repo=str(repo.resolve()) if repo else None
        )
    numbers = rollout_stats(states)
    if json_out:
        print_json({**asdict(numbers), "rollback_rate": numbers.rollback_rate})
        return
    table = Table(title="Rollouts", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rate = numbers.rollback_rate
    for name, value in (
        ("rolled out", numbers.rollouts),
        ("completed every stage", numbers.completed),
        ("rolled back (post-merge defects)", numbers.rolled_back),
        ("under way", numbers.under_way),
        ("stopped, waiting for a person", numbers.stopped),
        ("rollback rate", "—" if rate is None else f"{rate:.1%}"),
        ("mean time to recover", _seconds(numbers.mttr_seconds)),
        ("median time to recover", _seconds(numbers.median_ttr_seconds)),
    ):
        table.add_row(name, str(value))
    console.print(table)


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


@rollout_app.command("resume")
def resume(run_id: RunArg, json_out: JsonOpt = False) -> None:
    """Let a stopped rollout go on once its health source or deploy hook works again."""
    with App() as shipyard:
        state = guard(lambda: shipyard.rollouts().resume(_resolve(shipyard, run_id), by=identity()))
    if json_out:
        print_json(state)
        return
    console.print(f"run {state.run_id}: {status_text(state)}; `shipyard rollout watch` goes on")


@rollout_app.command("revert")
def revert(
    run_id: RunArg,
    message: Annotated[str, typer.Option("-m", "--message", help="Why it is rolled back.")],
    json_out: JsonOpt = False,
) -> None:
    """Roll back a rollout now: the deploy hook's rollback, then a revert through the merge queue."""
    with App() as shipyard:
        runner = shipyard.rollouts(listener=None if json_out else RolloutProgress())
        state = guard(
            lambda: runner.revert_now(_resolve(shipyard, run_id), by=identity(), reason=message)
        )
    if json_out:
        print_json(state)
    else:
        console.print(f"run {state.run_id}: {status_text(state)} {why(state)}")
    if state.status.value != "rolled_back":
        raise typer.Exit(1)


def _resolve(shipyard: App, run_id: str) -> str:
    return guard(lambda: shipyard.run(run_id)).run_id


def _progress_data(p: Progress) -> dict[str, Any]:
    return {
        "stage": p.stage,
        "stages": p.config.stages,
        "percent": p.percent,
        "baseline": p.baseline,
        "threshold": p.threshold,
        "target": p.target,
        "commit": p.commit,
        "previous_commit": p.previous_commit,
        "merged_at": p.merged_at,
        "outcome": p.outcome,
        "reason": p.reason,
        "revert_commit": p.revert_commit,
        "readings": [{"at": at, "value": v} for at, v in p.readings],
    }


def _num(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.3g}"
