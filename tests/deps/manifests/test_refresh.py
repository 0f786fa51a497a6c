"""Lock refreshes for real: pip-compile, uv, poetry and pdm in a bubblewrap sandbox, reaching only the
served test index through the egress proxy. Each refresh moves exactly the packages asked for."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version

from shipyard.deps.manifests import Change, LockTools, apply_changes, load, refresh_locks
from shipyard.errors import DependencyError
from shipyard.sandbox.bwrap import BwrapSandbox
from tests.conftest import ROOT, needs_bwrap

from .conftest import FIXTURES, INDEX_BASE, sha256s

pytestmark = [needs_bwrap, pytest.mark.slow]


@pytest.fixture(scope="session")
def tools() -> LockTools:
    """poetry and pdm tool environments, kept between test runs like the example index."""
    return LockTools(cache_dir=ROOT / "build" / "lock-tools")


@pytest.fixture(scope="session")
def sandbox() -> BwrapSandbox:
    return BwrapSandbox()


def tool_env(tools: LockTools, tool: str) -> None:
    try:
        tools.environment(tool)
    except DependencyError as exc:  # no route to the package index the tools install from
        pytest.skip(f"{tool} could not be installed for lock refreshes: {exc}")


class Workspace:
    """A copy of one fixture folder with the served index's address in place of the placeholder."""

    def __init__(self, root: Path, folder: str, base: str) -> None:
        self.root, self.base = root, base
        shutil.copytree(FIXTURES / folder, root, dirs_exist_ok=True)
        for file in root.iterdir():
            if file.is_file():
                file.write_bytes(file.read_bytes().replace(INDEX_BASE.encode(), base.encode()))
        self.original = {f.name: f.read_text() for f in root.iterdir() if f.is_file()}

    def text(self, name: str) -> str:
        return (self.root / name).read_text()


Make = Callable[[str], Workspace]


@pytest.fixture
def workspace(tmp_path: Path, manifest_index: str) -> Make:
    def make(folder: str) -> Workspace:
        return Workspace(tmp_path / "ws", folder, manifest_index)

    return make


def move(name: str, manifest: str, version: str, spec: str | None = None) -> Change:
    return Change(
        canonical_name=name, manifest=manifest, new_version=Version(version), new_specifier=spec
    )


def blocks(lock: str) -> dict[str, str]:
    """A lock's ``[[package]]`` blocks by package name (metadata under ``"<metadata>"``)."""
    head, *packages = re.split(r"^\[\[package\]\]\n", lock, flags=re.MULTILINE)
    out = {"<head>": head}
    for block in packages:
        name = re.search(r'^name = "([^"]+)"', block, re.MULTILINE)[1]  # type: ignore[index]
        extras = re.search(r"^extras = (.*)$", block, re.MULTILINE)
        key = name + (extras[1] if extras else "")
        body, _, metadata = block.partition("\n[metadata]\n")
        out[key] = body
        if metadata:
            out["<metadata>"] = metadata
    return out


def changed(before: str, after: str) -> set[str]:
    old, new = blocks(before), blocks(after)
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


def versions(ws: Workspace, name: str) -> dict[str, str]:
    return {d.name: str(d.pinned) for d in load(ws.root, name).dependencies()}


def run(ws: Workspace, changes: list[Change], sandbox: BwrapSandbox, tools: LockTools,
        dists: Path, events: list[dict[str, object]] | None = None) -> list[str]:  # fmt: skip
    return apply_changes(
        ws.root, changes, sandbox=sandbox, index_url=f"{ws.base}/simple/",
        hashes=lambda n, v: sha256s(dists, n, str(v)), tools=tools,
        on_event=events.append if events is not None else None,
    )  # fmt: skip


def test_pip_compile_moves_one_transitive_pin_with_its_hash(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools, manifest_dists: Path
) -> None:
    ws = workspace("pip-compile")
    events: list[dict[str, object]] = []
    name = "requirements-hashes.txt"
    files = run(ws, [move("helper", name, "1.2.0")], sandbox, tools, manifest_dists, events)
    assert files == [name]
    old, new = (sha256s(manifest_dists, "helper", v)[0] for v in ("1.1.0", "1.2.0"))
    expected = ws.original[name].replace("helper==1.1.0", "helper==1.2.0").replace(old, new)
    assert ws.text(name) == expected  # header, index line, annotations: all as they were
    port = int(ws.base.rsplit(":", 1)[1])
    assert events
    assert {(e["type"], e["host"], e["port"]) for e in events} == {
        ("egress.allowed", "127.0.0.1", port)
    }


