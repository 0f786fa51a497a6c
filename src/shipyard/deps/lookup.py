"""The host side of planning: read the manifests, ask the index (and its JSON API), then plan.

This is the only part of dependency planning that does I/O; ``planning.plan`` decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from shipyard.deps.index import PackageIndex
from shipyard.deps.jsonapi import JsonApi, gather, json_api_base
from shipyard.deps.manifests import LOCK_KINDS, Dependency, Manifest, discover
from shipyard.deps.planning import History, Plan, Skipped, plan
from shipyard.deps.rules import DepsConfig
from shipyard.events import RunState
from shipyard.model import RunStatus


def manifests(repo: Path, config: DepsConfig) -> list[Manifest]:
    """The configured manifests (all discovered ones when none are named)."""
    if config.files is None:
        return discover(repo)
    present = [name for name in config.files if (repo / name).is_file()]
    return discover(repo, present) if present else []


def dependencies(repo: Path, config: DepsConfig) -> list[Dependency]:
    """Every dependency in the configured manifests (all discovered ones when none are named)."""
    return [dep for manifest in manifests(repo, config) for dep in manifest.dependencies()]


def left_alone(found: Iterable[Manifest]) -> list[Skipped]:
    """The lines no reader could parse, as skipped dependencies naming file, line and why."""
    return [
        Skipped(problem.name, problem.location, f"cannot read requirement {problem.text!r}: "
                f"{problem.reason}")
        for manifest in found
        for problem in manifest.unreadable
    ]  # fmt: skip


def plan_repository(
    repo: Path,
    config: DepsConfig,
    *,
    index_url: str,
    cache_dir: Path | None,
    history: History | None = None,
    now: datetime | None = None,
) -> Plan:
    """Read, look up and plan: the runs worth starting in ``repo`` now."""
    found = manifests(repo, config)
    deps = [dep for manifest in found for dep in manifest.dependencies()]
    with PackageIndex(index_url, cache_dir=cache_dir) as index:
        base = json_api_base(index.url, config.json_api_url)
        packages = gather(deps, index, JsonApi(index, base) if base else None)
    locks = [m.path for m in found if m.kind in LOCK_KINDS or m.compiled_from is not None]
    planned = plan(
        deps, packages, config, now=now or datetime.now(UTC), history=history or History(),
        locks=locks,
    )  # fmt: skip
    unreadable = left_alone(found)
    return replace(planned, skipped=(*unreadable, *planned.skipped)) if unreadable else planned


def history(runs: Iterable[RunState]) -> History:
    """When regular updates and lock maintenance last ran, and how many deps runs wait for review."""
    last_run = last_lock = None
    open_runs = 0
    for state in runs:
        if state.task.get("blueprint") != "deps":
            continue
        kind = state.task.get("params", {}).get("run_kind", "update")
        when = state.created_at
        if state.status is RunStatus.AWAITING_REVIEW and kind == "update":
            open_runs += 1
        if when is None:
            continue
        if kind == "update" and (last_run is None or when > last_run):
            last_run = when
        if kind == "lock" and (last_lock is None or when > last_lock):
            last_lock = when
    return History(last_run=last_run, last_lock_maintenance=last_lock, open_runs=open_runs)
