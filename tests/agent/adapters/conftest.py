"""Fixtures for adapter tests: the mini-swe-agent tool environment, installed once and kept.

``mini_swe_agent_tools`` is the directory holding ``mini-swe-agent-<version>`` (a uv-made virtual
environment), under ``build/adapter-tools`` so later sessions reuse it; pass it to shipyard as
``SHIPYARD_TOOLS_DIR``. Installing needs PyPI (or ``UV_INDEX_URL``) the first time only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.agent.adapters import get_adapter
from shipyard.agent.adapters.toolenv import install
from tests.conftest import ROOT

TOOLS = ROOT / "build" / "adapter-tools"


@pytest.fixture(scope="session")
def mini_swe_agent_tools() -> Path:
    install(get_adapter("mini-swe-agent"), TOOLS)
    return TOOLS
