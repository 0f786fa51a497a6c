"""Renovate and ``shipyard run deps --dry-run --json`` on the same repositories, in the same run.

Repositories: the bundled example (served from the local example index to both tools) and
released open-source projects rebuilt from their published sdists (looked up on PyPI by both:
Renovate through its default JSON API at pypi.org/pypi, shipyard through the simple API at
pypi.org/simple). Renovate 44 on Node 24 is installed from the npm registry into
``build/renovate`` once (``renovate@39`` on the machine's Node when 44 cannot run).

Renovate runs from a git checkout with its local platform, lookup-only:
``RENOVATE_ONBOARDING=false renovate --platform=local --dry-run=lookup --cache-dir=DIR`` with
``LOG_LEVEL=debug LOG_FORMAT=json``, in two configurations: its defaults, and its defaults plus a
``pip_requirements`` file pattern for ``requirements/*.txt`` (which its default pattern misses), so
it reads the same requirements files as shipyard. Updates come from its ``packageFiles with
updates`` record, its phases from ``Repository timing splits``.

Each repetition interleaves the tools. ``cold``: a fresh Renovate ``--cache-dir`` and a fresh
``SHIPYARD_HOME`` for every run; ``warm``: each tool reuses the caches of its last cold run. Wall
time is measured around the whole process (Node or Python start-up included).

    .venv/bin/python benchmarks/renovate.py [--repeat 3] [--only flask]

Writes ``build/benchmarks/renovate.json`` (machine-readable) and ``build/benchmarks/renovate.md``
(the tables), and keeps every raw log under ``build/benchmarks/renovate-logs/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from renovate.compare import compare, counts, renovate_findings, shipyard_findings  # noqa: E402
from renovate.logparse import (  # noqa: E402
    dependencies,
    extraction_stats,
    problems,
    renovate_version,
    timing_splits,
)
from renovate.projects import PROJECTS, PYPI_SIMPLE, sdist_repo, with_shipyard_config  # noqa: E402
from renovate.tools import (  # noqa: E402
    IndexFacts,
    Renovate,
    install,
    run_renovate,
    run_shipyard,
)

from scenario import build_index, make_repo  # noqa: E402
from shipyard.deps.localindex import serve  # noqa: E402

BUILD = ROOT / "build"
OUT = BUILD / "benchmarks"
SHIPYARD = ROOT / ".venv" / "bin" / "shipyard"
REQUIREMENTS_DIR_PATTERN = "/(^|/)requirements/.+\\.txt$/"
CONFIGS = {
    "defaults": {},
    "requirements-dir": {"pip_requirements": {"managerFilePatterns": [REQUIREMENTS_DIR_PATTERN]}},
}
"""Renovate's configurations: its defaults, and the same plus ``requirements/*.txt``."""
GOAL_CONFIG = "requirements-dir"
"""The configuration the goal is checked against: the one that reads the same files as shipyard."""


def renovate_config(base: dict[str, Any], index_url: str | None) -> dict[str, Any]:
    config = json.loads(json.dumps(base))
    if index_url is not None:
        config["packageRules"] = [{"matchDatasources": ["pypi"], "registryUrls": [index_url]}]
    return config


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


SHIPYARD_VARIANTS: dict[str, dict[str, object]] = {
    "defaults": {},
    "no-run-limit": {"max_open_runs": 0},
}
"""shipyard's configurations: its defaults (a dry run lists the runs it would start now, at most
``max_open_runs`` = 10 regular ones), and the same with no limit, so it lists everything it finds."""
GOAL_SHIPYARD = "no-run-limit"
COMPARISONS = (("defaults", "defaults"), (GOAL_SHIPYARD, GOAL_CONFIG))
"""(shipyard variant, Renovate configuration) pairs compared update by update."""


