"""The application layer: what the CLI (and later the web service) may ask shipyard to do.

Every entry point validates its input before a run exists, so bad input fails fast and changes nothing.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.config import DEFAULT_INDEX, load_config, shipyard_home
from shipyard.errors import NotFound, PatchError, ReviewError, ShipyardError
from shipyard.events import EventType, RunState
from shipyard.executor.settings import ExecutorSettings
from shipyard.model import Action, ChangeType, RunStatus, Task
from shipyard.store import Store
from shipyard.workspace import inspect_repo

if TYPE_CHECKING:
    from shipyard.blueprints.engine import EventListener
    from shipyard.deps.planning import Plan, PlannedUpdate
    from shipyard.executor import Executor
    from shipyard.gates.flaky import QuarantineEntry
    from shipyard.rollout.runner import RolloutRunner

# Blueprints, delivery, the index client and the sandbox are imported where a method needs them:
# every command builds an App, and most only read the store.


@dataclass
class DepsPlan:
    """What ``run deps`` found: the planned runs (security first), what it skipped and why, and the
    runs they became."""

    repo: Path
    plan: Plan
    runs: list[RunState] = field(default_factory=list)

    @property
    def updates(self) -> list[PlannedUpdate]:
        return self.plan.updates


@dataclass
class AgentRecord:
    """A run's agent, as ``run task --json`` shows it (all None when no agent ran)."""

    transcript: str | None
    spend: dict[str, Any] | None
    agent: dict[str, Any] | None


