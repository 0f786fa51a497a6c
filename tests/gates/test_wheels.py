"""The wheelhouse cache, against a real local index: reused while fresh, resolved again after.

A wheel linked from the cache shares its inode with the cache entry's copy; a downloaded one does not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.deps.localindex import serve
from shipyard.errors import DependencyConflict
from shipyard.gates.wheels import WHEELHOUSE_TTL_SECONDS, fetch_wheels, wheelhouse_key
from tests.conftest import example_index

FILES = ["requirements.txt"]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve(example_index()) as index:
        yield index.url


def tree_with(path: Path, requirements: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "requirements.txt").write_text(requirements)
    return path


def entry_inodes(cache: Path) -> set[int]:
    return {w.stat().st_ino for w in (cache / "wheelhouses").glob("*/*.whl")}


def names(wheels: list[Path]) -> list[str]:
    return sorted(w.name.split("-")[0] for w in wheels)


def test_the_same_requirements_are_resolved_once_then_linked(tmp_path: Path, url: str) -> None:
    cache = tmp_path / "cache"
    base = tree_with(tmp_path / "base", "slugkit==1.0.0\n")
    change = tree_with(tmp_path / "change", "slugkit==1.0.0\n")
    extra = ["pytest==9.2.0"]
    first, reused = fetch_wheels(base, files=FILES, extra=extra, index_url=url,
                                 dest=tmp_path / "wh1", cache_dir=cache)  # fmt: skip
    assert not reused
    assert {"slugkit", "pytest"} <= set(names(first))
    again, reused = fetch_wheels(change, files=FILES, extra=extra, index_url=url,
                                 dest=tmp_path / "wh2", cache_dir=cache)  # fmt: skip
    assert reused
    assert names(again) == names(first)
    assert {w.stat().st_ino for w in again} <= entry_inodes(cache)  # linked from the cache
    for wheel in again:
        assert wheel.read_bytes() == (tmp_path / "wh1" / wheel.name).read_bytes()
        wheel.unlink()  # a run removing its wheelhouse leaves the cache whole
    third, reused = fetch_wheels(change, files=FILES, extra=extra, index_url=url, dest=tmp_path / "wh3",
                         cache_dir=cache)  # fmt: skip
    assert reused
    assert names(third) == names(first)
    # Other added requirements are another dependency set.
    other = wheelhouse_key(change, FILES, ["pytest==9.2.0", "coverage"], url)
    assert other != wheelhouse_key(change, FILES, extra, url)


def test_changed_requirements_or_an_expired_entry_are_resolved_again(
    tmp_path: Path, url: str
) -> None:
    cache = tmp_path / "cache"
    old = tree_with(tmp_path / "old", "slugkit==1.0.0\n")
    new = tree_with(tmp_path / "new", "slugkit==1.1.0\n")
    fetch_wheels(old, files=FILES, extra=[], index_url=url, dest=tmp_path / "a", cache_dir=cache)
    bumped, reused = fetch_wheels(new, files=FILES, extra=[], index_url=url,
                                  dest=tmp_path / "b", cache_dir=cache)  # fmt: skip
    assert not reused
    assert [w.name for w in bumped] == ["slugkit-1.1.0-py3-none-any.whl"]
    before = entry_inodes(cache)
    later = time.time() + WHEELHOUSE_TTL_SECONDS + 1
    expired, reused = fetch_wheels(old, files=FILES, extra=[], index_url=url,
                                   dest=tmp_path / "c", cache_dir=cache, now=later)  # fmt: skip
    assert not reused
    assert [w.name for w in expired] == ["slugkit-1.0.0-py3-none-any.whl"]
    # The expired entry was replaced by the new download.
    assert {w.stat().st_ino for w in expired} <= entry_inodes(cache)
    assert not {w.stat().st_ino for w in expired} & before
    _, reused = fetch_wheels(old, files=FILES, extra=[], index_url=url, dest=tmp_path / "d",
                             cache_dir=cache, reuse=False)  # fmt: skip
    assert not reused
    _, reused = fetch_wheels(old, files=FILES, extra=[], index_url=url, dest=tmp_path / "e",
                             cache_dir=cache)  # fmt: skip
    assert reused


def test_requirements_installed_from_the_tree_are_never_cached(tmp_path: Path, url: str) -> None:
    tree = tree_with(tmp_path / "t", "-e .\nslugkit==1.0.0\n")
    assert wheelhouse_key(tree, FILES, [], url) is None
    assert wheelhouse_key(tree_with(tmp_path / "u", "slugkit\n"), FILES, [], url) is not None


def test_a_conflict_is_not_cached(tmp_path: Path, url: str) -> None:
    cache = tmp_path / "cache"
    tree = tree_with(tmp_path / "t", "slugkit==1.0.0\nslugkit==1.1.0\n")
    for attempt in ("a", "b"):
        with pytest.raises(DependencyConflict):
            fetch_wheels(tree, files=FILES, extra=[], index_url=url, dest=tmp_path / attempt,
                         cache_dir=cache)  # fmt: skip
    assert entry_inodes(cache) == set()
    assert not (cache / "wheelhouses").exists() or not any((cache / "wheelhouses").iterdir())


@pytest.mark.parametrize(
    "requirements",
    [
        "--find-links wheels\ninternal==1.0\n",
        "-f ./vendor\ninternal==1.0\n",
        "./vendor/internal-1.0-py3-none-any.whl\n",
        "internal @ file:///tmp/internal-1.0-py3-none-any.whl\n",
    ],
)
def test_wheels_from_the_tree_are_never_cached(tmp_path: Path, requirements: str) -> None:
    """Two trees with the same requirement text but different local wheels must not share a
    wheelhouse: the key would hide the difference, and one tree could feed the other's gates."""
    tree = tree_with(tmp_path / "t", requirements)
    assert wheelhouse_key(tree, FILES, [], "http://x/simple/") is None


def test_remote_find_links_are_still_cached(tmp_path: Path) -> None:
    tree = tree_with(tmp_path / "t", "--find-links https://wheels.example/\nslugkit==1.0.0\n")
    assert wheelhouse_key(tree, FILES, [], "http://x/simple/") is not None
