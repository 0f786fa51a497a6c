"""The repository's ``shipyard.toml`` (or ``[tool.shipyard]`` in pyproject.toml) and host settings.

Configuration is validated once, here; every mistake becomes a ConfigError naming the file and field.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from shipyard.deps.rules import DepsConfig
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
    services: list[Literal["postgresql", "redis"]] = Field(default_factory=list)
    """Throwaway servers started inside the sandbox for the tests (URLs in DATABASE_URL, REDIS_URL)."""


class StaticGateConfig(_Section):
    """Static and security analysis. Only findings the change introduces count against it."""

    enabled: bool = True
    """Run the static-analysis gate at all."""
    paths: list[str] = Field(default_factory=lambda: ["."])
    """What ruff and bandit look at, relative to the repository root."""
    ruff: bool = True
    """Lint with ruff, using the repository's own ruff configuration when it has one."""
    mypy: Literal["auto", "on", "off"] = "auto"
    """Type-check with mypy: ``auto`` runs it when the repository configures mypy."""
    bandit: bool = True
    """Look for security problems with bandit."""
    bandit_severity: Literal["low", "medium", "high"] = "medium"
    """Lowest bandit severity that counts as a finding."""
    semgrep: Literal["auto", "off"] = "auto"
    """Run semgrep with the repository's local rules when semgrep is installed and rules exist."""
    semgrep_rules: list[str] = Field(default_factory=lambda: [".semgrep.yml", ".semgrep"])
    """Local rule files or directories for semgrep (no rules are fetched from the network)."""
    timeout_seconds: int = Field(default=300, gt=0, le=6 * 3600)
    """Wall-time limit for each tool."""


class ResolutionGateConfig(_Section):
    """Dependency resolution: ``pip check`` of the installed environment and a dry-run resolution."""

    enabled: bool = True
    """Run the dependency-resolution gate."""


class PerformanceGateConfig(_Section):
    """pytest-benchmark tests, run on the baseline and the change in one gate run and compared."""

    enabled: Literal["auto", "off"] = "auto"
    """``auto`` runs the gate when the repository has pytest-benchmark tests."""
    threshold_percent: float = Field(default=15.0, gt=0, le=1000)
    """A benchmark slower than its baseline by more than this (in percent) is a regression."""
    statistic: Literal["min", "median"] = "min"
    """Which statistic of the rounds is compared: the minimum is the least sensitive to noise."""
    min_rounds: int = Field(default=5, ge=1, le=1000)
    """Fewest rounds pytest-benchmark runs per benchmark."""
    paths: list[str] = Field(default_factory=list)
    """Where the benchmarks are; empty means the test paths."""
    timeout_seconds: int = Field(default=600, gt=0, le=6 * 3600)
    """Wall-time limit for one benchmark run."""


class IntegrityGateConfig(_Section):
    """Test integrity: changes that make tests stop testing."""

    enabled: bool = True
    """Check the diff for deleted tests, new skips, removed assertions and disabled test runs."""
    ci_paths: list[str] = Field(
        default_factory=lambda: [
            ".github/workflows/**",
            ".gitlab-ci.yml",
            ".circleci/**",
            "tox.ini",
            "noxfile.py",
            "pytest.ini",
            "setup.cfg",
            ".coveragerc",
            "pyproject.toml",
            "Makefile",
        ]
    )
    """Files whose edits can stop tests from running; each edit is inspected."""


class FlakyGateConfig(_Section):
    """Re-runs of failing tests, to tell flaky tests from broken ones."""

    reruns: int = Field(default=3, ge=0, le=20)
    """Times a failing test is re-run in isolation; 0 turns re-runs off."""
    max_tests: int = Field(default=20, ge=0, le=1000)
    """Most failing tests re-run per measurement; the rest stay failed."""


