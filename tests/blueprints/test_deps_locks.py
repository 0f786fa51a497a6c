"""Lock files end to end through the real CLI: lock file maintenance refreshing a transitive pin of a
uv.lock, and a pyproject.toml range with its uv.lock updated by the range strategy. Real git, a real
local index over HTTP, real bubblewrap with uv inside (through the egress proxy), the real gates and
the seed policy.

The gates install from requirements files, which a uv project does not have; the project's own tests
check what a reviewer would: every range in pyproject.toml admits the version uv.lock holds, and
every locked package's dependencies are locked too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.deps.localindex import serve
from tests.blueprints.test_deps_runs import TOOLS, git
from tests.conftest import EXAMPLES, example_index, needs_bwrap, shipyard_cli
from tests.deps.conftest import make_wheel

sys.path.insert(0, str(EXAMPLES))
from scenario import branches, show

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.xdist_group("test_deps_locks")]
UV = Path(sys.executable).parent / "uv"
MONTH_AGO = time.time() - 30 * 86400


@pytest.fixture(scope="module")
def lock_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test tools, ``top`` 1.0.0 and 1.1.0 (both need ``base>=1.0``) and ``base`` 1.0.0 and
    1.1.0, all a month old."""
    folder = tmp_path_factory.mktemp("lock-index")
    for wheel in example_index().glob("*.whl"):
        if wheel.name.split("-")[0].lower() in TOOLS:
            (folder / wheel.name).symlink_to(wheel)
    for name, version, requires in (
        ("base", "1.0.0", ()), ("base", "1.1.0", ()),
        ("top", "1.0.0", ("base>=1.0",)), ("top", "1.1.0", ("base>=1.0",)),
    ):  # fmt: skip
        wheel = make_wheel(folder, name, version, requires=requires)
        os.utime(wheel, (MONTH_AGO, MONTH_AGO))
    with serve(folder) as running:
        yield running.url


PYPROJECT = """\
[project]
name = "rangeapp"
version = "0.1.0"
requires-python = ">=3.11"
# the API we use appeared in 1.0
dependencies = [
    DEPENDENCIES
]
"""

LOCKCHECK = """\
\"\"\"What a reviewer checks of a uv project: its lock agrees with its ranges and is complete.\"\"\"

import tomllib
from pathlib import Path

from packaging.requirements import Requirement


def out_of_range(root: Path) -> list[str]:
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    locked = {p["name"]: p["version"]
              for p in tomllib.loads((root / "uv.lock").read_text())["package"]}
    return [text for text in declared
            if not Requirement(text).specifier.contains(locked[Requirement(text).name])]


def unlocked(root: Path) -> list[str]:
    packages = tomllib.loads((root / "uv.lock").read_text())["package"]
    names = {p["name"] for p in packages}
    return [d["name"] for p in packages for d in p.get("dependencies", []) if d["name"] not in names]
"""

CHECK = """\
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rangeapp import lockcheck


def test_the_lock_satisfies_the_declared_ranges():
    assert lockcheck.out_of_range(ROOT) == []


def test_every_locked_dependency_is_locked():
    assert lockcheck.unlocked(ROOT) == []
"""
GATES = '[gates.tests]\npaths = ["tests"]\nrequirements = []\ncoverage_source = ["src"]\n\n'


def uv_project(root: Path, index: str, deps: dict[str, list[str]], shipyard_toml: str) -> Path:
    """A uv project locked against ``index`` with ``deps["first"]`` (constraints that hold versions
    back), then with ``deps["then"]``, which keeps what is locked; committed on main."""
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_lock.py").write_text(CHECK)
    (root / "src" / "rangeapp").mkdir(parents=True)
    (root / "src" / "rangeapp" / "__init__.py").write_text("")
    (root / "src" / "rangeapp" / "lockcheck.py").write_text(LOCKCHECK)
    (root / "shipyard.toml").write_text(shipyard_toml)
    env = {**os.environ, "UV_CACHE_DIR": str(root.parent / "uv-cache"), "UV_NO_CONFIG": "1",
           "UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never"}  # fmt: skip
    for step in ("first", "then"):
        listed = "\n".join(f'    "{d}",' for d in deps[step])
        (root / "pyproject.toml").write_text(PYPROJECT.replace("    DEPENDENCIES", listed))
        subprocess.run([str(UV), "lock", "--default-index", index.rstrip("/")], cwd=root, env=env,
                       check=True, capture_output=True, timeout=120)  # fmt: skip
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "add", "--all")
    git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "--quiet", "-m", "start")
    return root


