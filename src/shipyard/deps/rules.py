"""Update rules from ``[deps]`` in shipyard.toml, and the pure resolution of the rule for one package.

``[[deps.packages]]`` entries match canonical package names with shell-style globs (``django``,
``django-*``); later entries override earlier ones field by field, over the ``[deps]`` defaults.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from croniter import croniter
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

UpdateType = Literal["patch", "minor", "major"]
UPDATE_TYPES: tuple[UpdateType, ...] = ("patch", "minor", "major")
RangeStrategy = Literal["auto", "pin", "bump", "widen"]
RiskMode = Literal["heuristic", "model"]

SCHEDULE_ALIASES = {
    "hourly": "@hourly",
    "daily": "@daily",
    "weekly": "@weekly",
    "monthly": "@monthly",
}
"""Words accepted wherever a cron expression is: ``weekly`` is Monday 00:00 UTC… as croniter reads it."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _cron(value: str | None) -> str | None:
    if value is None:
        return None
    expression = SCHEDULE_ALIASES.get(value.strip().lower(), value.strip())
    if not croniter.is_valid(expression):
        raise ValueError(
            f"{value!r} is not a cron expression; use five fields such as '0 6 * * 1' "
            "(Mondays 06:00 UTC) or one of hourly, daily, weekly, monthly"
        )
    return expression


