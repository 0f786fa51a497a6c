"""The harness on real trees in a real sandbox: what it measures cannot be faked by the change step."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.config import GatesConfig
from shipyard.deps.localindex import serve
from shipyard.gates.harness import Harness, export_tree
from shipyard.gates.tests import compare
from shipyard.sandbox import BwrapSandbox
from tests.conftest import EXAMPLES, example_index, needs_bwrap

sys.path.insert(0, str(EXAMPLES))
from scenario import _git, make_repo

pytestmark = [needs_bwrap, pytest.mark.slow]


@pytest.fixture(scope="module")
def index_url() -> Iterator[str]:
    with serve(example_index()) as index:
        yield index.url


def commit(repo: Path, message: str) -> str:
    _git("commit", "-qam", message, cwd=repo)
    return _git("rev-parse", "HEAD", cwd=repo)


def harness(tmp_path: Path, index_url: str) -> Harness:
    return Harness(
        sandbox=BwrapSandbox(),
        config=GatesConfig(),
        index_url=index_url,
        cache_dir=tmp_path / "cache",
    )


def test_uncommitted_files_are_not_measured(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "tests" / "test_fake.py").write_text("def test_always(): pass\n")
    tree = export_tree(repo, "HEAD", tmp_path / "tree")
    assert not (tree / "tests" / "test_fake.py").exists()
    assert not (tree / ".git").exists()
    assert (tree / "tests" / "test_stock.py").exists()


def test_deleting_a_test_counts_as_a_failure_and_baselines_are_cached(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    base = _git("rev-parse", "HEAD", cwd=repo)
    (repo / "tests" / "test_stock.py").unlink()
    _git("add", "-A", cwd=repo)
    change = commit(repo, "drop a test file")
    h = harness(tmp_path, index_url)
    baseline = h.measure(repo, base, scratch=tmp_path / "b", phase="baseline")
    after = h.measure(repo, change, scratch=tmp_path / "c", phase="change")
    result = compare(baseline, after)
    assert len(baseline.passed) == 24
    assert result.missing
    assert all(t.startswith("tests.test_stock::") for t in result.missing)
    assert result.pass_rate < 0.95
    # The same base is not measured again.
    (tmp_path / "b2").mkdir()
    again = h.measure(repo, base, scratch=tmp_path / "b2", phase="baseline")
    assert again == baseline
    assert not (tmp_path / "b2" / "tree").exists()


def test_a_requirement_the_index_lacks_fails_loudly_on_the_host(
    tmp_path: Path, index_url: str
) -> None:
    from shipyard.errors import DependencyError

    repo = make_repo(tmp_path / "repo")
    (repo / "requirements.txt").write_text("slugkit==99.0.0\n")
    change = commit(repo, "impossible pin")
    with pytest.raises(DependencyError, match="slugkit"):
        harness(tmp_path, index_url).measure(repo, change, scratch=tmp_path / "c", phase="change")


def test_tests_cannot_reach_the_host_network_or_home(tmp_path: Path, index_url: str) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "tests" / "test_escape.py").write_text(
        "import os, socket, pytest\n"
        "def test_no_home():\n    assert not os.path.exists('/root/.bashrc')\n"
        "def test_no_network():\n"
        "    with pytest.raises(OSError):\n"
        f"        socket.create_connection(('127.0.0.1', {index_url.split(':')[2].split('/')[0]}), timeout=2)\n"
    )
    _git("add", "-A", cwd=repo)
    change = commit(repo, "try to escape")
    report = harness(tmp_path, index_url).measure(
        repo, change, scratch=tmp_path / "c", phase="change"
    )
    outcomes = {c.id: c.outcome for c in report.cases}
    assert outcomes["tests.test_escape::test_no_home"] == "passed"
    assert outcomes["tests.test_escape::test_no_network"] == "passed"