def locked(text: str) -> dict[str, str]:
    return {p["name"]: p["version"] for p in tomllib.loads(text)["package"]}


def run_deps(home: Path, repo: Path, index: str, *extra: str) -> str:
    done = shipyard_cli(home, "run", "deps", "--repo", str(repo), "--index-url", index, "--json",
                        *extra, ok=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_lock_maintenance_refreshes_a_transitive_pin_verified_and_merged(
    tmp_path: Path, lock_index: str
) -> None:
    repo = uv_project(
        tmp_path / "repo", lock_index,
        {"first": ["top>=1.0,<2", "base<1.1"], "then": ["top>=1.0,<2"]},
        GATES + '[deps]\nlock_maintenance = "weekly"\n',
    )  # fmt: skip
    assert locked((repo / "uv.lock").read_text()) == {"base": "1.0.0", "top": "1.1.0",
                                                      "rangeapp": "0.1.0"}  # fmt: skip
    pyproject = show(repo, "main", "pyproject.toml")
    home = tmp_path / "home"
    planned = run_deps(home, repo, lock_index, "--dry-run")
    # top is current and base transitive: only lock file maintenance is due
    assert [json.loads(line)["update_type"] for line in planned.splitlines()] == [
        "lock-maintenance"
    ]
    main = show(repo, "main", "uv.lock")
    (run,) = json.loads(run_deps(home, repo, lock_index))
    assert run["task"]["title"] == "Lock file maintenance: refresh transitive pins"
    # verified by the gates; the seed's auto-merge allowlist has no uv.lock, so the policy asks
    # for a review and main stays as it was until someone approves
    assert run["status"] == "awaiting_review", run
    assert run["decision"]["action"] == "REVIEW"
    assert "paths.outside_allowlist" in [r["rule"] for r in run["decision"]["reasons"]]
    assert run["gates"]["verdict"]["tests"]["status"] == "passed"
    assert show(repo, "main", "uv.lock") == main
    assert locked(show(repo, run["branch"], "uv.lock"))["base"] == "1.1.0"
    assert show(repo, run["branch"], "pyproject.toml") == pyproject
    report = (home / "runs" / run["run_id"] / "report.md").read_text()
    assert "Lock file maintenance" in report
    assert "| base | 1.0.0 | 1.1.0 | minor |" in report
    assert "| top |" not in report  # it did not move
    assert "## Gates" in report
    assert "base 1.0.0 → 1.1.0 (minor" in git(repo, "log", "--format=%B", "-1", run["branch"])
    # approved, it reaches main through the merge queue
    shipyard_cli(home, "review", "approve", run["run_id"], "--by", "reviewer")
    assert locked(show(repo, "main", "uv.lock"))["base"] == "1.1.0"
    # done for this week: the next plan has nothing to start
    assert run_deps(home, repo, lock_index, "--dry-run").strip() == ""


def test_a_pyproject_range_and_its_uv_lock_move_together_and_merge(
    tmp_path: Path, lock_index: str
) -> None:
    repo = uv_project(
        tmp_path / "repo", lock_index, {"first": ["top>=1.0,<1.1"], "then": ["top>=1.0,<1.1"]},
        GATES + '[deps]\nrange_strategy = "bump"\n\n'
        '[policy]\nextra_automerge_allowlist = ["uv.lock"]\n',  # the seed's list lacks lock files
    )  # fmt: skip
    pyproject = show(repo, "main", "pyproject.toml")
    assert locked((repo / "uv.lock").read_text())["top"] == "1.0.0"
    (run,) = json.loads(run_deps(tmp_path / "home", repo, lock_index))
    assert run["task"]["title"] == "Update top from 1.0.0 to 1.1.0"
    assert run["status"] == "merged", run
    assert run["decision"]["action"] == "MERGE"
    (update,) = run["task"]["params"]["updates"]
    assert {(c["manifest"], c["new_specifier"]) for c in update["changes"]} == {
        ("pyproject.toml", ">=1.1.0,<1.2"),
        ("uv.lock", None),
    }
    # the range strategy's edit and nothing else in pyproject.toml; the lock re-resolved to match
    assert show(repo, "main", "pyproject.toml") == pyproject.replace(
        '"top>=1.0,<1.1"', '"top>=1.1.0,<1.2"'
    )
    assert locked(show(repo, "main", "uv.lock"))["top"] == "1.1.0"
    assert sorted(branches(repo)) == ["main"]
    assert git(repo, "status", "--porcelain") == ""
