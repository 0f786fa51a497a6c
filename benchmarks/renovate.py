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
``SHIPYARD_HOME`` for every run; ``warm``: each tool reuses the cache of its previous run. Wall
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
import statistics
import sys
import tempfile
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
from renovate.projects import PROJECTS, PYPI_SIMPLE, sdist_repo  # noqa: E402
from renovate.tools import IndexFacts, Renovate, install, run_renovate, run_shipyard  # noqa: E402

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


class Bench:
    def __init__(self, renovate: Renovate, work: Path, repeat: int) -> None:
        self.renovate, self.work, self.repeat = renovate, work, repeat
        self.logs = OUT / "renovate-logs"

    def repository(
        self, name: str, repo: Path, index_url: str, renovate_index: str | None
    ) -> dict[str, Any]:
        """Every run on one repository: Renovate per configuration and shipyard, cold then warm."""
        configs = {}
        for key, base in CONFIGS.items():
            path = self.work / f"{name}-{key}.json"
            path.write_text(json.dumps(renovate_config(base, renovate_index), indent=2))
            configs[key] = path
        timings: dict[str, dict[str, list[float]]] = {
            tool: {"cold": [], "warm": []} for tool in [*CONFIGS, "shipyard"]
        }
        splits: dict[str, dict[str, list[dict[str, int]]]] = {
            key: {"cold": [], "warm": []} for key in CONFIGS
        }
        records: dict[str, list[dict[str, Any]]] = {}
        shipyard_out: list[str] = []
        errors: list[str] = []
        loads: list[float] = []
        for mode in ("cold", "warm"):
            for rep in range(self.repeat + (1 if mode == "warm" else 0)):
                loads.append(os.getloadavg()[0])
                for key, config in configs.items():
                    cache = (
                        self.work / f"{name}-{key}-cache" / (f"{rep}" if mode == "cold" else "w")
                    )
                    log = self.logs / f"{name}-{key}-{mode}-{rep}.jsonl"
                    timed, recs = run_renovate(self.renovate, repo, config, cache, log)
                    if timed.returncode != 0:
                        errors.append(
                            f"renovate {key} exited {timed.returncode}: {timed.stderr[-500:]}"
                        )
                        continue
                    if mode == "warm" and rep == 0:
                        continue  # fills the cache the warm runs reuse
                    timings[key][mode].append(timed.seconds)
                    splits[key][mode].append(timing_splits(recs))
                    records.setdefault(key, recs)
                home = self.work / f"{name}-home" / (f"{rep}" if mode == "cold" else "w")
                out = self.logs / f"{name}-shipyard-{mode}-{rep}.json"
                timed = run_shipyard(SHIPYARD, repo, home, index_url, out)
                if timed.returncode != 0:
                    errors.append(f"shipyard exited {timed.returncode}: {timed.stderr[-800:]}")
                    continue
                if mode == "warm" and rep == 0:
                    continue
                timings["shipyard"][mode].append(timed.seconds)
                shipyard_out.append(timed.stdout)
        result: dict[str, Any] = {"name": name, "errors": errors, "tools": {}, "counts": {}}
        result["load_average_1min"] = {"min": min(loads), "max": max(loads)}
        for key, recs in records.items():
            result["counts"][f"renovate/{key}"] = counts(renovate_findings(dependencies(recs)))
        if shipyard_out:
            result["counts"]["shipyard"] = counts(shipyard_findings(shipyard_out[0]).updates)
        for key in CONFIGS:
            recs = records.get(key, [])
            result["tools"][f"renovate/{key}"] = {
                "wall_seconds": {m: [round(s, 2) for s in v] for m, v in timings[key].items()},
                "median_cold": median(timings[key]["cold"]),
                "median_warm": median(timings[key]["warm"]),
                "renovate_phases_ms": splits[key],
                "median_renovate_total_s": {
                    m: median([x["total"] / 1000 for x in v]) for m, v in splits[key].items()
                },
                "extraction": extraction_stats(recs) if recs else {},
                "warnings": sorted(set(problems(recs))) if recs else [],
                "version": renovate_version(recs) if recs else "",
            }
        result["tools"]["shipyard"] = {
            "wall_seconds": {m: [round(s, 2) for s in v] for m, v in timings["shipyard"].items()},
            "median_cold": median(timings["shipyard"]["cold"]),
            "median_warm": median(timings["shipyard"]["warm"]),
            "same_updates_every_run": len({json.dumps(sorted(shipyard_findings(o).updates)) for o in shipyard_out}) <= 1,
        }  # fmt: skip
        if not shipyard_out or not records:
            return result
        facts = IndexFacts(index_url)
        shipyard = shipyard_findings(shipyard_out[0])
        result["shipyard_skipped"] = shipyard.skipped
        for key in CONFIGS:
            if key in records:
                result[f"vs_renovate/{key}"] = compare(dependencies(records[key]), shipyard, facts)
        return result


