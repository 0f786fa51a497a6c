"""Risk assessment: the documented heuristic, and the model path against the replay server through
the real openai client (schema-checked, one retry, then the heuristic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.agent.providers import get_provider
from shipyard.agent.replay import ReplayServer
from shipyard.config import AgentConfig
from shipyard.deps.risk import assess_with_model, fetch_notes, heuristic
from tests.deps.conftest import static_server

FIXTURES = Path(__file__).parent / "fixtures"


def update(kind: str = "patch", target: str = "1.0.1", **extra: Any) -> dict[str, Any]:
    return {"package": "alpha", "current": "1.0.0", "target": target, "update_type": kind,
            "release_age_days": 30.0, "vulnerabilities": [], **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("updates", "level", "proceed", "reason"),
    [
        ([update()], "low", True, "patch updates of settled releases"),
        ([update("minor", "1.1.0")], "medium", True, "minor update"),
        ([update("major", "2.0.0")], "high", False, "major update"),
        ([update("minor", "1.1.0rc1")], "high", False, "pre-release"),
        ([update(target="0.4.1", current="0.4.0")], "medium", True, "0.x"),
        ([update(release_age_days=0.5)], "medium", True, "released 0.5 days ago"),
        ([update(yanked_between=["1.0.2"])], "medium", True, "yanked releases"),
        ([update(), update("major", "3.0")], "high", False, "major update"),
    ],
)
def test_heuristic(updates: list[dict[str, Any]], level: str, proceed: bool, reason: str) -> None:
    found = heuristic(updates)
    assert found.source == "heuristic"
    assert found.risk_level == level
    assert found.proceed is proceed
    assert any(reason in r for r in found.reasons), found.reasons


def provider_for(server: ReplayServer) -> Any:
    return get_provider(AgentConfig(base_url=server.url, max_retries=0), environ={})


def test_lock_maintenance_is_low_risk_and_says_why_without_claiming_patch_updates() -> None:
    assessment = heuristic([])
    assert (assessment.risk_level, assessment.proceed) == ("low", True)
    assert "lock file maintenance" in assessment.reasons[0]
    assert "patch updates" not in assessment.reasons[0]


def test_model_answer_is_validated_and_retried_once() -> None:
    with ReplayServer(FIXTURES / "risk_retry.json") as server:
        found, problems = assess_with_model(
            [update("minor", "1.1.0")], {"alpha": "1.1.0: format() drops the locale argument"},
            provider=provider_for(server), model="replay-model",
        )  # fmt: skip
        assert server.remaining == 0
    assert found.source == "model"
    assert (found.risk_level, found.proceed) == ("high", False)
    assert found.breaking_changes == ("format() drops the locale argument",)
    assert len(problems) == 1
    assert "risk_level" in problems[0]


def test_invalid_twice_falls_back_to_the_heuristic() -> None:
    with ReplayServer(FIXTURES / "risk_invalid_twice.json") as server:
        found, problems = assess_with_model(
            [update("major", "2.0.0")], {}, provider=provider_for(server), model="replay-model"
        )
    assert found.source == "heuristic"
    assert (found.risk_level, found.proceed) == ("high", False)
    assert "model answer unusable: heuristic used" in found.reasons
    assert len(problems) == 2


def test_an_unreachable_model_falls_back_without_failing() -> None:
    provider = get_provider(
        AgentConfig(base_url="http://127.0.0.1:9/v1", max_retries=0), environ={}
    )
    found, problems = assess_with_model([update()], {}, provider=provider, model="m")
    assert found.source == "heuristic"
    assert problems
    assert problems[0].startswith("model call failed")


def test_release_notes_are_read_from_changelog_links_and_cut_to_the_versions() -> None:
    html = (
        b"<html><script>x()</script><h2>2.0.0</h2><p>Breaking: removed format()</p>"
        b"<h2>1.1.0</h2><p>added things</p><h2>1.0.0</h2><p>first</p></html>"
    )
    routes = {"/changes": (200, "text/html", html), "/missing": (404, "text/plain", b"")}
    with static_server(routes) as (base, seen), httpx.Client() as client:
        links = {"Homepage": base + "/home", "Release notes": base + "/missing",
                 "Changelog": base + "/changes"}  # fmt: skip
        text = fetch_notes(links, current="1.0.0", target="1.1.0", get=client.get)
    assert text.startswith("1.1.0")
    assert "added things" in text
    assert "Breaking" not in text
    assert "x()" not in text
    assert [s["path"] for s in seen] == ["/missing", "/changes"]  # never the home page
