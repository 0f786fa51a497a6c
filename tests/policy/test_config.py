"""The policy configuration model: typos are errors, values are frozen, actions read loosely."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shipyard.model import Action, ChangeFacts, ChangeType, DiffFacts, FileChange
from shipyard.policy import PolicyConfig, decide
from shipyard.policy.config import QualityRules, RoutingRules


def test_unknown_keys_are_errors_at_every_level() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        PolicyConfig.model_validate({"qualty": {}})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        PolicyConfig.model_validate({"quality": {"min_passrate": 0.9}})


def test_values_are_frozen() -> None:
    policy = PolicyConfig()
    with pytest.raises(ValidationError, match="frozen"):
        policy.staging_branch = "main"
    with pytest.raises(ValidationError, match="frozen"):
        policy.quality.min_pass_rate = 0.0


def test_actions_may_be_written_in_lower_case() -> None:
    routing = RoutingRules.model_validate({"types": {"feature": "merge"}, "default": "halt"})
    assert routing.route(ChangeType.FEATURE) is Action.MERGE
    assert routing.route(ChangeType.OTHER) is Action.HALT


def test_every_field_has_a_docstring() -> None:
    from shipyard.policy import config

    models = [
        getattr(config, name)
        for name in ("PolicyConfig", "QualityRules", "RoutingRules", "PathsRules", "LimitRules")
    ] + [config.PostMergeRules]
    for model in models:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no docstring"


def test_pass_rate_is_a_fraction() -> None:
    QualityRules(min_pass_rate=1.0)
    with pytest.raises(ValidationError):
        QualityRules(min_pass_rate=95)


def test_bare_config_merges_nothing() -> None:
    facts = ChangeFacts(
        change_type=ChangeType.DOCUMENTATION,
        diff=DiffFacts(files=(FileChange(path="README.md", added=1),)),
        pass_rate=1.0,
        coverage_percent=100.0,
    )
    decision = decide(facts, PolicyConfig())
    assert decision.action is Action.REVIEW
    assert {r.rule for r in decision.reasons} == {"paths.outside_allowlist", "routing.type"}
