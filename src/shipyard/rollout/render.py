"""Rollouts in words and pictures: each event in a line, health readings as bars against the threshold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shipyard.events import EventType
from shipyard.rollout.plan import Progress


@dataclass(frozen=True)
class Bar:
    when: str
    value: float
    bar: str
    breach: bool


def bars(p: Progress, *, width: int = 40) -> tuple[float, list[Bar]]:
    """The scale's top and one bar per reading, ``│`` marking the threshold."""
    values = [v for _, v in p.readings]
    top = max([*values, p.threshold or 0.0, 1e-9])
    mark = None if p.threshold is None else min(round(p.threshold / top * width), width)
    out = []
    for at, value in p.readings:
        filled = round(value / top * width)
        cells = ["█" if i < filled else " " for i in range(width + 1)]
        if mark is not None:
            cells[mark] = "│"
        breach = p.threshold is not None and value > p.threshold
        out.append(Bar(when=when(at), value=value, bar="".join(cells).rstrip(), breach=breach))
    return top, out


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def describe_rollout(type_: str, d: dict[str, Any]) -> str:
    """A rollout event in a few words, for the live view and the timeline."""
    if type_ == EventType.ROLLOUT_BASELINE:
        return f"baseline {d['value']:.3g} from {d.get('source', '')}"
    if type_ == EventType.ROLLOUT_STAGE:
        mark = "[green]✓[/]" if d.get("ok") else "[red]✗[/]"
        return f"{mark} stage {d['stage']} ({d['percent']:g} %): {d.get('detail', '')}"
    if type_ == EventType.ROLLOUT_CHECK:
        mark = "[red]breach[/]" if d.get("breach") else "[green]healthy[/]"
        threshold = d.get("threshold")
        limit = f" (threshold {threshold:.3g})" if isinstance(threshold, int | float) else ""
        return f"health {d['value']:.3g}{limit} at {d.get('percent', 0):g} %: {mark}"
    if type_ == EventType.ROLLOUT_BREACHED:
        return f"[bold red]breach[/]: {d.get('reason', '')}"
    if type_ == EventType.ROLLOUT_REVERTED:
        return (
            f"[bold red]reverted[/] as {str(d.get('revert_commit', ''))[:12]} "
            f"{d.get('seconds_to_revert', 0):.1f} s after the breach; {d.get('rollback', '')}"
        )
    if type_ == EventType.ROLLOUT_COMPLETED:
        return f"[green]rolled out[/]: {d.get('stages')} stage(s), {d.get('checks')} reading(s)"
    if type_ == EventType.ROLLOUT_STOPPED:
        return f"[yellow]rollout stopped[/]: {d.get('reason', '')}"
    if type_ == EventType.ROLLOUT_RESUMED:
        return f"resumed by {d.get('by', '')}"
    if type_ == EventType.LOG:
        return str(d.get("message", ""))
    if type_ == EventType.ROLLOUT_STARTED:
        stages = ", ".join(f"{s:g} %" for s in d.get("config", {}).get("stages", []))
        return f"rollout of {str(d.get('commit', ''))[:12]} on {d.get('target')}: stages {stages}"
    return ""
