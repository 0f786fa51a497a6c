"""Core value types shared by every layer: tasks, change facts, gate results and decisions.

Everything here is a frozen, typed value with no I/O, so the policy and the state fold can stay pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    """What may happen to a verified change. Ordered from most permissive to most conservative."""

    MERGE = "MERGE"
    STAGING_ONLY = "STAGING_ONLY"
    REVIEW = "REVIEW"
    HALT = "HALT"

    @property
    def severity(self) -> int:
        """Higher is more conservative: HALT > REVIEW > STAGING_ONLY > MERGE."""
        return _SEVERITY[self]

    @staticmethod
    def most_conservative(actions: list[Action] | tuple[Action, ...]) -> Action:
        """The action that wins when rules disagree; MERGE when there is nothing to disagree on."""
        return max(actions, key=lambda a: a.severity, default=Action.MERGE)


_SEVERITY = {Action.MERGE: 0, Action.STAGING_ONLY: 1, Action.REVIEW: 2, Action.HALT: 3}


class ChangeType(StrEnum):
    """What kind of change a run makes. Declared by the task; the policy routes by it."""

    DEPENDENCY_UPDATE = "dependency_update"
    SECURITY_PATCH = "security_patch"
    FORMATTING = "formatting"
    DOCUMENTATION = "documentation"
    FEATURE = "feature"
    REFACTOR = "refactor"
    API_CHANGE = "api_change"
    BUGFIX = "bugfix"
    TESTS = "tests"
    INFRASTRUCTURE = "infrastructure"
    DATABASE_MIGRATION = "database_migration"
    AUTH_CHANGE = "auth_change"
    OTHER = "other"


class RunStatus(StrEnum):
    """Where a run is in its life. Derived from events, never stored on its own."""

    QUEUED = "queued"
    RUNNING = "running"
    MERGED = "merged"
    STAGED = "staged"
    AWAITING_REVIEW = "awaiting_review"
    REJECTED = "rejected"
    HALTED = "halted"
    FAILED = "failed"
    NOOP = "noop"
    ROLLING_OUT = "rolling_out"
    """Merged, and being rolled out in stages while its health is watched."""
    ROLLED_BACK = "rolled_back"
    """Merged, then reverted because its health breached the threshold."""
    ROLLOUT_STOPPED = "rollout_stopped"
    """Merged, and its rollout stopped (health unreadable or a deploy failed): waits for a person."""

    @property
    def finished(self) -> bool:
        return self not in (
            RunStatus.QUEUED,
            RunStatus.RUNNING,
            RunStatus.AWAITING_REVIEW,
            RunStatus.ROLLING_OUT,
            RunStatus.ROLLOUT_STOPPED,
        )


@dataclass(frozen=True, kw_only=True)
class FileChange:
    """One file touched by a change, with its line counts from git."""

    path: str
    added: int = 0
    deleted: int = 0
    status: str = "M"  # git's letter: A added, M modified, D deleted, R renamed
    old_path: str | None = None
    binary: bool = False


@dataclass(frozen=True, kw_only=True)
class DiffFacts:
    """What a change touches, measured by git between the base and the change commit."""

    files: tuple[FileChange, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path the change touches, including the old name of a renamed file."""
        names: list[str] = []
        for f in self.files:
            names.append(f.path)
            if f.old_path and f.old_path != f.path:
                names.append(f.old_path)
        return tuple(names)

    @property
    def files_changed(self) -> int:
        return len(self.files)

    @property
    def lines_added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def lines_deleted(self) -> int:
        return sum(f.deleted for f in self.files)

    @property
    def lines_changed(self) -> int:
        return self.lines_added + self.lines_deleted


@dataclass(frozen=True, kw_only=True)
class ChangedFile:
    """One file of a change with its text before and after (``None``: absent, binary or too large)."""

    path: str
    status: str = "M"
    before: str | None = None
    after: str | None = None
    old_path: str | None = None


@dataclass(frozen=True, kw_only=True)
class TestCase:
    """One test's outcome as the harness measured it (from JUnit XML)."""

    __test__ = False  # not a pytest class

    id: str
    outcome: str  # passed | failed | error | skipped | xfailed
    message: str = ""
    traceback: str = ""
    """The end of a failing test's traceback, trimmed (empty for tests that did not fail)."""


