"""A short markdown report per run, rendered from its events alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.text import Text

from shipyard.agent.render import agent_line
from shipyard.blueprints.engine import RunContext
from shipyard.deps.render import deps_section
from shipyard.events import Event, EventType, in_gate_order
from shipyard.rollout.plan import progress
from shipyard.rollout.render import bars, describe_rollout
from shipyard.store import Store


def write_report(ctx: RunContext) -> Path:
    return write_run_report(ctx.store, ctx.run_dir, ctx.run_id)


def write_run_report(store: Store, run_dir: Path, run_id: str) -> Path:
    """Render the run's report from its events into ``run_dir/report.md`` (again, when it moved on)."""
    path = run_dir / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(run_id, store.events(run_id)), encoding="utf-8")
    return path


def render_report(run_id: str, events: Sequence[Event]) -> str:
    """Title, outcome, decision with every reason, gate measurements, failing tests and the timeline."""
    by_type: dict[str, list[Event]] = {}
    for event in events:
        by_type.setdefault(str(event.type), []).append(event)
    created = by_type.get(EventType.RUN_CREATED.value, [])
    task = created[0].data.get("task", {}) if created else {}
    out = [f"# shipyard run {run_id}", ""]
    out.append(f"- **Task**: {task.get('title') or task.get('blueprint', '?')}")
    out.append(f"- **Blueprint**: {task.get('blueprint', '?')}")
    out.append(f"- **Repository**: {task.get('repo', '?')}")
    for commit in by_type.get(EventType.CHANGE_COMMITTED.value, []):
        d = commit.data
        out.append(f"- **Change**: {d['branch']} {d['commit'][:12]} on base {d['base'][:12]}")
        out.append(f"- **Files**: {', '.join(d.get('files', [])) or '(none)'}")
    out.append("")
    for classified in by_type.get(EventType.CHANGE_CLASSIFIED.value, [])[-1:]:
        d = classified.data
        out += [f"## Classification: {d.get('change_type', '?')}", "", str(d.get("note", "")), ""]
        out += [f"- {line}" for line in d.get("evidence", [])]
        out.append("")
    out += deps_section(events)
    for decision in by_type.get(EventType.DECISION_MADE.value, []):
        d = decision.data
        out += [f"## Decision: {d['action']} ({d.get('policy', '?')} policy)", ""]
        out += [f"- `{r['rule']}` → {r['action']}: {r['message']}" for r in d.get("reasons", [])]
        out.append("")
    out += _gates(by_type.get(EventType.GATE_FINISHED.value, []))
    outcome = _outcome(by_type)
    if outcome:
        out += ["## Outcome", "", outcome, ""]
    out += _rollout(events)
    out += ["## Timeline", "", "| time (UTC) | event | detail |", "|---|---|---|"]
    for event in events:
        out.append(f"| {event.at:%H:%M:%S} | {event.type} | {_detail(event)} |")
    return "\n".join(out) + "\n"


def _gates(events: list[Event]) -> list[str]:
    """The gates as a table (latest result per gate and phase), then what failed, line by line."""
    if not events:
        return []
    latest: dict[str, dict[str, dict[str, Any]]] = {}
    for event in events:
        latest.setdefault(str(event.data.get("phase", "")), {})[event.data["gate"]] = event.data
    names = in_gate_order(e.data["gate"] for e in events)
    out = [
        "## Gates",
        "",
        "| gate | baseline | change | verdict | summary |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        cells = [_status(latest.get(p, {}).get(name)) for p in ("baseline", "change", "verdict")]
        shown = latest.get("verdict", {}).get(name) or latest.get("change", {}).get(name) or {}
        summary = str(shown.get("summary", "")).replace("|", "\\|")
        out.append(f"| {name} | {' | '.join(cells)} | {summary} |")
    out.append("")
    for name in names:
        data = latest.get("verdict", {}).get(name, {})
        if data.get("status") == "failed" and data.get("details"):
            out += [f"### {name}: {data.get('summary', '')}", "", "```text"]
            out += [str(line) for line in data["details"][:60]]
            out += ["```", ""]
    return out


def _rollout(events: Sequence[Event]) -> list[str]:
    """Stages, baseline, outcome and the health readings of a merged change's rollout."""
    p = progress(events)
    if p is None:
        return []
    stages = ", ".join(f"{s:g} %" for s in p.config.stages)
    out = ["## Rollout", "", f"- **Stages**: {stages}; reached stage {p.stage} ({p.percent:g} %)"]
    if p.baseline is not None and p.threshold is not None:
        out.append(f"- **Baseline**: {p.baseline:.3g}; a reading above {p.threshold:.3g} breaches")
    reverted = [e for e in events if e.type == EventType.ROLLOUT_REVERTED.value]
    if p.outcome == "rolled_back" and reverted:
        d = reverted[-1].data
        out.append(
            f"- **Outcome**: rolled back: {d.get('reason', '')}; reverted as "
            f"`{str(d.get('revert_commit', ''))[:12]}` {float(d.get('seconds_to_revert', 0)):.1f} s "
            f"after the breach (time to recover); {d.get('rollback', '')}"
        )
    elif p.outcome == "completed":
        out.append("- **Outcome**: rolled out to every stage; healthy through the watch window")
    elif p.outcome == "stopped":
        out.append(f"- **Outcome**: stopped, waiting for a person: {p.reason}")
    else:
        out.append("- **Outcome**: under way")
    if p.readings:
        top, rows = bars(p)
        out += ["", f"Health readings (0 … {top:.3g}, │ marks the threshold):", "", "```text"]
        out += [
            f"{r.when}  {r.value:8.3g}  {r.bar}{'  ← breach' if r.breach else ''}" for r in rows
        ]
        out.append("```")
    return [*out, ""]


def _status(data: dict[str, Any] | None) -> str:
    if not data:
        return ""
    status = data.get("status") or ("passed" if data.get("passed") else "failed")
    return status + (" (cached)" if data.get("cached") else "")


def _outcome(by_type: dict[str, list[Event]]) -> str:
    for kind, text in (
        (EventType.DELIVERY_MERGED, "Merged into {target} as `{commit}`."),
        (EventType.DELIVERY_STAGED, "Merged into the staging branch {target} as `{commit}`."),
        (EventType.REVIEW_REQUESTED, "Branch `{branch}` waits for review."),
        (EventType.RUN_HALTED, "Halted: {reason}. Nothing was published."),
        (EventType.RUN_FAILED, "Failed: {error}. The repository was not changed."),
        (EventType.RUN_NOOP, "Nothing to do: {reason}."),
    ):
        found = by_type.get(kind.value)
        if found:
            return text.format_map(_Missing(found[-1].data))
    return ""


class _Missing(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"


def _detail(event: Event) -> str:
    d = event.data
    if event.type.startswith(("rollout.", "agent.")):
        line = (describe_rollout if event.type.startswith("rollout.") else agent_line)(
            event.type, d
        )
        return Text.from_markup(line.strip()).plain.replace("|", "\\|")[:160]
    for key in ("summary", "message", "node", "reason", "error", "action", "branch", "note"):
        if d.get(key):
            return str(d[key]).replace("|", "\\|").replace("\n", " ")[:160]
    return ""
