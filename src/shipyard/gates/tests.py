"""The tests-and-coverage gate: pytest under coverage.py in a fresh sandbox, measured by the harness.

The harness, not the change, runs the tests and reads the JUnit XML and coverage JSON it asked for.
``compare`` turns a baseline and a change measurement into the policy's facts (DESIGN invariant 4).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped

from shipyard.gates import services
from shipyard.gates.base import GateContext
from shipyard.gates.coverage import FileCoverage, read_files
from shipyard.gates.environment import (
    ENV_DIR,
    install,
    missing_requirements,
    python_env,
    requirement_files,
    sandbox_python,
)
from shipyard.gates.reports import read_report
from shipyard.model import GateResult, TestCase, TestReport
from shipyard.sandbox.base import WORKSPACE, CommandResult, Limits

log = logging.getLogger(__name__)

JUNIT = "junit.xml"
COVERAGE_DATA = ".coverage"
COVERAGE_JSON = "coverage.json"
NOT_RUN = ("skipped", "xfailed")
"""Outcomes of a test that did not run to a verdict."""


def test_limits(ctx: GateContext) -> Limits:
    cfg = ctx.config.tests
    return Limits(
        wall_seconds=float(cfg.timeout_seconds),
        cpu_seconds=cfg.timeout_seconds * 2,
        memory_bytes=cfg.memory_mb * 1024**2,
    )


def install_tree(ctx: GateContext) -> CommandResult:
    """Install the tree's requirements offline into ``/env/venv`` (a quick check for a lent environment)."""
    cfg = ctx.config.tests
    env = python_env(scratch=ctx.scratch, wheelhouse=ctx.wheelhouse)
    files = requirement_files(ctx.tree, cfg.requirements)
    extra = missing_requirements(ctx.tree, files, cfg.extra_requirements)
    return install(
        ctx.sandbox,
        tree=ctx.tree,
        env=env,
        python=sandbox_python(),
        files=files,
        extra=extra,
        limits=test_limits(ctx),
    )


def install_failed(result: CommandResult, *, seconds: float) -> TestReport:
    """The tests gate's report for a tree whose requirements could not be installed."""
    return TestReport(
        exit_code=result.exit_code or 1,
        duration_seconds=seconds,
        output_tail="could not install the requirements offline:\n"
        + _tail(result.stderr or result.stdout),
        install_failed=True,
    )


def run_tests(ctx: GateContext) -> TestReport:
    """Run pytest under coverage on the installed tree and read the reports the harness asked for.

    Declared services (PostgreSQL, Redis) are started inside the same sandbox for the run's duration.
    """
    cfg = ctx.config.tests
    limits = test_limits(ctx)
    started = time.monotonic()
    if ctx.env is None:
        installed = install_tree(ctx)
        if not installed.ok:
            return install_failed(installed, seconds=time.monotonic() - started)
        ctx = replace(ctx, env=python_env(scratch=ctx.scratch, wheelhouse=ctx.wheelhouse))
    env = ctx.env
    assert env is not None
    for stale in (JUNIT, COVERAGE_DATA, COVERAGE_JSON):
        (ctx.scratch / stale).unlink(missing_ok=True)
    sources = ",".join(f"{WORKSPACE}/{s}" for s in cfg.coverage_source)
    argv = [env.python, "-m", "coverage", "run", f"--data-file={ENV_DIR}/{COVERAGE_DATA}"]
    argv += [f"--source={sources}", "-m", "pytest", *cfg.paths]
    argv += [f"--junitxml={ENV_DIR}/{JUNIT}", "-p", "no:cacheprovider", "-q", *cfg.pytest_args]
    argv, service_mounts = services.wrap(argv, cfg.services)
    result = ctx.run(argv, limits=limits, mounts=service_mounts)
    coverage = None
    files: tuple[FileCoverage, ...] = ()
    if (ctx.scratch / COVERAGE_DATA).exists():
        json_argv = [env.python, "-m", "coverage", "json", "-q"]
        json_argv += [f"--data-file={ENV_DIR}/{COVERAGE_DATA}", "-o", f"{ENV_DIR}/{COVERAGE_JSON}"]
        ctx.run(json_argv, limits=limits)
        coverage = read_coverage(ctx.scratch / COVERAGE_JSON)
        files = read_files(ctx.scratch / COVERAGE_JSON)
    tail = _tail(result.stdout + ("\n[timed out]" if result.timed_out else "") + result.stderr)
    problem = services.launcher_error(result)
    if problem:
        tail = f"the test services did not start, so no test ran: {problem}\n{tail}"
    return TestReport(
        cases=read_junit(ctx.scratch / JUNIT),
        coverage_percent=coverage,
        coverage_files=files,
        exit_code=result.exit_code,
        duration_seconds=time.monotonic() - started,
        output_tail=tail,
        timed_out=result.timed_out,
    )


