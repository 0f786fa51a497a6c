"""The application layer: what the CLI (and later the web service) may ask shipyard to do.

Every entry point validates its input before a run exists, so bad input fails fast and changes nothing.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from shipyard.blueprints import RunContext
from shipyard.blueprints.deps import plan_updates
from shipyard.config import DEFAULT_INDEX, load_config, shipyard_home
from shipyard.delivery.deliver import merge_message, merge_recorded
from shipyard.deps.updates import Update
from shipyard.errors import NotFound, PatchError, ShipyardError
from shipyard.events import EventType, RunState
from shipyard.executor.local import EventListener, LocalExecutor
from shipyard.forge import get_forge
from shipyard.model import ChangeType, RunStatus, Task
from shipyard.sandbox import ensure_available
from shipyard.store import Store
from shipyard.workspace import inspect_repo


@dataclass
class DepsPlan:
    """What ``run deps`` found: the updates it will verify, and the runs they became."""

    repo: Path
    updates: list[Update]
    runs: list[RunState] = field(default_factory=list)


class App:
    """One shipyard installation: its home directory, store and executor."""

    def __init__(self, home: Path | None = None, *, listener: EventListener | None = None) -> None:
        self.home = home or shipyard_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.store = Store.open(home=self.home)
        self.executor = LocalExecutor(store=self.store, home=self.home, listener=listener)

    def close(self) -> None:
        self.store.close()

    # --- starting runs -------------------------------------------------------------------------

    def submit(
        self,
        *,
        repo: Path,
        patch: Path,
        change_type: ChangeType,
        title: str = "",
        index_url: str | None = None,
    ) -> RunState:
        """Verify and deliver a patch file. The run is recorded even when it fails."""
        info = inspect_repo(repo)
        check_patch(patch)
        ensure_available()
        task = Task(
            blueprint="submit",
            repo=str(info.path),
            title=title or f"Apply {patch.name}",
            params={
                "patch": str(patch.resolve()),
                "change_type": change_type.value,
                **({"index_url": index_url} if index_url else {}),
            },
            requested_by=getpass.getuser(),
        )
        return self.executor.run(task)

    def plan_deps(self, *, repo: Path, index_url: str | None = None) -> DepsPlan:
        """Find outdated pins without starting anything."""
        info = inspect_repo(repo)
        config = load_config(info.path).config
        url = index_url or config.deps.index_url or DEFAULT_INDEX
        return DepsPlan(repo=info.path, updates=plan_updates(info.path, config.deps, index_url=url))

    def run_deps(self, *, repo: Path, index_url: str | None = None) -> DepsPlan:
        """One run per outdated pin, each verified and delivered on its own branch, one after another."""
        plan = self.plan_deps(repo=repo, index_url=index_url)
        if plan.updates:
            ensure_available()
        for update in plan.updates:
            task = Task(
                blueprint="deps",
                repo=str(plan.repo),
                title=f"Update {update.name} from {update.current} to {update.new}",
                params={
                    "package": update.name,
                    "current": str(update.current),
                    "new": str(update.new),
                    "kind": str(update.kind),
                    "file": str(update.file),
                    "change_type": ChangeType.DEPENDENCY_UPDATE.value,
                    **({"index_url": index_url} if index_url else {}),
                },
                requested_by=getpass.getuser(),
            )
            plan.runs.append(self.executor.run(task))
        return plan

    # --- reviews -------------------------------------------------------------------------------

    def reviews(self) -> list[RunState]:
        return self.store.list_runs(status=RunStatus.AWAITING_REVIEW, limit=500)

    def approve(self, run_id: str, *, by: str | None = None, comment: str = "") -> RunState:
        """Merge a run that waits for review into the target it was verified against."""
        state = self._awaiting(run_id)
        who = by or getpass.getuser()
        forge = get_forge("local", Path(state.task["repo"]))
        branch, target = state.branch, state.review_target
        if branch is None or target is None or forge.branch_head(branch) is None:
            raise NotFound(
                f"run {state.run_id}: its branch {branch} is gone from the repository; "
                "reject the review and run the task again."
            )
        ctx = RunContext(
            run_id=state.run_id, task=Task(**state.task), store=self.store, home=self.home
        )
        ctx.emit(EventType.REVIEW_APPROVED, {"by": who, "comment": comment})
        current = forge.branch_head(target)
        if state.base_commit and current != state.base_commit:
            ctx.emit(
                EventType.LOG,
                {
                    "message": f"{target} moved since the change was verified "
                    f"({state.base_commit[:12]} → {(current or '?')[:12]}); merged on approval "
                    "without verifying the combination again",
                },
            )
        try:
            merge_recorded(
                ctx,
                forge,
                branch=branch,
                into=target,
                message=merge_message(f"{ctx.task.title} (approved by {who})", state.run_id),
                expected=None,
            )
        except ShipyardError as exc:
            ctx.emit(EventType.LOG, {"message": f"approval could not be merged: {exc}"})
            raise
        return self.store.state(state.run_id)

    def reject(self, run_id: str, *, by: str | None = None, comment: str = "") -> RunState:
        """Close a review without merging; the run branch is deleted, its commit stays in the record."""
        state = self._awaiting(run_id)
        forge = get_forge("local", Path(state.task["repo"]))
        ctx = RunContext(
            run_id=state.run_id, task=Task(**state.task), store=self.store, home=self.home
        )
        if state.branch and forge.branch_head(state.branch) is not None:
            forge.delete_branch(state.branch)
        ctx.emit(EventType.REVIEW_REJECTED, {"by": by or getpass.getuser(), "comment": comment})
        return self.store.state(state.run_id)

    def _awaiting(self, run_id: str) -> RunState:
        state = self.store.get_run(run_id)
        if state.status is not RunStatus.AWAITING_REVIEW:
            raise NotFound(
                f"run {state.run_id} is {state.status.value}, not waiting for review; "
                "`shipyard review list` shows the runs that are."
            )
        return state

    # --- reading -------------------------------------------------------------------------------

    def runs(self, *, limit: int = 50, status: RunStatus | None = None) -> list[RunState]:
        return self.store.list_runs(limit=limit, status=status)

    def run(self, run_id: str) -> RunState:
        return self.store.get_run(run_id)


def check_patch(patch: Path) -> list[str]:
    """The paths a patch touches; PatchError when it is missing, empty or not a unified diff."""
    if not patch.is_file():
        raise PatchError(f"{patch}: no such patch file. Pass the path of a unified diff.")
    try:
        parsed = PatchSet(patch.read_text(encoding="utf-8"))
    except (UnidiffParseError, UnicodeDecodeError) as exc:
        raise PatchError(
            f"{patch}: not a readable unified diff ({exc}). Create it with `git diff` or `diff -u`."
        ) from exc
    if not parsed:
        raise PatchError(
            f"{patch}: contains no file changes. Create it with `git diff` or `diff -u`."
        )
    return [f.path for f in parsed]