def _specifier(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        SpecifierSet(value)
    except InvalidSpecifier as exc:
        raise ValueError(
            f"{value!r} is not a version specifier ({exc}); write it as in a requirement, "
            "for example '<5' or '>=2.1,!=2.3.0'"
        ) from exc
    return value


class Cooldown(_Rule):
    """Minimum release age in days before an update is proposed, separately per update type
    (Dependabot's ``cooldown``). Unset types use ``days``. Security fixes are never held back."""

    days: int | None = Field(default=None, ge=0, le=3650)
    """Days for every update type without its own value."""
    patch: int | None = Field(default=None, ge=0, le=3650)
    minor: int | None = Field(default=None, ge=0, le=3650)
    major: int | None = Field(default=None, ge=0, le=3650)

    def for_type(self, kind: UpdateType, fallback: int) -> int:
        own: int | None = getattr(self, kind)
        if own is not None:
            return own
        return self.days if self.days is not None else fallback


class PackageRule(_Rule):
    """Settings for the packages whose canonical names match one of ``match``."""

    match: list[str] = Field(min_length=1)
    """Shell-style globs on canonical names (lower case, ``-`` separated): ``django``, ``types-*``."""
    ignore: bool | None = None
    """Never update these packages (not even for security fixes)."""
    allowed_versions: str | None = None
    """A specifier candidate versions must satisfy, e.g. ``<5`` to stay on 4.x."""
    update_types: list[UpdateType] | None = None
    """Which kinds of regular update to propose for these packages."""
    min_release_age_days: int | None = Field(default=None, ge=0, le=3650)
    """Days a release must have been public before it is proposed (all update types)."""
    cooldown: Cooldown | None = None
    """Per-update-type release age, overriding ``min_release_age_days`` type by type."""
    range_strategy: RangeStrategy | None = None
    """How a range (not a pin) changes: see ``[deps] range_strategy``."""
    prereleases: bool | None = None
    """Consider pre-releases (always considered when the current version is one)."""
    group: str | None = None
    """Name of a ``[[deps.groups]]`` these packages' updates join."""
    schedule: str | None = None
    """Cron expression (or hourly/daily/weekly/monthly) limiting when these packages are updated."""

    @field_validator("allowed_versions")
    @classmethod
    def _check_spec(cls, value: str | None) -> str | None:
        return _specifier(value)

    @field_validator("schedule")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        return _cron(value)

    @field_validator("match")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        # Canonical form, so 'Django' and 'zope.interface' match as pip would name them.
        return [canonicalize_name(p) if "*" not in p and "?" not in p else p.lower() for p in value]


class GroupRule(_Rule):
    """Updates that land together in one run (for example every non-major update)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Shown in titles and branch names: letters, digits, ``.``, ``_``, ``-``."""
    match: list[str] = Field(default_factory=lambda: ["*"])
    """Globs on canonical names; every package by default."""
    update_types: list[UpdateType] = Field(default_factory=lambda: list(UPDATE_TYPES))
    """Which kinds of update join the group; others stay separate runs."""

    @field_validator("match")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [p.lower() for p in value]


class DepsConfig(_Rule):
    """The dependency-update and security blueprints (``[deps]``)."""

    files: list[str] | None = None
    """Manifests to keep up to date (requirements files, pip-tools ``.in`` files, pyproject.toml,
    lock files), repo-relative; unset: every one shipyard finds. Files named but absent are skipped."""
    index_url: str | None = None
    """Package index (PEP 691/503 simple API). Overridden by ``--index-url``. Credentials may sit in
    the URL, in ``SHIPYARD_INDEX_USERNAME``/``SHIPYARD_INDEX_PASSWORD`` or in ~/.netrc."""
    json_api_url: str | None = None
    """PyPI-style JSON API (``/pypi/<name>/json``) for links and vulnerabilities; unset: the index
    URL with ``/simple/`` replaced by ``/pypi/``. Set to ``""`` to turn it off."""
    update_types: list[UpdateType] = Field(default_factory=lambda: list(UPDATE_TYPES))
    """Which kinds of regular update to propose."""
    ignore: list[str] = Field(default_factory=list)
    """Packages (globs on canonical names) never updated."""
    allowed_versions: dict[str, str] = Field(default_factory=dict)
    """Shorthand: package glob → specifier, e.g. ``{django = "<5"}``."""
    min_release_age_days: int = Field(default=0, ge=0, le=3650)
    """Days a release must have been public before it is proposed; 0 proposes at once."""
    cooldown: Cooldown = Field(default_factory=Cooldown)
    """Release age per update type, e.g. ``{major = 30, minor = 7, patch = 3}``."""
    range_strategy: RangeStrategy = "auto"
    """For ranges: ``pin`` to ``==new``; ``bump`` the lower bound to the new version; ``widen`` the
    upper bound just enough; ``auto`` widens when the new version is outside, else leaves it."""
    prereleases: bool = False
    """Consider pre-releases (always considered when the current version is one)."""
    schedule: str | None = None
    """Cron expression (or hourly/daily/weekly/monthly): regular updates at most once per period."""
    lock_maintenance: str | None = None
    """Cron expression (or daily/weekly/monthly) for a run that refreshes every transitive pin in
    the lock files; unset: never."""
    max_open_runs: int = Field(default=10, ge=0, le=1000)
    """Regular update runs that may wait for review at once; 0 means no limit."""
    security: bool = True
    """Propose security fixes (to the smallest fixing version) ahead of regular updates."""
    risk_assessment: RiskMode = "heuristic"
    """``model`` asks the ``[agent]`` model to read release notes; ``heuristic`` needs no model."""
    groups: list[GroupRule] = Field(default_factory=list)
    """Named groups of updates, each landing as one run; the first group that matches wins."""
    packages: list[PackageRule] = Field(default_factory=list)
    """Per-package rules, by glob; later rules override earlier ones."""

    @field_validator("schedule", "lock_maintenance")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        return _cron(value)

    @field_validator("allowed_versions")
    @classmethod
    def _specifiers(cls, value: dict[str, str]) -> dict[str, str]:
        for spec in value.values():
            _specifier(spec)
        return value

    @model_validator(mode="after")
    def _groups_known(self) -> DepsConfig:
        names = [g.name for g in self.groups]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"group {duplicated[0]!r} is defined twice; give each group one entry")
        for rule in self.packages:
            if rule.group is not None and rule.group not in names:
                raise ValueError(
                    f"packages rule {rule.match} names group {rule.group!r}, which no "
                    f"[[deps.groups]] defines; add it or use one of: {', '.join(names) or '(none)'}"
                )
        return self


