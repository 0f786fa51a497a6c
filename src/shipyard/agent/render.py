"""Agent events in words: the live spend, each tool call, compaction, and how the agent ended."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from shipyard.events import EventType


def agent_line(type_: str, d: dict[str, Any]) -> str:
    """An agent event in a line: the live spend, each tool call, compaction, the end."""
    spend = d.get("spend") or {}
    total = (
        f"[dim]{spend.get('tokens', 0):,} tokens, ${spend.get('cost_usd', 0):.4f} so far[/]"
        if spend else ""
    )  # fmt: skip
    if type_ == EventType.AGENT_STARTED.value:
        return (
            f"agent {d.get('model')} ({d.get('provider')}), tools: {', '.join(d.get('tools', []))}"
        )
    if type_ == EventType.AGENT_STEP.value:
        calls = ", ".join(d.get("tool_calls", [])) or "no tool call"
        return f"step {d.get('step')}: {calls}  {total}"
    if type_ == EventType.AGENT_TOOL.value:
        mark = "[green]✓[/]" if d.get("ok") else "[red]✗[/]"
        return f"  {mark} {d.get('tool')}: {escape(str(d.get('summary', '')))[:120]}"
    if type_ == EventType.AGENT_COMPACTED.value:
        return (f"compacted {d.get('tokens_before', 0):,} → {d.get('tokens_after', 0):,} tokens "
                f"(originals kept, recallable)")  # fmt: skip
    if type_ == EventType.AGENT_FINISHED.value:
        return f"agent {'finished' if d.get('finished') else 'stopped'}: {d.get('reason')}  {total}"
    return ""