def read_junit(path: Path) -> tuple[TestCase, ...]:
    """Per-test outcomes from a JUnit XML file; an absent or unreadable file yields no cases."""
    data = read_report(path)
    if data is None:
        return ()
    try:
        xml = JUnitXml.fromstring(data.decode("utf-8", errors="replace"))
    except Exception as exc:  # junitparser raises lxml/ElementTree errors of several kinds
        log.warning("unreadable JUnit report %s: %s", path, exc)
        return ()
    cases: list[TestCase] = []
    for suite in xml:
        for case in suite:
            outcome, message, text = "passed", "", ""
            for res in case.result:
                if isinstance(res, Failure | Error):
                    outcome = "failed" if isinstance(res, Failure) else "error"
                    message, text = res.message or "", res.text or ""
                elif isinstance(res, Skipped) and outcome == "passed":
                    xfail = (res.type or "") == "pytest.xfail"
                    outcome, message = ("xfailed" if xfail else "skipped"), res.message or ""
            test_id = f"{case.classname}::{case.name}" if case.classname else str(case.name)
            cases.append(
                TestCase(
                    id=test_id,
                    outcome=outcome,
                    message=message[:500],
                    traceback=trim_traceback(text),
                )
            )
    return tuple(cases)


def read_coverage(path: Path) -> float | None:
    """Total line coverage in percent from coverage.py's JSON report."""
    raw = read_report(path)
    if raw is None:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
        return round(float(data["totals"]["percent_covered"]), 2)
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True, kw_only=True)
class TestComparison:
    """A change's test measurement against its baseline."""

    __test__ = False

    pass_rate: float
    failing: tuple[str, ...]
    missing: tuple[str, ...]
    new: tuple[str, ...]
    counted: int
    coverage_percent: float | None
    coverage_delta: float | None
    removed_allowed: tuple[str, ...] = ()
    """Baseline tests the change removed with the task's explicit permission (not counted)."""


def compare(
    baseline: TestReport, change: TestReport, *, allowed_removals: Sequence[str] = ()
) -> TestComparison:
    """Pass rate over the union of baseline and change tests.

    A test that existed at baseline and is missing, skipped or xfailed after the change counts as
    failed, unless its id matches one of ``allowed_removals`` (fnmatch patterns the task gave); a test
    not running in both is left out; a run that produced no report at all has a pass rate of zero.
    """
    before = {c.id: c.outcome for c in baseline.cases}
    after = {c.id: c.outcome for c in change.cases}
    allowed = {t for t in before if t not in after and any(fnmatch(t, p) for p in allowed_removals)}
    union = sorted((set(before) | set(after)) - allowed)
    counted = passed = 0
    failing: list[str] = []
    missing = tuple(t for t in union if t in before and t not in after)
    for test in union:
        old, new = before.get(test), after.get(test)
        if new in NOT_RUN and old in (None, *NOT_RUN):
            continue
        counted += 1
        if new == "passed":
            passed += 1
        else:
            failing.append(test)
    rate = passed / counted if counted else 0.0
    if change.install_failed or change.timed_out:
        rate = 0.0
    delta = None
    if baseline.coverage_percent is not None and change.coverage_percent is not None:
        delta = round(change.coverage_percent - baseline.coverage_percent, 2)
    return TestComparison(
        pass_rate=round(rate, 4),
        failing=tuple(failing),
        missing=missing,
        new=tuple(t for t in union if t not in before),
        counted=counted,
        coverage_percent=change.coverage_percent,
        coverage_delta=delta,
        removed_allowed=tuple(sorted(allowed)),
    )