class GatesConfig(_Section):
    """The gates the harness runs on every change."""

    tests: TestGateConfig = Field(default_factory=TestGateConfig)
    static: StaticGateConfig = Field(default_factory=StaticGateConfig)
    resolution: ResolutionGateConfig = Field(default_factory=ResolutionGateConfig)
    performance: PerformanceGateConfig = Field(default_factory=PerformanceGateConfig)
    integrity: IntegrityGateConfig = Field(default_factory=IntegrityGateConfig)
    flaky: FlakyGateConfig = Field(default_factory=FlakyGateConfig)
    parallel: int = Field(default=2, ge=1, le=32)
    """Gates run at once on one tree."""
    cache: bool = True
    """Reuse a tree's gate results measured with the same configuration, and resolved wheelhouses."""


class RepoConfig(_Section):
    """Where changes are delivered."""

    target_branch: str | None = None
    """Branch that MERGE decisions land on; defaults to the branch checked out when the run starts."""


class ReviewConfig(_Section):
    """Who may approve what waits for review."""

    allow_self_approval: bool = False
    """Let the identity that requested a run approve it too (for repositories with one maintainer)."""


class HealthConfig(_Section):
    """Where the rollout reads the health signal: one number, an error rate in percent by default."""

    prometheus_url: str | None = None
    """Base URL of a Prometheus HTTP API, for example ``http://127.0.0.1:9090``."""
    query: str | None = None
    """PromQL expression evaluated to one number (aggregate several series with sum() or avg())."""
    command: list[str] | None = None
    """Or a command (argv, run on the host from the repository root) that prints one number."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How long one reading may take; longer is a failed reading."""

    @model_validator(mode="after")
    def _one_source(self) -> HealthConfig:
        prometheus = self.prometheus_url is not None or self.query is not None
        if prometheus and self.command:
            raise ValueError("set either prometheus_url and query, or command, not both")
        if prometheus and not (self.prometheus_url and self.query):
            raise ValueError("a Prometheus source needs both prometheus_url and query")
        if self.command is not None and not self.command:
            raise ValueError("command is empty; give the program and its arguments as a list")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.command) or bool(self.prometheus_url and self.query)


class DeployConfig(_Section):
    """The deploy hook each rollout stage calls (see docs/rollout.md for the contract)."""

    command: list[str] | None = None
    """A command (argv, run on the host from the repository root) told the stage in SHIPYARD_* variables."""
    webhook: str | None = None
    """Or a URL that receives each stage as a signed JSON POST."""
    secret_env: str = "SHIPYARD_DEPLOY_SECRET"
    """Host environment variable holding the webhook's HMAC key (never written in the file)."""
    timeout_seconds: float = Field(default=300.0, gt=0, le=6 * 3600)
    """How long one call may take; longer is a failed deploy."""

    @model_validator(mode="after")
    def _one_hook(self) -> DeployConfig:
        if self.command and self.webhook:
            raise ValueError("set either command or webhook, not both")
        if self.command is not None and not self.command:
            raise ValueError("command is empty; give the program and its arguments as a list")
        return self


class RolloutConfig(_Section):
    """Staged rollout after a merge, watched by a health signal, reverted when it degrades."""

    enabled: bool = False
    """Watch and roll out every change shipyard merges into the target branch."""
    stages: list[float] = Field(default_factory=lambda: [5.0, 25.0, 100.0])
    """Shares of traffic (percent, rising, ending at 100) the deploy hook is called with in turn."""
    stage_seconds: float = Field(default=600.0, ge=0, le=7 * 86400)
    """How long each stage is held, healthy, before the next one starts."""
    watch_seconds: float = Field(default=86400.0, gt=0, le=30 * 86400)
    """The watch window, from the merge: a breach within it reverts the change."""
    baseline_seconds: float = Field(default=3600.0, gt=0, le=30 * 86400)
    """The window before the merge whose average health is the baseline."""
    check_interval_seconds: float = Field(default=60.0, gt=0, le=86400)
    """Time between two health readings."""
    threshold_points: float | None = Field(default=None, ge=0, le=100)
    """A reading above baseline + this many (percentage) points is a breach. Unset: the policy's
    ``post_merge.rollback_error_rate_points`` (1 point under the seed preset)."""
    consecutive_breaches: int = Field(default=1, ge=1, le=100)
    """Breaching readings in a row that revert the change (1: the first one does)."""
    notify_webhook: str | None = None
    """URL told of every rollback (signed like the deploy webhook)."""
    health: HealthConfig = Field(default_factory=HealthConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)

    @model_validator(mode="after")
    def _coherent(self) -> RolloutConfig:
        if not self.enabled:
            return self
        if not self.health.configured:
            raise ValueError(
                "an enabled rollout needs a health source: set [rollout.health] prometheus_url "
                "and query, or command"
            )
        stages = self.stages
        if not stages or any(not 0 < s <= 100 for s in stages):
            raise ValueError(
                "stages must be percentages above 0 and at most 100, e.g. [5, 25, 100]"
            )
        if any(b <= a for a, b in pairwise(stages)) or stages[-1] != 100:
            raise ValueError("stages must rise and end at 100, e.g. [5, 25, 100]")
        return self


