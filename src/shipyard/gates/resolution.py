"""The dependency-resolution gate: do the tree's requirements hold together, and does what got installed?

Two checks run inside the sandbox, offline, with shipyard's own uv:

- ``uv pip check`` of the installed environment: every installed package's requirements are met
  (a package installed without its dependencies, or next to an incompatible version, is reported);
- a dry-run resolution (``uv pip compile``) of the tree's requirement files against the run's wheelhouse:
  a set of pins that contradict each other is explained as a chain in words.

A conflicting set usually fails earlier, on the host, when the wheels are downloaded; the harness then
records that ``DependencyConflict`` with ``from_download_error`` as this gate's failed result. Either way
each conflict is one sentence, like ``"a 2.0 requires b>=3, but the requirements pin b==2.5"``, and
``compare`` blames the change only for conflicts and problems the baseline did not already have.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from shipyard.deps.wheelhouse import Demand, conflict_sentences
from shipyard.errors import DependencyConflict
from shipyard.gates.base import ChangeView, GateContext
from shipyard.gates.environment import (
    UV_PATH,
    WHEELHOUSE_DIR,
    PythonEnv,
    gate_limits,
    python_env,
    requirement_files,
    sandbox_python,
)
from shipyard.model import GateResult
from shipyard.sandbox.base import WORKSPACE, CommandResult, Limits

NAME = "resolution"
TIMEOUT_SECONDS = 300
"""Wall-time limit of each uv command; resolving against a local wheelhouse takes well under that."""

_NO_SOLUTION = "No solution found when resolving dependencies"
_PREMISE = re.compile(r"[Bb]ecause (?P<premise>.+?), we can conclude")
_DEPENDS = re.compile(r"(?P<who>.+?) depends? on (?P<requirement>.+)")
_REQUIRE = re.compile(r"you require (?P<requirement>.+)")
_CHECK = re.compile(
    r"The package `(?P<package>[^`]+)` requires `(?P<requirement>[^`]+)`, "
    r"but (?:it's not installed|`(?P<version>[^`]+)` is installed)"
)
_PINNED = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s,;]+)")


def uv_conflicts(output: str) -> tuple[str, ...] | None:
    """The conflicts uv explained after "No solution found", as sentences; None for other failures.

    uv's derivation ("Because a==2.0 depends on b>=3 and you require b==2.5, we can conclude ...") is
    read premise by premise; conclusions it draws on the way are not demands and are left out. When
    nothing in it can be read, the explanation itself is the one sentence.
    """
    if _NO_SOLUTION not in output:
        return None
    explanation = " ".join(
        line.strip().removeprefix("cause:").strip()
        for line in output.split(_NO_SOLUTION, 1)[1].splitlines()
        if line.strip() and not line.strip().startswith(("hint:", "error:", "warning:"))
    )
    demands: list[Demand] = []
    for premise in _PREMISE.finditer(explanation):
        user = False
        for clause in premise["premise"].split(" and "):
            clause = clause.strip()
            if depends := _DEPENDS.fullmatch(clause):
                demands.append(Demand(depends["who"], depends["requirement"]))
                user = False
            elif require := _REQUIRE.fullmatch(clause):
                demands.append(Demand(None, require["requirement"]))
                user = True
            elif user and _is_requirement(clause):  # "you require a==2.0 and c==1.4"
                demands.append(Demand(None, clause))
            else:
                user = False
    told = (explanation.rstrip(".") or "the requirements cannot be resolved",)
    pins = {
        str(canonicalize_name(m["name"])): str(m["version"])
        for d in demands
        if d.who is None and (m := _PINNED.fullmatch(d.requirement))
    }
    named = [d._replace(who=_who(d.who, pins)) if d.who else d for d in demands]
    return conflict_sentences(named) or told


def _is_requirement(text: str) -> bool:
    try:
        Requirement(text)
    except InvalidRequirement:
        return False
    return True


def _who(who: str, pins: Mapping[str, str]) -> str:
    """uv's name for a dependent ("all versions of c", "a>=2.0") as "name version" where it is pinned."""
    who = who.removeprefix("all versions of ").strip()
    try:
        req = Requirement(who)
    except InvalidRequirement:
        return who
    pinned = pins.get(canonicalize_name(req.name))
    try:
        if pinned is not None and (not req.specifier or Version(pinned) in req.specifier):
            return f"{req.name} {pinned}"
    except InvalidVersion:
        pass
    if (exact := _PINNED.fullmatch(who)) is not None:
        return f"{exact['name']} {exact['version']}"
    return who


