"""Update rules: validation that names file, field and fix, and the pure resolution per package."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from shipyard.config import load_config
from shipyard.deps.rules import (
    DepsConfig,
    UpdateType,
    due,
    group_for,
    matches,
    resolve,
    update_kind,
)
from shipyard.errors import ConfigError


def config(**data: object) -> DepsConfig:
    return DepsConfig.model_validate(data)


def test_defaults_update_everything_at_once_without_cooldown_or_groups() -> None:
    rule = resolve(DepsConfig(), "Django")
    assert not rule.ignore
    assert rule.update_types == {"patch", "minor", "major"}
    assert rule.cooldown_days == {"patch": 0, "minor": 0, "major": 0}
    assert rule.range_strategy == "auto"
    assert rule.group is None
    assert rule.schedule is None
    assert not rule.prereleases
    assert DepsConfig().security
    assert DepsConfig().max_open_runs == 10


def test_globs_match_canonical_names() -> None:
    assert matches("Zope.Interface", ["zope-interface"])
    assert matches("types-requests", ["types-*"])
    assert not matches("requests", ["types-*"])
    assert matches("Django_Filter", ["django-*"])


def test_later_package_rules_override_earlier_ones_field_by_field() -> None:
    deps = config(
        update_types=["patch", "minor"],
        min_release_age_days=2,
        packages=[
            {"match": ["django*"], "allowed_versions": "<5", "cooldown": {"major": 30}},
            {"match": ["django"], "update_types": ["patch"], "range_strategy": "pin"},
        ],
    )
    django = resolve(deps, "Django")
    assert django.update_types == {"patch"}
    assert django.allowed_versions is not None
    assert not django.allowed_versions.contains("5.0")
    assert django.cooldown_days == {"patch": 2, "minor": 2, "major": 30}
    assert django.range_strategy == "pin"
    other = resolve(deps, "django-filter")
    assert other.update_types == {"patch", "minor"}
    assert other.range_strategy == "auto"
    assert resolve(deps, "flask").allowed_versions is None


def test_cooldown_per_update_type_falls_back_to_days_then_the_global_age() -> None:
    deps = config(min_release_age_days=1, cooldown={"days": 3, "major": 14})
    assert resolve(deps, "x").cooldown_days == {"patch": 3, "minor": 3, "major": 14}
    deps = config(min_release_age_days=1, cooldown={"minor": 5})
    assert resolve(deps, "x").cooldown_days == {"patch": 1, "minor": 5, "major": 1}


def test_ignore_list_and_allowed_versions_shorthand() -> None:
    deps = config(ignore=["boto*"], allowed_versions={"sqlalchemy": "<2"})
    assert resolve(deps, "botocore").ignore
    spec = resolve(deps, "SQLAlchemy").allowed_versions
    assert spec is not None
    assert spec.contains("1.4.50")
    assert not spec.contains("2.0.0")
    # a package rule may take a package back out of the ignore list
    deps = config(ignore=["boto*"], packages=[{"match": ["boto3"], "ignore": False}])
    assert not resolve(deps, "boto3").ignore
    assert resolve(deps, "botocore").ignore


def test_groups_take_updates_of_their_types_and_patterns_first_match_wins() -> None:
    deps = config(
        groups=[
            {"name": "pytest", "match": ["pytest*"]},
            {"name": "non-major", "update_types": ["minor", "patch"]},
        ]
    )
    assert group_for(deps, "pytest-cov", "major", resolve(deps, "pytest-cov")) == "pytest"
    assert group_for(deps, "flask", "minor", resolve(deps, "flask")) == "non-major"
    assert group_for(deps, "flask", "major", resolve(deps, "flask")) is None


def test_a_package_rule_puts_packages_in_a_named_group() -> None:
    deps = config(
        groups=[{"name": "web", "match": ["nothing-matches"]}],
        packages=[{"match": ["flask", "jinja2"], "group": "web"}],
    )
    assert group_for(deps, "jinja2", "major", resolve(deps, "jinja2")) == "web"
    assert group_for(deps, "click", "major", resolve(deps, "click")) is None


def test_schedule_allows_one_run_per_period() -> None:
    monday = datetime(2026, 11, 30, 9, tzinfo=UTC)  # a Monday
    weekly = config(schedule="weekly").schedule
    assert due(weekly, monday, None)
    assert due(weekly, monday, datetime(2026, 11, 28, tzinfo=UTC))  # before Sunday midnight
    assert not due(weekly, monday, datetime(2026, 11, 30, 1, tzinfo=UTC))
    assert due(None, monday, monday)
    assert config(schedule="0 6 * * 1").schedule == "0 6 * * 1"


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        ('[deps]\nschedule = "every tuesday"\n', "deps.schedule", "cron expression"),
        ('[deps]\nlock_maintenance = "sometimes"\n', "deps.lock_maintenance", "weekly"),
        ('[deps]\nallowed_versions = {django = "five"}\n', "deps.allowed_versions", "specifier"),
        ('[deps]\nupdate_types = ["huge"]\n', "deps.update_types", "patch"),
        ('[deps]\nrange_strategy = "loose"\n', "deps.range_strategy", "widen"),
        ("[deps]\ncooldown = {major = -1}\n", "deps.cooldown.major", "0"),
        ('[[deps.packages]]\nmatch = ["x"]\nallowed_versions = "~>1"\n', "deps.packages.0", "<5"),
        ('[[deps.packages]]\nmatch = ["x"]\ngroup = "web"\n', "deps", "[[deps.groups]]"),
        ('[[deps.groups]]\nname = "a b"\n', "deps.groups.0.name", "pattern"),
        (
            '[[deps.packages]]\nmatch = ["x"]\nignored = true\n',
            "deps.packages.0.ignored",
            "spelling",
        ),
    ],
)
def test_invalid_rules_name_file_field_and_fix(
    tmp_path: Path, text: str, field: str, hint: str
) -> None:
    (tmp_path / "shipyard.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    message = str(caught.value)
    assert "shipyard.toml" in message, message
    assert field in message, message
    assert hint in message, message


def test_rules_load_from_toml(tmp_path: Path) -> None:
    (tmp_path / "shipyard.toml").write_text(
        "[deps]\nfiles = ['requirements.txt', 'pyproject.toml']\nlock_maintenance = 'weekly'\n"
        "[deps.cooldown]\nmajor = 14\n"
        "[[deps.groups]]\nname = 'non-major'\nupdate_types = ['minor', 'patch']\n"
        "[[deps.packages]]\nmatch = ['django']\nallowed_versions = '<5'\n"
    )
    deps = load_config(tmp_path).config.deps
    assert deps.lock_maintenance == "@weekly"
    assert resolve(deps, "django").cooldown("major") == 14


names = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4})?", fullmatch=True)
kinds = st.sampled_from(["patch", "minor", "major"])
rules = st.fixed_dictionaries(
    {"match": st.lists(st.one_of(names, names.map(lambda n: n[:2] + "*")), min_size=1)},
    optional={
        "ignore": st.booleans(),
        "update_types": st.lists(kinds, unique=True),
        "min_release_age_days": st.integers(0, 60),
        "cooldown": st.fixed_dictionaries({}, optional={"major": st.integers(0, 60)}),
        "range_strategy": st.sampled_from(["pin", "bump", "widen", "auto"]),
    },
)


@given(name=names, packages=st.lists(rules, max_size=4))
def test_resolution_properties(name: str, packages: list[dict[str, object]]) -> None:
    deps = config(packages=packages)
    rule = resolve(deps, name)
    # the same input always resolves the same way (pure)
    assert resolve(deps, name) == rule
    # rules that do not match change nothing
    matching = [p for p in packages if matches(name, p["match"])]  # type: ignore[arg-type]
    assert resolve(config(packages=matching), name) == rule
    if not matching:
        assert rule == resolve(DepsConfig(), name)
    # the last matching rule that sets a field decides it
    for key, attr in (("ignore", "ignore"), ("range_strategy", "range_strategy")):
        setting = [p[key] for p in matching if key in p]
        if setting:
            assert getattr(rule, attr) == setting[-1]
    assert all(days >= 0 for days in rule.cooldown_days.values())


@given(st.lists(st.sampled_from(["1.0", "1.2.3", "2.0", "0.9"]), min_size=1))
def test_versions_outside_allowed_versions_are_never_allowed(versions: list[str]) -> None:
    rule = resolve(config(allowed_versions={"*": "<2"}), "anything")
    assert rule.allowed_versions is not None
    for v in versions:
        assert rule.allowed_versions.contains(Version(v)) == (Version(v) < Version("2"))


@pytest.mark.parametrize(
    ("current", "new", "kind"),
    [
        ("1.0.0", "1.0.1", "patch"),
        ("1.0", "1.0.0.1", "patch"),
        ("1.0.0", "1.0.0.post1", "patch"),
        ("1.0.9", "1.1.0", "minor"),
        ("1.4", "1.10", "minor"),
        ("1.4.0", "2.0.0", "major"),
        ("2024.1", "2025.1", "major"),
        ("0.3.0", "0.3.1", "patch"),
        ("0.3.0", "0.4.0", "major"),
        ("1.0", "1!1.0", "major"),
    ],
)
def test_update_kind_compares_release_segments(current: str, new: str, kind: UpdateType) -> None:
    assert update_kind(Version(current), Version(new)) == kind
