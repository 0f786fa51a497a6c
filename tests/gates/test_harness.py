"""The harness on real trees in a real sandbox: what it measures cannot be faked by the change step."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.config import GatesConfig
from shipyard.gates.base import ChangeView
from shipyard.gates.environment import environment_key
from shipyard.gates.harness import Harness, Verification, export_tree
from shipyard.gates.tests import compare
from shipyard.sandbox import BwrapSandbox
from shipyard.sandbox import pool as pool_module
from shipyard.sandbox.pool import Checkout, EnvPool
from tests.conftest import EXAMPLES, needs_bwrap

sys.path.insert(0, str(EXAMPLES))
from scenario import _git, make_repo

pytestmark = [needs_bwrap, pytest.mark.slow]


def commit(repo: Path, message: str) -> str:
    _git("commit", "-qam", message, cwd=repo)
    return _git("rev-parse", "HEAD", cwd=repo)


def harness(tmp_path: Path, index_url: str) -> Harness:
    """A harness with a pool of its own: these tests count its builds and hits."""
    return Harness(
        sandbox=BwrapSandbox(),
        config=GatesConfig(),
        index_url=index_url,
        cache_dir=tmp_path / "cache",
        pool=EnvPool(tmp_path / "cache" / "envs"),
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
    result = compare(baseline.tests, after.tests)
    assert len(baseline.tests.passed) == 24
    assert result.missing
    assert all(t.startswith("tests.test_stock::") for t in result.missing)
    assert result.pass_rate < 0.95
    # The same base is not measured again: nothing is even exported.
    (tmp_path / "b2").mkdir()
    again = h.measure(repo, base, scratch=tmp_path / "b2", phase="baseline")
    assert again.cached
    assert not baseline.cached
    assert again.tests == baseline.tests
    assert again.results == baseline.results
    assert not (tmp_path / "b2" / "tree").exists()
    # A commit with the same tree (an empty commit on top) is the same measurement.
    _git("commit", "-q", "--allow-empty", "-m", "same tree", cwd=repo)
    same_tree = _git("rev-parse", "HEAD", cwd=repo)
    assert h.measure(repo, same_tree, scratch=tmp_path / "c2", phase="change").cached


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
    outcomes = {c.id: c.outcome for c in report.tests.cases}
    assert outcomes["tests.test_escape::test_no_home"] == "passed"
    assert outcomes["tests.test_escape::test_no_network"] == "passed"


def test_measurements_of_one_dependency_set_share_one_pooled_environment(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    base = _git("rev-parse", "HEAD", cwd=repo)
    (repo / "tests" / "test_tamper.py").write_text(
        "import pathlib, sys\n"
        "def test_writes_into_its_environment():\n"
        "    site = next(pathlib.Path(sys.prefix).glob('lib/python*/site-packages'))\n"
        "    (site / 'tampered.py').write_text('raise SystemExit')\n"
    )
    _git("add", "-A", cwd=repo)
    change = commit(repo, "a test that writes into its environment")
    h = harness(tmp_path, index_url)

    after = h.measure(repo, change, scratch=tmp_path / "c", phase="change")
    baseline = h.measure(repo, base, scratch=tmp_path / "b", phase="baseline")
    assert "tests.test_tamper::test_writes_into_its_environment" in after.tests.passed
    assert len(baseline.tests.passed) == 24
    built, reused = h.environments
    assert (built.hit, reused.hit) == (False, True)
    assert built.key == reused.key
    assert h.pool.recent_keys() == [built.key]
    assert not list(h.pool.entry(built.key).rglob("tampered.py")), "the run's writes stay its own"
    assert built.layer is not None
    assert built.layer.mechanism == ("overlay" if os.geteuid() == 0 else "copy")

    (repo / "requirements.txt").write_text(
        (repo / "requirements.txt").read_text().replace("slugkit==1.0.0", "slugkit==1.1.0")
    )
    bumped = commit(repo, "bump slugkit")
    h.measure(repo, bumped, scratch=tmp_path / "d", phase="change")
    assert h.environments[-1].hit is False
    assert h.environments[-1].key != built.key
    assert sorted(h.pool.recent_keys()) == sorted([built.key, h.environments[-1].key])
    # Two dependency sets, two wheelhouses: the base and the change resolved theirs once.
    assert len(list((tmp_path / "cache" / "wheelhouses").glob("*/.complete"))) == 2


def test_verify_on_a_cold_pool_finishes_when_the_change_saw_the_environment_missing(
    tmp_path: Path, index_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving that hung a worker: both trees need the same missing environment; the
    change tree sees it missing and goes for the key exclusively just as the baseline tree builds it
    and then keeps it shared until ``verify`` ends. ``verify`` must finish, the change on the
    baseline's build."""
    hang = 120.0
    repo = make_repo(tmp_path / "repo")
    base = _git("rev-parse", "HEAD", cwd=repo)
    (repo / "tests" / "test_more.py").write_text("def test_more():\n    assert True\n")
    _git("add", "-A", cwd=repo)
    head = commit(repo, "one more test")
    h = harness(tmp_path, index_url)
    change_saw_missing, baseline_holds = threading.Event(), threading.Event()
    tree = threading.local()
    real_checkout, real_acquire = EnvPool.checkout, pool_module._KeyLock.acquire

    @contextlib.contextmanager
    def checkout(self: EnvPool, key: str, **kwargs: Any) -> Iterator[Checkout]:
        tree.phase = kwargs["target"].parents[1].name  # <scratch>/<phase>/env/venv
        if tree.phase == "baseline":
            assert change_saw_missing.wait(hang), "the change never looked for the environment"
        with real_checkout(self, key, **kwargs) as out:
            if tree.phase == "baseline":
                baseline_holds.set()
            yield out

    def acquire(self: Any, *, exclusive: bool, **kwargs: Any) -> bool:
        if exclusive and getattr(tree, "phase", "") == "change" and not change_saw_missing.is_set():
            change_saw_missing.set()  # failpoint: the change saw the entry missing
            assert baseline_holds.wait(hang), "the baseline never held the environment"
        return bool(real_acquire(self, exclusive=exclusive, **kwargs))

    monkeypatch.setattr(EnvPool, "checkout", checkout)
    monkeypatch.setattr(pool_module._KeyLock, "acquire", acquire)
    done: list[Verification] = []
    worker = threading.Thread(
        target=lambda: done.append(
            h.verify(repo, base, head, scratch=tmp_path / "s", view=ChangeView())
        ),
        daemon=True,
    )
    worker.start()
    worker.join(hang * 2)
    assert not worker.is_alive(), "verify hung on the environment pool's lock"
    assert done, "verify failed (see the thread's traceback above)"
    assert change_saw_missing.is_set()
    assert baseline_holds.is_set()
    assert sorted((c.hit, c.key) for c in h.environments) == [
        (False, h.environments[0].key),
        (True, h.environments[0].key),
    ]
    assert "tests.test_more::test_more" in done[0].change.tests.passed
    assert len(done[0].baseline.tests.passed) == 24


def test_the_environment_key_follows_every_input(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "req").mkdir(parents=True)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "a-1.0-py3-none-any.whl").write_bytes(b"one")
    (tree / "requirements.txt").write_text("a==1.0\n-r req/more.txt\n")
    (tree / "req" / "more.txt").write_text("b\n")

    def key(files: tuple[str, ...] = ("requirements.txt",), **kw: object) -> str | None:
        args: dict[str, object] = {"extra": [], "wheelhouse": wheels, "python": "/py"} | kw
        return environment_key(tree, files=files, **args)  # type: ignore[arg-type]

    first = key()
    assert first is not None
    assert key() == first, "stable for the same inputs"
    assert key(python="/other/py") != first
    assert key(extra=["pytest"]) != first
    (tree / "req" / "more.txt").write_text("b==2\n")
    assert key() != first, "an included file is an input"
    second = key()
    (wheels / "a-1.0-py3-none-any.whl").write_bytes(b"rebuilt")
    assert key() != second, "wheels count by content, not by name"
    (tree / "requirements.txt").write_text("a==1.0\n-e .\n")
    assert key() is None, "an environment built from the tree itself is never pooled"
