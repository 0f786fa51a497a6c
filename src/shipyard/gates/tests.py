"""The tests-and-coverage gate: pytest under coverage.py in a fresh sandbox, measured by the harness.

The harness, not the change, runs the tests and reads the JUnit XML and coverage JSON it asked for.
``compare`` turns a baseline and a change measurement into the policy's facts (DESIGN invariant 4).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped

from shipyard.gates.base import GateContext
from shipyard.gates.environment import (
    ENV_DIR,
    install,
    missing_requirements,
    python_env,
    requirement_files,
)
from shipyard.model import GateResult, TestCase, TestReport
from shipyard.sandbox.base import WORKSPACE, Limits

log = logging.getLogger(__name__)

JUNIT = "junit.xml"
COVERAGE_DATA = ".coverage"
COVERAGE_JSON = "coverage.json"


def sandbox_python() -> str:
    """The interpreter the sandbox exposes read-only: the base installation shipyard itself runs on."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(Path(sys.base_prefix) / "bin" / version)


def run_tests(ctx: GateContext) -> TestReport:
    """Install the tree's requirements offline, run pytest under coverage, and read the reports."""
    cfg = ctx.config.tests
    limits = Limits(
        wall_seconds=float(cfg.timeout_seconds),
        cpu_seconds=cfg.timeout_seconds * 2,
        memory_bytes=cfg.memory_mb * 1024**2,
    )
    started = time.monotonic()
    env = python_env(scratch=ctx.scratch, wheelhouse=ctx.wheelhouse)
    files = requirement_files(ctx.tree, cfg.requirements)
    extra = missing_requirements(ctx.tree, files, cfg.extra_requirements)
    installed = install(
        ctx.sandbox,
        tree=ctx.tree,
        env=env,
        python=sandbox_python(),
        files=files,
        extra=extra,
        limits=limits,
    )
    if not installed.ok:
        return TestReport(
            exit_code=installed.exit_code or 1,
            duration_seconds=time.monotonic() - started,
            output_tail="could not install the requirements offline:\n"
            + _tail(installed.stderr or installed.stdout),
            install_failed=True,
        )
    for stale in (JUNIT, COVERAGE_DATA, COVERAGE_JSON):
        (ctx.scratch / stale).unlink(missing_ok=True)
    sources = ",".join(f"{WORKSPACE}/{s}" for s in cfg.coverage_source)
    argv = [env.python, "-m", "coverage", "run", f"--data-file={ENV_DIR}/{COVERAGE_DATA}"]
    argv += [f"--source={sources}", "-m", "pytest", *cfg.paths]
    argv += [f"--junitxml={ENV_DIR}/{JUNIT}", "-p", "no:cacheprovider", "-q", *cfg.pytest_args]
    result = ctx.sandbox.run(
        argv, workspace=ctx.tree, env=env.env, mounts=env.mounts, limits=limits
    )
    coverage = None
    if (ctx.scratch / COVERAGE_DATA).exists():
        json_argv = [env.python, "-m", "coverage", "json", "-q"]
        json_argv += [f"--data-file={ENV_DIR}/{COVERAGE_DATA}", "-o", f"{ENV_DIR}/{COVERAGE_JSON}"]
        ctx.sandbox.run(
            json_argv, workspace=ctx.tree, env=env.env, mounts=env.mounts, limits=limits
        )
        coverage = read_coverage(ctx.scratch / COVERAGE_JSON)
    tail = _tail(result.stdout + ("\n[timed out]" if result.timed_out else "") + result.stderr)
    return TestReport(
        cases=read_junit(ctx.scratch / JUNIT),
        coverage_percent=coverage,
        exit_code=result.exit_code,
        duration_seconds=time.monotonic() - started,
        output_tail=tail,
        timed_out=result.timed_out,
    )


MAX_REPORT_BYTES = 64 * 1024 * 1024
"""Reports larger than this are not read: a test run has no business writing more."""


def read_report(path: Path) -> bytes | None:
    """The bytes of a report the sandbox wrote, or None unless it is a plain file of sane size.

    The directory is writable inside the sandbox, so the name may have been replaced by a symlink
    to a host file, a FIFO or a device: the host opens it without following links and reads it only
    if it is a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_REPORT_BYTES:
        os.close(fd)
        log.warning("ignoring report %s: not a regular file of at most 64 MiB", path)
        return None
    with os.fdopen(fd, "rb") as fh:
        return fh.read(MAX_REPORT_BYTES)


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
            outcome, message = "passed", ""
            for res in case.result:
                if isinstance(res, Failure):
                    outcome, message = "failed", res.message or ""
                elif isinstance(res, Error):
                    outcome, message = "error", res.message or ""
                elif isinstance(res, Skipped) and outcome == "passed":
                    outcome, message = "skipped", res.message or ""
            test_id = f"{case.classname}::{case.name}" if case.classname else str(case.name)
            cases.append(TestCase(id=test_id, outcome=outcome, message=message[:500]))
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


def compare(baseline: TestReport, change: TestReport) -> TestComparison:
    """Pass rate over the union of baseline and change tests.

    A test that existed at baseline and is missing or skipped after the change counts as failed; a test
    skipped in both is left out; a run that produced no report at all has a pass rate of zero.
    """
    before = {c.id: c.outcome for c in baseline.cases}
    after = {c.id: c.outcome for c in change.cases}
    union = sorted(set(before) | set(after))
    counted = passed = 0
    failing: list[str] = []
    missing = tuple(t for t in union if t in before and t not in after)
    for test in union:
        old, new = before.get(test), after.get(test)
        if new == "skipped" and old in (None, "skipped"):
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
    return GateResult(
        gate="tests",
        passed=report.exit_code == 0 and not report.failed and bool(report.cases),
        summary=summary,
        facts={
            "phase": phase,
            "passed": list(report.passed),
            "failed": list(report.failed),
            "skipped": list(report.ids_with("skipped")),
            "coverage_percent": report.coverage_percent,
            "exit_code": report.exit_code,
            "output_tail": report.output_tail,
            "install_failed": report.install_failed,
            "timed_out": report.timed_out,
        },
        duration_seconds=round(report.duration_seconds, 3),
    )


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
