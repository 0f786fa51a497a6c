"""Decisions in words: one line per reason, for the CLI and run reports."""

from __future__ import annotations

from typing import Any

from shipyard.model import Decision


def render_reasons(decision: Decision) -> list[str]:
    """``ACTION  message  [rule]`` per reason, in ``decide()``'s order (most conservative first)."""
    width = max((len(r.action.value) for r in decision.reasons), default=0)
    return [f"{r.action.value:<{width}}  {r.message}  [{r.rule}]" for r in decision.reasons]


def decision_data(decision: Decision) -> dict[str, Any]:
    """A decision as plain JSON values: what ``decision.made`` events and ``policy decide`` carry."""
    return {
        "action": decision.action.value,
        "reasons": [
            {"rule": r.rule, "action": r.action.value, "message": r.message}
            for r in decision.reasons
        ],
        "inputs": decision.inputs,
        "policy": decision.policy,
    }
