"""The harness: export a commit, fetch its wheels on the host, and measure it in a fresh sandbox.

Baselines are cached per (commit, gate configuration, index) so a batch of runs on one base measures it
once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from dataclasses import asdict
from pathlib import Path

from shipyard.config import GatesConfig
from shipyard.deps.wheelhouse import download
from shipyard.gates.base import GateContext
from shipyard.gates.environment import missing_requirements, requirement_files
from shipyard.gates.tests import run_tests
from shipyard.gitcmd import git
from shipyard.model import TestCase, TestReport
from shipyard.sandbox.base import Sandbox


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
    ) -> None:
        self.sandbox = sandbox
        self.config = config
        self.index_url = index_url
        self.cache_dir = cache_dir

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
        download(
            [tree / f for f in files],
            index_url=self.index_url,
            dest=wheelhouse,
            extra_requirements=missing_requirements(tree, files, cfg.extra_requirements),
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
            report = run_tests(ctx)
        finally:
            # The reports stay for inspection; the environment and wheels are rebuilt from the cache.
            shutil.rmtree(env_dir / "venv", ignore_errors=True)
            shutil.rmtree(wheelhouse, ignore_errors=True)
        if cached is not None and report.cases and not report.install_failed:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(asdict(report)), encoding="utf-8")
        return report

    def _cache_file(self, commit: str) -> Path:
        key = json.dumps([commit, self.config.model_dump(mode="json"), self.index_url])
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self.cache_dir / "baselines" / f"{digest}.json"


def _report_from_json(text: str) -> TestReport:
    data = json.loads(text)
    data["cases"] = tuple(TestCase(**c) for c in data["cases"])
    return TestReport(**data)
