"""The harness: export commits, fetch their wheels on the host, and run every gate in fresh sandboxes.

``Harness.verify`` measures a base commit and a change commit the same way and turns the two
measurements into verdicts: per-tree gates (tests with coverage, static analysis, dependency
resolution) run in parallel on each tree; the performance gate runs both trees side by side; the
integrity gate reads the diff; failing tests are re-run to tell flaky from broken.

Per-tree results are cached by (tree, environment, gate configuration), so a base commit is measured
once for many runs. Environments come from the warm pool (shipyard.sandbox.pool), keyed by the
dependency set, so the baseline and the change of a run (and later runs) share one install.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from shipyard.config import GatesConfig
from shipyard.errors import DependencyConflict, SandboxError
from shipyard.gates import coverage, flaky, resolution
from shipyard.gates.base import ChangeView, GateContext, TreeGate
from shipyard.gates.environment import (
    environment_key,
    gate_limits,
    install,
    missing_requirements,
    python_env,
    requirement_files,
    sandbox_python,
)
from shipyard.gates.integrity import IntegrityGate
from shipyard.gates.performance import PerformanceGate
from shipyard.gates.static import StaticGate
from shipyard.gates.tests import (
    TestComparison,
    compare,
    gate_result,
    install_failed,
    install_tree,
    run_tests,
    test_limits,
    tests_verdict,
)
from shipyard.gates.wheels import fetch_wheels
from shipyard.gitcmd import git
from shipyard.model import GateResult, TestCase, TestReport
from shipyard.sandbox.base import CommandResult, Limits, Sandbox
from shipyard.sandbox.pool import Checkout, EnvPool, keep_from_env, root_from_env

log = logging.getLogger(__name__)

CACHE_FORMAT = 2
"""Bumped whenever what a cached measurement holds changes, so older entries are not reused."""

Recorder = Callable[[GateResult, str, str, bool], None]
"""Called with (result, phase, commit, cached) as each gate result becomes known."""


def export_tree(repo: Path, commit: str, dest: Path) -> Path:
    """Write the committed tree of ``commit`` into ``dest``: no ``.git``, nothing uncommitted."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="shipyard-archive-") as tmp:
        archive = Path(tmp) / "tree.tar"
        git("archive", "--format=tar", "-o", str(archive), commit, cwd=repo)
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    return dest


@dataclass
class TreeMeasurement:
    """Every per-tree gate's result for one commit."""

    phase: str
    commit: str
    tests: TestReport
    results: dict[str, GateResult] = field(default_factory=dict)
    cached: bool = False
    sandbox_start_seconds: float | None = None
    """How long a fresh sandbox took to start for this tree's gates (not kept in the cache)."""


@dataclass(frozen=True, kw_only=True)
class Verification:
    """The baseline and change measurements, and the verdict of every gate on the change."""

    baseline: TreeMeasurement
    change: TreeMeasurement
    comparison: TestComparison
    verdicts: dict[str, GateResult]

    def verdict_facts(self, name: str) -> dict[str, Any]:
        """A verdict's facts, or nothing when the gate was skipped or did not run."""
        result = self.verdicts.get(name)
        return result.facts if result is not None and not result.skipped else {}


@dataclass
class _Tree:
    """One commit being measured: its exported tree, wheelhouse and (once lent) environment."""

    phase: str
    commit: str
    repo: Path
    ctx: GateContext
    stack: contextlib.ExitStack
    exported: bool = False
    files: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    cache_file: Path | None = None
    download_error: DependencyConflict | None = None
    installed: CommandResult | None = None
    install_seconds: float = 0.0


