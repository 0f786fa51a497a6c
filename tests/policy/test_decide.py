"""Every rule of the seed preset, each threshold just inside and just outside."""

from __future__ import annotations

import json
import math

import pytest

from shipyard.model import Action, ChangeFacts, ChangeType, DiffFacts, FileChange
from shipyard.policy import PRESETS, decide, load_policy

from .builders import change, files

SEED = load_policy("seed")


def rules(facts: ChangeFacts) -> dict[str, list[str]]:
    """Rule id → messages, for the rules that fired."""
    fired: dict[str, list[str]] = {}
    for reason in decide(facts, SEED).reasons:
        fired.setdefault(reason.rule, []).append(reason.message)
    return fired


def test_clean_routine_change_merges_with_one_routing_reason() -> None:
    decision = decide(change("requirements.txt"), SEED)
    assert decision.action is Action.MERGE
    assert [(r.rule, r.action) for r in decision.reasons] == [("routing.type", Action.MERGE)]
    assert decision.reasons[0].message == "change type dependency_update routes to MERGE"
    assert decision.policy == "seed"


# -- quality ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "action"), [(0.95, Action.MERGE), (0.9499, Action.HALT)])
def test_pass_rate_threshold(rate: float, action: Action) -> None:
    decision = decide(change("requirements.txt", pass_rate=rate, failing_tests=("t::a",)), SEED)
    assert decision.action is action
    if action is Action.HALT:
        assert decision.reasons[0].rule == "quality.pass_rate"
        assert decision.reasons[0].message == (
            "pass rate 94.99 % is below the minimum 95 %; failing: t::a"
        )


def test_failing_tests_are_listed_up_to_a_limit() -> None:
    failing = tuple(f"t{i}" for i in range(12))
    [message] = rules(change("requirements.txt", pass_rate=0.0, failing_tests=failing))[
        "quality.pass_rate"
    ]
    assert "t9" in message
    assert "t10" not in message
    assert message.endswith("and 2 more")


@pytest.mark.parametrize(("errors", "action"), [(0, Action.MERGE), (1, Action.HALT)])
def test_static_errors_threshold(errors: int, action: Action) -> None:
    decision = decide(change("requirements.txt", static_errors=errors), SEED)
    assert decision.action is action
    if action is Action.HALT:
        assert decision.reasons[0].rule == "quality.static_errors"
        assert "1 static-analysis errors, more than the 0 allowed" in decision.reasons[0].message


@pytest.mark.parametrize(("delta", "action"), [(-2.0, Action.MERGE), (-2.01, Action.HALT)])
def test_coverage_delta_threshold(delta: float, action: Action) -> None:
    decision = decide(change("requirements.txt", coverage_delta=delta), SEED)
    assert decision.action is action
    if action is Action.HALT:
        assert decision.reasons[0].rule == "quality.coverage_delta"
        assert decision.reasons[0].message == (
            "coverage changed by -2.01 points against the baseline, below the minimum of -2 points"
        )


def test_missing_coverage_delta_is_not_a_drop() -> None:
    assert decide(change("requirements.txt", coverage_delta=None), SEED).action is Action.MERGE


@pytest.mark.parametrize(("coverage", "action"), [(85.0, Action.MERGE), (84.99, Action.REVIEW)])
def test_coverage_below_merge_minimum_blocks_auto_merge(coverage: float, action: Action) -> None:
    decision = decide(change("requirements.txt", coverage_percent=coverage), SEED)
    assert decision.action is action
    if action is Action.REVIEW:
        assert decision.reasons[0].rule == "quality.coverage_below_merge_min"
        assert decision.reasons[0].message == (
            "coverage 84.99 % is below the 85 % required to merge automatically"
        )


@pytest.mark.parametrize("coverage", [None, math.nan])
def test_unmeasured_coverage_blocks_auto_merge(coverage: float | None) -> None:
    decision = decide(change("requirements.txt", coverage_percent=coverage), SEED)
    assert decision.action is Action.REVIEW
    assert decision.reasons[0].rule == "quality.coverage_unmeasured"