@dataclass(frozen=True)
class Effective:
    """The settings that apply to one package, after every matching rule."""

    ignore: bool
    allowed_versions: SpecifierSet | None
    update_types: frozenset[str]
    cooldown_days: dict[str, int]
    range_strategy: RangeStrategy
    prereleases: bool
    group: str | None
    schedule: str | None

    def cooldown(self, kind: str) -> int:
        return self.cooldown_days.get(kind, 0)


def matches(name: str, patterns: list[str]) -> bool:
    """Whether a canonical name matches any glob (case-insensitive, ``-``/``_``/``.`` alike)."""
    canonical = canonicalize_name(name)
    return any(
        fnmatch.fnmatchcase(canonical, canonicalize_name(p) if _plain(p) else p) for p in patterns
    )


def _plain(pattern: str) -> bool:
    return not any(c in pattern for c in "*?[")


def resolve(config: DepsConfig, name: str) -> Effective:
    """The rule for ``name``: ``[deps]`` defaults, then each matching ``[[deps.packages]]`` in order."""
    ignore = matches(name, config.ignore)
    allowed = [
        spec for pattern, spec in config.allowed_versions.items() if matches(name, [pattern])
    ]
    update_types = set(config.update_types)
    cooldown: dict[str, int] = {
        k: config.cooldown.for_type(k, config.min_release_age_days) for k in UPDATE_TYPES
    }
    strategy, prereleases = config.range_strategy, config.prereleases
    group: str | None = None
    schedule = config.schedule
    for rule in config.packages:
        if not matches(name, rule.match):
            continue
        ignore = rule.ignore if rule.ignore is not None else ignore
        if rule.allowed_versions is not None:
            allowed = [rule.allowed_versions]
        if rule.update_types is not None:
            update_types = set(rule.update_types)
        if rule.min_release_age_days is not None:
            cooldown = dict.fromkeys(UPDATE_TYPES, rule.min_release_age_days)
        if rule.cooldown is not None:
            cooldown = {k: rule.cooldown.for_type(k, cooldown[k]) for k in UPDATE_TYPES}
        strategy = rule.range_strategy or strategy
        prereleases = rule.prereleases if rule.prereleases is not None else prereleases
        group = rule.group or group
        schedule = rule.schedule or schedule
    return Effective(
        ignore=ignore,
        allowed_versions=SpecifierSet(",".join(allowed)) if allowed else None,
        update_types=frozenset(update_types),
        cooldown_days=cooldown,
        range_strategy=strategy,
        prereleases=prereleases,
        group=group,
        schedule=schedule,
    )


def group_for(config: DepsConfig, name: str, kind: str, effective: Effective) -> str | None:
    """The group an update joins: the package rule's group, else the first ``[[deps.groups]]`` whose
    patterns and update types both match; None for a run of its own."""
    for group in config.groups:
        if effective.group is not None and group.name != effective.group:
            continue
        if kind in group.update_types and (
            effective.group is not None or matches(name, group.match)
        ):
            return group.name
    return None


def update_kind(current: Version, new: Version) -> UpdateType:
    """major when the first release segment grows, minor for the second, patch otherwise.

    For 0.x versions the minor segment is treated as major, as semantic versioning does; a change
    of epoch is always major.
    """
    old, cur = (*current.release, 0, 0), (*new.release, 0, 0)
    if current.epoch != new.epoch or cur[0] != old[0] or (old[0] == 0 and cur[1] != old[1]):
        return "major"
    if cur[1] != old[1]:
        return "minor"
    return "patch"


def due(schedule: str | None, now: datetime, last_run: datetime | None) -> bool:
    """Whether a schedule allows a run at ``now``: no schedule always does; otherwise only when a
    scheduled moment passed since ``last_run`` (at most one run per period)."""
    if schedule is None or last_run is None:
        return True
    previous: datetime = croniter(schedule, now).get_prev(datetime)
    return last_run < previous
