"""The performance gate: pure comparison rules, and real benchmarks of real trees in a real sandbox."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from shipyard.config import GatesConfig, PerformanceGateConfig
from shipyard.deps.localindex import serve
from shipyard.deps.wheelhouse import download
from shipyard.gates.base import ChangeView, GateContext
from shipyard.gates.environment import gate_limits, install, python_env, sandbox_python
from shipyard.gates.performance import (
    Comparison,
    PerformanceGate,
    Round,
    Sample,
    benchmark_tests,
    compare_runs,
    parse_benchmarks,
    suspects,
)
from shipyard.model import GateResult
from shipyard.sandbox import BwrapSandbox
from tests.conftest import example_index, needs_bwrap

MS = 1e-3


def ms(value: float, rounds: int = 10) -> Sample:
    return Sample(seconds=value * MS, rounds=rounds)


def compare(first: Round, confirm: Round | None = None, threshold: float = 15.0) -> Comparison:
    return compare_runs(first, confirm, threshold_percent=threshold, statistic="min")


# --- pure comparison -------------------------------------------------------------------------


def test_the_threshold_is_strict_slower_by_exactly_the_threshold_is_not_a_regression() -> None:
    first = Round(baseline={"a": ms(1.0), "b": ms(1.0)}, change={"a": ms(1.15), "b": ms(1.151)})
    assert suspects(first, 15.0) == ("b",)
    result = compare(first, first)
    by_name = {b.name: b for b in result.benchmarks}
    assert not by_name["a"].suspected
    assert not by_name["a"].confirmed
    assert by_name["b"].confirmed
    assert result.regressions == ("b: 1.000 ms → 1.151 ms (+15 %, min of 10 rounds, confirmed)",)


def test_a_slowdown_the_confirmation_round_does_not_repeat_is_noise() -> None:
    first = Round(baseline={"a": ms(0.12)}, change={"a": ms(0.41)})
    confirm = Round(baseline={"a": ms(0.12)}, change={"a": ms(0.125)})
    result = compare(first, confirm)
    (bench,) = result.benchmarks
    assert bench.suspected
    assert not bench.confirmed
    assert result.regressions == ()
    assert bench.change.seconds == pytest.approx(0.125 * MS), "the smaller slowdown is shown"


def test_a_confirmed_regression_reports_the_smaller_of_the_two_slowdowns() -> None:
    first = Round(baseline={"a": ms(0.12)}, change={"a": ms(0.41)})
    confirm = Round(baseline={"a": ms(0.12, 7)}, change={"a": ms(0.30, 5)})
    result = compare(first, confirm)
    assert result.regressions == ("a: 0.120 ms → 0.300 ms (+150 %, min of 5 rounds, confirmed)",)


def test_without_a_confirmation_round_nothing_is_reported() -> None:
    first = Round(baseline={"a": ms(1)}, change={"a": ms(5)})
    assert compare(first, None).regressions == ()
    missing = Round(baseline={"a": ms(1)}, change={})
    assert compare(first, missing).regressions == ()


def test_new_and_removed_benchmarks_are_listed_but_are_not_regressions() -> None:
    first = Round(baseline={"kept": ms(1), "gone": ms(1)}, change={"kept": ms(1), "added": ms(90)})
    result = compare(first, first)
    assert result.new == ("added",)
    assert result.removed == ("gone",)
    assert [b.name for b in result.benchmarks] == ["kept"]
    assert result.regressions == ()


def test_median_is_read_when_configured_and_a_foreign_json_is_rejected() -> None:
    report = {
        "benchmarks": [
            {
                "fullname": "tests/t.py::test_a",
                "stats": {"min": 0.001, "median": 0.002, "rounds": 9},
            }
        ]
    }
    raw = json.dumps(report).encode()
    assert parse_benchmarks(raw, "median") == {
        "tests/t.py::test_a": Sample(seconds=0.002, rounds=9)
    }
    assert parse_benchmarks(raw, "min")["tests/t.py::test_a"].seconds == 0.001
    with pytest.raises(KeyError):
        parse_benchmarks(b'{"results": []}', "min")


def test_benchmark_tests_are_found_by_their_parameters_not_by_words(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_words.py").write_text(
        "# def test_commented(benchmark): pass\n"
        "TEXT = 'def test_in_string(benchmark): pass'\n"
        "def helper(benchmark):\n    pass\n"
        "def test_plain(bench):\n    pass\n"
    )
    (tests / "test_real.py").write_text(
        "class TestSpeed:\n    def test_method(self, *, benchmark):\n        pass\n"
    )
    (tests / "broken_test.py").write_text("def test_x(benchmark:\n")
    (tests / "test_link.py").symlink_to(tests / "test_real.py")
    assert benchmark_tests(tmp_path, ["tests"]) == ("tests/test_real.py::test_method",)
    assert benchmark_tests(tmp_path, ["../"]) == ()


def test_applies_follows_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "test_b.py").write_text("def test_b(benchmark):\n    pass\n")

    def ctx(perf: PerformanceGateConfig) -> GateContext:
        return GateContext(
            tree=tmp_path,
            scratch=tmp_path,
            wheelhouse=tmp_path,
            sandbox=BwrapSandbox(),
            config=GatesConfig(performance=perf),
            phase="change",
        )

    gate = PerformanceGate()
    assert not gate.applies(ctx(PerformanceGateConfig())), "tests/ (the test paths) has none"
    assert gate.applies(ctx(PerformanceGateConfig(paths=["bench"])))
    assert not gate.applies(ctx(PerformanceGateConfig(paths=["bench"], enabled="off")))


# --- real trees, real sandbox ------------------------------------------------------------------

FAST = '''
def unique(items):
    """Items in first-seen order, without repeats."""
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def total(items):
    return sum(items)
'''
FAST_RENAMED = FAST.replace("seen", "already")
SLOW = '''
def unique(items):
    """Items in first-seen order, without repeats."""
    out = []
    for item in items:
        if item not in out:  # a list: every lookup scans it
            out.append(item)
    return out


def total(items):
    return sum(items)
'''
BENCH = """
from fastlib import total, unique

