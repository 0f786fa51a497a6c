"""Properties of ``decide()`` over generated facts and configurations (DESIGN invariant 5)."""

from __future__ import annotations

import copy
import dataclasses
import sys
import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.model import Action, ChangeFacts, ChangeType, DiffFacts, FileChange
from shipyard.policy import PRESETS, PolicyConfig, decide
from shipyard.policy.decide import MAX_LISTED

SETTINGS = settings(max_examples=200, deadline=None)

SEGMENTS = ["src", "auth", "api", "docs", "tests", "config", "secrets", "lib", "a", "b"]
LEAVES = ["x.py", "README.md", ".env", ".env.prod", "requirements.txt", "main.tf", "id_rsa", "p"]
PATTERNS = [
    "src/auth/**",
    "*.md",
    ".env*",
    "docs/**",
    "tests/**",
    "src/*.py",
    "/README.md",
    "config/",
    "**/main.tf",
    "requirements*.txt",
    "!docs/b/**",
    "a/**",
]
# Patterns with a path each is certain to match, whatever precedes them in the list.
FORBIDDEN_PAIRS = [
    ("src/auth/**", "src/auth/a/x.py"),
    (".env*", "config/.env.prod"),
    ("*.pem", "keys/deploy/k.pem"),
    ("secrets/", "lib/secrets/token"),
    ("/top.key", "top.key"),
]

paths = st.builds(
    lambda dirs, leaf: "/".join([*dirs, leaf]),
    st.lists(st.sampled_from(SEGMENTS), max_size=3),
    st.sampled_from(LEAVES),
)
file_changes = st.builds(
    FileChange,
    path=paths,
    added=st.integers(0, 40),
    deleted=st.integers(0, 40),
    status=st.sampled_from(["A", "M", "D", "R"]),
    old_path=st.none() | paths,
)
unit = st.floats(0.0, 1.0)
percent = st.floats(0.0, 100.0)
# Random measurements and configurations mostly halt, yet the permissive outcomes are the ones a
# bug could wrongly reach. So two draws in three are measurements that pass a seed-like policy, and
# configurations allow every path, keeping MERGE and STAGING_ONLY common.
LIKELY = st.sampled_from([True, True, False])


FINDINGS = st.sampled_from(["f1", "f2", "f3"])


@st.composite
def change_facts(draw: st.DrawFn) -> ChangeFacts:
    passing = draw(LIKELY)
    return ChangeFacts(
        change_type=draw(st.sampled_from(ChangeType)),
        diff=DiffFacts(files=tuple(draw(st.lists(file_changes, min_size=1, max_size=12)))),
        pass_rate=draw(st.floats(0.95, 1.0) if passing else st.none() | unit),
        static_errors=0 if passing else draw(st.integers(0, 3)),
        coverage_percent=draw(st.floats(70.0, 100.0) if passing else st.none() | percent),
        coverage_delta=draw(st.none() | (st.floats(-2.0, 5.0) if passing else st.floats(-10, 10))),
        failing_tests=tuple(draw(st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=3))),
        gates_ran=passing or draw(st.booleans()),
        diff_coverage=draw(st.none() | (st.floats(80.0, 100.0) if passing else percent)),
        integrity_findings=() if passing else tuple(draw(st.lists(FINDINGS, max_size=2))),
        performance_regressions=() if passing else tuple(draw(st.lists(FINDINGS, max_size=1))),
        dependency_conflicts=() if passing else tuple(draw(st.lists(FINDINGS, max_size=1))),
        flaky_tests=() if passing else tuple(draw(st.lists(FINDINGS, max_size=2))),
    )


pattern_lists = st.lists(st.sampled_from(PATTERNS), max_size=4)
permissive = st.sampled_from([Action.MERGE, Action.MERGE, *Action])


@st.composite
def configs(draw: st.DrawFn) -> PolicyConfig:
    """Any valid policy; likely one with seed-like thresholds that lets every path through."""
    lenient = draw(LIKELY)
    quality = {
        "min_pass_rate": 0.95 if lenient else draw(unit),
        "max_static_errors": draw(st.integers(0, 3)),
        "min_coverage_delta": -2.0 if lenient else draw(st.floats(-10.0, 10.0)),
        "min_coverage_for_merge": draw(st.floats(60.0, 100.0) if lenient else percent),
        "max_integrity_findings": 0 if lenient else draw(st.integers(0, 2)),
        "halt_on_performance_regression": lenient or draw(st.booleans()),
        "halt_on_dependency_conflict": lenient or draw(st.booleans()),
        "min_diff_coverage": draw(st.none() | percent),
        "flaky_action": draw(st.sampled_from(Action)),
    }
    routing = {
        "types": draw(st.dictionaries(st.sampled_from(ChangeType), permissive, max_size=6)),
        "merge_max_files": draw(st.integers(5 if lenient else 0, 30)),
        "default": draw(permissive),
    }
    allowlist = ["**"] if lenient else draw(st.just(["**"]) | pattern_lists)
    paths = {
        "forbidden": [] if lenient else draw(pattern_lists),
        "review": [] if lenient else draw(pattern_lists),
        "automerge_allowlist": allowlist,
    }
    limits = {
        "review_max_files": draw(st.integers(5 if lenient else 0, 30)),
        "review_max_lines": draw(st.integers(200 if lenient else 0, 1000)),
    }
    return PolicyConfig.model_validate(
        {
            "name": "generated",
            "quality": quality,
            "routing": routing,
            "paths": paths,
            "limits": limits,
        }
    )


