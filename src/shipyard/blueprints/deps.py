"""The ``deps`` blueprint: bump one pinned requirement to a newer release, verify it, deliver it.

Discovery (``plan_updates``) runs on the host against the package index and yields one task per
outdated pin; each task then runs this blueprint on its own branch.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.blueprints.engine import Blueprint, RunContext, Step
from shipyard.blueprints.nodes import decide_node, deliver, finish, prepare, record_commit, verify
from shipyard.config import DepsConfig
from shipyard.deps.index import PackageIndex
from shipyard.deps.requirements import parse_requirements, set_pin
from shipyard.deps.updates import Update, find_updates
from shipyard.errors import DependencyError
from shipyard.workspace import Workspace


def plan_updates(repo: Path, config: DepsConfig, *, index_url: str) -> list[Update]:
    """Every pin in the configured requirement files that has a newer suitable release."""
    ignored = {name.lower() for name in config.ignore}
    pins = []
    for name in config.files:
        path = repo / name
        if path.is_file():
            pins += [
                p
                for p in parse_requirements(path, relative_to=repo)
                if p.canonical_name not in ignored
            ]
    with PackageIndex(index_url) as index:
        return find_updates(pins, index, allow=tuple(config.update_types))


def bump(ctx: RunContext) -> None:
    """Rewrite exactly one pin in the workspace and commit it."""
    workspace: Workspace = ctx.values["workspace"]
    params = ctx.task.params
    path = workspace.path / params["file"]
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DependencyError(
            f"{params['file']}: cannot be read in the workspace ({exc})."
        ) from exc
    # bytes in and out: universal-newline text mode would rewrite CRLF files
    path.write_bytes(set_pin(text, params["package"], params["new"]).encode("utf-8"))
    record_commit(
        ctx,
        f"Update {params['package']} from {params['current']} to {params['new']}\n\n"
        f"{params['kind']} update in {params['file']}, proposed by shipyard's deps blueprint.",
    )


DEPS = Blueprint(
    name="deps",
    version="1",
    description="Update one pinned dependency, verify it in a sandbox, decide by policy, deliver.",
    steps=(
        Step("prepare", prepare),
        Step("change", bump),
        Step("verify", verify),
        Step("decide", decide_node),
        Step("deliver", deliver),
    ),
    finish=finish,
)
