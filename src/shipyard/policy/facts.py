"""Change facts from a JSON file, for ``shipyard policy decide``: the policy without a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shipyard.errors import ConfigError, format_validation_error
from shipyard.model import ChangeFacts, ChangeType, DiffFacts, FileChange


class FileFacts(BaseModel):
    """One changed file: its path and line counts (status and old path optional)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)
    added: int = Field(default=0, ge=0)
    deleted: int = Field(default=0, ge=0)
    status: str = "M"
    old_path: str | None = None


class FactsFile(BaseModel):
    """The facts file's fields. Fields not listed here are ignored (and reported as ignored)."""

    model_config = ConfigDict(extra="allow")

    change_type: ChangeType
    files: list[FileFacts]
    test_pass_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    static_errors: int = Field(default=0, ge=0)
    coverage: float | None = Field(default=None, ge=0.0, le=100.0)
    coverage_delta: float | None = Field(default=None, ge=-100.0, le=100.0)
    failing_tests: list[str] = Field(default_factory=list)
    gates_ran: bool = True
    diff_coverage: float | None = Field(default=None, ge=0.0, le=100.0)
    integrity_findings: list[str] = Field(default_factory=list)
    performance_regressions: list[str] = Field(default_factory=list)
    dependency_conflicts: list[str] = Field(default_factory=list)
    flaky_tests: list[str] = Field(default_factory=list)

    def to_facts(self) -> ChangeFacts:
        return ChangeFacts(
            change_type=self.change_type,
            diff=DiffFacts(files=tuple(FileChange(**f.model_dump()) for f in self.files)),
            pass_rate=self.test_pass_rate,
            static_errors=self.static_errors,
            coverage_percent=self.coverage,
            coverage_delta=self.coverage_delta,
            failing_tests=tuple(self.failing_tests),
            gates_ran=self.gates_ran,
            diff_coverage=self.diff_coverage,
            integrity_findings=tuple(self.integrity_findings),
            performance_regressions=tuple(self.performance_regressions),
            dependency_conflicts=tuple(self.dependency_conflicts),
            flaky_tests=tuple(self.flaky_tests),
        )


def read_facts(path: Path) -> tuple[ChangeFacts, list[str]]:
    """The facts in ``path`` and the names of fields that were ignored."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such facts file; pass a JSON file with --facts.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON facts file ({exc}); see docs/policy.md.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the facts must be a JSON object; see docs/policy.md.")
    try:
        parsed = FactsFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path)) from None
    return parsed.to_facts(), sorted(parsed.model_extra or {})