def check_problems(result: CommandResult) -> tuple[str, ...]:
    """The problems ``uv pip check`` reported, in words; its failure itself when it reported none."""
    output = f"{result.stdout}\n{result.stderr}"
    problems: list[str] = []
    for line in output.splitlines():
        line = line.strip()
        if found := _CHECK.fullmatch(line):
            target = _requirement_name(found["requirement"]) or found["requirement"]
            version = f" {found['version']}" if found["version"] else ""
            has = f"{target}{version} is installed" if version else f"{target} is not installed"
            problems.append(f"{found['package']} requires {found['requirement']}, but {has}")
        elif line.startswith("The package "):
            problems.append(line.replace("`", ""))
    if not problems and not result.ok:
        tail = " | ".join(line for line in output.strip().splitlines()[-3:] if line.strip())
        problems.append(f"uv pip check failed: {tail or 'no output'}")
    return tuple(problems)


def _requirement_name(requirement: str) -> str | None:
    try:
        return Requirement(requirement).name
    except InvalidRequirement:
        return None


def result(
    *,
    conflicts: Sequence[str],
    check: Sequence[str],
    resolved: int,
    installed: bool,
    error: str | None = None,
    duration: float = 0.0,
) -> GateResult:
    """One tree's measurement: failed on any conflict, check problem or missing environment."""
    if conflicts:
        summary = f"{_count(len(conflicts), 'dependency conflict')}: {conflicts[0]}"
    elif not installed:
        summary = "the environment could not be installed" + (f": {error}" if error else "")
    elif check:
        summary = f"{_count(len(check), 'unmet requirement')} in the installed environment"
    else:
        summary = f"{_count(resolved, 'package')} resolve; the installed environment is consistent"
    facts: dict[str, Any] = {
        "conflicts": list(conflicts),
        "check": list(check),
        "resolved": resolved,
        "installed": installed,
        "error": error,
    }
    details = (*conflicts, *check, *([error] if error else []))
    return GateResult(
        gate=NAME,
        passed=installed and not conflicts and not check,
        summary=summary,
        facts=facts,
        details=details,
        duration_seconds=duration,
    )


def from_download_error(exc: DependencyConflict, phase: str) -> GateResult:
    """A conflict found while the host downloaded the wheels, as this gate's failed result."""
    measured = result(conflicts=exc.conflicts, check=(), resolved=0, installed=False)
    return GateResult(
        gate=NAME,
        passed=False,
        summary=f"the {phase} requirements cannot all be installed together: "
        + "; ".join(exc.conflicts),
        facts=measured.facts,
        details=measured.details,
    )


