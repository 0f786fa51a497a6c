"""The warm environment pool on the real filesystem: overlay mounts as root, copies otherwise, flocks."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from shipyard.errors import ConfigError, SandboxError
from shipyard.sandbox.base import CommandResult
from shipyard.sandbox.pool import EnvPool, keep_from_env, root_from_env

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="overlay mounts need root")


class Builder:
    """Writes a one-file 'environment' and counts how often it was asked to."""

    def __init__(self, *, ok: bool = True, pause: float = 0.0) -> None:
        self.ok = ok
        self.pause = pause
        self.calls = 0

    def __call__(self, staging: Path) -> CommandResult:
        self.calls += 1
        time.sleep(self.pause)
        (staging / "venv").mkdir()
        (staging / "venv" / "pyvenv.cfg").write_text(f"built {self.calls}\n")
        return CommandResult(
            argv=("build",), exit_code=0 if self.ok else 1, stdout="", stderr="no wheel",
            duration_seconds=self.pause,
        )  # fmt: skip


def use(pool: EnvPool, key: str, build: Builder, where: Path) -> tuple[bool, str, str]:
    """Check out ``key``, write into the layer, and report (hit, mechanism, what the layer held)."""
    with pool.checkout(key, build=build, target=where / "venv", workdir=where / "layer") as out:
        layer = out.layer
        assert layer is not None

        def touch() -> str:
            seen = (layer.path / "pyvenv.cfg").read_text()
            (layer.path / "pyvenv.cfg").write_text("changed by the run\n")
            (layer.path / "new-file").write_text("x")
            return seen

        return out.hit, layer.mechanism, layer.visit(touch)


@as_root
def test_built_once_then_lent_as_an_overlay_the_run_cannot_change(tmp_path: Path) -> None:
    pool = EnvPool(tmp_path / "pool")
    build = Builder()
    assert use(pool, "k1", build, tmp_path / "run1") == (False, "overlay", "built 1\n")
    assert use(pool, "k1", build, tmp_path / "run2") == (True, "overlay", "built 1\n")
    assert build.calls == 1
    entry = pool.entry("k1") / "venv"
    assert (entry / "pyvenv.cfg").read_text() == "built 1\n"
    assert not (entry / "new-file").exists()
    assert not (tmp_path / "run2" / "venv").exists(), "the layer is unmounted and removed"
    assert not (tmp_path / "run2" / "layer").exists()


def test_copies_when_an_overlay_cannot_be_mounted(tmp_path: Path) -> None:
    # overlayfs options cannot name a path with a comma: the same fallback as for a non-root user.
    pool = EnvPool(tmp_path / "a,b" / "pool")
    build = Builder()
    with pool.checkout(
        "k1", build=build, target=tmp_path / "run" / "venv", workdir=tmp_path / "run" / "layer"
    ) as out:
        assert out.layer is not None
        assert out.layer.mechanism == "copy"
        assert "," in out.layer.note
        (out.layer.path / "pyvenv.cfg").write_text("changed\n")
    assert (pool.entry("k1") / "venv" / "pyvenv.cfg").read_text() == "built 1\n"
    assert not (tmp_path / "run" / "venv").exists()


def test_copies_when_asked_to(tmp_path: Path) -> None:
    pool = EnvPool(tmp_path / "pool", mechanism="copy")
    build = Builder()
    assert use(pool, "k1", build, tmp_path / "run1") == (False, "copy", "built 1\n")
    assert use(pool, "k1", build, tmp_path / "run2") == (True, "copy", "built 1\n")
    assert (pool.entry("k1") / "venv" / "pyvenv.cfg").read_text() == "built 1\n"


def test_a_failed_build_is_reported_and_never_published(tmp_path: Path) -> None:
    pool = EnvPool(tmp_path / "pool")
    failing = Builder(ok=False)
    with pool.checkout(
        "k1", build=failing, target=tmp_path / "venv", workdir=tmp_path / "layer"
    ) as out:
        assert out.layer is None
        assert out.built is not None
        assert out.built.stderr == "no wheel"
    assert pool.recent_keys() == []
    assert list((pool.root / "tmp").iterdir()) == []
    # The next run tries again rather than remembering the failure.
    assert use(pool, "k1", Builder(), tmp_path / "run")[0] is False


def test_a_builder_that_leaves_no_environment_is_an_error(tmp_path: Path) -> None:
    def build(staging: Path) -> CommandResult:
        return CommandResult(argv=("b",), exit_code=0, stdout="", stderr="", duration_seconds=0)

    pool = EnvPool(tmp_path / "pool")
    with (
        pytest.raises(SandboxError, match="builder must create it"),
        pool.checkout("k1", build=build, target=tmp_path / "v", workdir=tmp_path / "l"),
    ):
        pass
    assert pool.recent_keys() == []


def test_concurrent_runs_of_one_key_build_it_once(tmp_path: Path) -> None:
    pool = EnvPool(tmp_path / "pool")
    build = Builder(pause=0.5)
    start = threading.Barrier(3)
    results: list[tuple[bool, str, str]] = []

    def run(n: int) -> None:
        start.wait()
        # Each thread its own pool object, like separate processes: only the flocks coordinate them.
        results.append(use(EnvPool(pool.root), "shared", build, tmp_path / f"run{n}"))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert build.calls == 1
    assert sorted(hit for hit, _, _ in results) == [False, True, True]
    assert {seen for _, _, seen in results} == {"built 1\n"}
    assert (pool.entry("shared") / "venv" / "pyvenv.cfg").read_text() == "built 1\n"


def test_keeps_the_most_recently_used_and_never_evicts_one_in_use(tmp_path: Path) -> None:
    pool = EnvPool(tmp_path / "pool", keep=2)
    for key in ("old", "mid"):
        use(pool, key, Builder(), tmp_path / key)
        time.sleep(0.02)  # distinct mtimes
    use(pool, "old", Builder(), tmp_path / "old-again")  # used again: now the newest
    time.sleep(0.02)
    use(pool, "new", Builder(), tmp_path / "new")
    assert sorted(pool.recent_keys()) == ["new", "old"]
    assert not (pool.root / "locks" / "mid.lock").exists()

    with pool.checkout(
        "old", build=Builder(), target=tmp_path / "held" / "venv", workdir=tmp_path / "held" / "l"
    ):
        time.sleep(0.02)
        for key in ("x", "y"):
            use(pool, key, Builder(), tmp_path / key)
            time.sleep(0.02)
        assert "old" in pool.recent_keys(), "an entry in use is not evicted"
    assert pool.evict() == ["old"]
    assert sorted(pool.recent_keys()) == ["x", "y"]


def test_eviction_clears_what_a_crashed_build_left(tmp_path: Path) -> None:
    pool = EnvPool(tmp_path / "pool")
    leftover = pool.root / "tmp" / "k1.abc123"
    (leftover / "venv").mkdir(parents=True)
    pool.evict()
    assert not leftover.exists()


def test_keep_comes_from_the_environment_and_is_validated() -> None:
    assert keep_from_env({}) == 8
    assert keep_from_env({"SHIPYARD_POOL_KEEP": "3"}) == 3
    for bad in ("0", "-1", "many"):
        with pytest.raises(ConfigError, match="SHIPYARD_POOL_KEEP"):
            keep_from_env({"SHIPYARD_POOL_KEEP": bad})
    with pytest.raises(ConfigError, match="at least 1"):
        EnvPool(Path("/nonexistent"), keep=0)


def test_homes_that_name_one_pool_directory_build_each_environment_once(tmp_path: Path) -> None:
    assert root_from_env(tmp_path / "home" / "cache" / "envs", {}) == tmp_path / "home/cache/envs"
    shared = {"SHIPYARD_POOL_DIR": str(tmp_path / "shared")}
    pools = [EnvPool(root_from_env(tmp_path / home / "cache" / "envs", shared)) for home in "ab"]
    build = Builder()
    first = use(pools[0], "k1", build, tmp_path / "run-a")
    second = use(pools[1], "k1", build, tmp_path / "run-b")
    assert (first[0], second[0], build.calls) == (False, True, 1)
    assert pools[1].recent_keys() == ["k1"]
    assert not (tmp_path / "a").exists()
    with pytest.raises(ConfigError, match="SHIPYARD_POOL_DIR='envs': use an absolute path"):
        root_from_env(tmp_path, {"SHIPYARD_POOL_DIR": "envs"})


def test_keys_must_be_digests(tmp_path: Path) -> None:
    pool = EnvPool(tmp_path / "pool")
    with (
        pytest.raises(SandboxError, match="must be letters"),
        pool.checkout("../x", build=Builder(), target=tmp_path / "v", workdir=tmp_path / "l"),
    ):
        pass
