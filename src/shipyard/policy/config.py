"""The policy's configuration: thresholds, type routing, path rules and limits, validated once.

Values come from a preset (``presets.py``) merged with the ``[policy]`` table of a repository's
shipyard.toml; unknown keys are errors so that a typo never silently weakens a rule.
"""

from __future__ import annotations

from typing import Annotated

from pathspec import GitIgnoreSpec
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from shipyard.model import Action, ChangeType


def _check_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Reject patterns that gitignore would reject or silently read as matching nothing."""
    for pattern in patterns:
        try:
            spec = GitIgnoreSpec.from_lines([pattern])
        except ValueError as exc:
            raise ValueError(f"{pattern!r} is not a valid gitignore-style pattern") from exc
        if not any(p.include is not None for p in spec.patterns):
            # Blank lines, '#' comments and a bare '/' are no-ops in gitignore; as a rule they would
            # look like protection while protecting nothing.
            raise ValueError(f"{pattern!r} matches nothing (blank, a '#' comment, or a bare '/')")
    return patterns


Patterns = Annotated[tuple[str, ...], AfterValidator(_check_patterns)]


def _action_name(value: object) -> object:
    """Accept ``"merge"`` as well as ``"MERGE"``: TOML writers tend to lowercase values."""
    return value.upper() if isinstance(value, str) else value


class _Rules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class QualityRules(_Rules):
    """Thresholds on what the harness measured. Crossing a HALT threshold stops the run."""

    min_pass_rate: float = Field(default=0.95, ge=0.0, le=1.0)
    """Lowest share of tests that must pass (0-1); below it the change halts."""
    max_static_errors: int = Field(default=0, ge=0)
    """Most static-analysis errors allowed; above it the change halts."""
    min_coverage_delta: float = Field(default=-2.0, ge=-100.0, le=100.0)
    """Lowest change in line coverage against the baseline, in percentage points; below it, halt."""
    min_coverage_for_merge: float = Field(default=85.0, ge=0.0, le=100.0)
    """Lowest line coverage (percent) for an automatic merge; below it a MERGE becomes REVIEW."""
    max_integrity_findings: int = Field(default=0, ge=0)
    """Most test-integrity findings (deleted tests, new skips, removed assertions...); above it, halt."""
    halt_on_performance_regression: bool = True
    """Halt when a benchmark is confirmed slower than its baseline by more than the gate's threshold."""
    halt_on_dependency_conflict: bool = True
    """Halt when the changed tree's dependencies conflict or the installed set fails ``pip check``."""
    min_diff_coverage: float | None = Field(default=None, ge=0.0, le=100.0)
    """Lowest share (percent) of added executable lines the tests must run for an automatic merge;
    below it a MERGE becomes REVIEW. Unset: not checked."""
    flaky_action: Action = Action.REVIEW
    """What a change whose verification saw a flaky test gets at least (flaky tests never pass)."""

    @field_validator("flaky_action", mode="before")
    @classmethod
    def _upper_flaky(cls, value: object) -> object:
        return _action_name(value)


class RoutingRules(_Rules):
    """Which action each change type asks for before any other rule restricts it."""

    types: dict[ChangeType, Action] = Field(default_factory=dict)
    """Change type to action, e.g. ``feature = "REVIEW"``. Types not listed get ``default``."""
    merge_max_files: int = Field(default=10, ge=0)
    """Most files a change routed to MERGE may touch; more turns it into REVIEW."""
    default: Action = Action.REVIEW
    """Action for change types missing from ``types``."""

    @field_validator("types", mode="before")
    @classmethod
    def _upper_actions(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: _action_name(v) for k, v in value.items()}
        return value

    @field_validator("default", mode="before")
    @classmethod
    def _upper_default(cls, value: object) -> object:
        return _action_name(value)

    def route(self, change_type: ChangeType) -> Action:
        return self.types.get(change_type, self.default)


class PathsRules(_Rules):
    """Gitignore-style patterns over the paths a change touches (see ``guardrails.py``)."""

    forbidden: Patterns = ()
    """A change touching any of these halts, whatever else is true."""
    review: Patterns = ()
    """A change touching any of these needs a person's review."""
    automerge_allowlist: Patterns = ()
    """Only these may change without review; any file outside them asks for REVIEW.

    An empty list allows nothing; use ``["**"]`` to let every path through this rule."""


class LimitRules(_Rules):
    """Size limits above which a change needs a person's review."""

    review_max_files: int = Field(default=15, ge=0)
    """Most files a change may touch without review."""
    review_max_lines: int = Field(default=500, ge=0)
    """Most changed lines (added plus deleted) without review."""


class PostMergeRules(_Rules):
    """What the post-merge monitor treats as a regression; kept here with the rest of the policy."""

    rollback_error_rate_points: float = Field(default=1.0, gt=0.0, le=100.0)
    """Revert when the error rate exceeds the baseline by more than this many percentage points."""


class PolicyConfig(_Rules):
    """A complete policy: everything ``decide()`` reads besides the change facts.

    Build one with ``load_policy()``. Its defaults alone list no paths and route every change type
    to REVIEW, so an incomplete policy never merges anything.
    """

    name: str = Field(default="seed", min_length=1)
    """The preset this policy came from; recorded on every decision."""
    quality: QualityRules = Field(default_factory=QualityRules)
    """Thresholds on the measured test, static-analysis and coverage results."""
    routing: RoutingRules = Field(default_factory=RoutingRules)
    """The action each change type starts from."""
    paths: PathsRules = Field(default_factory=PathsRules)
    """Forbidden, review and auto-merge path patterns."""
    limits: LimitRules = Field(default_factory=LimitRules)
    """Change size above which review is required."""
    staging_branch: str = Field(default="staging", min_length=1)
    """Branch that STAGING_ONLY decisions land on."""
    post_merge: PostMergeRules = Field(default_factory=PostMergeRules)
    """Rollback threshold for the post-merge monitor."""
