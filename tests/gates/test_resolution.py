"""The dependency-resolution gate on real wheels: pip on the host, uv in a real sandbox.

The packages are tiny wheels written here: alpha 2.0 needs beta>=3, alpha 1.0 needs beta>=2, gamma
1.4 needs beta<3, and beta exists as 2.5 and 3.0. They are served by a real local index.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from shipyard.config import GatesConfig, ResolutionGateConfig
from shipyard.deps.localindex import serve
from shipyard.deps.wheelhouse import Demand, conflict_sentences, download, pip_conflicts
from shipyard.errors import DependencyConflict
from shipyard.gates.base import ChangeView, GateContext
from shipyard.gates.environment import (
    UV_PATH,
    VENV,
    WHEELHOUSE_DIR,
    gate_limits,
    install,
    python_env,
    sandbox_python,
)
from shipyard.gates.resolution import (
    ResolutionGate,
    compare_results,
    from_download_error,
    result,
    uv_conflicts,
)
from shipyard.sandbox import BwrapSandbox
from tests.conftest import needs_bwrap

PACKAGES = {
    ("alpha", "1.0"): ["beta>=2"],
    ("alpha", "2.0"): ["beta>=3"],
    ("beta", "2.5"): [],
    ("beta", "3.0"): [],
    ("gamma", "1.4"): ["beta<3"],
}
PIN_CONFLICT = "alpha 2.0 requires beta>=3, but the requirements pin beta==2.5"
PAIR_CONFLICT = "alpha 2.0 requires beta>=3, gamma 1.4 requires beta<3"
LIMITS = gate_limits(timeout_seconds=120, memory_mb=2048)


def write_wheel(directory: Path, name: str, version: str, requires: list[str]) -> Path:
    """A minimal pure-Python wheel: one empty module, METADATA with Requires-Dist, WHEEL, RECORD."""
    info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{name}/__init__.py": "",
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{path},sha256={encoded},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


@pytest.fixture(scope="module")
def index_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("index")
    for (name, version), requires in PACKAGES.items():
        write_wheel(directory, name, version, requires)
    with serve(directory) as index:
        yield index.url


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, index_url: str) -> Path:
    """Every fake wheel, fetched by the host the way the harness fetches them (each set consistent)."""
    dest = tmp_path_factory.mktemp("wheelhouse")
    for requirement in ("alpha==2.0", "beta==2.5"):
        download([], index_url=index_url, dest=dest, extra_requirements=[requirement])
    assert sorted(w.name.split("-")[0:2] for w in dest.glob("*.whl")) == [
        ["alpha", "2.0"], ["beta", "2.5"], ["beta", "3.0"],
    ]  # fmt: skip
    return dest


def make_tree(tmp_path: Path, requirements: str) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir(parents=True)
    (tree / "requirements.txt").write_text(requirements)
    return tree


def context(tmp_path: Path, tree: Path, wheelhouse: Path, *, installed: bool) -> GateContext:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    env = python_env(scratch=scratch, wheelhouse=wheelhouse)
    return GateContext(
        tree=tree, scratch=scratch, wheelhouse=wheelhouse, sandbox=BwrapSandbox(),
        config=GatesConfig(), phase="change", env=env if installed else None,
    )  # fmt: skip


def create_venv(ctx: GateContext, *no_deps: str) -> None:
    """The tree's venv from its requirements, or with only ``no_deps``, installed without dependencies."""
    assert ctx.env is not None
    if not no_deps:
        done = install(
            ctx.sandbox, tree=ctx.tree, env=ctx.env, python=sandbox_python(),
            files=["requirements.txt"], extra=[], limits=LIMITS,
        )  # fmt: skip
        assert done.ok, done.stderr
        return
    done = ctx.run([UV_PATH, "venv", "--quiet", "--python", sandbox_python(), VENV], limits=LIMITS)
    assert done.ok, done.stderr
    argv = [UV_PATH, "pip", "install", "--quiet", "--python", f"{VENV}/bin/python"]
    argv += ["--no-index", "--find-links", WHEELHOUSE_DIR, "--no-deps", *no_deps]
    done = ctx.run(argv, limits=LIMITS)
    assert done.ok, done.stderr