class Bench:
    def __init__(self, renovate: Renovate, work: Path, repeat: int, shipyard: list[str]) -> None:
        self.renovate, self.work, self.repeat, self.shipyard = renovate, work, repeat, shipyard
        self.logs = OUT / "renovate-logs"

    def repository(
        self, name: str, repo: Path, index_url: str, renovate_index: str | None
    ) -> dict[str, Any]:
        """Every run on one repository: Renovate per configuration and shipyard per variant,
        interleaved, ``repeat`` times cold (each with fresh caches), then ``repeat`` times warm
        (reusing the caches of the last cold run)."""
        configs = {}
        for key, base in CONFIGS.items():
            path = self.work / f"{name}-{key}.json"
            path.write_text(json.dumps(renovate_config(base, renovate_index), indent=2))
            configs[key] = path
        variants = {
            key: repo if not deps else with_shipyard_config(repo, self.work / f"{name}-{key}", deps)
            for key, deps in SHIPYARD_VARIANTS.items()
        }
        tools = [f"renovate/{k}" for k in CONFIGS] + [f"shipyard/{k}" for k in variants]
        timings: dict[str, dict[str, list[float]]] = {t: {"cold": [], "warm": []} for t in tools}
        cpu: dict[str, dict[str, list[float]]] = {t: {"cold": [], "warm": []} for t in tools}
        splits: dict[str, dict[str, list[dict[str, int]]]] = {
            key: {"cold": [], "warm": []} for key in CONFIGS
        }
        records: dict[str, list[dict[str, Any]]] = {}
        outputs: dict[str, list[str]] = {key: [] for key in variants}
        errors: list[str] = []
        loads: list[float] = []
        for mode in ("cold", "warm"):
            for rep in range(self.repeat):
                # Warm runs reuse the caches the last cold run filled.
                slot = f"{rep}" if mode == "cold" else f"{self.repeat - 1}"
                loads.append(os.getloadavg()[0])
                for key, config in configs.items():
                    cache = self.work / f"{name}-{key}-cache" / slot
                    log = self.logs / f"{name}-renovate-{key}-{mode}-{rep}.jsonl"
                    timed, recs = run_renovate(self.renovate, repo, config, cache, log)
                    if timed.returncode != 0:
                        errors.append(
                            f"renovate/{key} exited {timed.returncode}: {timed.stderr[-500:]}"
                        )
                    else:
                        timings[f"renovate/{key}"][mode].append(timed.seconds)
                        cpu[f"renovate/{key}"][mode].append(timed.cpu_seconds)
                        splits[key][mode].append(timing_splits(recs))
                        records.setdefault(key, recs)
                for key, checkout in variants.items():
                    home = self.work / f"{name}-shipyard-{key}-home" / slot
                    out = self.logs / f"{name}-shipyard-{key}-{mode}-{rep}.jsonl"
                    timed = run_shipyard(self.shipyard, checkout, home, index_url, out)
                    if timed.returncode != 0:
                        errors.append(
                            f"shipyard/{key} exited {timed.returncode}: {timed.stderr[-800:]}"
                        )
                    else:
                        timings[f"shipyard/{key}"][mode].append(timed.seconds)
                        cpu[f"shipyard/{key}"][mode].append(timed.cpu_seconds)
                        outputs[key].append(timed.stdout)
        result: dict[str, Any] = {"name": name, "errors": sorted(set(errors)), "tools": {}}
        result["load_average_1min"] = {"min": min(loads), "max": max(loads)}
        result["counts"] = {
            f"renovate/{k}": counts(renovate_findings(dependencies(r))) for k, r in records.items()
        } | {
            f"shipyard/{k}": counts(shipyard_findings(o[0]).updates)
            for k, o in outputs.items()
            if o
        }
        for tool in tools:
            data: dict[str, Any] = {
                "wall_seconds": {m: [round(s, 2) for s in v] for m, v in timings[tool].items()},
                "median_cold": median(timings[tool]["cold"]),
                "median_warm": median(timings[tool]["warm"]),
                "cpu_seconds": {m: [round(s, 2) for s in v] for m, v in cpu[tool].items()},
                "median_cpu_cold": median(cpu[tool]["cold"]),
                "median_cpu_warm": median(cpu[tool]["warm"]),
            }
            kind, key = tool.split("/", 1)
            if kind == "renovate":
                recs = records.get(key, [])
                data |= {
                    "renovate_phases_ms": splits[key],
                    "median_renovate_total_s": {
                        m: median([x["total"] / 1000 for x in v]) for m, v in splits[key].items()
                    },
                    "extraction": extraction_stats(recs) if recs else {},
                    "warnings": sorted(set(problems(recs))) if recs else [],
                    "version": renovate_version(recs) if recs else "",
                }
            else:
                sets = {repr(shipyard_findings(o).updates) for o in outputs[key]}
                data["same_updates_every_run"] = len(sets) <= 1
            result["tools"][tool] = data
        facts = IndexFacts(index_url)
        result["comparisons"] = {}
        unlimited = outputs.get(GOAL_SHIPYARD) or []
        held = (
            frozenset(f.pair for f in shipyard_findings(unlimited[0]).updates)
            if unlimited
            else frozenset()
        )
        for ours, theirs in COMPARISONS:
            if outputs[ours] and theirs in records:
                result["comparisons"][f"shipyard/{ours} vs renovate/{theirs}"] = compare(
                    dependencies(records[theirs]),
                    shipyard_findings(outputs[ours][0]),
                    facts,
                    held=held if ours != GOAL_SHIPYARD else frozenset(),
                )
        return result