class App:
    """One shipyard installation: its home directory, store and executor."""

    def __init__(self, home: Path | None = None, *, listener: EventListener | None = None) -> None:
        self.home = home or shipyard_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.settings = ExecutorSettings.from_env()
        self.store = Store.open(self.settings.store_url, home=self.home)
        self._listener = listener

    @cached_property
    def executor(self) -> Executor:
        """The executor the settings name, made when a run first needs it."""
        from shipyard.executor import executor_from_settings

        return executor_from_settings(
            store=self.store, home=self.home, settings=self.settings, listener=self._listener
        )

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rollouts(self, *, listener: EventListener | None = None) -> RolloutRunner:
        """The runner that advances this installation's rollouts (see ``shipyard.rollout``)."""
        from shipyard.rollout.runner import RolloutRunner

        return RolloutRunner(self.store, home=self.home, listener=listener)

    # --- starting runs -------------------------------------------------------------------------

    def submit(
        self,
        *,
        repo: Path,
        patch: Path,
        change_type: ChangeType,
        title: str = "",
        index_url: str | None = None,
        requested_by: str | None = None,
        allow_removed_tests: Sequence[str] = (),
    ) -> RunState:
        """Verify and deliver a patch file. The run is recorded even when it fails.

        ``allow_removed_tests`` are fnmatch patterns of test ids the change may remove: those are
        neither failures of the pass rate nor integrity findings.
        """
        task = submit_task(
            repo=repo,
            patch=patch,
            change_type=change_type,
            title=title,
            index_url=index_url,
            requested_by=requested_by,
            allow_removed_tests=allow_removed_tests,
        )
        _ensure_sandbox()
        return self.executor.run(task)

    def run_agent(
        self,
        blueprint: str,
        *,
        repo: Path,
        title: str,
        params: dict[str, object],
        change_type: ChangeType,
        model: str | None = None,
        index_url: str | None = None,
        requested_by: str | None = None,
    ) -> RunState:
        """Run an agent blueprint (``task``, ``fix-tests``, ``lint-fix``, ``ci-fix``) on ``repo``."""
        task = agent_task(
            blueprint,
            repo=repo,
            title=title,
            params=params,
            change_type=change_type,
            model=model,
            index_url=index_url,
            requested_by=requested_by,
        )
        _ensure_sandbox()
        return self.executor.run(task)

    def agent_record(self, run_id: str) -> AgentRecord:
        """What a run's agent did: its transcript's path, its spend and how it ended."""
        events = self.store.events(run_id)
        started = [e.data for e in events if e.type == EventType.AGENT_STARTED]
        finished = [e.data for e in events if e.type == EventType.AGENT_FINISHED]
        return AgentRecord(
            transcript=started[-1].get("transcript") if started else None,
            spend=finished[-1].get("spend") if finished else None,
            agent=finished[-1] if finished else None,
        )

    def quarantine(self, *, repo: Path) -> list[QuarantineEntry]:
        """Tests seen flaky in runs on ``repo``, most often seen first."""
        from shipyard.gates.flaky import quarantine_for_repo

        info = inspect_repo(repo)
        return quarantine_for_repo(self.store, str(info.path))

    def plan_deps(self, *, repo: Path, index_url: str | None = None) -> DepsPlan:
        """Plan dependency runs (security fixes, updates, lock maintenance) without starting any."""
        from shipyard.deps.lookup import history, plan_repository

        info = inspect_repo(repo)
        config = load_config(info.path).config
        url = index_url or config.deps.index_url or DEFAULT_INDEX
        earlier = history(self.store.list_runs(repo=str(info.path), limit=500))
        plan = plan_repository(
            info.path, config.deps, index_url=url, cache_dir=self.home / "cache" / "http",
            history=earlier,
        )  # fmt: skip
        return DepsPlan(repo=info.path, plan=plan)

    def run_deps(
        self, *, repo: Path, index_url: str | None = None, requested_by: str | None = None
    ) -> DepsPlan:
        """Each planned run verified and delivered on its own branch, security fixes first."""
        plan = self.plan_deps(repo=repo, index_url=index_url)
        if plan.plan.runs:
            _ensure_sandbox()
        for task in deps_tasks(plan, index_url=index_url, requested_by=requested_by):
            plan.runs.append(self.executor.run(task))
        return plan

    # --- reviews -------------------------------------------------------------------------------

    def reviews(self) -> list[RunState]:
        return self.store.list_runs(status=RunStatus.AWAITING_REVIEW, limit=500)

    def approve(self, run_id: str, *, by: str | None = None, comment: str = "") -> RunState:
        """Send a run that waits for review through the merge queue into its target.

        If the target moved since the change was verified, the change is rebased and verified
        again first; a conflict or failing gates keep it out. The reviewer may not be the identity
        that requested the run unless the repository's ``[review] allow_self_approval`` says so.
        """
        from shipyard.blueprints import RunContext
        from shipyard.blueprints.nodes import configure, reverify
        from shipyard.delivery.deliver import merge_message
        from shipyard.delivery.queue import MergeQueue, Verified
        from shipyard.forge import get_forge

        self.recover()
        state = self._awaiting(run_id)
        who = by or identity()
        repo = Path(state.task["repo"])
        forge = get_forge("local", repo)
        branch, target = state.branch, state.review_target
        head = forge.branch_head(branch) if branch else None
        if branch is None or target is None or head is None:
            raise NotFound(
                f"run {state.run_id}: its branch {branch} is gone from the repository; "
                "reject the review and run the task again."
            )
        ctx = RunContext(
            run_id=state.run_id, task=Task(**state.task), store=self.store, home=self.home
        )
        loaded, _ = configure(ctx, repo)
        check_reviewer(
            requested_by=ctx.task.requested_by,
            reviewer=who,
            allow_self=loaded.config.review.allow_self_approval,
            source=loaded.source_name,
        )
        ctx.emit(EventType.REVIEW_APPROVED, {"by": who, "comment": comment})
        queue = MergeQueue(forge, home=self.home, store=self.store)
        try:
            queue.land(
                ctx,
                branch=branch,
                into=target,
                verified=Verified(
                    base=state.review_base or state.base_commit or "",
                    head=head,
                    tree=forge.tree_of(head),
                ),
                message=merge_message(f"{ctx.task.title} (approved by {who})"),
                # A person approved the change itself; only gates failing on the new target stop it.
                proceed=frozenset({Action.MERGE, Action.STAGING_ONLY, Action.REVIEW}),
                reverify=lambda base, new_head: reverify(ctx, base, new_head),
            )
        except ShipyardError as exc:
            ctx.log(f"approval could not be merged: {exc}")
            raise
        return self.store.state(state.run_id)

    def recover(self) -> list[str]:
        """Settle deliveries a crash left half-done (see ``delivery.queue.recover``).

        Runs that workers still own are left to them: the worker that takes such a run over
        resumes its delivery node, which finds an earlier merge by its trailer.
        """
        from shipyard.blueprints import RunContext
        from shipyard.delivery.queue import recover
        from shipyard.store.leases import Leases

        leases = Leases(self.store)
        pending = [
            s
            for status in (RunStatus.RUNNING, RunStatus.AWAITING_REVIEW)
            for s in self.store.list_runs(status=status, limit=10_000)
            if s.pending_intent and not leases.managed(s.run_id)
        ]
        return recover(
            lambda run_id: RunContext(
                run_id=run_id,
                task=Task(**self.store.state(run_id).task),
                store=self.store,
                home=self.home,
            ),
            pending,
            home=self.home,
        )

    def reject(self, run_id: str, *, by: str | None = None, comment: str = "") -> RunState:
        """Close a review without merging; the run branch is deleted, its commit stays in the record."""
        from shipyard.blueprints import RunContext
        from shipyard.forge import get_forge

        state = self._awaiting(run_id)
        forge = get_forge("local", Path(state.task["repo"]))
        ctx = RunContext(
            run_id=state.run_id, task=Task(**state.task), store=self.store, home=self.home
        )
        if state.branch and forge.branch_head(state.branch) is not None:
            forge.delete_branch(state.branch)
        ctx.emit(EventType.REVIEW_REJECTED, {"by": by or identity(), "comment": comment})
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


