"""Forges: where changes are delivered, chosen by name; the local git forge is the default."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from shipyard.errors import ConfigError
from shipyard.forge.base import Forge

FORGES = {"local": "shipyard.forge.local:LocalForge"}
"""Forge names and the class behind each, imported only when chosen."""


def get_forge(name: str, repo: Path) -> Forge:
    """The forge called ``name``, delivering into ``repo``."""
    try:
        module, attr = FORGES[name].split(":")
    except KeyError:
        raise ConfigError(
            f"Unknown forge {name!r}. Valid names: {', '.join(sorted(FORGES))}."
        ) from None
    forge: Forge = getattr(import_module(module), attr)(repo)
    return forge


__all__ = ["FORGES", "Forge", "get_forge"]