class PriceConfig(_Section):
    """What a model costs, in US dollars per million tokens."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    cached_input_per_million: float | None = Field(default=None, ge=0)
    """Cached input, when the provider reports it; the input price otherwise."""


McpServerName = Annotated[
    str, StringConstraints(max_length=32, pattern=r"^[A-Za-z0-9]+([_-][A-Za-z0-9]+)*$")
]
"""A server's name: letters and digits, single ``-`` or ``_`` between (its tools are ``<name>__<tool>``)."""
MCP_CAPABILITIES = ("read", "write", "execute")
"""What an MCP server's tools may be declared to do (``network`` is refused: no egress for them yet)."""


class McpServerConfig(_Section):
    """An MCP server whose tools the agent may use; it runs inside the run's sandbox, over stdio.

    The server runs while the agent works, with no network, the workspace mounted (read-only unless
    ``capabilities`` has ``write``) and shipyard's own environment at ``/opt/shipyard/tools`` (its
    ``bin/python`` has the ``mcp`` package). Its tools are named ``<server>__<tool>`` and are granted
    only to blueprints whose own tools already have every capability listed here.
    """

    command: list[str] = Field(min_length=1)
    """The server's argv inside the sandbox, e.g. ``["/opt/shipyard/tools/bin/python", "-m", "x"]``
    or ``["/workspace/tools/mcp_server"]``."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra variables for the server, taken literally (they are recorded: never put secrets here)."""
    capabilities: list[str]
    """What its tools do, from ``read``, ``write``, ``execute``."""
    tools: list[str] | None = None
    """The server's tools to offer, by its own names; unset offers them all."""
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    """How long one tool call may take."""
    startup_seconds: float = Field(default=20.0, gt=0, le=600)
    """How long the server may take to start and list its tools."""

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: list[str]) -> list[str]:
        for item in value:
            if item == "network":
                raise ValueError(
                    "'network' is not available to MCP servers: they run without network, and "
                    "egress for them is not supported yet; remove it"
                )
            if item not in MCP_CAPABILITIES:
                raise ValueError(f"unknown capability {item!r}; use {', '.join(MCP_CAPABILITIES)}")
        return value


class RetrievalConfig(_Section):
    """Code chunks like the task's text, found by local embeddings, in the agent's first context."""

    mode: Literal["auto", "on", "off"] = "auto"
    """``auto``: on when the embedding model is installed, else off with a notice; ``on``: a run
    fails without the model; ``off``: never."""
    top_k: int = Field(default=8, ge=1, le=50)
    """Chunks retrieved, at most (fewer when the budget or ``min_score`` leaves some out)."""
    max_tokens: int = Field(default=6000, ge=200, le=200_000)
    """Tokens of the gathered context the chunks may take; the context's own share caps it too."""
    min_score: float = Field(default=0.2, ge=-1.0, le=1.0)
    """Least cosine similarity to the task for a chunk to be shown."""
    index_seconds: float = Field(default=45.0, ge=0, le=86_400)
    """Time a run may spend embedding files not indexed yet, most relevant first (files the task
    names, their neighbours, recently changed files); the rest waits for later runs."""


