"""Built-in policy presets, and loading one with a repository's ``[policy]`` overrides."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from shipyard.errors import ConfigError
from shipyard.model import Action, ChangeType

from .config import (
    LimitRules,
    PathsRules,
    PolicyConfig,
    PostMergeRules,
    QualityRules,
    RoutingRules,
)

_SEED_ROUTES = {
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

_SEED_PATHS = PathsRules(
    forbidden=(
        "src/auth/**",
        "src/payments/**",
        "src/database/migrations/**",
        "src/security/**",
        ".env*",
        "secrets/**",
        "keys/**",
    ),
    review=("src/api/**", "src/models/**", "config/production*", "infrastructure/**"),
    automerge_allowlist=(
        "requirements*.txt",
        "pyproject.toml",
        "package.json",
        "package-lock.json",
        "Pipfile",
        "tests/**",
        "docs/**",
        ".github/workflows/**",
        "*.md",
    ),
)

SEED = PolicyConfig(
    name="seed",
    quality=QualityRules(
        min_pass_rate=0.95,
        max_static_errors=0,
        min_coverage_delta=-2.0,
        min_coverage_for_merge=85.0,
    ),
    routing=RoutingRules(types=_SEED_ROUTES, merge_max_files=10, default=Action.REVIEW),
    paths=_SEED_PATHS,
    limits=LimitRules(review_max_files=15, review_max_lines=500),
    staging_branch="staging",
    post_merge=PostMergeRules(rollback_error_rate_points=1.0),
)
"""The seed's rules exactly (DESIGN.md, "Policy: the seed preset")."""

STRICT = SEED.model_copy(
    update={
        "name": "strict",
        # Nothing lands without a person: routes that would merge or stage ask for review instead.
        "routing": RoutingRules(
            types={
                t: Action.REVIEW if a in (Action.MERGE, Action.STAGING_ONLY) else a
                for t, a in _SEED_ROUTES.items()
            },
            merge_max_files=10,
            default=Action.REVIEW,
        ),
        "quality": QualityRules(
            min_pass_rate=1.0,
            max_static_errors=0,
            min_coverage_delta=0.0,
            min_coverage_for_merge=90.0,
            min_diff_coverage=80.0,
            flaky_action=Action.HALT,
        ),
    }
)
"""The seed's guardrails, all tests passing, no coverage drop, tests running 80 % of the added lines,
no flaky tests, and a person approving each change."""

PRESETS: Mapping[str, PolicyConfig] = MappingProxyType({"seed": SEED, "strict": STRICT})

_ADDITIVE = {
    "extra_forbidden": "forbidden",
    "extra_review": "review",
    "extra_automerge_allowlist": "automerge_allowlist",
}


def load_policy(
    preset: str = "seed",
    overrides: Mapping[str, Any] | None = None,
    *,
    source: str = "shipyard.toml",
    base_dir: Path | None = None,
) -> PolicyConfig:
    """A preset with a repository's overrides merged in, validated.

    ``preset`` is a built-in name or the path of a preset file (``.toml``, relative to ``base_dir``,
    usually the repository). ``overrides`` is the ``[policy]`` table without ``preset``. Tables
    merge key by key, any other value (lists included) replaces the preset's;
    ``extra_forbidden``, ``extra_review`` and ``extra_automerge_allowlist`` (in ``[policy]`` or
    ``[policy.paths]``) add patterns to the preset's lists instead. ``source`` names the file in
    error messages.
    """
    prefix = "tool.shipyard.policy." if source.endswith("pyproject.toml") else "policy."
    base = (
        load_preset_file(preset, base_dir=base_dir, source=source, prefix=prefix)
        if preset.endswith(".toml")
        else PRESETS.get(preset)
    )
    if base is None:
        raise ConfigError(
            f"{source}: {prefix}preset: unknown preset {preset!r} — use one of: "
            f"{', '.join(sorted(PRESETS))}, or the path of a preset file ending in .toml"
        )
    table = dict(overrides or {})
    if table.pop("preset", preset) != preset:
        raise ConfigError(
            f"{source}: {prefix}preset: given twice with different values — keep one preset"
        )
    data = _merge(base.model_dump(mode="json"), table)
    _add_extra_patterns(data, source=source, prefix=prefix)
    try:
        return PolicyConfig.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err, source=source, prefix=prefix) for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from exc


