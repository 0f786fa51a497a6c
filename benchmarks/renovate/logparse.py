"""Reading Renovate's JSON log (``LOG_FORMAT=json``, one record a line).

Two records matter: ``packageFiles with updates`` (debug level) lists every package file each manager
extracted, every dependency in it and that dependency's updates, the newest minor and the newest
major as separate entries; ``Repository timing splits (milliseconds)`` gives the phases of the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name

PACKAGE_FILES_MSG = "packageFiles with updates"
TIMING_MSG = "Repository timing splits (milliseconds)"
STARTED_MSG = "Renovate started"
LOOKUP_STATS_MSG = "Lookup statistics"


class RenovateLogError(ValueError):
    """The log lacks a record the comparison needs (Renovate failed, or LOG_LEVEL was not debug)."""


@dataclass(frozen=True)
class RenovateUpdate:
    """One update entry of a dependency: Renovate lists the newest minor and major separately."""

    new_version: str
    new_value: str
    update_type: str


@dataclass(frozen=True)
class RenovateDep:
    manager: str
    package_file: str
    name: str
    """The canonical (PEP 503) project name."""
    current_value: str
    current_version: str
    datasource: str
    dep_type: str
    skip_reason: str
    updates: tuple[RenovateUpdate, ...] = field(default=())


def read_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Every JSON record of the log; lines that are not JSON objects (stray output) are skipped."""
    records = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _last(records: list[dict[str, Any]], msg: str) -> dict[str, Any]:
    found = [r for r in records if r.get("msg") == msg]
    if not found:
        raise RenovateLogError(
            f"Renovate's log has no {msg!r} record: run it with LOG_LEVEL=debug LOG_FORMAT=json "
            "and check its log for an error."
        )
    return found[-1]


def dependencies(records: list[dict[str, Any]]) -> list[RenovateDep]:
    """Every dependency of every package file from the ``packageFiles with updates`` record."""
    config = _last(records, PACKAGE_FILES_MSG).get("config") or {}
    deps = []
    for manager, package_files in sorted(config.items()):
        for package_file in package_files or []:
            path = str(package_file.get("packageFile", ""))
            for dep in package_file.get("deps") or []:
                name = dep.get("packageName") or dep.get("depName") or ""
                updates = tuple(
                    RenovateUpdate(
                        new_version=str(u.get("newVersion") or u.get("newValue") or ""),
                        new_value=str(u.get("newValue") or ""),
                        update_type=str(u.get("updateType") or ""),
                    )
                    for u in dep.get("updates") or []
                )
                deps.append(
                    RenovateDep(
                        manager=manager,
                        package_file=path,
                        name=str(canonicalize_name(name)) if name else "",
                        current_value=str(dep.get("currentValue") or ""),
                        current_version=str(dep.get("currentVersion") or ""),
                        datasource=str(dep.get("datasource") or ""),
                        dep_type=str(dep.get("depType") or ""),
                        skip_reason=str(dep.get("skipReason") or ""),
                        updates=updates,
                    )
                )
    return deps


def timing_splits(records: list[dict[str, Any]]) -> dict[str, int]:
    """Renovate's own phases in milliseconds (init, extract, lookup, ...) and their ``total``."""
    record = _last(records, TIMING_MSG)
    splits = {str(k): int(v) for k, v in (record.get("splits") or {}).items()}
    splits["total"] = int(record.get("total", sum(splits.values())))
    return splits


def renovate_version(records: list[dict[str, Any]]) -> str:
    """The version Renovate reports about itself, or "" when no record names it."""
    for record in records:
        version = record.get("renovateVersion")
        if version:
            return str(version)
    return ""


def extraction_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Files and dependencies per manager, from the ``Dependency extraction complete`` record."""
    found = [r for r in records if r.get("msg") == "Dependency extraction complete"]
    return dict(found[-1].get("stats") or {}) if found else {}


def problems(records: list[dict[str, Any]]) -> list[str]:
    """Messages of warnings and errors (level 40 and above), for the report."""
    return [str(r.get("msg")) for r in records if int(r.get("level", 0)) >= 40]
