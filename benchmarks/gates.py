"""The full gate run on the bundled example against plain ``pytest --cov``, measured in the same run.

Per repetition, interleaved so that every timing sees the same machine state:

- ``plain_cold``: what a CI job does from a clean checkout: a new virtual environment, ``pip
  install`` of the example's requirements and pytest-cov (pip's HTTP cache warm), then
  ``pytest --cov``;
- ``plain_warm``: ``pytest --cov`` alone in that installed environment, the least a check can cost;
- ``verify_cold``: ``Harness.verify`` of a one-line change with an empty shipyard cache and an empty
  environment pool (pip's HTTP cache warm): both trees exported, resolved, installed and put
  through every gate (tests under coverage, static analysis, dependency resolution, integrity,
  coverage and diff coverage);
- ``verify_new_base``: the same with the environment pool and wheelhouses warm but no
  measurement cached, the usual case after each merge moved the base;
- ``change_only``: ``Harness.measure`` of the change's tree alone in that warm state;
- ``verify_cached``: ``Harness.verify`` of another change on a base measured before.

The goals: ``verify_cold`` at most 1.1x ``plain_cold``; on a baseline cache hit the baseline costs
next to nothing, so ``verify_cached`` is close to ``change_only``.

    .venv/bin/python benchmarks/gates.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from scenario import _git, build_index, make_repo  # noqa: E402
from shipyard.config import GatesConfig, load_config  # noqa: E402
from shipyard.deps.localindex import serve  # noqa: E402
from shipyard.gates.base import ChangeView  # noqa: E402
from shipyard.gates.harness import Harness  # noqa: E402
from shipyard.sandbox import BwrapSandbox  # noqa: E402
from shipyard.sandbox.pool import EnvPool  # noqa: E402
from shipyard.workspace import Workspace, changed_files  # noqa: E402

TIMINGS = (
    "plain_cold", "plain_warm", "verify_cold", "verify_new_base", "change_only", "verify_cached",
)  # fmt: skip


def change(repo: Path, n: int) -> tuple[str, str]:
    """Commit a one-line change to the example's source; the base and the new commit."""
    base = _git("rev-parse", "HEAD", cwd=repo)
    target = repo / "src" / "inventory" / "__init__.py"
    target.write_text(target.read_text() + f"\nBENCHMARK_MARK = {n}\n")
    _git("commit", "-qam", f"change {n}", cwd=repo)
    return base, _git("rev-parse", "HEAD", cwd=repo)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


class Bench:
    def __init__(self, work: Path, repo: Path, config: GatesConfig, index_url: str) -> None:
        self.work, self.repo, self.config, self.index_url = work, repo, config, index_url
        self.pip_cache = work / "pip-cache"
        self.runs = 0

    def plain_cold(self, venv: Path) -> float:
        pip = [str(venv / "bin" / "pip"), "install", "-q", "--index-url", self.index_url,
               "--cache-dir", str(self.pip_cache), "--trusted-host", "127.0.0.1"]  # fmt: skip
        reqs = ["-r", str(self.repo / "requirements.txt")]
        reqs += ["-r", str(self.repo / "requirements-dev.txt"), "pytest-cov"]

        def run() -> None:
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([*pip, *reqs], check=True, capture_output=True)
            self.plain_warm(venv, timing=False)

        return timed(run)

    def plain_warm(self, venv: Path, *, timing: bool = True) -> float:
        argv = [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        return timed(
            lambda: subprocess.run(
                [*argv, "--cov=src", "tests"], cwd=self.repo, capture_output=True, check=True
            )
        )

    def harness(self, cache: Path, pool: EnvPool) -> Harness:
        return Harness(
            sandbox=BwrapSandbox(), config=self.config, index_url=self.index_url,
            cache_dir=cache, pool=pool,
        )  # fmt: skip

    def verify(self, harness: Harness, base: str, head: str) -> float:
        self.runs += 1
        workspace = Workspace.create(
            self.repo, base_ref="HEAD", run_id=f"bench{self.runs}", root=self.work / "ws"
        )
        view = ChangeView.of(
            changed_files(workspace.path, base, head, workspace.diff_facts(base, head))
        )
        scratch = self.work / f"run-{self.runs}"
        return timed(lambda: harness.verify(workspace.path, base, head, scratch=scratch, view=view))

    def measure(self, harness: Harness, head: str) -> float:
        self.runs += 1
        scratch = self.work / f"run-{self.runs}"
        return timed(lambda: harness.measure(self.repo, head, scratch=scratch, phase="change"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    index_dir = build_index(ROOT / "build" / "example-index")
    rows: dict[str, list[float]] = {name: [] for name in TIMINGS}
    with (
        tempfile.TemporaryDirectory(prefix="shipyard-bench-gates-") as tmp,
        serve(index_dir) as index,
    ):
        work = Path(tmp)
        repo = make_repo(work / "repo")
        bench = Bench(work, repo, load_config(repo).config.gates, index.url)
        warm_pool = EnvPool(work / "warm-pool")
        warm_cache = work / "warm-cache"
        for n in range(args.repeat + 1):
            row = {"plain_cold": bench.plain_cold(work / "plain-venv")}
            row["plain_warm"] = bench.plain_warm(work / "plain-venv")
            base, head = change(repo, n)
            cold = bench.harness(work / f"cold-cache-{n}", EnvPool(work / f"cold-pool-{n}"))
            row["verify_cold"] = bench.verify(cold, base, head)
            # Warm pool and wheelhouses, nothing measured: a fresh measurement cache per timing.
            bench.verify(bench.harness(warm_cache, warm_pool), base, head)  # warms them
            shutil.rmtree(warm_cache / "measurements", ignore_errors=True)
            row["verify_new_base"] = bench.verify(bench.harness(warm_cache, warm_pool), base, head)
            shutil.rmtree(warm_cache / "measurements", ignore_errors=True)
            row["change_only"] = bench.measure(bench.harness(warm_cache, warm_pool), head)
            # The base of the next change is ``head``, measured just now: a baseline cache hit.
            base2, head2 = change(repo, 1000 + n)
            row["verify_cached"] = bench.verify(bench.harness(warm_cache, warm_pool), base2, head2)
            if n == 0:
                continue  # the first round warms pip's cache and the file system
            for name, seconds in row.items():
                rows[name].append(seconds)
    summary: dict[str, float] = {name: statistics.median(v) for name, v in rows.items()}
    summary["cold_ratio"] = summary["verify_cold"] / summary["plain_cold"]
    summary["baseline_on_hit"] = summary["verify_cached"] - summary["change_only"]
    if args.json:
        print(json.dumps({"repeat": args.repeat, "median": summary, "rows": rows}, indent=2))
        return
    for name, value in summary.items():
        unit = "x" if name.endswith("ratio") else " s"
        print(f"{name:>16}: {value:.3f}{unit}")


if __name__ == "__main__":
    main()
