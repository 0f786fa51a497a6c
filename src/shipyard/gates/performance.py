"""The performance gate: the repository's pytest-benchmark tests, baseline against change, in one run.

A benchmark timing means something only next to another timing taken on the same machine in the same
state, so this gate measures both trees itself, side by side, and keeps the noise out of the verdict:

- **Same gate run, interleaved.** The baseline's benchmarks run, then the change's, back to back on
  the same machine, so both see the same load, CPU frequency and caches; timings are never compared
  with numbers recorded at another time or on another host.
- **GC disabled, warm-up on.** pytest-benchmark runs with ``--benchmark-disable-gc`` (a collection
  landing in one round does not inflate it) and ``--benchmark-warmup=on`` (caches and lazy imports
  are warm before timing starts), without coverage or any other tracer.
- **A robust statistic over many rounds.** Each benchmark runs at least ``min_rounds`` rounds and
  the ``min`` (default; noise only ever adds time) or the ``median`` of the rounds is compared.
- **A threshold.** A benchmark is slower only when ``change > baseline * (1 + threshold/100)``
  (15 % by default); smaller differences are treated as noise.
- **A confirmation round.** Every benchmark that looks slower is measured again alone, in the
  opposite order (change, then baseline); it is reported as a regression only when both rounds
  agree. A one-off slow round is not reported, and neither is a host that got busier between the
  two trees' first measurements (the reversed order puts the busier time on the other side). The
  figures shown are those of the round with the smaller slowdown.

Benchmarks that exist in only one tree are listed (``new``, ``removed``) but are not regressions. A
benchmark run that fails or times out fails the gate with the end of its output: never a silent pass.
"""

from __future__ import annotations

import ast
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from shipyard.gates.base import ChangeView, GateContext
from shipyard.gates.environment import ENV_DIR, gate_limits
from shipyard.gates.reports import read_report
from shipyard.model import GateResult
from shipyard.sandbox.base import WORKSPACE, CommandResult

Statistic = Literal["min", "median"]
NO_TESTS_COLLECTED = 5
"""pytest's exit status when it collected nothing: not a failure of the benchmarks."""
MAX_SOURCE_BYTES = 2 * 1024 * 1024
_SKIP_DIRS = {"__pycache__", "node_modules", "venv", "site-packages"}
_ENABLE_HINT = "add pytest-benchmark to the test requirements to compare benchmarks"


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One benchmark's chosen statistic (in seconds) and how many rounds it summarises."""

    seconds: float
    rounds: int


@dataclass(frozen=True, kw_only=True)
class Round:
    """The baseline's and the change's samples of one round, keyed by pytest-benchmark's fullname."""

    baseline: Mapping[str, Sample]
    change: Mapping[str, Sample]


@dataclass(frozen=True, kw_only=True)
class BenchmarkComparison:
    """One benchmark present in both trees, with the figures of the round that decided it."""

    name: str
    baseline: Sample
    change: Sample
    suspected: bool
    """Slower than the threshold in the first round."""
    confirmed: bool
    """Slower than the threshold in both rounds: a regression."""

    @property
    def ratio(self) -> float:
        return _ratio(self.baseline, self.change)


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """The verdict on every benchmark of the change against its baseline."""

    benchmarks: tuple[BenchmarkComparison, ...]
    new: tuple[str, ...]
    removed: tuple[str, ...]
    threshold_percent: float
    statistic: Statistic

    @property
    def regressions(self) -> tuple[str, ...]:
        return tuple(self.describe(b) for b in self.benchmarks if b.confirmed)

    def describe(self, b: BenchmarkComparison) -> str:
        rounds = min(b.baseline.rounds, b.change.rounds)
        verdict = "confirmed" if b.confirmed else ("not confirmed" if b.suspected else "ok")
        return (
            f"{b.name}: {format_seconds(b.baseline.seconds)} → {format_seconds(b.change.seconds)} "
            f"({_percent(b.ratio)}, {self.statistic} of {rounds} rounds, {verdict})"
        )


