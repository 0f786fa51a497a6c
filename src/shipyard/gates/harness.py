"""The harness: export a commit, fetch its wheels on the host, and measure it in a fresh sandbox.

Baselines are cached per (commit, gate configuration, index) so a batch of runs on one base measures it
once. Environments come from the warm pool (shipyard.sandbox.pool), keyed by the dependency set, so the
baseline and the change of a run (and every later run) with the same requirements share one install.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from shipyard.config import GatesConfig
from shipyard.deps.wheelhouse import download
from shipyard.gates.base import GateContext
from shipyard.gates.environment import (
    environment_key,
    gate_limits,
    install,
    missing_requirements,
    python_env,
    requirement_files,
)
from shipyard.gates.tests import run_tests, sandbox_python
from shipyard.gitcmd import git
from shipyard.model import TestCase, TestReport
from shipyard.sandbox.base import CommandResult, Sandbox
from shipyard.sandbox.pool import Checkout, EnvPool, keep_from_env

log = logging.getLogger(__name__)


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
        self.pool = pool or EnvPool(cache_dir / "envs", keep=keep_from_env())
        self.environments: list[Checkout] = []
        """What each measurement got from the pool, in order (none for trees that are not pooled)."""

    def measure(self, repo: Path, commit: str, *, scratch: Path, phase: str) -> TestReport:
        """Run the tests gate on ``commit`` of ``repo``; baselines come from the cache when present."""
        cached = self._cache_file(commit) if phase == "baseline" else None
        if cached is not None and cached.is_file():
            return _report_from_json(cached.read_text(encoding="utf-8"))
        tree = export_tree(repo, commit, scratch / "tree")
        wheelhouse = scratch / "wheelhouse"
        env_dir = scratch / "env"
        env_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.config.tests
        files = requirement_files(tree, cfg.requirements)
        extra = missing_requirements(tree, files, cfg.extra_requirements)
        download(
            [tree / f for f in files],
            index_url=self.index_url,
            dest=wheelhouse,
            extra_requirements=extra,
            cache_dir=self.cache_dir / "pip",
        )
        ctx = GateContext(
            tree=tree,
            scratch=env_dir,
            wheelhouse=wheelhouse,
            sandbox=self.sandbox,
            config=self.config,
            phase=phase,
        )
        try:
            with self._environment(ctx, files, extra):
                report = run_tests(ctx)
        finally:
            # The reports stay for inspection; environments come from the pool, wheels from the cache.
            shutil.rmtree(env_dir / "venv", ignore_errors=True)
            shutil.rmtree(wheelhouse, ignore_errors=True)
        if cached is not None and report.cases and not report.install_failed:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(asdict(report)), encoding="utf-8")
        return report

    @contextlib.contextmanager
    def _environment(
        self, ctx: GateContext, files: Sequence[str], extra: Sequence[str]
    ) -> Iterator[None]:
        """Lend the pooled environment for this dependency set at ``scratch/venv`` while the gate runs.

        When the set cannot be pooled or its build fails, nothing is lent and the gate installs (and
        reports the failure) itself.
        """
        python = sandbox_python()
        key = environment_key(
            ctx.tree, files=files, extra=extra, wheelhouse=ctx.wheelhouse, python=python
        )
        if key is None:
            log.info("requirements install from the tree itself: environment not pooled")
            yield
            return

        def build(staging: Path) -> CommandResult:
            env = python_env(scratch=staging, wheelhouse=ctx.wheelhouse)
            return install(
                self.sandbox, tree=ctx.tree, env=env, python=python, files=files, extra=extra,
                limits=gate_limits(
                    timeout_seconds=self.config.tests.timeout_seconds,
                    memory_mb=self.config.tests.memory_mb,
                ),
                compile_bytecode=True,
            )  # fmt: skip

        with self.pool.checkout(
            key, build=build, target=ctx.scratch / "venv", workdir=ctx.scratch.parent / "layer"
        ) as checkout:
            self.environments.append(checkout)
            yield

    def _cache_file(self, commit: str) -> Path:
        key = json.dumps([commit, self.config.model_dump(mode="json"), self.index_url])
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self.cache_dir / "baselines" / f"{digest}.json"


def _report_from_json(text: str) -> TestReport:
    data = json.loads(text)
    data["cases"] = tuple(TestCase(**c) for c in data["cases"])
    return TestReport(**data)