@dataclass(frozen=True, kw_only=True)
class TestReport:
    """The harness's measurement of one test run on one tree."""

    __test__ = False

    cases: tuple[TestCase, ...] = ()
    coverage_percent: float | None = None
    coverage_files: tuple[Any, ...] = ()
    """Per-file line coverage (``shipyard.gates.coverage.FileCoverage``) of the measured tree."""
    exit_code: int = 0
    duration_seconds: float = 0.0
    output_tail: str = ""
    install_failed: bool = False
    timed_out: bool = False

    def ids_with(self, *outcomes: str) -> tuple[str, ...]:
        return tuple(c.id for c in self.cases if c.outcome in outcomes)

    @property
    def passed(self) -> tuple[str, ...]:
        return self.ids_with("passed")

    @property
    def failed(self) -> tuple[str, ...]:
        return self.ids_with("failed", "error")


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One problem a gate found at a place in the tree (a lint error, a type error, a removed test)."""

    tool: str
    """What found it: ``ruff``, ``mypy``, ``bandit``, ``semgrep``, ``integrity``..."""
    code: str
    """The tool's rule id, e.g. ``F401``, ``arg-type``, ``B602``, ``deleted-test``."""
    path: str
    line: int | None
    message: str
    snippet: str = ""
    """The offending source line(s), stripped; also what tells one finding from another across commits."""

    def render(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.tool} {self.code} {self.message}".rstrip()


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """What one gate measured. ``facts`` are plain values the policy reads; ``passed`` is the gate's verdict.

    ``details`` are the lines a person reads first (failing tests with trimmed tracebacks, findings
    with file:line, the conflict chain); ``skipped`` says the gate does not apply to this repository
    (no mypy configuration, no benchmarks), which is not a pass.
    """

    gate: str
    passed: bool
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)
    duration_seconds: float = 0.0
    details: tuple[str, ...] = ()
    skipped: bool = False

    @property
    def status(self) -> str:
        """``skipped``, ``passed`` or ``failed``."""
        return "skipped" if self.skipped else ("passed" if self.passed else "failed")


@dataclass(frozen=True, kw_only=True)
class ChangeFacts:
    """Everything the policy may look at. Built by the harness, never by an agent."""

    change_type: ChangeType
    diff: DiffFacts
    pass_rate: float | None = None
    static_errors: int = 0
    coverage_percent: float | None = None
    coverage_delta: float | None = None
    failing_tests: tuple[str, ...] = ()
    gates_ran: bool = True
    declared_type: ChangeType | None = None
    """The type the task claimed, when classification replaced it with ``change_type``."""
    type_note: str = ""
    """How ``change_type`` was chosen from the declared and observed types."""
    type_evidence: tuple[str, ...] = ()
    """What the classifier saw in the change, one finding per line."""
    diff_coverage: float | None = None
    """Share (percent) of the change's added executable lines that the tests ran; None if unmeasured."""
    integrity_findings: tuple[str, ...] = ()
    """Ways the change weakens the tests (deleted tests, new skips, removed assertions...)."""
    performance_regressions: tuple[str, ...] = ()
    """Benchmarks slower than the baseline by more than the configured threshold, confirmed twice."""
    dependency_conflicts: tuple[str, ...] = ()
    """Dependency conflicts of the changed tree, each a chain in words."""
    flaky_tests: tuple[str, ...] = ()
    """Tests that both failed and passed on the same tree; they never count as passing."""


@dataclass(frozen=True, kw_only=True)
class Reason:
    """One rule that fired: which rule, the action it asks for, and why in words."""

    rule: str
    action: Action
    message: str


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The policy's verdict: the most conservative action among the reasons, and the inputs it used."""

    action: Action
    reasons: tuple[Reason, ...]
    inputs: dict[str, Any] = field(default_factory=dict)
    policy: str = "seed"


@dataclass(frozen=True, kw_only=True)
class Task:
    """What to do: a blueprint, the repository it works on, its parameters and where it came from."""

    blueprint: str
    repo: str
    params: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    source: str = "cli"
    requested_by: str = "local"