def test_low_coverage_blocks_an_automatic_merge_to_staging_too() -> None:
    facts = change(".github/workflows/ci.yml", change_type=ChangeType.INFRASTRUCTURE)
    low = change(
        ".github/workflows/ci.yml", change_type=ChangeType.INFRASTRUCTURE, coverage_percent=10.0
    )
    assert decide(facts, SEED).action is Action.STAGING_ONLY
    assert decide(low, SEED).action is Action.REVIEW
    assert "quality.coverage_below_merge_min" in rules(low)


def test_gates_that_did_not_run_halt_even_with_perfect_numbers() -> None:
    decision = decide(change("requirements.txt", gates_ran=False), SEED)
    assert decision.action is Action.HALT
    assert decision.reasons[0].rule == "quality.unmeasured"
    assert decision.reasons[0].message.startswith("the gates did not run")


@pytest.mark.parametrize("rate", [None, math.nan])
def test_missing_pass_rate_halts(rate: float | None) -> None:
    decision = decide(change("requirements.txt", pass_rate=rate), SEED)
    assert decision.action is Action.HALT
    assert decision.reasons[0].rule == "quality.unmeasured"
    assert "no test pass rate was measured" in decision.reasons[0].message


def test_empty_change_halts_with_nothing_to_deliver() -> None:
    decision = decide(change(), SEED)
    assert decision.action is Action.HALT
    assert [r.rule for r in decision.reasons] == ["change.empty"]
    assert "nothing to deliver" in decision.reasons[0].message


# -- routing ---------------------------------------------------------------------------------

ROUTES = {
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
    ChangeType.BUGFIX: Action.REVIEW,
    ChangeType.TESTS: Action.REVIEW,
    ChangeType.OTHER: Action.REVIEW,
}


def test_every_change_type_has_an_expected_route() -> None:
    assert set(ROUTES) == set(ChangeType)


@pytest.mark.parametrize(("change_type", "action"), ROUTES.items())
def test_routing_by_change_type(change_type: ChangeType, action: Action) -> None:
    decision = decide(change("docs/guide.md", change_type=change_type), SEED)
    assert decision.action is action
    [routing] = [r for r in decision.reasons if r.rule == "routing.type"]
    assert routing.action is action
    listed = change_type in PRESETS["seed"].routing.types
    assert ("not in the routing table" in routing.message) is not listed


@pytest.mark.parametrize(("n", "action"), [(10, Action.MERGE), (11, Action.REVIEW)])
def test_auto_merge_types_merge_only_up_to_ten_files(n: int, action: Action) -> None:
    decision = decide(change(*files(n), change_type=ChangeType.DOCUMENTATION), SEED)
    assert decision.action is action
    if action is Action.REVIEW:
        assert decision.reasons[0].rule == "routing.merge_max_files"
        assert decision.reasons[0].message == (
            "11 files changed; documentation changes merge automatically only up to 10 files"
        )


# -- paths -----------------------------------------------------------------------------------

FORBIDDEN = {
    "src/auth/**": "src/auth/login.py",
    "src/payments/**": "src/payments/stripe/charge.py",
    "src/database/migrations/**": "src/database/migrations/0001_init.py",
    "src/security/**": "src/security/csrf.py",
    ".env*": "deploy/.env.production",
    "secrets/**": "secrets/db.txt",
    "keys/**": "keys/deploy/id_ed25519",
}


@pytest.mark.parametrize(("pattern", "path"), FORBIDDEN.items())
def test_forbidden_paths_halt(pattern: str, path: str) -> None:
    decision = decide(change(path, "README.md"), SEED)
    assert decision.action is Action.HALT
    assert decision.reasons[0].rule == "paths.forbidden"
    assert decision.reasons[0].message == f"{path} matches forbidden pattern {pattern}"


def test_every_seed_forbidden_pattern_is_exercised() -> None:
    assert set(FORBIDDEN) == set(SEED.paths.forbidden)


@pytest.mark.parametrize("path", ["src/authz.py", "lib/src/auth/x.py", "docs/auth/x.md"])
def test_near_misses_are_not_forbidden(path: str) -> None:
    assert "paths.forbidden" not in rules(change(path))


