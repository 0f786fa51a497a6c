"""The built-in presets, and loading them with a repository's overrides."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.errors import ConfigError
from shipyard.model import Action, ChangeType
from shipyard.policy import PRESETS, load_policy


def test_seed_is_the_design_documents_policy() -> None:
    seed = PRESETS["seed"]
    assert seed.name == "seed"
    assert seed.quality.model_dump() == {
        "min_pass_rate": 0.95,
        "max_static_errors": 0,
        "min_coverage_delta": -2.0,
        "min_coverage_for_merge": 85.0,
        # Beyond the seed's numbers: the gates it describes halt on what they find.
        "max_integrity_findings": 0,
        "halt_on_performance_regression": True,
        "halt_on_dependency_conflict": True,
        "min_diff_coverage": None,
        "flaky_action": Action.REVIEW,
    }
    assert seed.routing.types == {
        ChangeType.DEPENDENCY_UPDATE: Action.MERGE,
        ChangeType.SECURITY_PATCH: Action.MERGE,
        ChangeType.FORMATTING: Action.MERGE,
        ChangeType.DOCUMENTATION: Action.MERGE,
        ChangeType.FEATURE: Action.REVIEW,
        ChangeType.REFACTOR: Action.REVIEW,
        ChangeType.API_CHANGE: Action.REVIEW,
        ChangeType.INFRASTRUCTURE: Action.STAGING_ONLY,
        ChangeType.DATABASE_MIGRATION: Action.STAGING_ONLY,
        ChangeType.AUTH_CHANGE: Action.STAGING_ONLY,
    }
    assert seed.routing.default is Action.REVIEW
    assert seed.routing.merge_max_files == 10
    assert seed.paths.forbidden == (
        "src/auth/**",
        "src/payments/**",
        "src/database/migrations/**",
        "src/security/**",
        ".env*",
        "secrets/**",
        "keys/**",
    )
    assert seed.paths.review == (
        "src/api/**",
        "src/models/**",
        "config/production*",
        "infrastructure/**",
    )
    assert seed.paths.automerge_allowlist == (
        "requirements*.txt",
        "pyproject.toml",
        "package.json",
        "package-lock.json",
        "Pipfile",
        "tests/**",
        "docs/**",
        ".github/workflows/**",
        "*.md",
    )
    assert (seed.limits.review_max_files, seed.limits.review_max_lines) == (15, 500)
    assert seed.staging_branch == "staging"
    assert seed.post_merge.rollback_error_rate_points == 1.0


def test_strict_never_routes_to_merge_or_staging_and_keeps_the_guardrails() -> None:
    seed, strict = PRESETS["seed"], PRESETS["strict"]
    assert strict.name == "strict"
    routes = {*strict.routing.types.values(), strict.routing.default}
    assert routes.isdisjoint({Action.MERGE, Action.STAGING_ONLY})
    assert strict.paths == seed.paths
    assert strict.limits == seed.limits
    assert strict.quality.min_pass_rate > seed.quality.min_pass_rate
    assert strict.quality.min_coverage_delta > seed.quality.min_coverage_delta
    assert strict.quality.min_coverage_for_merge > seed.quality.min_coverage_for_merge
    assert strict.quality.max_static_errors <= seed.quality.max_static_errors


def test_loading_a_preset_without_overrides_returns_it() -> None:
    assert load_policy() == PRESETS["seed"]
    assert load_policy("strict", {}) == PRESETS["strict"]


def test_tables_merge_and_lists_replace() -> None:
    policy = load_policy(
        "seed",
        {
            "quality": {"min_pass_rate": 0.99},
            "routing": {"types": {"feature": "merge"}},
            "paths": {"review": ["src/core/**"]},
            "staging_branch": "pre-prod",
        },
    )
    assert policy.quality.min_pass_rate == 0.99
    assert policy.quality.min_coverage_for_merge == 85.0  # untouched sibling kept
    assert policy.routing.types[ChangeType.FEATURE] is Action.MERGE
    assert policy.routing.types[ChangeType.REFACTOR] is Action.REVIEW
    assert policy.paths.review == ("src/core/**",)
    assert policy.paths.forbidden == PRESETS["seed"].paths.forbidden
    assert policy.staging_branch == "pre-prod"
    assert policy.name == "seed"


def test_extra_lists_add_to_the_preset_in_either_table() -> None:
    policy = load_policy(
        "seed",
        {
            "extra_forbidden": ["vendor/**"],
            "paths": {"extra_forbidden": ["*.pem"], "extra_review": ["src/core/**"]},
            "extra_automerge_allowlist": ["CHANGELOG"],
        },
    )
    seed = PRESETS["seed"].paths
    assert policy.paths.forbidden == (*seed.forbidden, "vendor/**", "*.pem")
    assert policy.paths.review == (*seed.review, "src/core/**")
    assert policy.paths.automerge_allowlist == (*seed.automerge_allowlist, "CHANGELOG")


def test_extra_lists_add_to_a_replaced_list() -> None:
    policy = load_policy("seed", {"paths": {"forbidden": ["a/**"], "extra_forbidden": ["b/**"]}})
    assert policy.paths.forbidden == ("a/**", "b/**")


def test_overrides_do_not_change_the_presets() -> None:
    load_policy("seed", {"routing": {"types": {"feature": "MERGE"}}, "extra_forbidden": ["x/**"]})
    assert PRESETS["seed"].routing.types[ChangeType.FEATURE] is Action.REVIEW
    assert "x/**" not in PRESETS["seed"].paths.forbidden


def test_a_matching_preset_key_in_the_overrides_is_accepted() -> None:
    assert load_policy("strict", {"preset": "strict"}).name == "strict"


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ConfigError) as info:
        load_policy("yolo")
    assert str(info.value) == (
        "shipyard.toml: policy.preset: unknown preset 'yolo' — use one of: seed, strict, "
        "or the path of a preset file ending in .toml"
    )


def test_conflicting_preset_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="given twice"):
        load_policy("seed", {"preset": "strict"})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"quality": {"min_pass_rate": 2}},
            "shipyard.toml: policy.quality.min_pass_rate: Input should be less than or equal to 1"
            " — use a number between 0 and 1",
        ),
        (
            {"quality": {"min_pas_rate": 0.9}},
            "shipyard.toml: policy.quality.min_pas_rate: Extra inputs are not permitted"
            " — did you mean 'min_pass_rate'? remove it or use one of: flaky_action,"
            " halt_on_dependency_conflict, halt_on_performance_regression,"
            " max_integrity_findings, max_static_errors, min_coverage_delta,"
            " min_coverage_for_merge, min_diff_coverage, min_pass_rate",
        ),
        (
            {"limits": {"review_max_files": -1}},
            "shipyard.toml: policy.limits.review_max_files: Input should be greater than or equal"
            " to 0 — use a whole number of at least 0",
        ),
        (
            {"limits": {"review_max_lines": 1.5}},
            "shipyard.toml: policy.limits.review_max_lines: Input should be a valid integer, got a"
            " number with a fractional part — use a whole number",
        ),
        (
            {"quality": 3},
            "shipyard.toml: policy.quality: Input should be a valid dictionary or instance of"
            " QualityRules — use a table, for example [policy.quality]",
        ),
        (
            {"paths": {"review": "src/**"}},
            "shipyard.toml: policy.paths.review: Input should be a valid tuple"
            ' — use a list of patterns, for example ["src/billing/**"]',
        ),
    ],
)
def test_validation_errors_name_file_field_and_fix(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_policy("seed", overrides)
    assert str(info.value) == message


def test_unknown_action_and_change_type_are_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_policy("seed", {"routing": {"types": {"featur": "REVIEW", "refactor": "MERG"}}})
    lines = sorted(str(info.value).splitlines())
    assert len(lines) == 2
    assert lines[0].startswith("shipyard.toml: policy.routing.types.featur: Input should be")
    assert lines[0].endswith('use a change type as the key, for example feature = "REVIEW"')
    assert lines[1].startswith("shipyard.toml: policy.routing.types.refactor: Input should be")
    assert lines[1].endswith("— use one of MERGE, STAGING_ONLY, REVIEW, HALT")


def test_misspelt_extra_list_is_suggested() -> None:
    with pytest.raises(ConfigError, match="did you mean 'extra_forbidden'"):
        load_policy("seed", {"extra_forbiden": ["x/**"]})


@pytest.mark.parametrize("value", ["vendor/**", [1, 2]])
def test_extra_list_must_be_a_list_of_strings(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_policy("seed", {"paths": {"extra_forbidden": value}})
    assert str(info.value).startswith(
        "shipyard.toml: policy.paths.extra_forbidden: should be a list of patterns"
    )


@pytest.mark.parametrize("pattern", ["", "   ", "# comment", "/", "!", "\\"])
def test_patterns_that_match_nothing_or_are_invalid_are_rejected(pattern: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_policy("seed", {"extra_forbidden": [pattern]})
    assert "policy.paths.forbidden" in str(info.value)
    assert repr(pattern) in str(info.value)


def test_errors_in_pyproject_use_its_table_path() -> None:
    with pytest.raises(ConfigError) as info:
        load_policy("seed", {"limits": {"review_max_lines": "many"}}, source="repo/pyproject.toml")
    assert str(info.value).startswith(
        "repo/pyproject.toml: tool.shipyard.policy.limits.review_max_lines:"
    )


def test_exclusive_bounds_are_explained_as_such() -> None:
    with pytest.raises(ConfigError) as info:
        load_policy("seed", {"post_merge": {"rollback_error_rate_points": 0}})
    assert str(info.value).endswith("— use a number above 0 and at most 100")