def test_uv_pip_compile_keeps_its_header_and_the_crlf_of_the_file(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools, manifest_dists: Path
) -> None:
    ws = workspace("pip-compile")
    name = "requirements-uv.txt"
    (ws.root / name).write_bytes(ws.original[name].replace("\n", "\r\n").encode())
    assert run(ws, [move("webkit", name, "1.1.0")], sandbox, tools, manifest_dists) == [name]
    expected = ws.original[name].replace("webkit==1.0.0", "webkit==1.1.0").replace("\n", "\r\n")
    assert (ws.root / name).read_bytes() == expected.encode()


def test_a_source_change_recompiles_what_is_compiled_from_it(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools, manifest_dists: Path
) -> None:
    ws = workspace("pip-compile")
    for name in ws.original:
        if name not in ("requirements.in", "requirements-o.txt", "requirements-uv-hashes.txt"):
            (ws.root / name).unlink()
    change = move("webkit", "requirements.in", "2.0.0", ">=2.0,<3")
    files = run(ws, [change], sandbox, tools, manifest_dists)
    assert sorted(files) == ["requirements-o.txt", "requirements-uv-hashes.txt", "requirements.in"]
    assert ws.text("requirements.in") == ws.original["requirements.in"].replace(
        "webkit[fast]>=1.0,<2   #", "webkit[fast]>=2.0,<3   #"
    )
    for name in ("requirements-o.txt", "requirements-uv-hashes.txt"):
        # webkit 2 needs speedups>=1.1; helper 1.1.0 still satisfies helper>=1.1 and stays
        assert versions(ws, name) == {
            "colorize": "2.0.0", "helper": "1.1.0", "speedups": "1.1.0", "tinyfmt": "1.0.0",
            "webkit": "2.0.0",
        }  # fmt: skip
        header = ws.original[name].split("\ncolorize")[0]
        assert ws.text(name).startswith(header)


def test_a_compiled_file_that_cannot_resolve_says_why(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools, manifest_dists: Path
) -> None:
    ws = workspace("pip-compile")
    with pytest.raises(
        DependencyError, match=r"pip-compile for requirements-o.txt failed: .*webkit"
    ):
        run(ws, [move("webkit", "requirements-o.txt", "9.9.9")], sandbox, tools, manifest_dists)


def test_a_repository_cannot_replace_the_tool(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools, manifest_dists: Path
) -> None:
    ws = workspace("pip-compile")
    fake = ws.root / "piptools"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text("open('requirements-o.txt', 'w').write('hijacked\\n')\n")
    run(ws, [move("colorize", "requirements-o.txt", "2.1.0")], sandbox, tools, manifest_dists)
    assert ws.text("requirements-o.txt") == ws.original["requirements-o.txt"].replace(
        "colorize==2.0.0", "colorize==2.1.0"
    )


def test_uv_lock_moves_one_transitive_package(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools, manifest_dists: Path
) -> None:
    ws = workspace("uv")
    assert run(ws, [move("speedups", "uv.lock", "1.1.0")], sandbox, tools, manifest_dists) == [
        "uv.lock"
    ]
    assert changed(ws.original["uv.lock"], ws.text("uv.lock")) == {"speedups"}
    assert versions(ws, "uv.lock")["speedups"] == "1.1.0"


def test_uv_a_pyproject_range_change_relocks(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools, manifest_dists: Path
) -> None:
    ws = workspace("uv")
    change = move("colorize", "pyproject.toml", "2.1.0", ">=2.1")
    assert sorted(run(ws, [change], sandbox, tools, manifest_dists)) == [
        "pyproject.toml",
        "uv.lock",
    ]
    assert ws.text("pyproject.toml") == ws.original["pyproject.toml"].replace(
        'color = ["colorize>=2.0"]', 'color = ["colorize>=2.1"]'
    )
    # colorize, and the project's own entry, which records the new specifier
    assert changed(ws.original["uv.lock"], ws.text("uv.lock")) == {"colorize", "uvapp"}
    assert versions(ws, "uv.lock")["colorize"] == "2.1.0"


