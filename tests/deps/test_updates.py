"""Update kinds and the choice of release, pure and against a real local index."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from shipyard.deps.index import DistFile, PackageIndex, Release
from shipyard.deps.localindex import LocalIndex
from shipyard.deps.requirements import parse_text
from shipyard.deps.updates import UpdateKind, best_release, find_updates, update_kind
from shipyard.errors import DependencyError, PackageIndexError
from tests.deps.conftest import make_wheel


@pytest.mark.parametrize(
    ("current", "new", "kind"),
    [
        ("1.0.0", "1.0.1", UpdateKind.PATCH),
        ("1.0", "1.0.0.1", UpdateKind.PATCH),
        ("1.0.0", "1.0.0.post1", UpdateKind.PATCH),
        ("1.0.9", "1.1.0", UpdateKind.MINOR),
        ("1.4", "1.10", UpdateKind.MINOR),
        ("1.4.0", "2.0.0", UpdateKind.MAJOR),
        ("2024.1", "2025.1", UpdateKind.MAJOR),
        ("0.3.0", "0.3.1", UpdateKind.PATCH),
        ("0.3.0", "0.4.0", UpdateKind.MAJOR),
        ("1.0", "1!1.0", UpdateKind.MAJOR),
    ],
)
def test_update_kind_compares_release_segments(current: str, new: str, kind: UpdateKind) -> None:
    assert update_kind(Version(current), Version(new)) is kind


def _release(version: str, *, wheel: bool = True, yanked: bool = False) -> Release:
    name = f"x-{version}-py3-none-any.whl" if wheel else f"x-{version}.tar.gz"
    file = DistFile(filename=name, url=name, wheel=wheel, yanked=yanked)
    return Release(version=Version(version), files=(file,), yanked=yanked, upload_time=None)


ALL = ("patch", "minor", "major")


def test_best_release_skips_yanked_sdist_only_and_prereleases() -> None:
    releases = [
        _release("1.0.0"),
        _release("1.0.1"),
        _release("1.1.0", yanked=True),
        _release("1.2.0rc1"),
        _release("1.3.0", wheel=False),
    ]
    best = best_release(releases, Version("1.0.0"), allow=ALL)
    assert best is not None
    assert best.version == Version("1.0.1")
    pre = best_release(releases, Version("1.0.0"), allow=ALL, prereleases=True)
    assert pre is not None
    assert pre.version == Version("1.2.0rc1")


def test_best_release_respects_the_allowed_kinds() -> None:
    releases = [_release("1.0.1"), _release("1.1.0"), _release("2.0.0")]
    picks = {
        allow: best_release(releases, Version("1.0.0"), allow=allow)
        for allow in [("patch",), ("patch", "minor"), ALL, ("major",)]
    }
    assert {k: r.version.public if r else None for k, r in picks.items()} == {
        ("patch",): "1.0.1",
        ("patch", "minor"): "1.1.0",
        ALL: "2.0.0",
        ("major",): "2.0.0",
    }
    assert best_release(releases, Version("2.0.0"), allow=ALL) is None


def test_find_updates_against_a_real_index(index: LocalIndex) -> None:
    pins = parse_text("alpha==1.0.0\nbeta==0.3.0\n", file="requirements.txt").pins
    with PackageIndex(index.url) as client:
        updates = find_updates(pins, client)
        minor_only = find_updates(pins, client, allow=("patch",))
        with_pre = find_updates(pins, client, prereleases=True)
    # 2.0.0 has only an sdist, 2.0.0rc1 is a pre-release: 1.1.0 is the newest usable release.
    assert [(u.name, str(u.current), str(u.new), u.kind, u.file) for u in updates] == [
        ("alpha", "1.0.0", "1.1.0", UpdateKind.MINOR, "requirements.txt")
    ]
    assert [str(u.new) for u in minor_only] == ["1.0.1"]
    assert [(str(u.new), u.kind) for u in with_pre] == [("2.0.0rc1", UpdateKind.MAJOR)]


def test_find_updates_rejects_unknown_kinds(index: LocalIndex) -> None:
    with PackageIndex(index.url) as client, pytest.raises(DependencyError, match="huge"):
        find_updates([], client, allow=("patch", "huge"))


def test_find_updates_for_a_package_the_index_lacks_fails_loudly(index: LocalIndex) -> None:
    pins = parse_text("alpha==1.0.0\nnot-there==1.0\n").pins
    with PackageIndex(index.url) as client, pytest.raises(PackageIndexError, match="not-there"):
        find_updates(pins, client)


def test_a_new_wheel_on_the_index_is_found_on_the_next_look(dists: Path, index: LocalIndex) -> None:
    pins = parse_text("beta==0.3.0\n").pins
    with PackageIndex(index.url) as client:
        assert find_updates(pins, client) == []
        make_wheel(dists, "beta", "0.3.1")
        assert [str(u.new) for u in find_updates(pins, client)] == ["0.3.1"]
