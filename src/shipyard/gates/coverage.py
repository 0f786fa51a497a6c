"""Per-file and diff coverage, read from the coverage.py JSON report the tests gate writes.

The total coverage of a tree says little about a change: a change that adds fifty untested lines to a
large, well-tested project barely moves it. Diff coverage asks the sharper question, "of the lines this
change added that Python can execute, how many did some test run?", and names the lines no test ran.

Only lines coverage.py itself considers executable (executed or missing) count: comments, blank lines,
docstrings and excluded lines (``# pragma: no cover``) are neither covered nor uncovered. Files coverage
did not measure (tests, documentation, files outside the configured sources) do not count either.

Everything here is a pure function of parsed reports, except ``read_files``, which reads the report
through ``read_report`` (the sandbox wrote it, so it is opened without following links).
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.gates.base import ChangeView
from shipyard.gates.reports import read_report
from shipyard.model import GateResult, TestReport
from shipyard.sandbox.base import WORKSPACE

log = logging.getLogger(__name__)

MIN_DELTA = 0.05
"""Per-file coverage changes this small (in percentage points) are rounding, not news."""
MAX_DELTA_LINES = 20
"""Files with moved coverage listed in a verdict's details; the facts hold them all."""


@dataclass(frozen=True, kw_only=True)
class FileCoverage:
    """One measured file: its path relative to the tree root, percent covered and its lines."""

    path: str
    percent: float
    executed: tuple[int, ...] = ()
    missing: tuple[int, ...] = ()
    excluded: tuple[int, ...] = ()

    @property
    def executable(self) -> frozenset[int]:
        """The lines coverage.py can run in this file (executed or missing)."""
        return frozenset(self.executed) | frozenset(self.missing)


@dataclass(frozen=True, kw_only=True)
class DiffCoverage:
    """How much of a change's added executable code the tests ran."""

    percent: float | None
    """Covered share of the added executable lines, in percent; None when the change added none."""
    covered: int
    total: int
    uncovered: tuple[tuple[str, tuple[int, ...]], ...] = ()
    """Per file (sorted by path), the added executable lines no test ran."""

    def details(self) -> tuple[str, ...]:
        """One line per file with untested added lines, e.g. ``src/x.py: lines 12-14, 20 not run…``."""
        out: list[str] = []
        for path, lines in self.uncovered:
            word = "line" if len(lines) == 1 else "lines"
            out.append(f"{path}: {word} {collapse(lines)} not run by any test")
        return tuple(out)

    def to_facts(self) -> dict[str, Any]:
        """JSON-serialisable facts for the gate result."""
        return {
            "diff_coverage": self.percent,
            "diff_covered_lines": self.covered,
            "diff_executable_lines": self.total,
            "diff_uncovered": {path: list(lines) for path, lines in self.uncovered},
        }


@dataclass(frozen=True, kw_only=True)
class FileDelta:
    """One file's coverage before and after a change; ``None`` where the file was not measured."""

    path: str
    before: float | None
    after: float | None

    @property
    def change(self) -> float | None:
        """Percentage points gained (negative: lost); None for a file new to or gone from the report."""
        if self.before is None or self.after is None:
            return None
        return round(self.after - self.before, 2)

    def render(self) -> str:
        before = "—" if self.before is None else f"{self.before:.1f} %"
        after = "—" if self.after is None else f"{self.after:.1f} %"
        change = "" if self.change is None else f" ({self.change:+.1f})"
        return f"{self.path}: {before} → {after}{change}"


def read_files(path: Path, root: str = WORKSPACE) -> tuple[FileCoverage, ...]:
    """Every measured file in coverage.py's JSON report at ``path``, sorted by path.

    Paths are made relative to ``root`` (the tree's root where the report was written); files outside
    it are left out. An absent, oversized or malformed report yields an empty tuple and a warning.
    """
    raw = read_report(path)
    if raw is None:
        return ()
    try:
        data = json.loads(raw.decode("utf-8"))
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("unreadable coverage report %s: %s", path, exc)
        return ()
    found: dict[str, FileCoverage] = {}
    for name, entry in files.items():
        relative = _relative(str(name), root)
        if relative is None:
            continue
        try:
            found[relative] = _file(relative, entry)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("skipping %s in coverage report %s: %s", name, path, exc)
    return tuple(found[p] for p in sorted(found))


def diff_coverage(files: Sequence[FileCoverage], added: Mapping[str, set[int]]) -> DiffCoverage:
    """The share of ``added`` lines (per path, from ``ChangeView.added_lines()``) that tests ran."""
    by_path = {f.path: f for f in files}
    covered = total = 0
    uncovered: list[tuple[str, tuple[int, ...]]] = []
    for path in sorted(added):
        measured = by_path.get(path)
        if measured is None:
            continue
        lines = set(added[path])
        executed = lines & set(measured.executed)
        missing = (lines & set(measured.missing)) - executed
        covered += len(executed)
        total += len(executed) + len(missing)
        if missing:
            uncovered.append((path, tuple(sorted(missing))))
    percent = round(100.0 * covered / total, 2) if total else None
    return DiffCoverage(percent=percent, covered=covered, total=total, uncovered=tuple(uncovered))


