"""Discovery: what a repository's manifests are, how they relate, and clear errors for broken ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shipyard.deps.manifests import ManifestKind, discover
from shipyard.errors import DependencyError

from .conftest import FIXTURES


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with every kind of manifest, and things that must not be taken for one."""
    shutil.copytree(FIXTURES / "requirements", tmp_path, dirs_exist_ok=True)
    shutil.copytree(FIXTURES / "pip-compile", tmp_path / "compiled")
    shutil.copytree(FIXTURES / "uv", tmp_path / "services" / "api")
    shutil.copytree(FIXTURES / "poetry", tmp_path / "tools")
    (tmp_path / "MANIFEST.in").write_text("include README.md\n")
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "requirements.txt").write_text("x==1\n")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "requirements.txt").write_text("x==1\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("not a manifest\n")
    return tmp_path


def test_every_manifest_is_found_sources_first(repo: Path) -> None:
    found = [(m.path, m.kind, m.compiled_from) for m in discover(repo)]
    req = ManifestKind.REQUIREMENTS
    assert found == [
        ("compiled/requirements.in", req, None),
        ("constraints.txt", req, None),  # reached through -c
        ("requirements.txt", req, None),
        ("requirements/base.txt", req, None),
        *[(f"compiled/requirements-{n}.txt", req, "compiled/requirements.in")
          for n in ("hashes", "long", "o", "strip", "uv-hashes", "uv")],
        ("services/api/pyproject.toml", ManifestKind.PYPROJECT, None),
        ("tools/pyproject.toml", ManifestKind.PYPROJECT, None),
        ("services/api/uv.lock", ManifestKind.UV_LOCK, "services/api/pyproject.toml"),
        ("tools/poetry.lock", ManifestKind.POETRY_LOCK, "tools/pyproject.toml"),
    ]  # fmt: skip


def test_named_files_bring_their_includes(repo: Path) -> None:
    assert [m.path for m in discover(repo, ["requirements.txt"])] == [
        "constraints.txt", "requirements.txt", "requirements/base.txt",
    ]  # fmt: skip


def test_a_compiled_file_without_header_pairs_with_its_source(tmp_path: Path) -> None:
    (tmp_path / "dev.in").write_text("tinyfmt\n")
    (tmp_path / "dev.txt").write_text("tinyfmt==1.0.0\n")
    (compiled,) = [m for m in discover(tmp_path) if m.path == "dev.txt"]
    assert compiled.compiled_from == "dev.in"


def test_a_missing_include_names_file_line_and_fix(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("x==1\n-r missing.txt\n")
    with pytest.raises(
        DependencyError,
        match=r"requirements.txt:2: includes 'missing.txt', but missing.txt does not exist",
    ):
        discover(tmp_path)


def test_an_include_outside_the_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("-c ../../etc/constraints.txt\n")
    with pytest.raises(DependencyError, match=r"outside the repository"):
        discover(tmp_path)


def test_a_named_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(DependencyError, match=r"nope.txt: no such manifest"):
        discover(tmp_path, ["nope.txt"])


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_bytes(b"caf\xe9==1\n")
    with pytest.raises(DependencyError, match=r"requirements.txt: cannot be read as UTF-8"):
        discover(tmp_path)