# Host side: pip's ResolutionImpossible becomes a DependencyConflict with the chain in words.


def test_a_consistent_set_downloads(tmp_path: Path, index_url: str) -> None:
    wheels = download([], index_url=index_url, dest=tmp_path, extra_requirements=["alpha==2.0"])
    assert sorted(w.name for w in wheels) == [
        "alpha-2.0-py3-none-any.whl",
        "beta-3.0-py3-none-any.whl",
    ]


def test_a_pin_that_breaks_another_packages_requirement_is_a_conflict(
    tmp_path: Path, index_url: str
) -> None:
    secret_url = index_url.replace("http://", "http://robot:hunter2@")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha==2.0\nbeta==2.5\n")
    with pytest.raises(DependencyConflict) as caught:
        download([reqs], index_url=secret_url, dest=tmp_path / "wh")
    assert caught.value.conflicts == (PIN_CONFLICT,)
    assert PIN_CONFLICT in str(caught.value)
    assert "Change the pins" in str(caught.value)
    assert "hunter2" not in str(caught.value)

    gate = from_download_error(caught.value, "change")
    assert not gate.passed
    assert gate.gate == "resolution"
    assert gate.facts["conflicts"] == [PIN_CONFLICT]
    assert gate.facts["check"] == []
    assert gate.facts["resolved"] == 0
    assert gate.details == (PIN_CONFLICT,)


def test_two_packages_that_need_different_versions_are_a_conflict(
    tmp_path: Path, index_url: str
) -> None:
    with pytest.raises(DependencyConflict) as caught:
        download(
            [], index_url=index_url, dest=tmp_path, extra_requirements=["alpha==2.0", "gamma==1.4"]
        )
    assert caught.value.conflicts == (PAIR_CONFLICT,)


def test_pip_output_is_read_into_sentences() -> None:
    output = """
The conflict is caused by:
    The user requested (constraint) beta==2.5
    alpha 2.0 depends on beta>=3
    delta 1.0 depends on beta>=3,<4

To fix this you could try to:
1. loosen the range of package versions you've specified
ERROR: ResolutionImpossible: for help visit https://pip.pypa.io
"""
    assert pip_conflicts(output) == (
        "alpha 2.0 requires beta>=3, delta 1.0 requires beta>=3,<4, "
        "but the constraints pin beta==2.5",
    )
    assert pip_conflicts("ERROR: No matching distribution found for nope") is None
    assert conflict_sentences([Demand(None, "b==1"), Demand(None, "b>=2")]) == (
        "the requirements ask for b==1 and b>=2",
    )


def test_uv_explanations_are_read_into_the_same_sentences_as_pips() -> None:
    text = (
        "error: No solution found when resolving dependencies\n"
        "  cause: Because all versions of gamma depend on beta<3 and alpha>=2.0 depends on beta>=3,"
        " we can conclude that alpha>=2.0 and all versions of gamma are incompatible.\n"
        "         And because you require alpha==2.0 and gamma==1.4, we can conclude that your"
        " requirements are unsatisfiable.\n"
    )
    assert uv_conflicts(text) == (PAIR_CONFLICT,)
    assert uv_conflicts("error: Failed to build `thing`") is None


def test_compare_blames_only_what_the_change_brings() -> None:
    base = result(conflicts=[PIN_CONFLICT], check=["x requires y, but y is not installed"],
                  resolved=0, installed=True)  # fmt: skip
    same = result(conflicts=[PIN_CONFLICT], check=["x requires y, but y is not installed"],
                  resolved=0, installed=True)  # fmt: skip
    verdict = compare_results(base, same)
    assert verdict.passed
    assert verdict.facts == {"conflicts": [], "existing": [PIN_CONFLICT], "check": [],
                             "installed": True}  # fmt: skip
    worse = result(conflicts=[PIN_CONFLICT, PAIR_CONFLICT], check=[], resolved=0, installed=True)
    verdict = compare_results(result(conflicts=[], check=[], resolved=2, installed=True), worse)
    assert not verdict.passed
    assert verdict.facts["conflicts"] == [PIN_CONFLICT, PAIR_CONFLICT]
    broken = result(conflicts=[], check=[], resolved=0, installed=False, error="no wheel")
    assert not compare_results(base, broken).passed