def file_deltas(
    baseline: Sequence[FileCoverage],
    change: Sequence[FileCoverage],
    renames: Mapping[str, str] | None = None,
) -> list[FileDelta]:
    """Files whose coverage moved by more than ``MIN_DELTA`` points, largest drop first.

    ``renames`` (new path to old path, as in ``ChangeView.renames``) matches a moved file with its
    baseline. Files new to the report (``before`` None) follow, lowest coverage first, then files gone
    from it (``after`` None), by path.
    """
    old_name = dict(renames or {})
    before = {f.path: f.percent for f in baseline}
    compared: list[FileDelta] = []
    new: list[FileDelta] = []
    seen_before: set[str] = set()
    for f in change:
        source = old_name.get(f.path, f.path)
        if source not in before:
            source = f.path
        if source in before:
            seen_before.add(source)
            delta = FileDelta(path=f.path, before=before[source], after=f.percent)
            if abs(f.percent - before[source]) > MIN_DELTA:
                compared.append(delta)
        else:
            new.append(FileDelta(path=f.path, before=None, after=f.percent))
    gone = [
        FileDelta(path=p, before=pct, after=None)
        for p, pct in sorted(before.items())
        if p not in seen_before
    ]
    compared.sort(key=lambda d: (d.change or 0.0, d.path))
    new.sort(key=lambda d: (d.after or 0.0, d.path))
    return [*compared, *new, *gone]


def verdict(baseline: TestReport, change: TestReport, view: ChangeView) -> GateResult:
    """The coverage verdict on a change: diff coverage and the files whose coverage moved.

    It passes when every executable line the change added was run by some test; how much less is
    acceptable is the policy's call, on the ``diff_coverage`` fact. Skipped when the change's tree
    has no per-file coverage (the tests did not run, or coverage measured no file).
    """
    after = _measured(change.coverage_files)
    if not after:
        return GateResult(
            gate="coverage", passed=True, summary="no per-file coverage measured", skipped=True
        )
    diff = diff_coverage(after, view.added_lines())
    deltas = file_deltas(_measured(baseline.coverage_files), after, view.renames)
    if diff.percent is None:
        summary = "the change adds no executable line in measured files"
    else:
        summary = (
            f"diff coverage {diff.percent:.1f} % "
            f"({diff.covered} of {diff.total} added executable lines run by tests)"
        )
    facts = {
        **diff.to_facts(),
        "coverage_percent": change.coverage_percent,
        "file_deltas": [
            {"path": d.path, "before": d.before, "after": d.after, "change": d.change}
            for d in deltas
        ],
    }
    details = diff.details() + tuple(f"coverage {d.render()}" for d in deltas[:MAX_DELTA_LINES])
    return GateResult(
        gate="coverage", passed=not diff.uncovered, summary=summary, facts=facts, details=details
    )


def files_from_json(items: Iterable[Any]) -> tuple[FileCoverage, ...]:
    """``FileCoverage`` records back from their JSON form (``dataclasses.asdict``, lists for tuples).

    Entries that are not such records are dropped with a warning.
    """
    out: list[FileCoverage] = []
    for item in items:
        if isinstance(item, FileCoverage):
            out.append(item)
            continue
        try:
            out.append(
                FileCoverage(
                    path=str(item["path"]),
                    percent=float(item["percent"]),
                    executed=_lines(list(item.get("executed", ()))),
                    missing=_lines(list(item.get("missing", ()))),
                    excluded=_lines(list(item.get("excluded", ()))),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("dropping an unreadable per-file coverage record %r: %s", item, exc)
    return tuple(out)


def collapse(lines: Iterable[int]) -> str:
    """``[12, 13, 14, 20]`` as ``"12-14, 20"``."""
    ordered = sorted(set(lines))
    parts: list[str] = []
    start = prev = None
    for n in ordered:
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ", ".join(parts)


def _measured(files: Iterable[Any]) -> tuple[FileCoverage, ...]:
    return tuple(f for f in files if isinstance(f, FileCoverage))


def _file(path: str, entry: Any) -> FileCoverage:
    return FileCoverage(
        path=path,
        percent=round(float(entry["summary"]["percent_covered"]), 2),
        executed=_lines(entry["executed_lines"]),
        missing=_lines(entry["missing_lines"]),
        excluded=_lines(entry.get("excluded_lines", [])),
    )


def _lines(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(n) is int for n in value):
        raise TypeError("line numbers must be a list of integers")
    return tuple(sorted(set(value)))


def _relative(name: str, root: str) -> str | None:
    """``name`` relative to ``root`` in POSIX form, or None when it lies outside the tree."""
    name = name.replace("\\", "/")
    if posixpath.isabs(name):
        base = posixpath.normpath(root)
        normal = posixpath.normpath(name)
        if normal != base and not normal.startswith(base.rstrip("/") + "/"):
            return None
        name = posixpath.relpath(normal, base)
    normal = posixpath.normpath(name)
    if normal in (".", "") or normal == ".." or normal.startswith("../"):
        return None
    return normal
