"""Lock files made by uv, poetry and pdm: every pinned package, direct or transitive."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from shipyard.deps.manifests import Change, ManifestKind, load
from shipyard.errors import DependencyError

from .conftest import FIXTURES

LOCKED = {
    "colorize": "2.0.0", "helper": "1.1.0", "speedups": "1.0.0", "tinyfmt": "1.0.0", "webkit": "1.0.0",
}  # fmt: skip


@pytest.mark.parametrize(
    ("folder", "lock", "kind", "helper"),
    [
        ("uv", "uv.lock", ManifestKind.UV_LOCK, "1.0.0"),  # the test group pins helper==1.0.0
        ("poetry", "poetry.lock", ManifestKind.POETRY_LOCK, "1.1.0"),
        ("pdm", "pdm.lock", ManifestKind.PDM_LOCK, "1.1.0"),
    ],
)
def test_every_locked_package_is_read(
    folder: str, lock: str, kind: ManifestKind, helper: str
) -> None:
    manifest = load(FIXTURES / folder, lock)
    deps = {d.name: d for d in manifest.dependencies()}
    assert manifest.kind is kind
    assert manifest.compiled_from == "pyproject.toml"
    assert {n: str(d.pinned) for n, d in deps.items()} == {**LOCKED, "helper": helper}
    assert all(
        d.section == "lock" and d.hashed and d.specifier == f"=={d.pinned}" for d in deps.values()
    )
    # speedups comes in only through webkit[fast]: a transitive pin
    assert {n for n, d in deps.items() if not d.direct} == {"speedups"} | (
        {"helper"} if kind is ManifestKind.POETRY_LOCK else set()
    )
    text = (FIXTURES / folder / lock).read_text()
    assert text.splitlines()[deps["webkit"].line - 1] == 'name = "webkit"'  # type: ignore[operator]


def test_a_lock_is_left_to_its_tool_but_checks_the_packages_named() -> None:
    manifest = load(FIXTURES / "uv", "uv.lock")
    move = Change(canonical_name="speedups", manifest="uv.lock", new_version=Version("1.1.0"))
    assert manifest.apply([move], hashes=lambda n, v: []) == manifest.text
    with pytest.raises(DependencyError, match=r"uv.lock: nosuch is not locked here"):
        manifest.apply(
            [Change(canonical_name="nosuch", manifest="uv.lock", new_version=Version("1"))],
            hashes=lambda n, v: [],
        )


def test_a_broken_lock_says_to_regenerate_it(tmp_path: Path) -> None:
    (tmp_path / "poetry.lock").write_text("[[package]\n")
    with pytest.raises(
        DependencyError, match=r"poetry.lock: not valid TOML .*regenerate it with `poetry lock`"
    ):
        load(tmp_path, "poetry.lock")
