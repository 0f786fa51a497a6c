"""Starting a rollout when a change is merged, with the configuration in force before the merge.

The deploy hook and the health command run on the host, so they must never come from the change
being rolled out: the configuration is read from the target's commit before the merge (the merge
commit's first parent), and a snapshot of it travels in the ``rollout.started`` event, so a later
edit of ``shipyard.toml`` cannot alter a rollout already under way.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipyard.config import (
    CONFIG_FILE,
    LoadedConfig,
    RolloutConfig,
    ShipyardConfig,
    load_config_text,
)
from shipyard.events import EventType
from shipyard.gates.harness import export_tree
from shipyard.gitcmd import git
from shipyard.policy import load_policy

Emit = Callable[[EventType, dict[str, Any]], None]


def config_at(repo: Path, rev: str) -> RolloutConfig:
    """The ``[rollout]`` configuration as committed at ``rev`` (defaults when there is none).

    An unset ``threshold_points`` is resolved from the policy committed at ``rev``.
    """
    loaded = _loaded_at(repo, rev)
    rollout = loaded.config.rollout
    if rollout.threshold_points is None:
        config = loaded.config
        with tempfile.TemporaryDirectory(prefix="shipyard-policy-") as tmp:
            # A preset file is read as committed at ``rev`` too, never from the working tree; a
            # built-in preset needs no files at all.
            from_file = config.preset.endswith(".toml")
            base = trusted_tree(repo, rev, Path(tmp) / "tree") if from_file else Path(tmp)
            policy = load_policy(
                config.preset, config.policy_overrides, source=loaded.source_name, base_dir=base
            )
        points = policy.post_merge.rollback_error_rate_points
        rollout = rollout.model_copy(update={"threshold_points": points})
    return rollout


def trusted_tree(repo: Path, rev: str, dest: Path) -> Path:
    """``rev``'s committed files in ``dest``: where the owner's hooks and health command run, so
    ``./ops/deploy.sh`` is the script as it was before the change, not the change's version."""
    return export_tree(repo, rev, dest)


def _loaded_at(repo: Path, rev: str) -> LoadedConfig:
    for name, pyproject in ((CONFIG_FILE, False), ("pyproject.toml", True)):
        shown = git("show", f"{rev}:{name}", cwd=repo, check=False)
        if shown.returncode == 0:
            source = repo / f"{name}@{rev[:12]}"
            loaded = load_config_text(shown.stdout, source, pyproject=pyproject)
            if loaded.source is not None or not pyproject:
                return loaded
    return LoadedConfig(config=ShipyardConfig(), source=None, raw={})


def merged_at(repo: Path, commit: str) -> float:
    """When the merge happened: its committer time (a recovered merge is not dated at recovery)."""
    shown = git("show", "-s", "--format=%ct", commit, cwd=repo, check=False)
    text = shown.stdout.strip()
    return float(text) if shown.returncode == 0 and text.isdigit() else time.time()


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
            "merged_at": merged_at(repo, commit),
            "config": config.model_dump(mode="json"),
        },
    )
    return True
