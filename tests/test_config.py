"""shipyard.toml loading: defaults, both file locations, and errors that name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config import load_config
from shipyard.errors import ConfigError


def test_defaults_when_no_file(tmp_path: Path) -> None:
    loaded = load_config(tmp_path)
    assert loaded.source is None
    assert loaded.config.preset == "seed"
    assert loaded.config.gates.tests.paths == ["tests"]


def test_shipyard_toml_is_read(tmp_path: Path) -> None:
    (tmp_path / "shipyard.toml").write_text(
        '[policy]\npreset = "strict"\n[policy.limits]\nreview_max_files = 3\n'
        '[gates.tests]\npaths = ["t"]\ntimeout_seconds = 30\n'
    )
    loaded = load_config(tmp_path)
    assert loaded.config.preset == "strict"
    assert loaded.config.policy_overrides == {"limits": {"review_max_files": 3}}
    assert loaded.config.gates.tests.paths == ["t"]
    assert loaded.config.gates.tests.timeout_seconds == 30


def test_tool_table_in_pyproject_is_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.shipyard.deps]\nfiles = ["reqs.txt"]\n')
    assert load_config(tmp_path).config.deps.files == ["reqs.txt"]


def test_unknown_field_names_file_and_dotted_field(tmp_path: Path) -> None:
    (tmp_path / "shipyard.toml").write_text("[gates.tests]\ntimeout = 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    message = str(err.value)
    assert "shipyard.toml" in message
    assert "gates.tests.timeout" in message
    assert "check its spelling" in message


def test_wrong_type_in_pyproject_names_tool_prefix(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.shipyard.gates.tests]\ntimeout_seconds = "soon"\n'
    )
    with pytest.raises(
        ConfigError, match=r"pyproject.toml: tool\.shipyard\.gates\.tests\.timeout_seconds"
    ):
        load_config(tmp_path)


def test_broken_toml_says_so(tmp_path: Path) -> None:
    (tmp_path / "shipyard.toml").write_text("[policy\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)
