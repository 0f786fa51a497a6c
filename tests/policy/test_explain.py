"""Rendering reasons for people, and the package's public surface."""

from __future__ import annotations

import shipyard.policy
from shipyard.policy import decide, load_policy, render_reasons

from .builders import change


def test_one_line_per_reason_with_action_message_and_rule() -> None:
    decision = decide(change("src/auth/login.py", "src/api/x.py"), load_policy())
    lines = render_reasons(decision)
    assert len(lines) == len(decision.reasons)
    assert lines[0] == (
        "HALT    src/auth/login.py matches forbidden pattern src/auth/**  [paths.forbidden]"
    )
    for line, reason in zip(lines, decision.reasons, strict=True):
        assert line.startswith(reason.action.value)
        assert reason.message in line
        assert line.endswith(f"[{reason.rule}]")


def test_public_surface() -> None:
    assert sorted(shipyard.policy.__all__) == [
        "PRESETS",
        "PathRules",
        "PolicyConfig",
        "decide",
        "load_policy",
        "render_reasons",
    ]
    for name in shipyard.policy.__all__:
        assert getattr(shipyard.policy, name) is not None