def test_the_gate_follows_its_switch(tmp_path: Path) -> None:
    ctx = GateContext(
        tree=tmp_path, scratch=tmp_path, wheelhouse=tmp_path, sandbox=BwrapSandbox(),
        config=GatesConfig(resolution=ResolutionGateConfig(enabled=False)), phase="change",
    )  # fmt: skip
    assert not ResolutionGate().applies(ctx)
    assert ResolutionGate().applies(replace(ctx, config=GatesConfig()))


# Sandbox side: uv pip check and an offline dry-run resolution.


@needs_bwrap
@pytest.mark.slow
def test_a_consistent_environment_passes(tmp_path: Path, wheelhouse: Path) -> None:
    tree = make_tree(tmp_path, "alpha==2.0\n")
    ctx = context(tmp_path, tree, wheelhouse, installed=True)
    create_venv(ctx)
    measured = ResolutionGate().measure(ctx)
    assert measured.passed, measured.details
    assert measured.facts["conflicts"] == []
    assert measured.facts["check"] == []
    assert measured.facts["resolved"] == 2


@needs_bwrap
@pytest.mark.slow
def test_an_environment_with_unmet_requirements_fails(tmp_path: Path, wheelhouse: Path) -> None:
    tree = make_tree(tmp_path, "alpha==2.0\n")
    ctx = context(tmp_path, tree, wheelhouse, installed=True)
    create_venv(ctx, "alpha==2.0")
    missing = ResolutionGate().measure(ctx)
    assert not missing.passed
    assert missing.facts["check"] == ["alpha requires beta>=3, but beta is not installed"]

    argv = [UV_PATH, "pip", "install", "--quiet", "--python", f"{VENV}/bin/python", "--no-index"]
    done = ctx.run([*argv, "--find-links", WHEELHOUSE_DIR, "--no-deps", "beta==2.5"], limits=LIMITS)
    assert done.ok, done.stderr
    old = ResolutionGate().measure(ctx)
    assert not old.passed
    assert old.facts["check"] == ["alpha requires beta>=3, but beta 2.5 is installed"]
    assert old.facts["conflicts"] == []  # the requirement file itself still resolves
    verdict = ResolutionGate().compare(missing, old, ChangeView())
    assert not verdict.passed
    assert verdict.facts["check"] == ["alpha requires beta>=3, but beta 2.5 is installed"]


@needs_bwrap
@pytest.mark.slow
def test_conflicting_pins_are_explained_and_not_blamed_when_the_baseline_had_them(
    tmp_path: Path, wheelhouse: Path, index_url: str
) -> None:
    tree = make_tree(tmp_path, "alpha==2.0\nbeta==2.5\n")
    baseline = ResolutionGate().measure(context(tmp_path, tree, wheelhouse, installed=False))
    assert not baseline.passed
    assert baseline.facts["conflicts"] == [PIN_CONFLICT]
    assert baseline.facts["installed"] is False

    with pytest.raises(DependencyConflict) as caught:
        download([tree / "requirements.txt"], index_url=index_url, dest=tmp_path / "wh")
    change = from_download_error(caught.value, "change")
    verdict = ResolutionGate().compare(baseline, change, ChangeView())
    assert verdict.passed, verdict.summary
    assert verdict.facts["existing"] == [PIN_CONFLICT]
    assert verdict.facts["conflicts"] == []

    clean = make_tree(tmp_path / "clean", "alpha==2.0\nbeta==3.0\n")
    clean_ctx = context(tmp_path / "clean", clean, wheelhouse, installed=True)
    create_venv(clean_ctx)
    fixed = ResolutionGate().measure(clean_ctx)
    assert fixed.passed, fixed.details
    assert fixed.facts["conflicts"] == []
    assert fixed.facts["resolved"] == 2
    assert not ResolutionGate().compare(fixed, change, ChangeView()).passed