DATA = list(range(1000)) * 2


def test_unique_speed(benchmark):
    assert benchmark(unique, DATA) == list(range(1000))


def test_total_speed(benchmark):
    assert benchmark(total, DATA) == 999000


def test_unique_keeps_order():
    assert unique([3, 1, 3, 2, 1]) == [3, 1, 2]
"""
PYPROJECT = """
[tool.pytest.ini_options]
pythonpath = ["src"]
addopts = "--benchmark-max-time=0.2"
"""
REQS = ["pytest==9.2.0", "pytest-benchmark==5.3.1"]
# These trees differ by 3x or more where they differ at all; a wide threshold keeps a test suite
# running beside them from deciding the outcome (the threshold itself is tested above).
THRESHOLD = 100.0
UNIQUE = "tests/test_bench.py::test_unique_speed"
TOTAL = "tests/test_bench.py::test_total_speed"


def write_tree(root: Path, fastlib: str, bench: str = BENCH) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "src" / "fastlib.py").write_text(fastlib)
    (root / "tests" / "test_bench.py").write_text(textwrap.dedent(bench))
    return root


@dataclass(frozen=True)
class Envs:
    root: Path
    wheelhouse: Path
    scratch: dict[str, Path]

    def ctx(self, tree: Path, env: str, phase: str) -> GateContext:
        scratch = self.scratch[env]
        return GateContext(
            tree=tree,
            scratch=scratch,
            wheelhouse=self.wheelhouse,
            sandbox=BwrapSandbox(),
            config=GatesConfig(performance=PerformanceGateConfig(threshold_percent=THRESHOLD)),
            phase=phase,
            env=python_env(scratch=scratch, wheelhouse=self.wheelhouse),
        )

    def tree(self, name: str, fastlib: str, bench: str = BENCH) -> Path:
        return write_tree(self.root / name, fastlib, bench)


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envs]:
    """One environment for the baseline, one for the change, one without pytest-benchmark."""
    root = tmp_path_factory.mktemp("perf")
    wheelhouse = root / "wh"
    with serve(example_index()) as index:
        download([], index_url=index.url, dest=wheelhouse, extra_requirements=REQS)
    scratch: dict[str, Path] = {}
    for name, reqs in (("baseline", REQS), ("change", REQS), ("bare", REQS[:1])):
        scratch[name] = root / f"scratch-{name}"
        scratch[name].mkdir()
        done = install(
            BwrapSandbox(),
            tree=write_tree(root / f"install-{name}", FAST),
            env=python_env(scratch=scratch[name], wheelhouse=wheelhouse),
            python=sandbox_python(),
            files=[],
            extra=reqs,
            limits=gate_limits(timeout_seconds=300, memory_mb=4096),
        )
        assert done.ok, done.stderr
    yield Envs(root=root, wheelhouse=wheelhouse, scratch=scratch)
    shutil.rmtree(root, ignore_errors=True)


def run_gate(envs: Envs, baseline: Path, change: Path, change_env: str = "change") -> GateResult:
    gate = PerformanceGate()
    base_ctx = envs.ctx(baseline, "baseline", "baseline")
    change_ctx = envs.ctx(change, change_env, "change")
    assert gate.applies(change_ctx)
    return gate.run(base_ctx, change_ctx, ChangeView())


@needs_bwrap
@pytest.mark.slow
def test_an_on_to_on_squared_change_is_a_confirmed_regression(envs: Envs) -> None:
    result = run_gate(envs, envs.tree("base-1", FAST), envs.tree("slow", SLOW))
    assert result.status == "failed", result.summary
    facts = json.loads(json.dumps(result.facts))
    by_name = {b["name"]: b for b in facts["benchmarks"]}
    assert by_name[UNIQUE]["confirmed"]
    assert by_name[UNIQUE]["ratio"] > 3
    # On a busy host the unchanged benchmark may look slower once; the confirmation round is
    # what keeps that noise out of the verdict.
    assert not by_name[TOTAL]["confirmed"]
    assert [r.split(":")[0] for r in facts["regressions"]] == ["tests/test_bench.py"]
    assert UNIQUE in facts["regressions"][0]
    assert "confirmed" in facts["regressions"][0]
    assert facts["threshold_percent"] == THRESHOLD
    # The confirmation round re-ran only the suspects, in both trees, the change first.
    suspected = sorted(name for name, b in by_name.items() if b["suspected"])
    assert UNIQUE in suspected
    reports = {env: envs.scratch[env] / f"bench-{env}-2.json" for env in ("baseline", "change")}
    for report in reports.values():
        assert sorted(parse_benchmarks(report.read_bytes(), "min")) == suspected
    assert reports["change"].stat().st_mtime_ns < reports["baseline"].stat().st_mtime_ns
    assert any(line.startswith(UNIQUE) for line in result.details)


@needs_bwrap
@pytest.mark.slow
def test_a_change_that_does_not_alter_speed_passes(envs: Envs) -> None:
    result = run_gate(envs, envs.tree("base-2", FAST), envs.tree("renamed", FAST_RENAMED))
    assert result.status == "passed", (result.summary, result.details)
    assert result.facts["regressions"] == []
    assert {b["name"] for b in result.facts["benchmarks"]} == {UNIQUE, TOTAL}
    assert all(b["ratio"] < 3 for b in result.facts["benchmarks"])


@needs_bwrap
@pytest.mark.slow
def test_a_slowdown_only_the_first_round_sees_is_not_reported(envs: Envs) -> None:
    # The change's benchmark is slow in its first session only (a marker in the tree remembers it).
    once = BENCH.replace(
        "DATA = list(range(1000)) * 2",
        "import pathlib, time\nMARK = pathlib.Path(__file__).with_name('seen')\n"
        "FIRST = not MARK.exists()\nMARK.touch()\nDATA = list(range(1000)) * 2",
    ).replace(
        "assert benchmark(unique, DATA)",
        "assert benchmark(lambda d: (time.sleep(0.002) if FIRST else None, unique(d))[1], DATA)",
    )
    result = run_gate(envs, envs.tree("base-3", FAST), envs.tree("once", FAST, once))
    assert result.passed, (result.summary, result.details)
    by_name = {b["name"]: b for b in result.facts["benchmarks"]}
    assert by_name[UNIQUE]["suspected"]
    assert not by_name[UNIQUE]["confirmed"]
    assert "not confirmed" in result.summary


@needs_bwrap
@pytest.mark.slow
def test_a_failing_benchmark_fails_the_gate_with_its_output(envs: Envs) -> None:
    broken = BENCH.replace("== 999000", "== 1")
    result = run_gate(envs, envs.tree("base-4", FAST), envs.tree("broken", FAST, broken))
    assert not result.passed
    assert not result.skipped
    assert "change's benchmarks failed" in result.summary
    assert result.facts["error"]
    assert any("test_total_speed" in line for line in result.details)


@needs_bwrap
@pytest.mark.slow
def test_without_pytest_benchmark_the_gate_skips_and_says_how_to_enable_it(envs: Envs) -> None:
    gate = PerformanceGate()
    tree = envs.tree("bare-tree", FAST)
    bare = envs.ctx(tree, "bare", "baseline")
    result = gate.run(bare, envs.ctx(tree, "bare", "change"), ChangeView())
    assert result.skipped
    assert "add pytest-benchmark to the test requirements" in result.summary
    # Only the change dropped the plugin: its benchmarks cannot run, which is not a pass.
    dropped = run_gate(envs, envs.tree("base-5", FAST), tree, change_env="bare")
    assert dropped.status == "failed"
    assert "not installed in the change's environment" in dropped.summary


def test_a_tree_without_benchmark_tests_does_not_apply(tmp_path: Path) -> None:
    plain = "from fastlib import unique\n\ndef test_unique():\n    assert unique([1, 1]) == [1]\n"
    tree = write_tree(tmp_path / "plain", FAST, plain)
    ctx = GateContext(
        tree=tree,
        scratch=tmp_path,
        wheelhouse=tmp_path,
        sandbox=BwrapSandbox(),
        config=GatesConfig(),
        phase="change",
    )
    assert not PerformanceGate().applies(ctx)
    assert PerformanceGate().applies(replace(ctx, tree=write_tree(tmp_path / "bench", FAST)))
