"""Per-file and diff coverage from real coverage.py JSON reports, plus the malformed ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from shipyard.gates.base import ChangeView
from shipyard.gates.coverage import (
    FileCoverage,
    collapse,
    diff_coverage,
    file_deltas,
    files_from_json,
    read_files,
    verdict,
)
from shipyard.gates.environment import uv_binary
from shipyard.model import ChangedFile, TestReport
from tests.conftest import example_index

BEFORE = '''\
"""A tiny calculator."""


def add(a, b):
    return a + b


def sub(a, b):
    return a - b
'''

# Lines 12-16 are new: a comment, a def and two statements no caller runs, and an excluded line.
AFTER_UNTESTED = '''\
"""A tiny calculator."""


def add(a, b):
    return a + b


def sub(a, b):
    return a - b


# Multiplication, added by the change.
def mul(a, b):
    if a == 0:
        return 0
    return a * b  # pragma: no cover
'''

CALLER = """\
import sys
sys.path.insert(0, "src")
import calc
assert calc.add(1, 2) == 3
assert calc.sub(3, 2) == 1
"""


@pytest.fixture(scope="module")
def coverage_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway virtual environment with coverage.py from the example index (no network)."""
    venv = tmp_path_factory.mktemp("covenv") / "venv"
    uv = str(uv_binary())
    env = {**os.environ, "UV_OFFLINE": "1", "UV_NO_CACHE": "1"}
    subprocess.run(
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        check=True,
        env=env,
        timeout=120,
    )
    subprocess.run(
        [
            *(uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")),
            *("--no-index", "--find-links", str(example_index()), "coverage==7.17.3"),
        ],
        check=True,
        env=env,
        timeout=120,
    )
    return venv / "bin" / "python"


def measure(python: Path, tree: Path, module: str, caller: str, *, cwd: Path | None = None) -> Path:
    """Write ``src/calc.py`` and a caller into ``tree``, run it under coverage, return the JSON."""
    (tree / "src").mkdir(parents=True, exist_ok=True)
    (tree / "src" / "calc.py").write_text(module)
    (tree / "run.py").write_text(caller)
    data = tree / ".coverage"
    out = tree / "coverage.json"
    run = [str(python), "-m", "coverage", "run", f"--data-file={data}", f"--source={tree / 'src'}"]
    subprocess.run([*run, "run.py"], cwd=tree, check=True, timeout=60)
    report = [str(python), "-m", "coverage", "json", "-q", f"--data-file={data}", "-o", str(out)]
    subprocess.run(report, cwd=cwd or tree, check=True, timeout=60)
    return out


def view(before: str, after: str, path: str = "src/calc.py") -> ChangeView:
    return ChangeView.of([ChangedFile(path=path, before=before, after=after)])


# --- real reports ------------------------------------------------------------------------------


def test_read_files_gives_each_files_lines_relative_to_the_tree(
    coverage_python: Path, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    report = measure(coverage_python, tree, AFTER_UNTESTED, CALLER)
    (calc,) = read_files(report, root=str(tree))
    assert calc.path == "src/calc.py"
    assert calc.executed == (4, 5, 8, 9, 13)
    assert calc.missing == (14, 15)
    assert calc.excluded == (16,)
    assert calc.percent == pytest.approx(100 * 5 / 7, abs=0.01)
    assert not {1, 12} & calc.executable  # neither a docstring nor a comment is code


def test_absolute_paths_are_made_relative_to_the_tree_root(
    coverage_python: Path, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    report = measure(coverage_python, tree, BEFORE, CALLER, cwd=elsewhere)
    assert str(tree) in next(iter(json.loads(report.read_text())["files"]))  # really absolute
    assert [f.path for f in read_files(report, root=str(tree))] == ["src/calc.py"]
    assert read_files(report, root=str(elsewhere)) == ()  # outside the tree: not counted


def test_untested_added_lines_are_named_and_lower_diff_coverage(
    coverage_python: Path, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    files = read_files(measure(coverage_python, tree, AFTER_UNTESTED, CALLER), root=str(tree))
    change = view(BEFORE, AFTER_UNTESTED)
    assert change.added_lines() == {"src/calc.py": {10, 11, 12, 13, 14, 15, 16}}
    diff = diff_coverage(files, change.added_lines())
    # Executable among the added lines: 13 (def, run at import), 14 and 15 (never run).
    assert (diff.covered, diff.total) == (1, 3)
    assert diff.percent == pytest.approx(33.33)
    assert diff.uncovered == (("src/calc.py", (14, 15)),)
    assert diff.details() == ("src/calc.py: lines 14-15 not run by any test",)
    assert diff.to_facts()["diff_coverage"] == pytest.approx(33.33)


def test_tested_added_lines_give_full_diff_coverage(coverage_python: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    caller = CALLER + "assert calc.mul(0, 5) == 0\nassert calc.mul(2, 5) == 10\n"
    files = read_files(measure(coverage_python, tree, AFTER_UNTESTED, caller), root=str(tree))
    diff = diff_coverage(files, view(BEFORE, AFTER_UNTESTED).added_lines())
    assert (diff.percent, diff.covered, diff.total) == (100.0, 3, 3)
    assert diff.uncovered == ()
    assert diff.details() == ()


def test_verdict_and_file_deltas_on_a_baseline_and_a_change(
    coverage_python: Path, tmp_path: Path
) -> None:
    base_tree, change_tree = tmp_path / "base", tmp_path / "change"
    base = read_files(measure(coverage_python, base_tree, BEFORE, CALLER), root=str(base_tree))
    after = read_files(
        measure(coverage_python, change_tree, AFTER_UNTESTED, CALLER), root=str(change_tree)
    )
    assert base[0].percent == 100.0
    (delta,) = file_deltas(base, after)
    assert (delta.path, delta.before, delta.after, delta.change) == (
        "src/calc.py",
        100.0,
        71.43,
        -28.57,
    )
    assert file_deltas(base, base) == []

    result = verdict(
        TestReport(coverage_files=base, coverage_percent=100.0),
        TestReport(coverage_files=after, coverage_percent=71.43),
        view(BEFORE, AFTER_UNTESTED),
    )
    assert not result.passed
    assert not result.skipped
    assert result.facts["diff_coverage"] == pytest.approx(33.33)
    assert result.facts["file_deltas"] == [
        {"path": "src/calc.py", "before": 100.0, "after": 71.43, "change": -28.57}
    ]
    assert "src/calc.py: lines 14-15 not run by any test" in result.details
    json.dumps(result.facts)  # recorded as an event: must serialise

    clean = verdict(
        TestReport(coverage_files=base), TestReport(coverage_files=base), view(BEFORE, BEFORE)
    )
    assert clean.passed
    assert clean.facts["diff_coverage"] is None


def test_files_survive_the_measurement_cache_round_trip(
    coverage_python: Path, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    files = read_files(measure(coverage_python, tree, AFTER_UNTESTED, CALLER), root=str(tree))
    cached = json.loads(json.dumps([asdict(f) for f in files]))
    assert files_from_json(cached) == files
    assert files_from_json([{"path": "x.py"}, "junk", *cached]) == files


# --- hand-written edge cases ---------------------------------------------------------------------


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "coverage.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def entry(executed: list[int], missing: list[int], percent: float = 50.0) -> dict[str, object]:
    return {
        "executed_lines": executed,
        "missing_lines": missing,
        "excluded_lines": [],
        "summary": {"percent_covered": percent},
    }


@pytest.mark.parametrize(
    "garbage",
    ["", "not json", "[]", '{"files": []}', '{"meta": {}}', '{"files": null}', "\xff\xfe"],
)
def test_garbage_reports_read_as_no_files(tmp_path: Path, garbage: str) -> None:
    assert read_files(write(tmp_path, garbage), root="/workspace") == ()


def test_missing_and_linked_reports_are_not_read(tmp_path: Path) -> None:
    assert read_files(tmp_path / "absent.json") == ()
    real = write(tmp_path, {"files": {"a.py": entry([1], [])}})
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert read_files(link, root="/workspace") == ()
    assert len(read_files(real, root="/workspace")) == 1


def test_bad_entries_are_skipped_and_good_ones_kept(tmp_path: Path) -> None:
    files = {
        "/workspace/src/good.py": entry([1, 2], [3], 66.67),
        "src/bad_lines.py": entry(["1"], []),  # type: ignore[list-item]
        "src/no_summary.py": {"executed_lines": [1], "missing_lines": []},
        "/elsewhere/lib.py": entry([1], []),
        "../escape.py": entry([1], []),
        "./src/dotted.py": entry([], [1], 0.0),
    }
    found = read_files(write(tmp_path, {"files": files}), root="/workspace")
    assert [f.path for f in found] == ["src/dotted.py", "src/good.py"]
    assert found[1] == FileCoverage(
        path="src/good.py", percent=66.67, executed=(1, 2), missing=(3,)
    )


def test_only_executable_lines_of_measured_files_count() -> None:
    files = [FileCoverage(path="src/a.py", percent=50.0, executed=(1, 2), missing=(5, 6, 7, 9))]
    added = {"src/a.py": {2, 3, 4, 5, 6, 7, 9, 40}, "tests/test_a.py": {1, 2, 3}, "README": {1}}
    diff = diff_coverage(files, added)
    assert (diff.covered, diff.total) == (1, 5)
    assert diff.percent == 20.0
    assert diff.details() == ("src/a.py: lines 5-7, 9 not run by any test",)


def test_no_added_executable_line_gives_no_percentage() -> None:
    files = [FileCoverage(path="src/a.py", percent=50.0, executed=(1,), missing=(2,))]
    assert diff_coverage(files, {"src/a.py": {10, 11}}).percent is None
    assert diff_coverage(files, {}).percent is None
    assert diff_coverage((), {"src/a.py": {1}}).total == 0


def test_a_single_untested_line_reads_as_one_line() -> None:
    files = [FileCoverage(path="m.py", percent=0.0, missing=(4,))]
    assert diff_coverage(files, {"m.py": {4}}).details() == ("m.py: line 4 not run by any test",)


def test_collapse_makes_ranges() -> None:
    assert collapse([20, 12, 13, 14, 14]) == "12-14, 20"
    assert collapse([1, 3, 5]) == "1, 3, 5"
    assert collapse([]) == ""


def test_file_deltas_sort_by_drop_and_follow_renames() -> None:
    def fc(path: str, percent: float) -> FileCoverage:
        return FileCoverage(path=path, percent=percent)

    baseline = [fc("a.py", 90.0), fc("b.py", 80.0), fc("c.py", 50.0), fc("old.py", 70.0)]
    baseline += [fc("gone.py", 10.0), fc("tiny.py", 60.0)]
    change = [fc("a.py", 85.0), fc("b.py", 40.0), fc("c.py", 70.0), fc("moved.py", 60.0)]
    change += [fc("new.py", 30.0), fc("tiny.py", 60.04)]
    deltas = file_deltas(baseline, change, renames={"moved.py": "old.py"})
    assert [(d.path, d.before, d.after) for d in deltas] == [
        ("b.py", 80.0, 40.0),
        ("moved.py", 70.0, 60.0),
        ("a.py", 90.0, 85.0),
        ("c.py", 50.0, 70.0),
        ("new.py", None, 30.0),
        ("gone.py", 10.0, None),
    ]
    assert deltas[0].render() == "b.py: 80.0 % → 40.0 % (-40.0)"
    assert deltas[4].render() == "new.py: — → 30.0 %"


def test_verdict_is_skipped_without_per_file_coverage() -> None:
    result = verdict(TestReport(), TestReport(), ChangeView())
    assert result.skipped