facts_strategy = change_facts()
empty_changes = st.builds(
    ChangeFacts, change_type=st.sampled_from(ChangeType), diff=st.just(DiffFacts())
)
any_config = st.one_of(configs(), st.sampled_from(list(PRESETS.values())))


def severity(facts: ChangeFacts, policy: PolicyConfig) -> int:
    return decide(facts, policy).action.severity


@SETTINGS
@given(
    facts=facts_strategy,
    policy=any_config,
    pair=st.sampled_from(FORBIDDEN_PAIRS),
    data=st.data(),
)
def test_a_forbidden_path_always_halts(
    facts: ChangeFacts, policy: PolicyConfig, pair: tuple[str, str], data: st.DataObject
) -> None:
    pattern, path = pair
    forbidden = list(policy.paths.forbidden)
    # Last, so no earlier "!" pattern can re-include it; gitignore's last match decides.
    forbidden.append(pattern)
    policy = policy.model_copy(
        update={"paths": policy.paths.model_copy(update={"forbidden": tuple(forbidden)})}
    )
    files = list(facts.diff.files)
    files.insert(data.draw(st.integers(0, len(files))), FileChange(path=path, added=1))
    facts = dataclasses.replace(facts, diff=DiffFacts(files=tuple(files)))
    decision = decide(facts, policy)
    assert decision.action is Action.HALT
    forbidden_reasons = [r for r in decision.reasons if r.rule == "paths.forbidden"]
    named = any(r.message.startswith(f"{path} matches") for r in forbidden_reasons)
    # Past MAX_LISTED paths one reason counts the rest instead of naming each.
    counted = (
        len(forbidden_reasons) > MAX_LISTED and "more paths match" in forbidden_reasons[-1].message
    )
    assert named or counted


@st.composite
def worse(draw: st.DrawFn, facts: ChangeFacts) -> ChangeFacts:
    """The same change with one measurement made worse (or lost).

    One step at a time is enough: if no single step makes the action more permissive, no chain of
    steps does either.
    """
    step = draw(
        st.sampled_from(
            ["pass_rate", "static", "delta", "coverage", "gates", "diff_coverage", "lists"]
        )
    )
    rate, delta, cov = facts.pass_rate, facts.coverage_delta, facts.coverage_percent
    changes: dict[str, Any] = {}
    if step == "pass_rate" and rate is not None:
        changes["pass_rate"] = draw(st.none() | st.floats(0.0, rate))
    elif step == "static":
        changes["static_errors"] = facts.static_errors + draw(st.integers(1, 3))
    elif step == "delta" and delta is not None:
        changes["coverage_delta"] = draw(st.floats(-10.0, delta))
    elif step == "coverage" and cov is not None:
        changes["coverage_percent"] = draw(st.none() | st.floats(0.0, cov))
    elif step == "gates":
        changes["gates_ran"] = False
    elif step == "diff_coverage" and facts.diff_coverage is not None:
        changes["diff_coverage"] = draw(st.floats(0.0, facts.diff_coverage))
    elif step == "lists":
        name = draw(
            st.sampled_from(
                [
                    "integrity_findings",
                    "performance_regressions",
                    "dependency_conflicts",
                    "flaky_tests",
                ]
            )
        )
        changes[name] = (*getattr(facts, name), draw(FINDINGS))
    return dataclasses.replace(facts, **changes)


@SETTINGS
@given(facts=facts_strategy, policy=any_config, data=st.data())
def test_worse_quality_is_never_more_permissive(
    facts: ChangeFacts, policy: PolicyConfig, data: st.DataObject
) -> None:
    assert severity(data.draw(worse(facts)), policy) >= severity(facts, policy)


@SETTINGS
@given(
    facts=facts_strategy,
    policy=any_config,
    more=st.lists(file_changes, min_size=1, max_size=10),
)
def test_adding_files_is_never_more_permissive(
    facts: ChangeFacts, policy: PolicyConfig, more: list[FileChange]
) -> None:
    # Starts from a non-empty change: an empty one halts as "nothing to deliver".
    bigger = dataclasses.replace(facts, diff=DiffFacts(files=(*facts.diff.files, *more)))
    assert severity(bigger, policy) >= severity(facts, policy)