def is_slower(baseline: Sample, change: Sample, threshold_percent: float) -> bool:
    """Whether ``change`` exceeds ``baseline`` by strictly more than the threshold."""
    return change.seconds > baseline.seconds * (1 + threshold_percent / 100)


def suspects(first: Round, threshold_percent: float) -> tuple[str, ...]:
    """The benchmarks of both trees that look slower in the first round, to be measured again."""
    common = sorted(set(first.baseline) & set(first.change))
    return tuple(
        n for n in common if is_slower(first.baseline[n], first.change[n], threshold_percent)
    )


def compare_runs(
    first: Round, confirm: Round | None, *, threshold_percent: float, statistic: Statistic
) -> Comparison:
    """Compare per benchmark; a regression must be slower in the first round AND the confirmation.

    A suspect missing from the confirmation round is not confirmed. For a benchmark measured twice the
    figures kept are those of the round with the smaller slowdown.
    """
    out: list[BenchmarkComparison] = []
    for name in sorted(set(first.baseline) & set(first.change)):
        before, after = first.baseline[name], first.change[name]
        suspected = is_slower(before, after, threshold_percent)
        confirmed = False
        if suspected and confirm and name in confirm.baseline and name in confirm.change:
            again_before, again_after = confirm.baseline[name], confirm.change[name]
            confirmed = is_slower(again_before, again_after, threshold_percent)
            if _ratio(again_before, again_after) < _ratio(before, after):
                before, after = again_before, again_after
        out.append(
            BenchmarkComparison(
                name=name, baseline=before, change=after, suspected=suspected, confirmed=confirmed
            )
        )
    return Comparison(
        benchmarks=tuple(out),
        new=tuple(sorted(set(first.change) - set(first.baseline))),
        removed=tuple(sorted(set(first.baseline) - set(first.change))),
        threshold_percent=threshold_percent,
        statistic=statistic,
    )


def parse_benchmarks(raw: bytes, statistic: Statistic) -> dict[str, Sample]:
    """The chosen statistic of each benchmark in a ``--benchmark-json`` report.

    Raises ``ValueError`` when the report is not pytest-benchmark's JSON.
    """
    data = json.loads(raw.decode("utf-8"))
    samples: dict[str, Sample] = {}
    for bench in data["benchmarks"]:
        stats = bench["stats"]
        samples[str(bench["fullname"])] = Sample(
            seconds=float(stats[statistic]), rounds=int(stats["rounds"])
        )
    return samples


def benchmark_tests(tree: Path, paths: Sequence[str]) -> tuple[str, ...]:
    """Test functions (``file::name``) under ``paths`` that take pytest-benchmark's ``benchmark``.

    Found by parsing the test files, not by running them; symbolic links, files outside the tree and
    files that do not parse are left out.
    """
    root = tree.resolve()
    found: list[str] = []
    for file in _test_files(root, paths):
        try:
            module = ast.parse(file.read_bytes(), filename=str(file))
        except (SyntaxError, ValueError, OSError):
            continue
        rel = file.relative_to(root).as_posix()
        for node in ast.walk(module):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            a = node.args
            params = {p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)}
            if node.name.startswith("test") and "benchmark" in params:
                found.append(f"{rel}::{node.name}")
    return tuple(found)


def _test_files(root: Path, paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for entry in paths:
        start = root / entry
        if start.is_symlink() or not start.resolve().is_relative_to(root):
            continue
        if start.is_file():
            files.append(start)
            continue
        for folder, dirs, names in os.walk(start):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS]
            for name in names:
                path = Path(folder) / name
                pattern = name.startswith("test_") or name.endswith("_test.py")
                if pattern and name.endswith(".py") and _small_file(path):
                    files.append(path)
    return sorted(set(files))


def _small_file(path: Path) -> bool:
    return not path.is_symlink() and path.is_file() and path.stat().st_size <= MAX_SOURCE_BYTES


class BenchmarkRunFailed(Exception):
    """A benchmark run exited with an error or timed out; the message says which tree and why."""

    def __init__(self, message: str, output_tail: str) -> None:
        super().__init__(message)
        self.output_tail = output_tail


