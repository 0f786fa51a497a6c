"""``shipyard policy``: run the policy on a facts file, or explain a past run's decision."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shipyard.config import CONFIG_FILE, LoadedConfig, load_config_file
from shipyard.console import console, err_console, guard, print_json
from shipyard.events import EventType
from shipyard.policy import decide, load_policy
from shipyard.policy.explain import decision_data
from shipyard.policy.facts import read_facts

policy_app = typer.Typer(help="Decide and explain with the policy.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@policy_app.command("decide")
def policy_decide(
    facts: Annotated[Path, typer.Option("--facts", help="JSON file of change facts.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", help=f"A {CONFIG_FILE} or pyproject.toml to take [policy] from."),
    ] = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="Preset name or preset file (overrides config).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Decide MERGE, STAGING_ONLY, REVIEW or HALT for a facts file, with every rule that fired."""

    def body() -> dict[str, Any]:
        change, ignored = read_facts(facts)
        loaded = load_config_file(config) if config else None
        policy = _policy(loaded, preset, base_dir=config.parent if config else Path.cwd())
        data = decision_data(decide(change, policy))
        return {"decision": data.pop("action"), **data, "ignored_fields": ignored}

    result = guard(body)
    if result["ignored_fields"]:
        err_console.print(f"ignored unknown facts fields: {', '.join(result['ignored_fields'])}")
    if json_out:
        print_json(result)
        return
    console.print(f"[bold]{result['decision']}[/] ({result['policy']} policy)")
    console.print(_reasons_table(result["reasons"]))


def _policy(loaded: LoadedConfig | None, preset: str | None, *, base_dir: Path) -> Any:
    if loaded is None:
        return load_policy(preset or "seed", base_dir=base_dir)
    return load_policy(
        preset or loaded.config.preset,
        loaded.config.policy_overrides,
        source=loaded.source_name,
        base_dir=base_dir,
    )


@policy_app.command("explain")
def policy_explain(run_id: str, json_out: JsonOpt = False) -> None:
    """Show a past run's decisions: the rules that fired, the facts, and how its type was chosen."""
    from shipyard.app import App

    shipyard = App()
    try:
        state = guard(lambda: shipyard.run(run_id))
        events = shipyard.store.events(state.run_id)
    finally:
        shipyard.close()
    decisions = [e.data for e in events if e.type == EventType.DECISION_MADE]
    classified = [e.data for e in events if e.type == EventType.CHANGE_CLASSIFIED]
    if not decisions:
        err_console.print(
            f"[bold red]error:[/] run {state.run_id} has no decision yet "
            f"(it is {state.status.value}); `shipyard runs show {state.run_id}` shows why."
        )
        raise typer.Exit(4)
    if json_out:
        print_json({"run": state.run_id, "decisions": decisions, "classification": classified})
        return
    console.print(f"[bold]run {state.run_id}[/]  {state.task.get('title', '')}")
    if classified:
        last = classified[-1]
        console.print(f"type: [bold]{last.get('change_type')}[/] — {last.get('note', '')}")
        for line in last.get("evidence", []):
            console.print(f"  • {line}")
    for number, data in enumerate(decisions, start=1):
        again = " (verified again after the target moved)" if data.get("reverified") else ""
        console.print(
            f"\n[bold]decision {number}: {data.get('action')}[/] ({data.get('policy')} policy){again}"
        )
        console.print(_reasons_table(data.get("reasons", [])))
        console.print(_facts_table(data.get("inputs", {})))


def _reasons_table(reasons: list[dict[str, Any]]) -> Table:
    table = Table(title="rules that fired", title_justify="left")
    table.add_column("rule")
    table.add_column("action")
    table.add_column("why", overflow="fold")
    for r in reasons:
        table.add_row(r["rule"], r["action"], r["message"])
    return table


def _facts_table(inputs: dict[str, Any]) -> Table:
    table = Table(title="facts the policy read", title_justify="left")
    table.add_column("fact")
    table.add_column("value", overflow="fold")
    for key, value in inputs.items():
        if key == "type_evidence":
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        table.add_row(key, shown or "—")
    return table