def _ensure_sandbox() -> None:
    from shipyard.sandbox import ensure_available

    ensure_available()


def check_patch(patch: Path) -> list[str]:
    """The paths a patch touches; PatchError when it is missing, empty or not a unified diff."""
    from unidiff.errors import UnidiffParseError
    from unidiff.patch import PatchSet

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


def submit_task(
    *,
    repo: Path,
    patch: Path,
    change_type: ChangeType,
    title: str = "",
    index_url: str | None = None,
    requested_by: str | None = None,
    allow_removed_tests: Sequence[str] = (),
    source: str = "cli",
) -> Task:
    """The task that verifies and delivers ``patch`` on ``repo``; both are checked first."""
    info = inspect_repo(repo)
    check_patch(patch)
    return Task(
        blueprint="submit",
        repo=str(info.path),
        title=title or f"Apply {patch.name}",
        params={
            "patch": str(patch.resolve()),
            "change_type": change_type.value,
            **({"index_url": index_url} if index_url else {}),
            **({"allow_removed_tests": list(allow_removed_tests)} if allow_removed_tests else {}),
        },
        source=source,
        requested_by=requested_by or identity(),
    )


def agent_task(
    blueprint: str,
    *,
    repo: Path,
    title: str,
    params: dict[str, object],
    change_type: ChangeType,
    model: str | None = None,
    index_url: str | None = None,
    requested_by: str | None = None,
    source: str = "cli",
) -> Task:
    """The task for an agent blueprint on ``repo`` (checked to be a usable repository)."""
    info = inspect_repo(repo)
    return Task(
        blueprint=blueprint,
        repo=str(info.path),
        title=title,
        params={
            **params,
            "change_type": change_type.value,
            **({"model": model} if model else {}),
            **({"index_url": index_url} if index_url else {}),
        },
        source=source,
        requested_by=requested_by or identity(),
    )


def deps_tasks(
    plan: DepsPlan,
    *,
    index_url: str | None = None,
    requested_by: str | None = None,
    source: str = "cli",
) -> list[Task]:
    """One task per planned run (security fixes first); its updates travel in the parameters."""
    return [
        Task(
            blueprint="deps",
            repo=str(plan.repo),
            title=planned.title,
            params={
                "run_kind": planned.kind,
                "group": planned.name,
                "updates": [u.as_dict() for u in planned.updates],
                "left_alone": [
                    {"package": s.package, "manifest": s.manifest, "reason": s.reason}
                    for s in plan.plan.skipped
                ],
                "change_type": planned.change_type,
                **({"index_url": index_url} if index_url else {}),
            },
            source=source,
            requested_by=requested_by or identity(),
        )
        for planned in plan.plan.runs
    ]


IDENTITY_ENV = "SHIPYARD_IDENTITY"


def identity() -> str:
    """Who is acting: ``$SHIPYARD_IDENTITY`` when set (a bot, a service account), else the OS user."""
    return os.environ.get(IDENTITY_ENV, "").strip() or getpass.getuser()


def check_reviewer(*, requested_by: str, reviewer: str, allow_self: bool, source: str) -> None:
    """Refuse an approval by the identity that requested the run, unless the config allows it."""
    if allow_self or not requested_by or requested_by.casefold() != reviewer.casefold():
        return
    raise ReviewError(
        f"{reviewer} requested this run and cannot also approve it; another person must "
        f"(`shipyard review approve --by NAME`), or set allow_self_approval = true under [review] "
        f"in {source} for a repository with a single maintainer."
    )