@st.composite
def stricter(draw: st.DrawFn, policy: PolicyConfig) -> PolicyConfig:
    """``policy`` tightened in one or more of its parts: higher bars, more conservative routes, more
    guarded paths, a smaller allowlist, lower limits. Only changes that cannot widen anything are
    drawn: patterns are appended without '!' (gitignore's last match decides) and the allowlist
    only loses entries that are not negations. Parts not chosen stay as they were, so a single
    tightening (often the one that matters) is common."""
    q, r, p, lim = policy.quality, policy.routing, policy.paths, policy.limits
    parts = draw(st.sets(st.sampled_from(["quality", "routing", "paths", "limits"]), min_size=1))
    data = policy.model_dump(mode="json")
    data["name"] = f"{policy.name}-stricter"
    if "quality" in parts:
        # Every rule of the section is drawn at least as strict as before: a rule left out would
        # fall back to its default, which may be looser (no diff coverage bar, say).
        data["quality"] = {
            "min_pass_rate": draw(st.floats(q.min_pass_rate, 1.0)),
            "max_static_errors": draw(st.integers(0, q.max_static_errors)),
            "min_coverage_delta": draw(st.floats(q.min_coverage_delta, 100.0)),
            "min_coverage_for_merge": draw(st.floats(q.min_coverage_for_merge, 100.0)),
            "max_integrity_findings": draw(st.integers(0, q.max_integrity_findings)),
            "halt_on_performance_regression": q.halt_on_performance_regression
            or draw(st.booleans()),
            "halt_on_dependency_conflict": q.halt_on_dependency_conflict or draw(st.booleans()),
            "min_diff_coverage": draw(
                st.floats(q.min_diff_coverage, 100.0)
                if q.min_diff_coverage is not None
                else st.none() | st.floats(0.0, 100.0)
            ),
            "flaky_action": draw(
                st.sampled_from([a for a in Action if a.severity >= q.flaky_action.severity])
            ).value,
        }
        assert set(data["quality"]) == set(type(q).model_fields), "draw every quality rule"
    if "routing" in parts:
        data["routing"] = {
            "types": {
                t.value: draw(
                    st.sampled_from([a for a in Action if a.severity >= r.route(t).severity])
                )
                for t in ChangeType
            },
            "merge_max_files": draw(st.integers(0, r.merge_max_files)),
            "default": draw(
                st.sampled_from([a for a in Action if a.severity >= r.default.severity])
            ),
        }
    if "paths" in parts:
        positive = st.lists(
            st.sampled_from([x for x in PATTERNS if not x.startswith("!")]), max_size=3
        )
        data["paths"] = {
            "forbidden": [*p.forbidden, *draw(positive)],
            "review": [*p.review, *draw(positive)],
            "automerge_allowlist": [
                x for x in p.automerge_allowlist if x.startswith("!") or draw(st.booleans())
            ],
        }
    if "limits" in parts:
        data["limits"] = {
            "review_max_files": draw(st.integers(0, lim.review_max_files)),
            "review_max_lines": draw(st.integers(0, lim.review_max_lines)),
        }
    return PolicyConfig.model_validate(data)


@SETTINGS
@given(facts=facts_strategy, policy=any_config, data=st.data())
def test_a_stricter_preset_is_never_more_permissive(
    facts: ChangeFacts, policy: PolicyConfig, data: st.DataObject
) -> None:
    tightened = data.draw(stricter(policy))
    assert severity(facts, tightened) >= severity(facts, policy)


@SETTINGS
@given(facts=facts_strategy)
def test_strict_is_never_more_permissive_than_seed(facts: ChangeFacts) -> None:
    assert severity(facts, PRESETS["strict"]) >= severity(facts, PRESETS["seed"])
    assert decide(facts, PRESETS["strict"]).action is not Action.MERGE


@SETTINGS
@given(facts=facts_strategy | empty_changes, policy=any_config)
def test_decide_is_deterministic_and_explains_its_action(
    facts: ChangeFacts, policy: PolicyConfig
) -> None:
    first = decide(facts, policy)
    assert decide(copy.deepcopy(facts), policy.model_copy(deep=True)) == first
    assert first.reasons
    assert first.action is Action.most_conservative([r.action for r in first.reasons])
    assert first.reasons[0].action is first.action
    assert first.policy == policy.name


_watching = threading.local()


def _refuse_io(event: str, args: tuple[object, ...]) -> None:
    if getattr(_watching, "on", False) and event.split(".")[0] in {
        "open",
        "os",
        "socket",
        "subprocess",
        "shutil",
        "urllib",
        "http",
        "sqlite3",
    }:
        raise AssertionError(f"decide() did I/O: {event} {args!r}")


sys.addaudithook(_refuse_io)  # hooks cannot be removed; it only acts while _watching.on is set


@settings(max_examples=50, deadline=None)
@given(facts=facts_strategy, policy=configs())
def test_decide_does_no_io(facts: ChangeFacts, policy: PolicyConfig) -> None:
    _watching.on = True
    try:
        decide(facts, policy)
    finally:
        _watching.on = False