class Harness:
    """Measures commits of a workspace repository with the configured gates."""

    def __init__(
        self,
        *,
        sandbox: Sandbox,
        config: GatesConfig,
        index_url: str,
        cache_dir: Path,
        pool: EnvPool | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.config = config
        self.index_url = index_url
        self.cache_dir = cache_dir
        self.pool = pool or EnvPool(root_from_env(cache_dir / "envs"), keep=keep_from_env())
        self.environments: list[Checkout] = []
        """What each measurement got from the pool, in order (none for trees that are not pooled)."""
        self.tree_gates: tuple[TreeGate, ...] = (
            StaticGate(),
            resolution.ResolutionGate(),
        )

    # -- one tree -----------------------------------------------------------------------------

    def measure(self, repo: Path, commit: str, *, scratch: Path, phase: str) -> TreeMeasurement:
        """Run every per-tree gate on ``commit`` of ``repo`` (from the cache when measured before)."""
        with contextlib.ExitStack() as stack:
            tree = self._prepare(repo, commit, scratch=scratch, phase=phase, stack=stack)
            return self._measure(tree)

    def _prepare(
        self, repo: Path, commit: str, *, scratch: Path, phase: str, stack: contextlib.ExitStack
    ) -> _Tree:
        """Name the tree and its cache entry; exporting and downloading wait until they are needed."""
        env_dir = scratch / "env"
        ctx = GateContext(
            tree=scratch / "tree",
            scratch=env_dir,
            wheelhouse=scratch / "wheelhouse",
            sandbox=self.sandbox,
            config=self.config,
            phase=phase,
        )
        tree = _Tree(phase=phase, commit=commit, repo=repo, ctx=ctx, stack=stack)
        tree.cache_file = self._cache_file(repo, commit)
        return tree

    def _materialize(self, tree: _Tree) -> None:
        """Export the committed tree and download its wheels on the host (once)."""
        if tree.exported:
            return
        tree.exported = True
        ctx = tree.ctx
        export_tree(tree.repo, tree.commit, ctx.tree)
        ctx.scratch.mkdir(parents=True, exist_ok=True)
        cfg = self.config.tests
        tree.files = requirement_files(ctx.tree, cfg.requirements)
        tree.extra = missing_requirements(ctx.tree, tree.files, cfg.extra_requirements)
        # The reports stay for inspection; environments come from the pool, wheels from the cache.
        tree.stack.callback(shutil.rmtree, ctx.scratch / "venv", ignore_errors=True)
        tree.stack.callback(shutil.rmtree, ctx.wheelhouse, ignore_errors=True)
        try:
            fetch_wheels(
                ctx.tree,
                files=tree.files,
                extra=tree.extra,
                index_url=self.index_url,
                dest=ctx.wheelhouse,
                cache_dir=self.cache_dir,
                reuse=self.config.cache,
            )
        except DependencyConflict as exc:
            tree.download_error = exc

    def _environment(self, tree: _Tree) -> GateContext:
        """Lend (once) the pooled environment for the tree's dependency set and install into it."""
        self._materialize(tree)
        if tree.installed is not None:
            return tree.ctx
        started = time.monotonic()
        if tree.download_error is None:
            tree.stack.enter_context(self._lend(tree))
            tree.installed = install_tree(tree.ctx)
        else:
            tree.installed = CommandResult(
                argv=(), exit_code=1, stdout="", stderr=str(tree.download_error),
                duration_seconds=0.0,
            )  # fmt: skip
        tree.install_seconds = time.monotonic() - started
        if tree.installed.ok:
            env = python_env(scratch=tree.ctx.scratch, wheelhouse=tree.ctx.wheelhouse)
            tree.ctx = replace(tree.ctx, env=env)
        return tree.ctx

    @contextlib.contextmanager
    def _lend(self, tree: _Tree) -> Iterator[None]:
        """Lend the pooled environment for this dependency set at ``scratch/venv`` while gates run.

        When the set cannot be pooled or its build fails, nothing is lent and the tree's install
        builds (and reports the failure of) its own environment.
        """
        ctx = tree.ctx
        python = sandbox_python()
        key = environment_key(
            ctx.tree, files=tree.files, extra=tree.extra, wheelhouse=ctx.wheelhouse, python=python
        )
        if key is None:
            log.info("requirements install from the tree itself: environment not pooled")
            yield
            return

        def build(staging: Path) -> CommandResult:
            env = python_env(scratch=staging, wheelhouse=ctx.wheelhouse)
            return install(
                self.sandbox, tree=ctx.tree, env=env, python=python, files=tree.files,
                extra=tree.extra,
                limits=gate_limits(
                    timeout_seconds=self.config.tests.timeout_seconds,
                    memory_mb=self.config.tests.memory_mb,
                ),
                compile_bytecode=True,
            )  # fmt: skip

        # Another run's build of this key is bounded by the same limits as ours: wait that long.
        with self.pool.checkout(
            key, build=build, target=ctx.scratch / "venv", workdir=ctx.scratch.parent / "layer",
            wait_seconds=2.0 * self.config.tests.timeout_seconds + 60.0,
        ) as checkout:  # fmt: skip
            self.environments.append(checkout)
            yield

    def _measure(self, tree: _Tree, pool: ThreadPoolExecutor | None = None) -> TreeMeasurement:
        cached = self._load(tree.cache_file)
        if cached is not None:
            cached.phase = tree.phase
            return cached
        ctx = self._environment(tree)
        started = self._sandbox_start(ctx)
        assert tree.installed is not None
        if not tree.installed.ok:
            tests = install_failed(tree.installed, seconds=tree.install_seconds)
        gates = [g for g in self.tree_gates if g.applies(ctx)]
        with contextlib.ExitStack() as own:
            if pool is None:
                pool = own.enter_context(ThreadPoolExecutor(self.config.parallel))
            runs: dict[str, Future[Any]] = {g.name: pool.submit(g.measure, ctx) for g in gates}
            if tree.installed.ok:
                runs["tests"] = pool.submit(run_tests, ctx)
            results = {name: future.result() for name, future in runs.items()}
        if tree.download_error is not None:
            results[resolution.NAME] = resolution.from_download_error(
                tree.download_error, tree.phase
            )
        if tree.installed.ok:
            tests = results.pop("tests")
        measurement = TreeMeasurement(
            phase=tree.phase,
            commit=tree.commit,
            tests=tests,
            results=results,
            sandbox_start_seconds=started,
        )
        self._store(tree.cache_file, measurement)
        return measurement

    def _sandbox_start(self, ctx: GateContext) -> float | None:
        """Start one sandbox over the tree that runs ``true``: its start-up, as ``shipyard bench
        sandbox`` measures it, so that the service can export sandbox start latency per run."""
        try:
            probe = self.sandbox.run(
                ["true"], workspace=ctx.tree, limits=Limits(wall_seconds=60.0, cpu_seconds=10)
            )
        except SandboxError as exc:  # the gates will report the sandbox's failure themselves
            log.info("sandbox start not measured: %s", exc)
            return None
        return probe.duration_seconds if probe.ok else None

    # -- a change against its base ------------------------------------------------------------

    def verify(
        self,
        repo: Path,
        base: str,
        head: str,
        *,
        scratch: Path,
        view: ChangeView,
        record: Recorder | None = None,
    ) -> Verification:
        """Measure ``base`` and ``head`` and give every gate's verdict on the change."""
        emit = record or (lambda *_: None)
        with contextlib.ExitStack() as stack, ThreadPoolExecutor(self.config.parallel) as pool:
            trees = {
                phase: self._prepare(
                    repo, commit, scratch=scratch / phase, phase=phase, stack=stack
                )
                for phase, commit in (("baseline", base), ("change", head))
            }
            # Both trees at once: each tree's gates share the pool, so ``parallel`` bounds the work.
            with ThreadPoolExecutor(len(trees)) as outer:
                started = {p: outer.submit(self._measure, t, pool) for p, t in trees.items()}
                measured = {phase: future.result() for phase, future in started.items()}
            for phase, tree in trees.items():
                tests_result = gate_result(measured[phase].tests, phase=phase)
                start = measured[phase].sandbox_start_seconds
                if start is not None:
                    facts = {**tests_result.facts, "sandbox_start_seconds": start}
                    tests_result = replace(tests_result, facts=facts)
                for result in (tests_result, *measured[phase].results.values()):
                    emit(result, phase, tree.commit, measured[phase].cached)
            baseline, change = measured["baseline"], measured["change"]
            verdicts = self._verdicts(baseline, change, view)
            verdicts["flaky"] = self._flaky(trees["change"], change)
            verdicts["performance"] = self._performance(trees, view)
        comparison = compare(baseline.tests, change.tests, allowed_removals=view.allowed_removals)
        verdicts = {"tests": tests_verdict(comparison, change.tests), **verdicts}
        verdicts["integrity"] = IntegrityGate().check(view, self.config)
        verdicts["coverage"] = coverage.verdict(baseline.tests, change.tests, view)
        for name, verdict in verdicts.items():
            emit(replace(verdict, gate=name), "verdict", head, False)
        return Verification(
            baseline=baseline, change=change, comparison=comparison, verdicts=verdicts
        )

    def _verdicts(
        self, baseline: TreeMeasurement, change: TreeMeasurement, view: ChangeView
    ) -> dict[str, GateResult]:
        out: dict[str, GateResult] = {}
        for gate in self.tree_gates:
            before, after = baseline.results.get(gate.name), change.results.get(gate.name)
            if after is None:
                continue
            if before is None:
                before = GateResult(gate=gate.name, passed=True, summary="not measured")
            out[gate.name] = gate.compare(before, after, view)
        return out

    def _flaky(self, tree: _Tree, change: TreeMeasurement) -> GateResult:
        cfg = self.config.flaky
        failing = change.tests.failed
        if not failing or cfg.reruns == 0 or change.tests.install_failed:
            why = "no failing tests" if not failing else "re-runs are off"
            return GateResult(gate="flaky", passed=True, summary=why, skipped=True)
        ctx = self._environment(tree)
        if ctx.env is None:
            return GateResult(gate="flaky", passed=True, summary="not installed", skipped=True)
        report = flaky.rerun(
            ctx,
            failing,
            reruns=cfg.reruns,
            max_tests=cfg.max_tests,
            limits=test_limits(ctx),
            pytest_args=self.config.tests.pytest_args,
        )
        return report.result()

    def _performance(self, trees: dict[str, _Tree], view: ChangeView) -> GateResult:
        gate = PerformanceGate()
        self._materialize(trees["change"])
        if not gate.applies(trees["change"].ctx):
            return GateResult(
                gate=gate.name, passed=True, summary="no pytest-benchmark tests", skipped=True
            )
        baseline, change = (self._environment(trees[p]) for p in ("baseline", "change"))
        if baseline.env is None or change.env is None:
            return GateResult(
                gate=gate.name,
                passed=False,
                summary="benchmarks not run: the requirements could not be installed",
            )
        return gate.run(baseline, change, view)

    # -- the cache ----------------------------------------------------------------------------

    def _cache_file(self, repo: Path, commit: str) -> Path | None:
        """Where the measurement of ``commit``'s tree with this configuration and index is kept.

        Keyed by the tree (not the commit: a rebase that changes nothing measures nothing again),
        the gate configuration, the index and the interpreter. The index is assumed to serve the
        same wheels for the same requirements, which holds for pinned requirements; set
        ``[gates] cache = false`` where it does not.
        """
        if not self.config.cache:
            return None
        tree_id = git("rev-parse", f"{commit}^{{tree}}", cwd=repo).stdout.strip()
        key = json.dumps(
            [
                CACHE_FORMAT,
                tree_id,
                self.index_url,
                self.config.model_dump(mode="json"),
                sandbox_python(),
            ]
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return self.cache_dir / "measurements" / f"{digest}.json"

    def _load(self, path: Path | None) -> TreeMeasurement | None:
        if path is None or not path.is_file():
            return None
        try:
            return _measurement_from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable cached measurement %s: %s", path, exc)
            return None

    def _store(self, path: Path | None, measurement: TreeMeasurement) -> None:
        """Keep sound measurements only: a run that timed out or could not install is measured again."""
        tests = measurement.tests
        if path is None or not tests.cases or tests.install_failed or tests.timed_out:
            return
        if any(r.facts.get("tool_errors") for r in measurement.results.values()):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "commit": measurement.commit,
            "tests": asdict(tests),
            "results": {k: asdict(v) for k, v in measurement.results.items()},
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(path)


def _measurement_from_json(text: str) -> TreeMeasurement:
    data = json.loads(text)
    tests = data["tests"]
    tests["cases"] = tuple(TestCase(**c) for c in tests["cases"])
    tests["coverage_files"] = coverage.files_from_json(tests.get("coverage_files", []))
    results = {
        name: GateResult(**{**r, "details": tuple(r.get("details", ()))})
        for name, r in data["results"].items()
    }
    return TreeMeasurement(
        phase="", commit=data["commit"], tests=TestReport(**tests), results=results, cached=True
    )