class PerformanceGate:
    """Runs the benchmarks of the baseline and the change in one gate run and reports regressions."""

    name = "performance"

    def applies(self, ctx: GateContext) -> bool:
        cfg = ctx.config.performance
        return cfg.enabled == "auto" and bool(benchmark_tests(ctx.tree, _paths(ctx)))

    def run(self, baseline: GateContext, change: GateContext, view: ChangeView) -> GateResult:
        started = time.monotonic()
        cfg = change.config.performance

        def stop(why: str, *, skipped: bool, tail: str = "") -> GateResult:
            return GateResult(
                gate=self.name,
                passed=skipped,
                skipped=skipped,
                summary=why,
                facts=_facts(None, cfg.threshold_percent, None if skipped else why),
                details=tuple(tail.splitlines()),
                duration_seconds=round(time.monotonic() - started, 3),
            )

        if baseline.env is None or change.env is None:
            which = "baseline" if baseline.env is None else "change"
            return stop(f"the {which} tree has no installed environment", skipped=True)
        roles = {"baseline": baseline, "change": change}
        plugin = {role: _has_plugin(c) for role, c in roles.items()}
        benches = {role: bool(benchmark_tests(c.tree, _paths(c))) for role, c in roles.items()}
        if not any(plugin.values()):
            return stop(f"pytest-benchmark is not installed; {_ENABLE_HINT}", skipped=True)
        if benches["change"] and not plugin["change"]:
            why = "pytest-benchmark is not installed in the change's environment, but its tree has "
            return stop(f"{why}benchmark tests; {_ENABLE_HINT}", skipped=False)
        try:
            runs = {
                r: _measure(c, r, 1) if plugin[r] and benches[r] else {} for r, c in roles.items()
            }
            first = Round(baseline=runs["baseline"], change=runs["change"])
            again = suspects(first, cfg.threshold_percent)
            confirm = None
            if again:
                # Reversed: load that rose between the first round's two runs now lands on the
                # baseline, so it cannot confirm a slowdown the change did not cause.
                again_change = _measure(change, "change", 2, only=again)
                again_baseline = _measure(baseline, "baseline", 2, only=again)
                confirm = Round(baseline=again_baseline, change=again_change)
        except BenchmarkRunFailed as exc:
            return stop(str(exc), skipped=False, tail=exc.output_tail)
        if not first.baseline and not first.change:
            return stop(
                "pytest-benchmark measured no benchmark in either tree (is it disabled, for example "
                "by --benchmark-disable or pytest-xdist in the pytest options?)",
                skipped=True,
            )
        result = compare_runs(
            first, confirm, threshold_percent=cfg.threshold_percent, statistic=cfg.statistic
        )
        return self._verdict(result, len(again), started)

    def _verdict(self, result: Comparison, suspected: int, started: float) -> GateResult:
        regressions = result.regressions
        details = [result.describe(b) for b in result.benchmarks]
        details += [f"{name}: new in the change" for name in result.new]
        details += [f"{name}: removed by the change" for name in result.removed]
        if regressions:
            summary = (
                f"{len(regressions)} of {len(result.benchmarks)} benchmarks slower by more than "
                f"{result.threshold_percent:g} % ({result.statistic}, confirmed twice)"
            )
        else:
            unconfirmed = f", {suspected} not confirmed by a second round" if suspected else ""
            summary = (
                f"no benchmark slower by more than {result.threshold_percent:g} % "
                f"({len(result.benchmarks)} compared{unconfirmed})"
            )
        return GateResult(
            gate=self.name,
            passed=not regressions,
            summary=summary,
            facts=_facts(result, result.threshold_percent, None),
            details=tuple(details),
            duration_seconds=round(time.monotonic() - started, 3),
        )


