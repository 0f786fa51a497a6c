"""Flaky or broken: node ids from real JUnit reports, real re-runs in bwrap, and the quarantine fold."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipyard.config import GatesConfig
from shipyard.deps.localindex import serve
from shipyard.deps.wheelhouse import download
from shipyard.events import EventType
from shipyard.gates.base import GateContext
from shipyard.gates.environment import gate_limits, install, python_env, sandbox_python
from shipyard.gates.flaky import nodeid, quarantine, quarantine_for_repo, rerun
from shipyard.gates.tests import read_junit
from shipyard.model import Task
from shipyard.sandbox import BwrapSandbox
from shipyard.store import Store
from tests.conftest import example_index, needs_bwrap

REQS = ["pytest==9.2.0"]
LIMITS = gate_limits(timeout_seconds=120, memory_mb=2048)

# --- node ids from real pytest JUnit reports -------------------------------------------------------

ID_TREE = {
    "test_root.py": "def test_top():\n    pass\n",
    "tests/test_a.py": """\
import pytest


class TestA:
    class TestInner:
        def test_x(self):
            pass

    @pytest.mark.parametrize("v", [1, "a.b", "x::y", "p/q"])
    def test_b(self, v):
        pass


def test_fails():
    assert False
""",
    "tests/sub/test_s.py": "def test_s():\n    pass\n",
    "tests/pkg/__init__.py": "",
    "tests/pkg/test_p.py": "class TestP:\n    def test_p(self):\n        pass\n",
    "tests/pkg/deeper/__init__.py": "",
    "tests/pkg/deeper/test_d.py": "import pytest\n\n\n@pytest.mark.parametrize('n', [1, 2])\n"
    "def test_d(n):\n    pass\n",
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def host_pytest(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *args]
    return subprocess.run(argv, cwd=tree, capture_output=True, text=True, timeout=120)


def test_nodeid_rebuilds_every_node_of_a_real_junit_report(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", ID_TREE)
    host_pytest(tree, ".", f"--junitxml={tmp_path / 'junit.xml'}")
    ids = [c.id for c in read_junit(tmp_path / "junit.xml")]
    assert len(ids) == 11
    assert "tests.test_a.TestA::test_b[x::y]" in ids
    collected = host_pytest(tree, "--collect-only", "-q", ".").stdout.splitlines()
    expected = {line for line in collected if "::" in line}
    resolved = {test: nodeid(test, tree) for test in ids}
    assert set(resolved.values()) == expected
    assert (
        resolved["tests.test_a.TestA.TestInner::test_x"]
        == "tests/test_a.py::TestA::TestInner::test_x"
    )
    assert resolved["tests.test_a.TestA::test_b[a.b]"] == "tests/test_a.py::TestA::test_b[a.b]"
    assert resolved["tests.pkg.deeper.test_d::test_d[2]"] == "tests/pkg/deeper/test_d.py::test_d[2]"
    assert resolved["test_root::test_top"] == "test_root.py::test_top"
    # Each rebuilt id selects exactly its own test when handed back to pytest.
    one = host_pytest(tree, "-q", resolved["tests.test_a.TestA::test_b[x::y]"] or "")
    assert "1 passed" in one.stdout, one.stdout


def test_ids_without_a_file_in_the_tree_are_not_resolved(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", ID_TREE)
    write_tree(tree, {"-p/evil.py": "", "tests/a..b.py": ""})
    outside = tmp_path / "outside.py"
    outside.write_text("def test_o(): pass\n")
    (tree / "linked.py").symlink_to(outside)
    assert nodeid("tests.test_gone::test_x", tree) is None
    assert nodeid("tests.test_a", tree) is None  # no test name
    assert nodeid("::test_x", tree) is None
    assert nodeid("test_x", tree) is None
    assert nodeid("-p.evil::test_x", tree) is None  # would read as a pytest option
    assert nodeid("tests.a..b::test_x", tree) is None
    assert nodeid("linked::test_o", tree) is None  # outside the tree
    assert nodeid("tests.test_a::test_fails", tree) == "tests/test_a.py::test_fails"


# --- real re-runs in the sandbox ----------------------------------------------------------------

FLAKY_TREE = {
    "tests/test_mix.py": """\
from pathlib import Path

import pytest


def test_ok():
    pass


def test_broken():
    assert False, "broken whatever happens"


