"""Forges are chosen by name; an unknown name lists the valid ones."""

from __future__ import annotations

from pathlib import Path

import pytest

import shipyard.forge
from shipyard.errors import ConfigError
from shipyard.forge import FORGES, get_forge
from shipyard.forge.local import LocalForge


def test_local_is_the_local_forge(user_repo: Path) -> None:
    forge = get_forge("local", user_repo)
    assert isinstance(forge, LocalForge)
    assert forge.name == "local"
    assert forge.repo == user_repo.resolve()


def test_an_unknown_forge_lists_the_valid_names(user_repo: Path) -> None:
    with pytest.raises(ConfigError, match=r"Unknown forge 'gitlab'\. Valid names: local\."):
        get_forge("gitlab", user_repo)


def test_every_registered_forge_can_be_built(user_repo: Path) -> None:
    assert sorted(FORGES) == ["local"]
    for name in FORGES:
        assert get_forge(name, user_repo).name == name


def test_public_names() -> None:
    assert sorted(shipyard.forge.__all__) == ["FORGES", "Forge", "get_forge"]