def goal(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's goal for one repository: every Renovate update found, in at most half its time,
    checked for shipyard with no run limit against Renovate reading the same requirements files."""
    comparison = result["comparisons"].get(f"shipyard/{GOAL_SHIPYARD} vs renovate/{GOAL_CONFIG}")
    tools = result["tools"]
    ratios = {}
    for mode in ("cold", "warm", "cpu_cold", "cpu_warm"):
        ours = tools[f"shipyard/{GOAL_SHIPYARD}"][f"median_{mode}"]
        theirs = tools[f"renovate/{GOAL_CONFIG}"][f"median_{mode}"]
        ratios[mode] = round(ours / theirs, 2) if ours and theirs else None
    missed = comparison["renovate_pairs_missed_by_shipyard"] if comparison else None
    return {
        "renovate_pairs_missed": missed,
        "renovate_packages_missed": (
            comparison["renovate_packages_missed_by_shipyard"] if comparison else None
        ),
        "time_ratio": ratios,
        "finds_at_least_renovate": missed == 0,
        "at_most_half_the_time": ratios["cold"] is not None and ratios["cold"] <= 0.5,
    }


def markdown(report: dict[str, Any]) -> str:
    """The tables of docs/performance.md, from the JSON report."""
    lines = [
        f"Renovate {report['renovate']['version']} ({report['renovate']['line']}, Node "
        f"{report['renovate']['node']}); shipyard on Python {report['python']}; "
        f"{report['repeat']} repetitions, medians. Start-up alone: "
        + ", ".join(f"`{k}` {v} s" for k, v in report["start_up_seconds"].items())
        + ".",
        "",
        "| repository | index | tool | packages with an update | (manifest, package) pairs "
        "| update entries | wall cold (s) | wall warm (s) | CPU cold (s) | CPU warm (s) |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for repo in report["repositories"]:
        for tool, data in repo["tools"].items():
            c = repo["counts"].get(tool, {})
            lines.append(
                f"| {repo['name']} | {repo['index']} | {tool} "
                f"| {c.get('packages_with_update', 'failed')} "
                f"| {c.get('manifest_package_pairs', '-')} | {c.get('update_entries', '-')} "
                f"| {data['median_cold']} | {data['median_warm']} "
                f"| {data['median_cpu_cold']} | {data['median_cpu_warm']} |"
            )
    lines += [
        "",
        f"Goal, shipyard/{GOAL_SHIPYARD} against renovate/{GOAL_CONFIG}:",
        "",
        "| repository | Renovate pairs (packages) shipyard missed | wall shipyard/Renovate cold "
        "| warm | CPU cold | CPU warm | finds at least Renovate's | at most half the time |",
        "|---|--:|--:|--:|--:|--:|---|---|",
    ]
    for repo in report["repositories"]:
        g = repo["goal"]
        lines.append(
            f"| {repo['name']} | {g['renovate_pairs_missed']} ({g['renovate_packages_missed']}) "
            f"| {g['time_ratio']['cold']} | {g['time_ratio']['warm']} "
            f"| {g['time_ratio']['cpu_cold']} | {g['time_ratio']['cpu_warm']} "
            f"| {'yes' if g['finds_at_least_renovate'] else 'no'} "
            f"| {'yes' if g['at_most_half_the_time'] else 'no'} |"
        )
    lines += ["", "Differences by category:", ""]
    for repo in report["repositories"]:
        for label, comparison in repo["comparisons"].items():
            cats = "; ".join(f"{k}: {v}" for k, v in comparison["categories"].items())
            lines.append(f"- {repo['name']}, {label}: {cats or 'none'}")
        for error in repo["errors"]:
            lines.append(f"- {repo['name']}: {error.splitlines()[0] if error else error}")
    return "\n".join(lines) + "\n"


def start_up(renovate: Renovate, repeat: int) -> dict[str, float | None]:
    """The floor under every run: ``renovate --version`` and ``shipyard run deps --help``."""
    commands = {
        "renovate --version": (["renovate", "--version"], renovate.env()),
        "shipyard run deps --help": ([str(SHIPYARD), "run", "deps", "--help"], dict(os.environ)),
    }
    floor = {}
    for label, (cmd, env) in commands.items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run(cmd, env=env, capture_output=True, timeout=300, check=True)
            times.append(time.perf_counter() - started)
        floor[label] = median(times)
    return floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", action="append", help="run only these repositories (by name)")
    args = parser.parse_args()
    renovate = install(BUILD)
    print(f"Renovate {renovate.renovate_version} on Node {renovate.node_version} ({renovate.line})")
    index_dir = build_index(BUILD / "example-index")
    repos: list[tuple[str, Callable[[Path], Path], str | None, str]] = [
        ("example", make_repo, None, "examples/project (as `make demo` builds it)"),
    ]
    for sdist in PROJECTS:
        repos.append(
            (
                sdist.key,
                lambda d, s=sdist: sdist_repo(s, BUILD / "benchmarks" / "sdists", d),
                PYPI_SIMPLE,
                f"{sdist.filename} (sha256 {sdist.sha256[:12]}…): {sdist.why}",
            )
        )
    # shipyard trusts the system CA store and $SSL_CERT_FILE itself (shipyard.deps.network), so it
    # reaches PyPI behind a TLS-inspecting proxy as it is.
    shipyard = [str(SHIPYARD)]
    startup = start_up(renovate, args.repeat)
    print(f"start-up alone (median): {startup}")
    wanted = set(args.only or [])
    if not wanted:  # a partial run keeps the other repositories' logs
        shutil.rmtree(OUT / "renovate-logs", ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    with serve(index_dir) as index, tempfile.TemporaryDirectory(prefix="shipyard-renovate-") as tmp:
        work = Path(tmp)
        for name, make, index_url, source in repos:
            if wanted and not any(name.startswith(w) for w in wanted):
                continue
            print(f"{name}: {source}")
            repo = make(work / name)
            local = index_url is None
            url = index.url if local else index_url
            assert url is not None
            bench = Bench(renovate, work, args.repeat, shipyard)
            result = bench.repository(name, repo, url, index.url if local else None)
            result["source"] = source
            result["index"] = "local example index" if local else "PyPI"
            result["index_urls"] = {
                "shipyard": url,
                "renovate": index.url if local else "https://pypi.org/pypi/ (JSON API, default)",
            }
            result["goal"] = goal(result)
            results.append(result)
            print(json.dumps({"name": name, "goal": result["goal"], "errors": result["errors"]}))
    report = {
        "renovate": {
            "version": renovate.renovate_version,
            "node": renovate.node_version,
            "line": renovate.line,
        },
        "python": platform.python_version(),
        "start_up_seconds": startup,
        "repeat": args.repeat,
        "renovate_configs": CONFIGS,
        "shipyard_variants": SHIPYARD_VARIANTS,
        "repositories": results,
    }
    (OUT / "renovate.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (OUT / "renovate.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
