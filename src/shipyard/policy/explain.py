"""Decisions in words: one line per reason, for the CLI and run reports."""

from __future__ import annotations

from shipyard.model import Decision


def render_reasons(decision: Decision) -> list[str]:
    """``ACTION  message  [rule]`` per reason, in ``decide()``'s order (most conservative first)."""
    width = max((len(r.action.value) for r in decision.reasons), default=0)
    return [f"{r.action.value:<{width}}  {r.message}  [{r.rule}]" for r in decision.reasons]
