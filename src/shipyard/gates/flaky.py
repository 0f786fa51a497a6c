"""Flaky or broken: failing tests re-run alone, and the per-repository record of flaky ones.

A test that fails in the full run may be broken by the change, or may be flaky: it fails now and then
whatever the code. ``rerun`` runs each failing test again by itself, in a fresh sandbox, up to the
configured number of times and stopping at the first pass. A test that passes on a re-run is FLAKY; one
that fails every time is BROKEN. Flaky tests still count as failed: re-runs never turn a failure into a
pass, the report only tells the user which failures may not be the change's doing.

Shipyard records the flaky tests of each run as a ``tests.flaky`` event
(``{"repo", "tests", "run_id", "at"}``); ``quarantine`` folds those events into the list of tests a
repository keeps seeing flaky, with when they were first and last seen and in which runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from shipyard.events import Event, EventType
from shipyard.gates.base import GateContext
from shipyard.gates.environment import ENV_DIR
from shipyard.gates.tests import read_junit
from shipyard.model import GateResult
from shipyard.sandbox.base import Limits

log = logging.getLogger(__name__)

FLAKY_EVENT = EventType.TESTS_FLAKY.value
"""The event type that records a run's flaky tests."""


def nodeid(test_id: str, tree: Path) -> str | None:
    """The pytest node id of a test id from the JUnit report, or None when it cannot be found.

    pytest writes a test's JUnit classname as its file path with ``/`` turned into ``.`` and ``.py``
    dropped, followed by its classes, so ``tests.test_x.TestA::test_b[1]`` is
    ``tests/test_x.py::TestA::test_b[1]``: the longest dotted prefix naming a ``.py`` file in ``tree``
    is the file, the rest are classes. Directories with dots in their names cannot be told apart.
    """
    classname, sep, name = test_id.partition("::")
    if not sep or not classname or not name:
        return None
    parts = classname.split(".")
    if any(not p or p.startswith("-") or "/" in p or "\\" in p for p in parts):
        return None
    root = tree.resolve()
    for end in range(len(parts), 0, -1):
        relative = "/".join(parts[:end]) + ".py"
        candidate = tree / relative
        if candidate.is_file() and candidate.resolve().is_relative_to(root):
            return "::".join([relative, *parts[end:], name])
    return None


@dataclass(frozen=True, kw_only=True)
class FlakyReport:
    """What re-running the failing tests showed. Every test named here still counts as failed."""

    flaky: tuple[str, ...] = ()
    """Failed, then passed on a re-run."""
    broken: tuple[str, ...] = ()
    """Failed on every re-run."""
    not_rerun: tuple[str, ...] = ()
    """Not re-run: no test file found for the id, re-runs turned off, or past ``max_tests``."""
    runs: int = 0
    """Sandboxed pytest runs made in all."""
    duration_seconds: float = 0.0

    def to_facts(self) -> dict[str, Any]:
        """JSON-serialisable facts for the tests gate's result."""
        return {
            "flaky": list(self.flaky),
            "broken": list(self.broken),
            "not_rerun": list(self.not_rerun),
            "runs": self.runs,
        }

    def result(self) -> GateResult:
        """The flaky gate's record. It never passes a failing test: it passes only if none is flaky."""
        parts = [f"{len(self.flaky)} flaky", f"{len(self.broken)} failed on every re-run"]
        if self.not_rerun:
            parts.append(f"{len(self.not_rerun)} not re-run")
        return GateResult(
            gate="flaky",
            passed=not self.flaky,
            summary=", ".join(parts) + f" ({self.runs} re-runs)",
            facts=self.to_facts(),
            details=self.details(),
            duration_seconds=round(self.duration_seconds, 3),
        )

    def details(self) -> tuple[str, ...]:
        """Human lines for the run report."""
        out = [f"flaky (failed, then passed when re-run alone): {t}" for t in self.flaky]
        out += [f"failed on every re-run: {t}" for t in self.broken]
        out += [f"not re-run: {t}" for t in self.not_rerun]
        return tuple(out)


