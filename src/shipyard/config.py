"""The repository's ``shipyard.toml`` (or ``[tool.shipyard]`` in pyproject.toml) and host settings.

Configuration is validated once, here; every mistake becomes a ConfigError naming the file and field.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shipyard.errors import ConfigError, format_validation_error

CONFIG_FILE = "shipyard.toml"
DEFAULT_INDEX = "https://pypi.org/simple/"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TestGateConfig(_Section):
    """How the harness runs the repository's tests."""

    __test__ = False

    paths: list[str] = Field(default_factory=lambda: ["tests"])
    """Test paths passed to pytest, relative to the repository root."""
    requirements: list[str] = Field(
        default_factory=lambda: ["requirements.txt", "requirements-dev.txt"]
    )
    """Requirement files installed into the sandbox before the tests run; missing files are skipped."""
    extra_requirements: list[str] = Field(default_factory=lambda: ["pytest", "coverage"])
    """Requirements added when the files do not already name them (the harness needs both)."""
    pytest_args: list[str] = Field(default_factory=list)
    """Extra arguments for pytest, for example ["-p", "no:cacheprovider"]."""
    coverage_source: list[str] = Field(default_factory=lambda: ["src"])
    """Directories measured by coverage."""
    timeout_seconds: int = Field(default=600, gt=0, le=6 * 3600)
    """Wall-time limit for one test run; the whole process tree is killed when it passes."""
    memory_mb: int = Field(default=4096, ge=64)
    """Address-space limit for the test run, in MiB."""


class GatesConfig(_Section):
    """The gates the harness runs on every change."""

    tests: TestGateConfig = Field(default_factory=TestGateConfig)


class DepsConfig(_Section):
    """The dependency-update blueprint."""

    files: list[str] = Field(default_factory=lambda: ["requirements.txt"])
    """Requirement files whose ``name==version`` pins are kept up to date."""
    index_url: str | None = None
    """Package index (PEP 503/691 simple API). Overridden by ``--index-url``."""
    update_types: list[str] = Field(default_factory=lambda: ["patch", "minor", "major"])
    """Which kinds of update to propose."""
    ignore: list[str] = Field(default_factory=list)
    """Package names never updated."""


class RepoConfig(_Section):
    """Where changes are delivered."""

    target_branch: str | None = None
    """Branch that MERGE decisions land on; defaults to the branch checked out when the run starts."""


class ReviewConfig(_Section):
    """Who may approve what waits for review."""

    allow_self_approval: bool = False
    """Let the identity that requested a run approve it too (for repositories with one maintainer)."""


class ShipyardConfig(_Section):
    """The whole of a repository's shipyard configuration."""

    policy: dict[str, Any] = Field(default_factory=lambda: {"preset": "seed"})
    """``preset`` names the policy preset; everything else overrides parts of it."""
    gates: GatesConfig = Field(default_factory=GatesConfig)
    deps: DepsConfig = Field(default_factory=DepsConfig)
    repo: RepoConfig = Field(default_factory=RepoConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)

    @property
    def preset(self) -> str:
        return str(self.policy.get("preset", "seed"))

    @property
    def policy_overrides(self) -> dict[str, Any]:
        return {k: v for k, v in self.policy.items() if k != "preset"}


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and the file it came from (None when defaults were used)."""

    config: ShipyardConfig
    source: Path | None
    raw: dict[str, Any]

    @property
    def source_name(self) -> str:
        return str(self.source) if self.source else "built-in defaults"


def load_config(repo: Path) -> LoadedConfig:
    """Read ``shipyard.toml`` or ``[tool.shipyard]`` from a repository root; defaults when neither exists."""
    toml_path = repo / CONFIG_FILE
    if toml_path.is_file():
        return _validate(_read_toml(toml_path), toml_path, prefix="")
    pyproject = repo / "pyproject.toml"
    if pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("shipyard")
        if isinstance(table, dict):
            return _validate(table, pyproject, prefix="tool.shipyard.")
    return LoadedConfig(config=ShipyardConfig(), source=None, raw={})


def load_config_file(path: Path) -> LoadedConfig:
    """Read one named configuration file: a shipyard.toml, or a pyproject.toml's [tool.shipyard]."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file; check the path.")
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("shipyard", {})
        return _validate(table if isinstance(table, dict) else {}, path, prefix="tool.shipyard.")
    return _validate(data, path, prefix="")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}). Fix the syntax and run again.") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from exc


def _validate(data: dict[str, Any], path: Path, *, prefix: str) -> LoadedConfig:
    try:
        config = ShipyardConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path, prefix=prefix)) from exc
    return LoadedConfig(config=config, source=path, raw=data)


def shipyard_home() -> Path:
    """Where shipyard keeps its store, workspaces and caches: ``$SHIPYARD_HOME`` or ``./.shipyard``."""
    return Path(os.environ.get("SHIPYARD_HOME") or Path.cwd() / ".shipyard").resolve()
