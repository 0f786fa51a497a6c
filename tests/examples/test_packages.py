"""The example packages build into valid, deterministic wheels that tell the demo's story."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from packaging.version import Version

from shipyard.deps import DepsConfig, PackageIndex, plan_repository
from shipyard.deps.localindex import LocalIndex, serve
from shipyard.deps.manifests import load
from tests.examples.conftest import scenario

PATCHES: Path = scenario.PATCHES
PROJECT: Path = scenario.PROJECT

WHEELS = [
    "moneyfmt-1.4.0-py3-none-any.whl",
    "moneyfmt-2.0.0-py3-none-any.whl",
    "slugkit-1.0.0-py3-none-any.whl",
    "slugkit-1.1.0-py3-none-any.whl",
    "textcols-2.1.0-py3-none-any.whl",
]


@pytest.fixture(scope="module")
def example_index(example_wheels: Path) -> Iterator[LocalIndex]:
    with serve(example_wheels) as index:
        yield index


def test_every_release_becomes_a_wheel(example_wheels: Path) -> None:
    assert sorted(p.name for p in example_wheels.glob("*.whl")) == WHEELS


def test_builds_are_byte_for_byte_identical(builder: ModuleType, tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in builder.build(tmp_path / "a", tools=False)}
    second = {p.name: p.read_bytes() for p in builder.build(tmp_path / "b", tools=False)}
    assert first == second
    again = builder.build(tmp_path / "a", tools=False)
    assert {p.name: p.read_bytes() for p in again} == first


@pytest.mark.parametrize("name", WHEELS)
def test_wheels_are_valid(example_wheels: Path, name: str) -> None:
    dist, version = name.split("-")[:2]
    with zipfile.ZipFile(example_wheels / name) as zf:
        dist_info = f"{dist}-{version}.dist-info"
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        assert f"Name: {dist}\n" in metadata
        assert f"Version: {version}\n" in metadata
        assert "Tag: py3-none-any" in zf.read(f"{dist_info}/WHEEL").decode()
        record = zf.read(f"{dist_info}/RECORD").decode().splitlines()
        listed = {line.split(",")[0] for line in record}
        assert listed == set(zf.namelist())
        for line in record:
            path, digest, size = line.split(",")
            if digest:
                data = zf.read(path)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                assert digest == "sha256=" + expected.decode()
                assert int(size) == len(data)
        assert f"{dist}/__init__.py" in listed


def test_later_versions_were_uploaded_later(example_index: LocalIndex) -> None:
    with PackageIndex(example_index.url) as client:
        times = [r.upload_time for r in client.releases("slugkit")]
    known = [t for t in times if t is not None]
    assert known == times
    assert known == sorted(known)
    assert times[0] != times[1]


def test_the_example_has_one_minor_and_one_major_update(example_index: LocalIndex) -> None:
    pins = load(PROJECT, "requirements.txt").dependencies()
    assert {p.name: str(p.pinned) for p in pins} == {
        "slugkit": "1.0.0",
        "moneyfmt": "1.4.0",
        "textcols": "2.1.0",
    }
    config = DepsConfig(files=["requirements.txt"])
    planned = plan_repository(PROJECT, config, index_url=example_index.url, cache_dir=None)
    assert [(u.package, u.target, u.update_type) for u in planned.updates] == [
        ("slugkit", Version("1.1.0"), "minor"),
        ("moneyfmt", Version("2.0.0"), "major"),
    ]
    assert planned.deferred == ()


def test_dev_requirements_pin_exactly_the_tools_the_index_carries(builder: ModuleType) -> None:
    pins = load(PROJECT, "requirements-dev.txt").dependencies()
    assert (
        tuple(f"{p.name}=={p.pinned}" for p in pins)
        == builder.TOOLS
        == (
            "pytest==9.2.0",
            "coverage==7.17.3",
        )
    )


@pytest.mark.parametrize("patch", ["auth-shortcut.patch", "feature-low-stock.patch"])
def test_the_demo_patches_apply_to_the_example(tmp_path: Path, patch: str) -> None:
    repo = scenario.make_repo(tmp_path / "repo")
    done = subprocess.run(
        ["git", "apply", "--check", str(PATCHES / patch)],
        cwd=repo, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_auth_patch_touches_only_src_auth() -> None:
    text = (PATCHES / "auth-shortcut.patch").read_text()
    touched = [line.split(" b/")[1] for line in text.splitlines() if line.startswith("diff --git")]
    assert touched == ["src/auth/tokens.py"]
