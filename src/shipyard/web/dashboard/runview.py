"""What the run page shows, read from a run's events (and its transcript file): pure where it can be.

The timeline, gate table, decision, agent spend, compaction markers and reproducibility record are
all derived from the events; only the transcript and the diff are read from disk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.events import Event, EventType, RunState, fold, in_gate_order
from shipyard.redaction import redact, redact_text

PHASES = ("baseline", "change", "verdict")
MAX_TRANSCRIPT_CHARS = 4000
"""A message longer than this is cut on the page (the transcript file keeps it whole)."""


@dataclass(frozen=True, kw_only=True)
class Step:
    """One node of the timeline: when it started, how long it took and how it ended."""

    node: str
    started: datetime
    seconds: float | None
    outcome: str  # running | finished | failed
    summary: str


@dataclass(frozen=True, kw_only=True)
class GateRow:
    name: str
    cells: dict[str, str]  # phase → passed | failed | skipped | …
    summary: str
    details: list[str]


@dataclass(frozen=True, kw_only=True)
class Spend:
    steps: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    compactions: int = 0


@dataclass(frozen=True, kw_only=True)
class TranscriptEntry:
    kind: str  # message | compaction
    ref: str
    role: str = ""
    name: str = ""
    content: str = ""
    calls: list[str] = field(default_factory=list)
    cut: bool = False
    tokens_before: int = 0
    tokens_after: int = 0


@dataclass(frozen=True, kw_only=True)
class RunView:
    state: RunState
    events: list[Event]
    steps: list[Step]
    gates: list[GateRow]
    spend: Spend | None
    compactions: list[dict[str, Any]]
    reproducibility: dict[str, Any]
    change_type: str | None
    classification: dict[str, Any] | None
    transcript_path: str | None

    @property
    def title(self) -> str:
        return str(self.state.task.get("title") or self.state.task.get("blueprint") or "")


def run_view(events: Sequence[Event]) -> RunView:
    """The run page's model of a run's events."""
    state = fold(events)
    classified = [e.data for e in events if e.type == EventType.CHANGE_CLASSIFIED]
    started = [e.data for e in events if e.type == EventType.AGENT_STARTED]
    return RunView(
        state=state,
        events=list(events),
        steps=timeline(events),
        gates=gate_rows(state),
        spend=agent_spend(events),
        compactions=[e.data for e in events if e.type == EventType.AGENT_COMPACTED],
        reproducibility=reproducibility(events),
        change_type=str(classified[-1].get("change_type")) if classified else None,
        classification=classified[-1] if classified else None,
        transcript_path=str(started[-1]["transcript"])
        if started and started[-1].get("transcript")
        else None,
    )


def timeline(events: Sequence[Event]) -> list[Step]:
    """The nodes in the order they started, each with its duration and outcome."""
    steps: list[Step] = []
    open_: dict[str, tuple[int, datetime]] = {}
    for event in events:
        node = str(event.data.get("node", ""))
        if event.type == EventType.NODE_STARTED:
            open_[node] = (len(steps), event.at)
            steps.append(
                Step(node=node, started=event.at, seconds=None, outcome="running", summary="")
            )
        elif event.type in (EventType.NODE_FINISHED, EventType.NODE_FAILED) and node in open_:
            index, at = open_.pop(node)
            failed = event.type == EventType.NODE_FAILED
            steps[index] = Step(
                node=node,
                started=at,
                seconds=(event.at - at).total_seconds(),
                outcome="failed" if failed else "finished",
                summary=str(event.data.get("error" if failed else "summary") or ""),
            )
    return steps


def gate_rows(state: RunState) -> list[GateRow]:
    """One row per gate: its status at baseline, on the change, and the verdict."""
    names = in_gate_order(name for by_gate in state.gates.values() for name in by_gate)
    rows = []
    for name in names:
        cells = {phase: _status(state.gates.get(phase, {}).get(name)) for phase in PHASES}
        shown = state.gates.get("verdict", {}).get(name) or state.gates.get("change", {}).get(name)
        data = shown or {}
        details = [str(line) for line in data.get("details", [])[:60]]
        rows.append(
            GateRow(name=name, cells=cells, summary=str(data.get("summary", "")), details=details)
        )
    return rows


def _status(data: dict[str, Any] | None) -> str:
    if not data:
        return ""
    if data.get("status"):
        return str(data["status"])
    return "passed" if data.get("passed") else "failed"


def agent_spend(events: Sequence[Event]) -> Spend | None:
    """Tokens and cost the agent spent so far (the latest cumulative figure), or None without one."""
    agent = [e for e in events if e.type.startswith("agent.")]
    if not agent:
        return None
    latest: dict[str, Any] = {}
    input_tokens = output_tokens = 0
    for event in agent:
        if event.data.get("spend"):
            latest = event.data["spend"]
        if event.type == EventType.AGENT_STEP:
            input_tokens += int(event.data.get("input_tokens") or 0)
            output_tokens += int(event.data.get("output_tokens") or 0)
    return Spend(
        steps=int(latest.get("steps") or 0),
        tokens=int(latest.get("tokens") or 0),
        cost_usd=float(latest.get("cost_usd") or 0.0),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        compactions=sum(e.type == EventType.AGENT_COMPACTED for e in agent),
    )


def reproducibility(events: Sequence[Event]) -> dict[str, Any]:
    """Everything the run recorded to rerun it: blueprint, versions, base commit, config hash…"""
    record: dict[str, Any] = {}
    for event in events:
        data = event.data
        if isinstance(data.get("reproducibility"), dict):
            record.update(data["reproducibility"])
        if event.type == EventType.LOG and data.get("base"):
            record.setdefault("base_commit", data["base"])
            record.setdefault("target", data.get("target"))
        if event.type == EventType.AGENT_STARTED:
            for key in ("provider", "model", "tools"):
                if data.get(key) is not None:
                    record.setdefault(f"agent_{key}", data[key])
        if event.type == EventType.CHANGE_COMMITTED:
            record["change_commit"] = data.get("commit")
    return redact(record)  # type: ignore[no-any-return]


def read_transcript(path: Path, *, limit: int = 400) -> list[TranscriptEntry]:
    """The transcript's messages and compaction markers in order (redacted again on the way out).

    A missing or unreadable file gives an empty list; a torn last record is skipped.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    entries: list[TranscriptEntry] = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        record = redact(record)
        if record.get("type") == "message":
            content = str(record.get("content") or "")
            calls = [
                f"{c.get('name')}({c.get('raw_arguments') or json.dumps(c.get('arguments'))})"
                for c in record.get("tool_calls") or []
                if isinstance(c, dict)
            ]
            entries.append(
                TranscriptEntry(
                    kind="message",
                    ref=str(record.get("id", "")),
                    role=str(record.get("role", "")),
                    name=str(record.get("name") or ""),
                    content=content[:MAX_TRANSCRIPT_CHARS],
                    calls=[redact_text(c)[:400] for c in calls],
                    cut=len(content) > MAX_TRANSCRIPT_CHARS,
                )
            )
        elif record.get("type") == "compaction":
            replaced = [str(r) for r in record.get("replaced") or []]
            entries.append(
                TranscriptEntry(
                    kind="compaction",
                    ref=f"{replaced[0]}-{replaced[-1]}" if replaced else "",
                    content=str(record.get("summary") or "")[:MAX_TRANSCRIPT_CHARS],
                    tokens_before=int(record.get("tokens_before") or 0),
                    tokens_after=int(record.get("tokens_after") or 0),
                )
            )
        if len(entries) >= limit:
            break
    return entries