def load_preset_file(
    path: str, *, base_dir: Path | None, source: str = "shipyard.toml", prefix: str = "policy."
) -> PolicyConfig:
    """A preset written by a user: a TOML file of policy tables, ``extends`` naming its base.

    The file holds what a ``[policy]`` table would (``quality``, ``routing``, ``paths``,
    ``limits``, ``staging_branch``, ``extra_*``), plus ``extends = "seed"`` or ``"strict"`` (the
    default is ``seed``) and an optional ``name`` (the file's stem otherwise).
    """
    file = Path(path) if base_dir is None else (base_dir / path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: {prefix}preset: no preset file {file}; create it or name a built-in preset "
            f"({', '.join(sorted(PRESETS))})"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"{file}: cannot be read as a TOML preset ({exc}); fix the file"
        ) from None
    extends = data.pop("extends", "seed")
    if not isinstance(extends, str) or extends not in PRESETS:
        raise ConfigError(
            f"{file}: extends: {extends!r} is not a built-in preset — use one of: "
            f"{', '.join(sorted(PRESETS))}"
        )
    data.setdefault("name", file.stem)
    return load_policy(extends, data, source=str(file))


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def _add_extra_patterns(data: dict[str, Any], *, source: str, prefix: str) -> None:
    paths = data.get("paths")
    if not isinstance(paths, dict):
        return  # a wrong type here is reported by validation, naming the field
    for key, target in _ADDITIVE.items():
        for table, where in ((data, prefix), (paths, f"{prefix}paths.")):
            extra = table.pop(key, None)
            if extra is None:
                continue
            if not isinstance(extra, list) or not all(isinstance(p, str) for p in extra):
                raise ConfigError(
                    f"{source}: {where}{key}: should be a list of patterns — "
                    'write it as a list of strings, for example ["src/billing/**"]'
                )
            current = paths.get(target, [])
            paths[target] = [*current, *extra] if isinstance(current, list) else current


def _describe(err: ErrorDetails, *, source: str, prefix: str) -> str:
    """``file: dotted.field: pydantic's message — how to fix it``."""
    loc = err["loc"]
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
        elif part != "[key]":
            parts.append(str(part))
    hint = _hint(err, prefix=prefix)
    return f"{source}: {prefix}{'.'.join(parts)}: {err['msg']}" + (f" — {hint}" if hint else "")


def _hint(err: ErrorDetails, *, prefix: str) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        owner = _model_at(loc[:-1])
        valid = sorted(owner.model_fields) if owner else []
        if owner is PolicyConfig or owner is PathsRules:
            valid += list(_ADDITIVE)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        return f"{guess}remove it or use one of: {', '.join(sorted(valid))}"
    if "[key]" in loc:
        return 'use a change type as the key, for example feature = "REVIEW"'
    if kind == "enum":
        return "use one of MERGE, STAGING_ONLY, REVIEW, HALT"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return _range_hint(_field_at(loc))
    if kind in {"int_parsing", "int_from_float", "int_type"}:
        return "use a whole number"
    if kind in {"float_parsing", "float_type"}:
        return "use a number"
    if kind in {"tuple_type", "list_type"}:
        return 'use a list of patterns, for example ["src/billing/**"]'
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        return f"use a table, for example [{prefix}{'.'.join(str(p) for p in loc)}]"
    if kind == "value_error":
        return "patterns follow .gitignore rules; fix or remove this one"
    if kind in {"string_type", "string_too_short"}:
        return "use a non-empty quoted string"
    return ""


def _range_hint(info: FieldInfo | None) -> str:
    if info is None:
        return ""
    low = high = None
    above = False  # an exclusive lower bound (gt) reads differently from an inclusive one
    for item in info.metadata:
        if getattr(item, "gt", None) is not None:
            low, above = item.gt, True
        low = getattr(item, "ge", low)
        high = getattr(item, "le", getattr(item, "lt", high))
    noun = "a whole number" if info.annotation is int else "a number"
    if above:
        return f"use {noun} above {low:g}" + (f" and at most {high:g}" if high is not None else "")
    if low is not None and high is not None:
        return f"use {noun} between {low:g} and {high:g}"
    if low is not None:
        return f"use {noun} of at least {low:g}"
    return f"use {noun} of at most {high:g}" if high is not None else ""


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The rules model a location inside the policy table points into, if it names one."""
    model: type[BaseModel] = PolicyConfig
    for part in loc:
        info = model.model_fields.get(str(part))
        nested = info.annotation if info else None
        if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
            return None
        model = nested
    return model


def _field_at(loc: tuple[int | str, ...]) -> FieldInfo | None:
    owner = _model_at(loc[:-1])
    return owner.model_fields.get(str(loc[-1])) if owner and loc else None