class TestFlip:
    @pytest.mark.parametrize("n", [1])
    def test_flip(self, n):
        # Fails on its first run only: a counter kept in the writable tree.
        counter = Path(__file__).with_name("flip-counter")
        runs = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(runs + 1))
        assert runs >= 1, "first run"
""",
}
BROKEN = "tests.test_mix::test_broken"
FLIP = "tests.test_mix.TestFlip::test_flip[1]"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A scratch directory holding an installed environment with pytest, and its wheelhouse."""
    base = tmp_path_factory.mktemp("flakyenv")
    wheelhouse, scratch = base / "wh", base / "scratch"
    scratch.mkdir()
    with serve(example_index()) as index:
        download([], index_url=index.url, dest=wheelhouse, extra_requirements=REQS)
    env = python_env(scratch=scratch, wheelhouse=wheelhouse)
    tree = write_tree(base / "tree", FLAKY_TREE)
    done = install(
        BwrapSandbox(), tree=tree, env=env, python=sandbox_python(), files=[], extra=REQS,
        limits=gate_limits(timeout_seconds=300, memory_mb=4096),
    )  # fmt: skip
    assert done.ok, done.stderr
    return scratch, wheelhouse


def context(tmp_path: Path, installed: tuple[Path, Path]) -> GateContext:
    scratch, wheelhouse = installed
    for stale in scratch.glob("rerun-*.xml"):
        stale.unlink()
    return GateContext(
        tree=write_tree(tmp_path / "tree", FLAKY_TREE),
        scratch=scratch,
        wheelhouse=wheelhouse,
        sandbox=BwrapSandbox(),
        config=GatesConfig(),
        phase="change",
        env=python_env(scratch=scratch, wheelhouse=wheelhouse),
    )


def full_run(ctx: GateContext) -> list[str]:
    """Run the whole suite once in the sandbox, as the tests gate does; return the failing ids."""
    assert ctx.env is not None
    argv = [ctx.env.python, "-m", "pytest", "tests", "-p", "no:cacheprovider", "-q"]
    ctx.run([*argv, "--junitxml=/env/full.xml"], limits=LIMITS)
    cases = read_junit(ctx.scratch / "full.xml")
    assert {c.id for c in cases if c.outcome == "passed"} == {"tests.test_mix::test_ok"}
    return [c.id for c in cases if c.outcome in ("failed", "error")]


@needs_bwrap
@pytest.mark.slow
def test_reruns_tell_flaky_from_broken(tmp_path: Path, installed: tuple[Path, Path]) -> None:
    ctx = context(tmp_path, installed)
    failing = full_run(ctx)
    assert failing == [BROKEN, FLIP]
    report = rerun(
        ctx, [*failing, "tests.test_gone::test_x"], reruns=3, max_tests=10, limits=LIMITS
    )
    assert report.flaky == (FLIP,)
    assert report.broken == (BROKEN,)
    assert report.not_rerun == ("tests.test_gone::test_x",)
    # The broken test ran three times; the flaky one stopped at its first pass; test_ok never ran.
    assert report.runs == 4
    assert (ctx.tree / "tests" / "flip-counter").read_text() == "2"
    assert sorted(p.name for p in ctx.scratch.glob("rerun-*.xml")) == [
        "rerun-0-0.xml",
        "rerun-0-1.xml",
        "rerun-0-2.xml",
        "rerun-1-0.xml",
    ]
    facts = json.loads(json.dumps(report.to_facts()))
    assert facts == {
        "flaky": [FLIP],
        "broken": [BROKEN],
        "not_rerun": ["tests.test_gone::test_x"],
        "runs": 4,
    }
    result = report.result()
    assert not result.passed
    assert f"flaky (failed, then passed when re-run alone): {FLIP}" in result.details


@needs_bwrap
@pytest.mark.slow
def test_no_reruns_and_max_tests_are_respected(
    tmp_path: Path, installed: tuple[Path, Path]
) -> None:
    ctx = context(tmp_path, installed)
    failing = full_run(ctx)
    off = rerun(ctx, failing, reruns=0, max_tests=10, limits=LIMITS)
    assert (off.flaky, off.broken, off.runs) == ((), (), 0)
    assert off.not_rerun == (BROKEN, FLIP)
    assert not list(ctx.scratch.glob("rerun-*.xml"))

    first_only = rerun(ctx, failing, reruns=2, max_tests=1, limits=LIMITS)
    assert first_only.broken == (BROKEN,)
    assert first_only.flaky == ()
    assert first_only.not_rerun == (FLIP,)
    assert first_only.runs == 2
    assert (ctx.tree / "tests" / "flip-counter").read_text() == "1"  # the flip test did not re-run


