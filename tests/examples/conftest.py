"""The bundled example: its package builder, loaded from examples/packages/build.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import EXAMPLES


def load_example(relative: str, name: str) -> ModuleType:
    """A module of examples/ loaded by path (``import build`` would find PyPA's build instead)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / relative)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_builder() -> ModuleType:
    return load_example("packages/build.py", "example_packages_build")


scenario = load_example("scenario.py", "example_scenario")


@pytest.fixture(scope="session")
def builder() -> ModuleType:
    return load_builder()


@pytest.fixture(scope="session")
def example_wheels(builder: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example packages' wheels only (no test tools, so no network), built once per session."""
    out: Path = tmp_path_factory.mktemp("example-wheels")
    builder.build(out, tools=False)
    return out