def compare_results(baseline: GateResult, change: GateResult) -> GateResult:
    """The change's verdict: only conflicts and check problems the baseline did not have count.

    A change whose environment could not be installed, when the baseline's could, fails too.
    """
    before = set(baseline.facts.get("conflicts", []))
    conflicts: list[str] = change.facts.get("conflicts", [])
    new = [c for c in conflicts if c not in before]
    existing = [c for c in conflicts if c in before]
    checked_before = set(baseline.facts.get("check", []))
    new_check = [p for p in change.facts.get("check", []) if p not in checked_before]
    broke = not change.facts.get("installed", True) and baseline.facts.get("installed", True)
    error = change.facts.get("error")
    if new:
        summary = f"the change adds {_count(len(new), 'dependency conflict')}: {new[0]}"
    elif broke:
        summary = "the change's environment could not be installed" + (
            f": {error}" if error else ""
        )
    elif new_check:
        summary = f"the change leaves {_count(len(new_check), 'unmet requirement')}: {new_check[0]}"
    else:
        summary = "no new dependency conflicts" + (
            f" ({_count(len(existing), 'conflict')} already in the baseline)" if existing else ""
        )
    passed = not new and not new_check and not (broke and not existing)
    return GateResult(
        gate=NAME,
        passed=passed,
        summary=summary,
        facts={"conflicts": new, "existing": existing, "check": new_check, "installed": not broke},
        details=(*new, *new_check, *([error] if broke and error else [])),
        duration_seconds=baseline.duration_seconds + change.duration_seconds,
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


class ResolutionGate:
    """``uv pip check`` of the installed environment and a dry-run resolution of the requirements."""

    name = NAME

    def applies(self, ctx: GateContext) -> bool:
        return ctx.config.resolution.enabled

    def measure(self, ctx: GateContext) -> GateResult:
        started = time.monotonic()
        limits = gate_limits(timeout_seconds=TIMEOUT_SECONDS, memory_mb=ctx.config.tests.memory_mb)
        files = requirement_files(ctx.tree, ctx.config.tests.requirements)
        if ctx.env is None:
            if not files or not ctx.wheelhouse.is_dir():
                return result(
                    conflicts=(), check=(), resolved=0, installed=False,
                    duration=time.monotonic() - started,
                )  # fmt: skip
            env = python_env(scratch=ctx.scratch, wheelhouse=ctx.wheelhouse)
            conflicts, resolved, error = _dry_run(ctx, env, sandbox_python(), files, limits)
            return result(
                conflicts=conflicts, check=(), resolved=resolved, installed=False, error=error,
                duration=time.monotonic() - started,
            )  # fmt: skip
        checked = _run(ctx, ctx.env, [UV_PATH, "pip", "check", "--python", ctx.env.python], limits)
        conflicts, resolved, error = (
            _dry_run(ctx, ctx.env, ctx.env.python, files, limits) if files else ((), 0, None)
        )
        return result(
            conflicts=conflicts, check=check_problems(checked), resolved=resolved, installed=True,
            error=error, duration=time.monotonic() - started,
        )  # fmt: skip

    def compare(self, baseline: GateResult, change: GateResult, view: ChangeView) -> GateResult:
        return compare_results(baseline, change)


def _run(ctx: GateContext, env: PythonEnv, argv: list[str], limits: Limits) -> CommandResult:
    return ctx.sandbox.run(argv, workspace=ctx.tree, env=env.env, mounts=env.mounts, limits=limits)


def _dry_run(
    ctx: GateContext, env: PythonEnv, python: str, files: Sequence[str], limits: Limits
) -> tuple[tuple[str, ...], int, str | None]:
    """(conflicts, packages resolved, error) of resolving the requirement files offline."""
    argv = [UV_PATH, "pip", "compile", "--no-index", "--find-links", WHEELHOUSE_DIR, "--no-header"]
    argv += ["--no-annotate", "--quiet", "--python", python]
    argv += [f"{WORKSPACE}/{name}" for name in files]
    done = _run(ctx, env, argv, limits)
    if done.ok:
        pins = [line for line in done.stdout.splitlines() if _PINNED.match(line)]
        return (), len(pins), None
    output = f"{done.stdout}\n{done.stderr}"
    conflicts = uv_conflicts(output)
    if conflicts is not None:
        return conflicts, 0, None
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reason = "timed out" if done.timed_out else " | ".join(lines[-3:]) or "no output"
    return (), 0, f"the requirements could not be resolved offline: {reason}"
