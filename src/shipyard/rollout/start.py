"""Starting a rollout when a change is merged, with the configuration in force before the merge.

The deploy hook and the health command run on the host, so they must never come from the change
being rolled out: the configuration is read from the target's commit before the merge (the merge
commit's first parent), and a snapshot of it travels in the ``rollout.started`` event, so a later
edit of ``shipyard.toml`` cannot alter a rollout already under way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipyard.config import CONFIG_FILE, RolloutConfig, load_config_text
from shipyard.events import EventType
from shipyard.gitcmd import git

Emit = Callable[[EventType, dict[str, Any]], None]


def config_at(repo: Path, rev: str) -> RolloutConfig:
    """The ``[rollout]`` configuration as committed at ``rev`` (defaults when there is none)."""
    for name, pyproject in ((CONFIG_FILE, False), ("pyproject.toml", True)):
        shown = git("show", f"{rev}:{name}", cwd=repo, check=False)
        if shown.returncode == 0:
            loaded = load_config_text(
                shown.stdout, repo / f"{name}@{rev[:12]}", pyproject=pyproject
            )
            if loaded.source is not None or not pyproject:
                return loaded.config.rollout
    return RolloutConfig()


def begin_if_configured(emit: Emit, *, repo: Path, target: str, commit: str) -> bool:
    """Record ``rollout.started`` for a merge into ``target`` when the repository asks for rollouts."""
    previous = git("rev-parse", "--verify", f"{commit}^1", cwd=repo).stdout.strip()
    config = config_at(repo, previous)
    if not config.enabled:
        return False
    emit(
        EventType.ROLLOUT_STARTED,
        {
            "target": target,
            "commit": commit,
            "previous_commit": previous,
            "merged_at": time.time(),
            "config": config.model_dump(mode="json"),
        },
    )
    return True