class ExternalAgentConfig(_Section):
    """``[agent.external]``: an external agent CLI run by ``shipyard run agent`` (docs/agents.md)."""

    adapter: str | None = None
    """``mini-swe-agent``, ``aider``, ``claude-code`` or ``codex``; ``--adapter`` overrides it."""
    model: str | None = None
    """The model's name at the endpoint; unset: ``[agent] model`` (or its ``agent`` entry)."""
    endpoint: str | None = None
    """The model endpoint's base URL; unset: ``[agent] base_url``, then the wire's variable."""
    api_key_env: str | None = None
    """Host variable with the endpoint's key; unset: ``[agent] api_key_env``, then the wire's."""
    allow_local: str | None = None
    """``HOST:PORT`` of an endpoint on loopback or a private network that the run's sandbox may
    reach; must be exactly the endpoint's (docs/network.md)."""


class AgentConfig(_Section):
    """The model an agent blueprint uses, and what it may spend."""

    provider: Literal["openai", "anthropic"] = "openai"
    """``openai`` is any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp, OpenRouter)."""
    model: str = "gpt-4.1-mini"
    """The model for every blueprint without its own entry in ``models``."""
    models: dict[str, str] = Field(default_factory=dict)
    """A model per blueprint, e.g. ``{"lint-fix" = "gpt-4.1-nano"}``."""
    base_url: str | None = None
    """The endpoint; unset: ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL``, then the provider's own."""
    api_key_env: str | None = None
    """Host variable with the API key; unset: ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``."""
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    """How long one model call may take."""
    max_retries: int = Field(default=4, ge=0, le=20)
    """Retries of a failed call (rate limits, 5xx, timeouts), with exponential backoff."""
    max_output_tokens: int = Field(default=4096, ge=16, le=200_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_steps: int = Field(default=40, ge=1, le=1000)
    """Model calls per run."""
    max_tokens: int = Field(default=1_000_000, ge=1000)
    """Tokens (input and output, as reported) per run."""
    max_cost_usd: float = Field(default=5.0, ge=0)
    """Money per run, from ``prices``; a model without a price counts as free."""
    max_wall_seconds: float = Field(default=1800.0, gt=0, le=86400)
    """Wall time of the agent's work per run."""
    context_tokens: int = Field(default=128_000, ge=4000)
    """The model's context window."""
    compact_at: float = Field(default=0.8, gt=0.1, lt=1.0)
    """Compact older turns when the context reaches this share of ``context_tokens``."""
    fix_cycles: int = Field(default=2, ge=0, le=2)
    """Rounds of fixing after failing gates (2 at most: DESIGN invariant 6)."""
    lint_passes: int = Field(default=3, ge=0, le=3)
    """Rounds of formatting and linting whose remaining errors go back to the agent."""
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    """Price per model name, for the money budget and the spend shown."""
    mcp: dict[McpServerName, McpServerConfig] = Field(default_factory=dict)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    """``[agent.retrieval]``: code chunks relevant to the task, by local embeddings."""
    """MCP servers by name (``[agent.mcp.<name>]``), their tools offered to the agent."""

    external: ExternalAgentConfig = Field(default_factory=ExternalAgentConfig)
    """``[agent.external]``: the adapter, endpoint and local allowance for external agents."""

    def model_for(self, blueprint: str) -> str:
        return self.models.get(blueprint, self.model)


class ShipyardConfig(_Section):
    """The whole of a repository's shipyard configuration."""

    policy: dict[str, Any] = Field(default_factory=lambda: {"preset": "seed"})
    """``preset`` names the policy preset; everything else overrides parts of it."""
    gates: GatesConfig = Field(default_factory=GatesConfig)
    deps: DepsConfig = Field(default_factory=DepsConfig)
    repo: RepoConfig = Field(default_factory=RepoConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)

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


def load_config_text(text: str, source: Path, *, pyproject: bool) -> LoadedConfig:
    """Validate a configuration read from somewhere other than the working tree (a commit, say)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{source}: not valid TOML ({exc}). Fix the syntax and run again."
        ) from exc
    if not pyproject:
        return _validate(data, source, prefix="")
    table = data.get("tool", {}).get("shipyard")
    if not isinstance(table, dict):
        return LoadedConfig(config=ShipyardConfig(), source=None, raw={})
    return _validate(table, source, prefix="tool.shipyard.")


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