def test_touching_a_forbidden_file_by_rename_or_delete_halts() -> None:
    renamed = FileChange(path="src/login.py", old_path="src/auth/login.py", status="R")
    deleted = FileChange(path="secrets/old.txt", status="D", deleted=3)
    for f in (renamed, deleted):
        facts = ChangeFacts(
            change_type=ChangeType.REFACTOR, diff=DiffFacts(files=(f,)), pass_rate=1.0
        )
        assert decide(facts, SEED).action is Action.HALT


def test_many_forbidden_paths_are_summarised() -> None:
    paths = [f"secrets/s{i}" for i in range(13)]
    messages = rules(change(*paths))["paths.forbidden"]
    assert len(messages) == 11
    assert messages[-1] == "3 more paths match forbidden patterns"


REVIEW = {
    "src/api/**": "src/api/v1/users.py",
    "src/models/**": "src/models/user.py",
    "config/production*": "config/production.yaml",
    "infrastructure/**": "infrastructure/terraform/main.tf",
}


@pytest.mark.parametrize(("pattern", "path"), REVIEW.items())
def test_review_paths_ask_for_review(pattern: str, path: str) -> None:
    decision = decide(change(path), SEED)
    assert decision.action is Action.REVIEW
    assert f"{path} matches review pattern {pattern}" in rules(change(path))["paths.review"]


def test_every_seed_review_pattern_is_exercised() -> None:
    assert set(REVIEW) == set(SEED.paths.review)


ALLOWED = {
    "requirements*.txt": "requirements-dev.txt",
    "pyproject.toml": "pyproject.toml",
    "package.json": "package.json",
    "package-lock.json": "package-lock.json",
    "Pipfile": "Pipfile",
    "tests/**": "tests/unit/test_x.py",
    "docs/**": "docs/api/index.rst",
    ".github/workflows/**": ".github/workflows/ci.yml",
    "*.md": "src/pkg/README.md",
}


@pytest.mark.parametrize("path", ALLOWED.values())
def test_allowlisted_paths_may_merge(path: str) -> None:
    assert decide(change(path), SEED).action is Action.MERGE


def test_every_seed_allowlist_pattern_is_exercised() -> None:
    assert set(ALLOWED) == set(SEED.paths.automerge_allowlist)


def test_a_file_outside_the_allowlist_asks_for_review() -> None:
    decision = decide(change("requirements.txt", "src/app.py"), SEED)
    assert decision.action is Action.REVIEW
    assert decision.reasons[0].rule == "paths.outside_allowlist"
    assert decision.reasons[0].message == "src/app.py is outside the auto-merge allowlist"


# -- limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "action"), [(15, Action.STAGING_ONLY), (16, Action.REVIEW)])
def test_file_limit(n: int, action: Action) -> None:
    paths = [f".github/workflows/w{i}.yml" for i in range(n)]
    decision = decide(change(*paths, change_type=ChangeType.INFRASTRUCTURE), SEED)
    assert decision.action is action
    if action is Action.REVIEW:
        assert decision.reasons[0].rule == "limits.files"
        assert decision.reasons[0].message == (
            "16 files changed, more than the 15 allowed without review"
        )


@pytest.mark.parametrize(("lines", "action"), [(500, Action.MERGE), (501, Action.REVIEW)])
def test_line_limit(lines: int, action: Action) -> None:
    decision = decide(change("requirements.txt", lines_per_file=lines), SEED)
    assert decision.action is action
    if action is Action.REVIEW:
        assert decision.reasons[0].rule == "limits.lines"
        assert decision.reasons[0].message.startswith("501 lines changed (501 added, 0 deleted)")


# -- the decision as a whole -----------------------------------------------------------------


def test_most_conservative_reason_comes_first_and_every_rule_is_reported() -> None:
    facts = change(
        "src/auth/login.py",
        "src/api/users.py",
        *files(20),
        change_type=ChangeType.FEATURE,
        pass_rate=0.5,
        lines_per_file=30,
    )
    decision = decide(facts, SEED)
    assert decision.action is Action.HALT
    severities = [r.action.severity for r in decision.reasons]
    assert severities == sorted(severities, reverse=True)
    assert {r.rule for r in decision.reasons} == {
        "paths.forbidden",
        "quality.pass_rate",
        "paths.review",
        "paths.outside_allowlist",
        "limits.files",
        "limits.lines",
        "routing.type",
    }


