"""Sandbox start-up and a ready workspace, measured (`shipyard bench sandbox` runs the same code).

Times, each as p50 and p95 over ``--repeat`` runs, interleaved so both see the same host load:

- ``raw``: ``bwrap --ro-bind / / true``, the floor any bubblewrap sandbox pays;
- ``argv``: bwrap with shipyard's full argument list (namespaces, binds, seccomp), started plainly;
- ``sandbox``: ``BwrapSandbox().run(["true"])``, everything a gate pays per command;
- ``ready``: a workspace with the example's environment available inside: pool key, checkout (a pool
  hit) and a sandboxed ``python -c "import slugkit, moneyfmt, textcols, pytest"``.

The pool's build (its miss) and the host-side wheel download are measured once and reported beside.

    .venv/bin/python benchmarks/sandbox.py [--repeat 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from scenario import build_index, make_repo  # noqa: E402
from shipyard.deps.localindex import serve  # noqa: E402
from shipyard.deps.wheelhouse import download  # noqa: E402
from shipyard.gates.environment import (  # noqa: E402
    environment_key,
    install,
    missing_requirements,
    python_env,
    requirement_files,
)
from shipyard.gates.harness import export_tree  # noqa: E402
from shipyard.gates.tests import sandbox_python  # noqa: E402
from shipyard.sandbox import BwrapSandbox, Limits, seccomp  # noqa: E402
from shipyard.sandbox.bwrap import DEFAULT_ENV, bwrap_path  # noqa: E402
from shipyard.sandbox.pool import Checkout, EnvPool  # noqa: E402

IMPORTS = "import slugkit, moneyfmt, textcols, pytest"
FILES = ["requirements.txt", "requirements-dev.txt"]


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50 and p95 in milliseconds (nearest rank)."""
    ordered = sorted(seconds)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 1)

    return {"p50_ms": rank(0.50), "p95_ms": rank(0.95), "runs": len(ordered)}


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run_plain(argv: list[str], pass_fds: tuple[int, ...] = ()) -> None:
    done = subprocess.run(
        argv, env=dict(DEFAULT_ENV), capture_output=True, timeout=60, check=False,
        pass_fds=pass_fds,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')[:300]}")


def shipyard_argv(sandbox: BwrapSandbox, workspace: Path) -> None:
    fd = seccomp.filter_fd()
    try:
        argv = sandbox.argv(
            ["true"], workspace=workspace, env={}, mounts=(), cwd="/workspace", network=False,
            tmp_bytes=Limits().tmp_bytes, seccomp_fd=fd,
        )  # fmt: skip
        run_plain(argv, pass_fds=(fd,))
    finally:
        os.close(fd)


def start_up(repeat: int, workspace: Path) -> dict[str, Any]:
    sandbox = BwrapSandbox()
    raw = [bwrap_path(), "--ro-bind", "/", "/", "true"]
    samples: dict[str, list[float]] = {"raw": [], "argv": [], "sandbox": []}

    def through_sandbox() -> None:
        result = sandbox.run(["true"], workspace=workspace)
        if not result.ok:
            raise RuntimeError(f"the sandbox could not run true: {result.stderr[:300]}")

    through_sandbox()  # first-run costs (bwrap --help probe, /etc files) are not start-up
    for _ in range(repeat):
        samples["raw"].append(timed(lambda: run_plain(raw)))
        samples["argv"].append(timed(lambda: shipyard_argv(sandbox, workspace)))
        samples["sandbox"].append(timed(through_sandbox))
    out = {name: percentiles(values) for name, values in samples.items()}
    out["ratio_p50"] = round(out["sandbox"]["p50_ms"] / out["raw"]["p50_ms"], 2)
    out["ratio_p95"] = round(out["sandbox"]["p95_ms"] / out["raw"]["p95_ms"], 2)
    return out


def ready_workspace(repeat: int, scratch: Path) -> dict[str, Any]:
    """Pool hits for the example's environment, after one build (the miss)."""
    sandbox = BwrapSandbox()
    tree = export_tree(make_repo(scratch / "repo"), "HEAD", scratch / "tree")
    wheelhouse = scratch / "wheelhouse"
    files = requirement_files(tree, FILES)
    extra = missing_requirements(tree, files, ["pytest", "coverage"])
    with serve(build_index(ROOT / "build" / "example-index")) as index:
        fetch = lambda: download(  # noqa: E731
            [tree / f for f in files], index_url=index.url, dest=wheelhouse,
            extra_requirements=extra, cache_dir=scratch / "pip-cache",
        )  # fmt: skip
        fetch()
        download_seconds = timed(fetch)  # the harness's per-measurement cost, pip's cache warm
    pool = EnvPool(scratch / "pool")
    python = sandbox_python()

    def build(staging: Path) -> Any:
        env = python_env(scratch=staging, wheelhouse=wheelhouse)
        return install(
            sandbox, tree=tree, env=env, python=python, files=files, extra=extra,
            limits=Limits(), compile_bytecode=True,
        )  # fmt: skip

    def ready(n: int) -> Checkout:
        key = environment_key(tree, files=files, extra=extra, wheelhouse=wheelhouse, python=python)
        assert key is not None
        run = scratch / f"run{n}"
        with pool.checkout(
            key, build=build, target=run / "env" / "venv", workdir=run / "layer"
        ) as got:
            env = python_env(scratch=run / "env", wheelhouse=wheelhouse)
            result = sandbox.run(
                [env.python, "-c", IMPORTS], workspace=tree, env=env.env, mounts=env.mounts
            )
            if not result.ok:
                raise RuntimeError(
                    f"the pooled environment does not import: {result.stderr[-300:]}"
                )
            return got

    built_seconds = timed(lambda: ready(0))
    hits: list[float] = []
    checkouts: list[Checkout] = []
    for n in range(1, repeat + 1):
        started = time.perf_counter()
        checkouts.append(ready(n))
        hits.append(time.perf_counter() - started)
    layers = [c.layer for c in checkouts if c.layer is not None]
    return {
        **percentiles(hits),
        "layer": percentiles([layer.seconds for layer in layers]),
        "mechanism": layers[0].mechanism,
        "note": layers[0].note,
        "all_hits": all(c.hit for c in checkouts),
        "miss_ms": round(built_seconds * 1000, 1),
        "wheel_download_ms": round(download_seconds * 1000, 1),
    }


def measure(repeat: int = 20) -> dict[str, Any]:
    """Everything this benchmark reports, as plain JSON-able data."""
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-sandbox-") as tmp:
        workspace = Path(tmp) / "ws"
        workspace.mkdir()
        return {
            "host": {"cores": os.cpu_count(), "bwrap": bwrap_version(), "uid": os.getuid()},
            "start_up": start_up(repeat, workspace),
            "ready_workspace": ready_workspace(repeat, Path(tmp)),
        }


def bwrap_version() -> str:
    done = subprocess.run(
        [bwrap_path(), "--version"], capture_output=True, text=True, timeout=10, check=False,
        env=dict(DEFAULT_ENV),
    )  # fmt: skip
    return done.stdout.strip()


def report_lines(data: dict[str, Any]) -> list[str]:
    s, r = data["start_up"], data["ready_workspace"]
    lines = [f"{'':<46} {'p50':>9} {'p95':>9}"]
    rows = [
        ("raw `bwrap --ro-bind / / true`", s["raw"]),
        ("bwrap with shipyard's arguments", s["argv"]),
        ("BwrapSandbox().run(['true'])", s["sandbox"]),
        (f"ready workspace (pool hit, {r['mechanism']})", r),
        ("  of which the environment layer", r["layer"]),
    ]
    lines += [f"{name:<46} {v['p50_ms']:>6.1f} ms {v['p95_ms']:>6.1f} ms" for name, v in rows]
    lines.append(f"sandbox / raw: {s['ratio_p50']}x at p50, {s['ratio_p95']}x at p95")
    lines.append(
        f"pool miss (build + first use): {r['miss_ms']:.0f} ms; host wheel download per "
        f"measurement: {r['wheel_download_ms']:.0f} ms; {s['raw']['runs']} runs each, "
        f"{data['host']['cores']} cores, {data['host']['bwrap']}"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    data = measure(args.repeat)
    print(json.dumps(data, indent=2) if args.json else "\n".join(report_lines(data)))


if __name__ == "__main__":
    main()