def rerun(
    ctx: GateContext,
    failing: Sequence[str],
    *,
    reruns: int,
    max_tests: int,
    limits: Limits,
    pytest_args: Sequence[str] = (),
) -> FlakyReport:
    """Re-run each of the first ``max_tests`` failing tests alone, up to ``reruns`` times each.

    Each attempt is a fresh sandbox on ``ctx.tree`` with the tree's environment; a test passes an
    attempt only if pytest exits 0 and its JUnit report shows the test, passed.
    """
    failing = list(dict.fromkeys(failing))  # a test named twice is re-run once
    if reruns <= 0 or ctx.env is None:
        return FlakyReport(not_rerun=tuple(failing))
    started = time.monotonic()
    flaky: list[str] = []
    broken: list[str] = []
    not_rerun: list[str] = []
    runs = 0
    python = ctx.env.python
    for i, test in enumerate(failing[: max(max_tests, 0)]):
        node = nodeid(test, ctx.tree)
        if node is None:
            log.info("no test file in the tree for %s; it is not re-run", test)
            not_rerun.append(test)
            continue
        passed = False
        for k in range(reruns):
            report = f"rerun-{i}-{k}.xml"
            (ctx.scratch / report).unlink(missing_ok=True)
            argv = [python, "-m", "pytest", node, "-p", "no:cacheprovider", "-q"]
            argv += [f"--junitxml={ENV_DIR}/{report}", *pytest_args]
            result = ctx.run(argv, limits=limits)
            runs += 1
            if result.ok and _passed(test, ctx.scratch / report):
                passed = True
                break
        (flaky if passed else broken).append(test)
    not_rerun += failing[max(max_tests, 0) :]
    return FlakyReport(
        flaky=tuple(flaky),
        broken=tuple(broken),
        not_rerun=tuple(not_rerun),
        runs=runs,
        duration_seconds=time.monotonic() - started,
    )


def _passed(test: str, report: Path) -> bool:
    """The re-run's report holds the test (by name: the classname depends on pytest's rootdir), passed."""
    name = test.partition("::")[2]
    cases = [c for c in read_junit(report) if c.id.partition("::")[2] == name]
    return bool(cases) and all(c.outcome == "passed" for c in cases)


@dataclass(frozen=True, kw_only=True)
class QuarantineEntry:
    """A test some runs found flaky: when it was first and last seen flaky, how often, in which runs."""

    test: str
    repo: str
    first_seen: datetime
    last_seen: datetime
    times_seen: int
    runs: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "repo": self.repo,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "times_seen": self.times_seen,
            "runs": list(self.runs),
        }


def quarantine(
    events: Iterable[Mapping[str, Any]], repo: str | None = None
) -> dict[str, QuarantineEntry]:
    """Fold ``tests.flaky`` payloads into one entry per test (only ``repo``'s, when given).

    A test named twice in one payload counts once; payloads missing a key or with a bad time are
    skipped with a warning.
    """
    entries: dict[str, QuarantineEntry] = {}
    for payload in events:
        parsed = _payload(payload)
        if parsed is None:
            continue
        where, tests, run_id, at = parsed
        if repo is not None and where != repo:
            continue
        for test in dict.fromkeys(tests):
            old = entries.get(test)
            if old is None:
                entries[test] = QuarantineEntry(
                    test=test, repo=where, first_seen=at, last_seen=at, times_seen=1, runs=(run_id,)
                )
                continue
            entries[test] = replace(
                old,
                first_seen=min(old.first_seen, at),
                last_seen=max(old.last_seen, at),
                times_seen=old.times_seen + 1,
                runs=old.runs if run_id in old.runs else (*old.runs, run_id),
            )
    return entries


class EventSource(Protocol):
    """What ``quarantine_for_repo`` needs of the run store (``shipyard.store.Store``)."""

    def list_runs(self, *, limit: int = ..., repo: str | None = ...) -> Sequence[Any]: ...

    def events(self, run_id: str, *, after: int = ...) -> list[Event]: ...


def quarantine_for_repo(store: EventSource, repo: str, *, runs: int = 500) -> list[QuarantineEntry]:
    """The flaky tests recorded in ``repo``'s latest ``runs`` runs, most often seen first."""
    payloads: list[Mapping[str, Any]] = []
    for state in store.list_runs(limit=runs, repo=repo):
        for event in store.events(state.run_id):
            if event.type != FLAKY_EVENT:
                continue
            data = dict(event.data)
            data.setdefault("repo", repo)
            data.setdefault("run_id", event.run_id)
            data.setdefault("at", event.at.isoformat())
            payloads.append(data)
    # The store already chose the repository's runs; events name it as the run saw it.
    found = quarantine(payloads).values()
    return sorted(found, key=lambda e: (-e.times_seen, -e.last_seen.timestamp(), e.test))


def _payload(payload: Mapping[str, Any]) -> tuple[str, list[str], str, datetime] | None:
    try:
        repo, tests, run_id = payload["repo"], payload["tests"], payload["run_id"]
        at = datetime.fromisoformat(str(payload["at"]))
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("skipping a malformed %s event %r: %s", FLAKY_EVENT, payload, exc)
        return None
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        log.warning("skipping a %s event whose tests are not a list of ids: %r", FLAKY_EVENT, tests)
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return str(repo), tests, str(run_id), at
