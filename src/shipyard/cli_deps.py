"""What ``shipyard run deps --dry-run`` prints: one JSON object per update with ``--json`` (JSON
lines), else a table of the planned runs and one of what was left alone and why.

Every update found is listed: those a real run would start now first, then those it would defer
(open-run limit, schedule, cooldown), each with ``deferred`` saying why."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from shipyard.console import console
from shipyard.deps.planning import Plan
from shipyard.deps.render import age


def dry_run_records(plan: Plan) -> list[dict[str, Any]]:
    """One record per update: package, manifest, current, target, update type, reason,
    vulnerabilities, the run it belongs to (kind and group), and ``deferred``: None when a real run
    would start it now, else why not. Runs to start come first, in the order they would start."""
    records = []
    for run in (*plan.runs, *plan.deferred):
        for update in run.updates:
            shown = update.as_dict()
            shown.pop("changes")
            records.append(
                {
                    **shown,
                    "deferred": run.deferred or None,
                    "run": {"kind": run.kind, "name": run.name, "title": run.title},
                }
            )
        if run.kind == "lock":
            records.append(
                {"package": None, "manifest": None, "current": None, "target": None,
                 "update_type": "lock-maintenance", "security": False,
                 "reason": "lock file maintenance is due: refresh every transitive pin",
                 "vulnerabilities": [], "deferred": None,
                 "run": {"kind": run.kind, "name": run.name, "title": run.title}}
            )  # fmt: skip
    return records


def print_dry_run(plan: Plan, *, json_out: bool) -> None:
    records = dry_run_records(plan)
    if json_out:
        for record in records:
            print(json.dumps(record, sort_keys=True))
        return
    if not records:
        console.print("nothing to update: every dependency is current under the rules")
    else:
        table = Table(title="Planned updates (dry run: nothing was changed)", title_justify="left")
        for column in ("run", "package", "from", "to", "type", "age", "manifest", "reason", "when"):
            table.add_column(column, overflow="fold")
        for r in records:
            vulns = ", ".join(v["id"] for v in r["vulnerabilities"])
            table.add_row(
                r["run"]["kind"] + ("" if r["run"]["name"] == r["package"] else f" ({r['run']['name']})"),
                str(r["package"] or "-"), str(r["current"] or "-"), str(r["target"] or "-"),
                r["update_type"], age(r) if r["package"] else "-", str(r["manifest"] or "-"),
                r["reason"] + (f" [red]{vulns}[/]" if vulns else ""),
                r["deferred"] or "now",
            )  # fmt: skip
        console.print(table)
    if plan.skipped:
        table = Table(title="Left alone", title_justify="left")
        for column in ("package", "manifest", "why"):
            table.add_column(column, overflow="fold")
        for s in plan.skipped:
            table.add_row(s.package, s.manifest, s.reason)
        console.print(table)