def _measure(
    ctx: GateContext, role: str, n: int, *, only: Sequence[str] | None = None
) -> dict[str, Sample]:
    """Run the benchmarks of one tree (all of them, or only the node ids in ``only``) and read them."""
    assert ctx.env is not None
    cfg = ctx.config.performance
    report = f"bench-{role}-{n}.json"
    (ctx.scratch / report).unlink(missing_ok=True)
    targets = list(only) if only is not None else _paths(ctx)
    argv = [ctx.env.python, "-m", "pytest", *targets, "--benchmark-only"]
    argv += [f"--benchmark-json={ENV_DIR}/{report}", f"--benchmark-min-rounds={cfg.min_rounds}"]
    argv += ["--benchmark-disable-gc", "--benchmark-warmup=on", "-p", "no:cacheprovider", "-q"]
    argv += [f"--rootdir={WORKSPACE}"]
    limits = gate_limits(timeout_seconds=cfg.timeout_seconds, memory_mb=ctx.config.tests.memory_mb)
    result = ctx.run(argv, limits=limits)
    what = f"the {role}'s benchmarks" + (" (confirmation round)" if n > 1 else "")
    if result.timed_out:
        raise BenchmarkRunFailed(
            f"{what} did not finish within {cfg.timeout_seconds} s", _tail(result)
        )
    if result.exit_code == NO_TESTS_COLLECTED:
        return {}
    if result.exit_code != 0:
        raise BenchmarkRunFailed(f"{what} failed (pytest exit {result.exit_code})", _tail(result))
    raw = read_report(ctx.scratch / report)
    if raw is None:
        raise BenchmarkRunFailed(f"{what} wrote no readable benchmark report", _tail(result))
    try:
        return parse_benchmarks(raw, cfg.statistic)
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchmarkRunFailed(
            f"{what} wrote an unreadable report: {exc}", _tail(result)
        ) from exc


def _has_plugin(ctx: GateContext) -> bool:
    """Whether pytest-benchmark is installed in the tree's environment (asked inside the sandbox)."""
    assert ctx.env is not None
    probe = "import importlib.metadata as m; m.version('pytest-benchmark')"
    limits = gate_limits(timeout_seconds=120, memory_mb=ctx.config.tests.memory_mb)
    return ctx.run([ctx.env.python, "-c", probe], limits=limits).ok


def _paths(ctx: GateContext) -> list[str]:
    return list(ctx.config.performance.paths or ctx.config.tests.paths)


def _facts(result: Comparison | None, threshold: float, error: str | None) -> dict[str, Any]:
    """The facts the policy reads; times are in seconds."""
    if result is None:
        result = Comparison(
            benchmarks=(), new=(), removed=(), threshold_percent=threshold, statistic="min"
        )
    return {
        "benchmarks": [
            {
                "name": b.name,
                "baseline": b.baseline.seconds,
                "change": b.change.seconds,
                "ratio": round(b.ratio, 4) if math.isfinite(b.ratio) else None,
                "statistic": result.statistic,
                "rounds": min(b.baseline.rounds, b.change.rounds),
                "suspected": b.suspected,
                "confirmed": b.confirmed,
            }
            for b in result.benchmarks
        ],
        "regressions": list(result.regressions),
        "threshold_percent": result.threshold_percent,
        "new": list(result.new),
        "removed": list(result.removed),
        "error": error,
    }


def format_seconds(seconds: float) -> str:
    """A duration in the unit that keeps three significant decimals readable (µs, ms or s)."""
    if seconds < 1e-4:
        return f"{seconds * 1e6:.3f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds:.3f} s"


def _ratio(baseline: Sample, change: Sample) -> float:
    if baseline.seconds <= 0:
        return math.inf if change.seconds > 0 else 1.0
    return change.seconds / baseline.seconds


def _percent(ratio: float) -> str:
    return "+∞ %" if not math.isfinite(ratio) else f"{(ratio - 1) * 100:+.0f} %"


def _tail(result: CommandResult, lines: int = 30) -> str:
    text = result.stdout + ("\n[timed out]" if result.timed_out else "") + "\n" + result.stderr
    return "\n".join(text.strip().splitlines()[-lines:])