def test_uv_explains_a_conflict(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools, manifest_dists: Path
) -> None:
    ws = workspace("uv")
    # webkit 2 requires helper>=1.1, but the test group pins helper==1.0.0
    change = move("webkit", "pyproject.toml", "2.0.0", ">=2.0,<3")
    with pytest.raises(DependencyError, match=r"uv lock in \. failed: .*helper==1\.0\.0"):
        run(ws, [change], sandbox, tools, manifest_dists)


def test_lock_file_maintenance_refreshes_every_transitive_pin(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools
) -> None:
    ws = workspace("uv")
    files = refresh_locks(ws.root, sandbox=sandbox, index_url=f"{ws.base}/simple/", tools=tools)
    assert files == ["uv.lock"]
    assert ws.text("pyproject.toml") == ws.original["pyproject.toml"]
    # as new as the constraints allow: webkit <2, tinyfmt and the test group's helper are pinned
    assert versions(ws, "uv.lock") == {
        "colorize": "2.1.0", "helper": "1.0.0", "speedups": "1.1.0", "tinyfmt": "1.0.0",
        "webkit": "1.1.0",
    }  # fmt: skip


def test_poetry_lock_moves_exactly_the_version_asked_for(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools, manifest_dists: Path
) -> None:
    tool_env(tools, "poetry")
    ws = workspace("poetry")
    # webkit ^1.0 admits 1.1.0 only; colorize ~2.0 admits 2.0.x; helper (transitive) has 1.2.0 too
    files = run(ws, [move("helper", "poetry.lock", "1.2.0")], sandbox, tools, manifest_dists)
    assert files == ["poetry.lock"]
    assert ws.text("pyproject.toml") == ws.original["pyproject.toml"]
    # content-hash covers the source URL, whose port differs from the one the fixture was made with
    assert changed(ws.original["poetry.lock"], ws.text("poetry.lock")) <= {"helper", "<metadata>"}
    assert versions(ws, "poetry.lock") == {
        "colorize": "2.0.0", "helper": "1.2.0", "speedups": "1.0.0", "tinyfmt": "1.0.0",
        "webkit": "1.0.0",
    }  # fmt: skip
    assert sorted(p.name for p in ws.root.iterdir()) == ["poetry.lock", "pyproject.toml"]


def test_pdm_pyproject_change_and_lock(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools, manifest_dists: Path
) -> None:
    tool_env(tools, "pdm")
    ws = workspace("pdm")
    change = move("webkit", "pyproject.toml", "2.0.0", ">=2.0,<3")
    files = run(ws, [change], sandbox, tools, manifest_dists)
    assert sorted(files) == ["pdm.lock", "pyproject.toml"]
    assert changed(ws.original["pdm.lock"], ws.text("pdm.lock")) == {
        "webkit",
        'webkit["fast"]',
        "speedups",
        "<head>",
    }  # <head> holds pdm's content_hash of pyproject.toml
    assert versions(ws, "pdm.lock")["webkit"] == "2.0.0"
    assert versions(ws, "pdm.lock")["helper"] == "1.1.0"
    assert sorted(p.name for p in ws.root.iterdir()) == [
        "pdm.lock",
        "pyproject.toml",
    ]  # no .pdm-python


def test_an_index_with_credentials_is_refused_before_anything_changes(
    workspace: Make, sandbox: BwrapSandbox, tools: LockTools, manifest_dists: Path
) -> None:
    ws = workspace("uv")
    url = ws.base.replace("http://", "http://user:secret@") + "/simple/"
    with pytest.raises(DependencyError, match="credentials stay on the host") as caught:
        apply_changes(
            ws.root, [move("webkit", "pyproject.toml", "2.0.0", ">=2")], sandbox=sandbox,
            index_url=url, hashes=lambda n, v: [], tools=tools,
        )  # fmt: skip
    assert "secret" not in str(caught.value)
    assert {f.name: f.read_text() for f in ws.root.iterdir()} == ws.original