def tests_verdict(comparison: TestComparison, change: TestReport) -> GateResult:
    """The tests gate's verdict on a change: pass rate over the union, and what fails or went missing."""
    failing = comparison.failing
    summary = f"pass rate {comparison.pass_rate:.2%} over {comparison.counted} tests"
    summary += f", {len(failing)} failing" if failing else ""
    summary += f", {len(comparison.missing)} missing" if comparison.missing else ""
    messages = {c.id: c for c in change.cases}
    details: list[str] = []
    for test in failing:
        case = messages.get(test)
        if case is None:
            details.append(f"✗ {test}: missing after the change (it ran at baseline)")
            continue
        if case.outcome in ("skipped", "xfailed"):
            details.append(f"✗ {test}: {case.outcome} after the change (it ran at baseline)")
            continue
        details.append(f"✗ {test}: {case.message}".rstrip(": "))
        details += [f"    {line}" for line in case.traceback.splitlines()]
    details += [f"removed with the task's permission: {t}" for t in comparison.removed_allowed]
    return GateResult(
        gate="tests",
        passed=not failing and comparison.counted > 0 and comparison.pass_rate == 1.0,
        summary=summary,
        facts={
            "pass_rate": comparison.pass_rate,
            "counted": comparison.counted,
            "failing": list(failing),
            "missing": list(comparison.missing),
            "new": list(comparison.new),
            "removed_allowed": list(comparison.removed_allowed),
        },
        details=tuple(details),
        duration_seconds=round(change.duration_seconds, 3),
    )


def gate_result(report: TestReport, *, phase: str) -> GateResult:
    """A gate record for one measurement (used for both the baseline and the change)."""
    summary = (
        f"{len(report.passed)} passed, {len(report.failed)} failed"
        + (
            f", coverage {report.coverage_percent:.1f} %"
            if report.coverage_percent is not None
            else ""
        )
        + (" (install failed)" if report.install_failed else "")
        + (" (timed out)" if report.timed_out else "")
    )
    details: list[str] = []
    for case in report.cases:
        if case.outcome in ("failed", "error"):
            details.append(f"✗ {case.id}: {case.message}".rstrip(": "))
            details += [f"    {line}" for line in case.traceback.splitlines()]
    if report.install_failed or (report.exit_code and not report.cases):
        details += report.output_tail.splitlines()
    return GateResult(
        gate="tests",
        passed=report.exit_code == 0 and not report.failed and bool(report.cases),
        summary=summary,
        facts={
            "phase": phase,
            "passed": list(report.passed),
            "failed": list(report.failed),
            "skipped": list(report.ids_with("skipped", "xfailed")),
            "coverage_percent": report.coverage_percent,
            "coverage_files": {
                f.path: f.percent for f in report.coverage_files if hasattr(f, "percent")
            },
            "exit_code": report.exit_code,
            "output_tail": report.output_tail,
            "install_failed": report.install_failed,
            "timed_out": report.timed_out,
        },
        details=tuple(details),
        duration_seconds=round(report.duration_seconds, 3),
    )


TRACEBACK_LINES = 25
"""Lines of a failing test's traceback kept: the end, where the assertion and its values are."""


def trim_traceback(text: str, lines: int = TRACEBACK_LINES) -> str:
    """The last ``lines`` lines of a traceback, with a marker when earlier lines were dropped."""
    kept = text.strip().splitlines()
    if len(kept) <= lines:
        return "\n".join(kept)
    return "\n".join([f"... ({len(kept) - lines} lines above)", *kept[-lines:]])


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