def goal(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's goal for one repository: every Renovate update found, in at most half its time."""
    comparison = result.get(f"vs_renovate/{GOAL_CONFIG}")
    tools = result["tools"]
    ours, theirs = tools["shipyard"]["median_cold"], tools[f"renovate/{GOAL_CONFIG}"]["median_cold"]
    ratio = round(ours / theirs, 2) if ours and theirs else None
    missed = comparison["renovate_pairs_missed_by_shipyard"] if comparison else None
    return {
        "renovate_pairs_missed": missed,
        "time_ratio_cold": ratio,
        "finds_at_least_renovate": missed == 0,
        "at_most_half_the_time": ratio is not None and ratio <= 0.5,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Renovate {report['renovate']['version']} ({report['renovate']['line']}, Node "
        f"{report['renovate']['node']}); shipyard on Python {report['python']}; "
        f"{report['repeat']} repetitions, medians.",
        "",
        "| repository | index | tool | packages with an update | (manifest, package) pairs "
        "| update entries | wall cold (s) | wall warm (s) |",
        "|---|---|---|--:|--:|--:|--:|--:|",
    ]
    for repo in report["repositories"]:
        for tool, data in repo["tools"].items():
            counts = repo["counts"].get(tool, {})
            lines.append(
                f"| {repo['name']} | {repo['index']} | {tool} "
                f"| {counts.get('packages_with_update', '-')} "
                f"| {counts.get('manifest_package_pairs', '-')} "
                f"| {counts.get('update_entries', '-')} "
                f"| {data['median_cold']} | {data['median_warm']} |"
            )
    lines += ["", "| repository | Renovate pairs shipyard missed | shipyard/Renovate time (cold) "
              "| finds at least Renovate's | at most half the time |", "|---|--:|--:|---|---|"]  # fmt: skip
    for repo in report["repositories"]:
        g = repo["goal"]
        lines.append(
            f"| {repo['name']} | {g['renovate_pairs_missed']} | {g['time_ratio_cold']} "
            f"| {'yes' if g['finds_at_least_renovate'] else 'no'} "
            f"| {'yes' if g['at_most_half_the_time'] else 'no'} |"
        )
    lines += ["", "Differences (against Renovate with `requirements/*.txt` added):", ""]
    for repo in report["repositories"]:
        comparison = repo.get(f"vs_renovate/{GOAL_CONFIG}")
        if not comparison:
            continue
        lines.append(f"- **{repo['name']}**: " + "; ".join(
            f"{k}: {v}" for k, v in comparison["categories"].items()
        ) if comparison["categories"] else f"- **{repo['name']}**: none")  # fmt: skip
    return "\n".join(lines) + "\n"


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
                f"{sdist.name}-{sdist.version}",
                lambda d, s=sdist: sdist_repo(s, BUILD / "benchmarks" / "sdists", d),
                PYPI_SIMPLE,
                f"{sdist.filename} (sha256 {sdist.sha256[:12]}…): {sdist.why}",
            )
        )
    wanted = set(args.only or [])
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
            bench = Bench(renovate, work, args.repeat)
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
        "repeat": args.repeat,
        "configs": CONFIGS,
        "repositories": results,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "renovate.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (OUT / "renovate.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