def test_inputs_record_the_facts_as_plain_json() -> None:
    facts = change("README.md", "src/x.py", coverage_percent=math.nan, failing_tests=("t",))
    inputs = decide(facts, SEED).inputs
    assert json.loads(json.dumps(inputs, allow_nan=False)) == inputs
    assert inputs["paths"] == ["README.md", "src/x.py"]
    assert inputs["change_type"] == "dependency_update"
    assert inputs["coverage_percent"] is None
    assert inputs["pass_rate"] == 1.0
    assert inputs["failing_tests"] == ["t"]


def test_decision_names_the_policy_it_used() -> None:
    assert decide(change("README.md"), load_policy("strict")).policy == "strict"


def test_routing_a_type_more_conservatively_never_lowers_the_outcome() -> None:
    # Low coverage keeps a dependency update from merging; routing that type to staging instead
    # must not let it land on staging without review.
    low = change("requirements.txt", coverage_percent=80.0)
    routes = SEED.routing.model_copy(
        update={"types": {**SEED.routing.types, ChangeType.DEPENDENCY_UPDATE: Action.STAGING_ONLY}}
    )
    staged = SEED.model_copy(update={"routing": routes})
    assert decide(low, SEED).action is Action.REVIEW
    assert decide(low, staged).action is Action.REVIEW


# -- integrity, performance, dependencies, flakiness, diff coverage ------------------------------


def test_a_weakened_test_halts_and_names_the_finding() -> None:
    finding = "tests/test_a.py:3: integrity deleted-test test_total was deleted"
    decision = decide(change("requirements.txt", integrity_findings=(finding,)), SEED)
    assert decision.action is Action.HALT
    assert decision.reasons[0].rule == "quality.test_integrity"
    assert finding in decision.reasons[0].message


def test_integrity_findings_up_to_the_allowed_number_pass() -> None:
    lenient = load_policy("seed", {"quality": {"max_integrity_findings": 1}})
    assert decide(change("requirements.txt", integrity_findings=("x",)), lenient).action is (
        Action.MERGE
    )
    assert decide(change("requirements.txt", integrity_findings=("x", "y")), lenient).action is (
        Action.HALT
    )


def test_integrity_findings_halt_even_when_the_tests_did_not_run() -> None:
    fired = rules(change("requirements.txt", gates_ran=False, integrity_findings=("x",)))
    assert set(fired) >= {"quality.unmeasured", "quality.test_integrity"}


@pytest.mark.parametrize(
    ("field", "rule"),
    [
        ("performance_regressions", "quality.performance"),
        ("dependency_conflicts", "quality.dependencies"),
    ],
)
def test_regressions_and_conflicts_halt(field: str, rule: str) -> None:
    decision = decide(change("requirements.txt", **{field: ("what went wrong",)}), SEED)
    assert decision.action is Action.HALT
    assert decision.reasons[0].rule == rule
    assert "what went wrong" in decision.reasons[0].message


def test_regressions_and_conflicts_can_be_turned_off() -> None:
    off = load_policy(
        "seed",
        {
            "quality": {
                "halt_on_performance_regression": False,
                "halt_on_dependency_conflict": False,
            }
        },
    )
    facts = change("requirements.txt", performance_regressions=("b",), dependency_conflicts=("c",))
    assert decide(facts, off).action is Action.MERGE


def test_a_flaky_test_asks_for_review_by_default() -> None:
    decision = decide(change("requirements.txt", flaky_tests=("t::flip",)), SEED)
    assert decision.action is Action.REVIEW
    [reason] = [r for r in decision.reasons if r.rule == "quality.flaky"]
    assert "t::flip" in reason.message


@pytest.mark.parametrize(("covered", "action"), [(80.0, Action.MERGE), (79.9, Action.REVIEW)])
def test_diff_coverage_floor_blocks_auto_merge_when_set(covered: float, action: Action) -> None:
    policy = load_policy("seed", {"quality": {"min_diff_coverage": 80}})
    assert decide(change("requirements.txt", diff_coverage=covered), policy).action is action
    # Unset in the seed preset: not checked at all.
    assert decide(change("requirements.txt", diff_coverage=0.0), SEED).action is Action.MERGE