@needs_bwrap
@pytest.mark.slow
def test_one_rerun_tells_a_test_that_now_passes_from_one_that_still_fails(
    tmp_path: Path, installed: tuple[Path, Path]
) -> None:
    ctx = context(tmp_path, installed)
    (ctx.tree / "tests" / "flip-counter").write_text("1")  # already past its failing run
    report = rerun(ctx, [FLIP, BROKEN], reruns=1, max_tests=5, limits=LIMITS)
    assert report.flaky == (FLIP,)
    assert report.broken == (BROKEN,)
    assert report.runs == 2


@needs_bwrap
@pytest.mark.slow
def test_a_zero_exit_status_does_not_make_a_failing_test_pass(
    tmp_path: Path, installed: tuple[Path, Path]
) -> None:
    ctx = context(tmp_path, installed)
    hide = "def pytest_sessionfinish(session, exitstatus):\n    session.exitstatus = 0\n"
    (ctx.tree / "conftest.py").write_text(hide)
    report = rerun(ctx, [BROKEN], reruns=1, max_tests=5, limits=LIMITS)
    assert report.broken == (BROKEN,)
    assert report.flaky == ()


def test_without_an_environment_nothing_is_rerun(tmp_path: Path) -> None:
    ctx = GateContext(
        tree=tmp_path,
        scratch=tmp_path,
        wheelhouse=tmp_path,
        sandbox=BwrapSandbox(),
        config=GatesConfig(),
        phase="change",
    )
    report = rerun(ctx, [BROKEN], reruns=3, max_tests=5, limits=LIMITS)
    assert report.not_rerun == (BROKEN,)
    assert report.runs == 0


# --- the quarantine list ------------------------------------------------------------------------


def test_quarantine_folds_events_per_test() -> None:
    events = [
        {"repo": "/r", "tests": ["a", "b"], "run_id": "r2", "at": "2026-03-02T10:00:00+00:00"},
        {"repo": "/r", "tests": ["a", "a"], "run_id": "r1", "at": "2026-03-01T10:00:00+00:00"},
        {"repo": "/r", "tests": ["a"], "run_id": "r3", "at": "2026-03-05T10:00:00"},
        {"repo": "/other", "tests": ["a"], "run_id": "x", "at": "2026-01-01T00:00:00+00:00"},
        {"repo": "/r", "tests": "a", "run_id": "bad", "at": "2026-03-01T10:00:00+00:00"},
        {"repo": "/r", "tests": ["a"], "run_id": "bad", "at": "yesterday"},
        {"tests": ["a"]},
    ]
    entries = quarantine(events, repo="/r")
    assert set(entries) == {"a", "b"}
    a = entries["a"]
    assert a.times_seen == 3  # named twice in r1, counted once
    assert a.runs == ("r2", "r1", "r3")
    assert a.first_seen == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert a.last_seen == datetime(2026, 3, 5, 10, tzinfo=UTC)  # a naive time is taken as UTC
    assert entries["b"].times_seen == 1
    assert json.loads(json.dumps(a.to_dict()))["runs"] == ["r2", "r1", "r3"]
    assert quarantine(events)["a"].times_seen == 4  # every repository
    assert quarantine([]) == {}


def test_quarantine_for_repo_reads_the_store(tmp_path: Path) -> None:
    with Store.open(home=tmp_path) as store:
        runs = [store.create_run(Task(blueprint="deps", repo="/srv/app")) for _ in range(3)]
        other = store.create_run(Task(blueprint="deps", repo="/srv/other"))
        store.append(runs[0], EventType.TESTS_FLAKY, {"repo": "/srv/app", "tests": ["t1", "t2"]})
        store.append(runs[1], EventType.LOG, {"message": "t1 is flaky, or is it"})
        store.append(runs[2], EventType.TESTS_FLAKY, {"repo": "/srv/app", "tests": ["t1"]})
        store.append(other, EventType.TESTS_FLAKY, {"repo": "/srv/other", "tests": ["t1", "t9"]})
        found = quarantine_for_repo(store, "/srv/app")
    assert [(e.test, e.times_seen) for e in found] == [("t1", 2), ("t2", 1)]
    assert set(found[0].runs) == {runs[0], runs[2]}
    assert found[0].first_seen <= found[0].last_seen
    assert found[1].runs == (runs[0],)
