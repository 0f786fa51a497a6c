"""The merge queue on real repositories: exactly one merge per run, re-verification when the target
moved, conflicts handed to a person, serialised merges, and recovery after a kill at every step."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from shipyard.blueprints.engine import RunContext
from shipyard.delivery.queue import MergeQueue, Verified, recover
from shipyard.events import EventType
from shipyard.failpoints import POINTS
from shipyard.forge.local import LocalForge
from shipyard.gitcmd import git
from shipyard.model import Action, Decision, Reason, RunStatus, Task
from shipyard.store import Store
from tests.forge.conftest import commit_file, refs, rev

MERGE_ONLY = frozenset({Action.MERGE})


def decision(action: Action) -> Decision:
    return Decision(action=action, reasons=(Reason(rule="t", action=action, message="measured"),))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(home=tmp_path / "home")
    yield opened  # type: ignore[misc]
    opened.close()


def run_branch(repo: Path, store: Store, home: Path, name: str, edit: dict[str, str]) -> RunContext:
    """A run whose branch shipyard/<run id> holds one commit on top of main."""
    run_id = store.create_run(Task(blueprint="submit", repo=str(repo), title=name))
    base = rev(repo, "main")
    branch = f"shipyard/{run_id}"
    git("branch", branch, base, cwd=repo)
    git("checkout", "--quiet", branch, cwd=repo)
    for path, content in edit.items():
        commit_file(repo, path, content, f"{name}: {path}")
    git("checkout", "--quiet", "main", cwd=repo)
    ctx = RunContext(
        run_id=run_id, task=Task(blueprint="submit", repo=str(repo)), store=store, home=home
    )
    ctx.values.update(branch=branch, base=base)
    return ctx


def verified(forge: LocalForge, ctx: RunContext) -> Verified:
    head = forge.branch_head(ctx.values["branch"])
    assert head is not None
    return Verified(base=ctx.values["base"], head=head, tree=forge.tree_of(head))


def land(queue: MergeQueue, ctx: RunContext, reverify=None, proceed=MERGE_ONLY):  # type: ignore[no-untyped-def]
    return queue.land(
        ctx,
        branch=ctx.values["branch"],
        into="main",
        verified=verified(queue.forge, ctx),  # type: ignore[arg-type]
        message="shipyard: change",
        proceed=proceed,
        reverify=reverify,
    )


def merges_of(repo: Path, run_id: str) -> list[str]:
    out = git("log", "--format=%H", f"--grep=^Shipyard-Run: {run_id}$", "main", cwd=repo).stdout
    return out.split()


def types(store: Store, run_id: str) -> list[str]:
    return [str(e.type) for e in store.events(run_id)]


def test_an_unmoved_target_is_merged_once_with_the_run_trailer(
    user_repo: Path, store: Store, tmp_path: Path
) -> None:
    forge = LocalForge(user_repo)
    queue = MergeQueue(forge, home=tmp_path / "home")
    ctx = run_branch(user_repo, store, tmp_path / "home", "a", {"a.txt": "a\n"})
    landing = land(queue, ctx)
    assert landing.outcome == "merged"
    assert not landing.reverified
    assert merges_of(user_repo, ctx.run_id) == [landing.commit]
    assert forge.branch_head(ctx.values["branch"]) is None  # the run branch is gone
    assert types(store, ctx.run_id)[-2:] == ["delivery.intent", "delivery.merged"]
    # Landing again (a retry) finds the merge instead of merging twice.
    again = queue.land(
        ctx, branch=ctx.values["branch"], into="main",
        verified=Verified(base="x", head="y", tree="z"), message="m", proceed=MERGE_ONLY,
        reverify=None,
    )  # fmt: skip
    assert again.commit == landing.commit
    assert merges_of(user_repo, ctx.run_id) == [landing.commit]


def test_a_moved_target_is_rebased_verified_again_and_merged(
    user_repo: Path, store: Store, tmp_path: Path
) -> None:
    forge = LocalForge(user_repo)
    queue = MergeQueue(forge, home=tmp_path / "home")
    ctx = run_branch(user_repo, store, tmp_path / "home", "a", {"a.txt": "a\n"})
    moved = commit_file(user_repo, "b.txt", "b\n")
    seen: list[tuple[str, str]] = []

    def reverify(base: str, head: str) -> Decision:
        seen.append((base, head))
        return decision(Action.MERGE)

    landing = land(queue, ctx, reverify)
    assert landing.outcome == "merged"
    assert landing.reverified
    assert seen
    assert seen[0][0] == moved
    assert rev(user_repo, f"{seen[0][1]}^") == moved  # what was verified sits on the new main
    assert git("show", "main:a.txt", cwd=user_repo).stdout == "a\n"
    assert git("show", "main:b.txt", cwd=user_repo).stdout == "b\n"
    assert forge.tree_of("main") == forge.tree_of(seen[0][1])  # merged exactly what was verified


def test_failing_gates_on_the_moved_target_halt_and_merge_nothing(
    user_repo: Path, store: Store, tmp_path: Path
) -> None:
    forge = LocalForge(user_repo)
    queue = MergeQueue(forge, home=tmp_path / "home")
    ctx = run_branch(user_repo, store, tmp_path / "home", "a", {"a.txt": "a\n"})
    moved = commit_file(user_repo, "b.txt", "b\n")
    landing = land(queue, ctx, lambda base, head: decision(Action.HALT))
    assert landing.outcome == "halted"
    assert rev(user_repo, "main") == moved
    assert forge.branch_head(ctx.values["branch"]) is None
    assert types(store, ctx.run_id)[-1] == "run.halted"


def test_a_new_decision_that_needs_review_hands_the_rebased_branch_to_a_person(
    user_repo: Path, store: Store, tmp_path: Path
) -> None:
    forge = LocalForge(user_repo)
    queue = MergeQueue(forge, home=tmp_path / "home")
    ctx = run_branch(user_repo, store, tmp_path / "home", "a", {"a.txt": "a\n"})
    moved = commit_file(user_repo, "b.txt", "b\n")
    landing = land(queue, ctx, lambda base, head: decision(Action.REVIEW))
    assert landing.outcome == "review"
    assert rev(user_repo, "main") == moved
    assert rev(user_repo, f"{ctx.values['branch']}^") == moved
    assert store.state(ctx.run_id).status is RunStatus.AWAITING_REVIEW


def test_a_conflict_becomes_review_naming_the_files_and_moves_nothing(
    user_repo: Path, store: Store, tmp_path: Path
) -> None:
    forge = LocalForge(user_repo)
    queue = MergeQueue(forge, home=tmp_path / "home")
    ctx = run_branch(user_repo, store, tmp_path / "home", "a", {"src/app.py": "one\nTWO\n"})
    commit_file(user_repo, "src/app.py", "one\nzwei\n")
    before = refs(user_repo)
    landing = land(queue, ctx, lambda base, head: pytest.fail("a conflict is not verified"))
    assert landing.outcome == "review"
    assert "src/app.py" in landing.detail
    assert refs(user_repo) == before
    requested = [e for e in store.events(ctx.run_id) if e.type == EventType.REVIEW_REQUESTED]
    assert requested[-1].data["conflicts"] == ["src/app.py"]


def test_an_identical_tree_reuses_the_gate_results(
    user_repo: Path, store: Store, tmp_path: Path
) -> None:
    forge = LocalForge(user_repo)
    queue = MergeQueue(forge, home=tmp_path / "home")
    ctx = run_branch(user_repo, store, tmp_path / "home", "a", {"a.txt": "a\n"})
    commit_file(user_repo, "a.txt", "a\n", "the same change, landed by someone else")
    landing = land(queue, ctx, lambda base, head: pytest.fail("an identical tree is not re-run"))
    assert landing.outcome == "merged"
    assert not landing.reverified
    assert any("reusing the gate results" in str(e.data) for e in store.events(ctx.run_id))


def test_concurrent_runs_on_the_same_file_end_in_one_merge_and_one_reverified_merge(
    user_repo: Path, store: Store, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    first = run_branch(user_repo, store, home, "first", {"src/app.py": "zero\none\ntwo\nthree\n"})
    second = run_branch(user_repo, store, home, "second", {"src/app.py": "one\ntwo\nthree\nfour\n"})
    reverified: list[str] = []
    results = {}
    start = threading.Barrier(2)

    def go(ctx: RunContext) -> None:
        queue = MergeQueue(LocalForge(user_repo), home=home)
        start.wait()
        results[ctx.run_id] = land(
            queue, ctx, lambda base, head: reverified.append(ctx.run_id) or decision(Action.MERGE)
        )

    threads = [threading.Thread(target=go, args=(c,)) for c in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(r.outcome for r in results.values()) == ["merged", "merged"]
    assert len(reverified) == 1  # whichever came second was verified again on the new main
    assert [results[reverified[0]].reverified] == [True]
    assert git("show", "main:src/app.py", cwd=user_repo).stdout == "zero\none\ntwo\nthree\nfour\n"
    assert len(merges_of(user_repo, first.run_id)) == len(merges_of(user_repo, second.run_id)) == 1


# --- a kill at every step ---------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from shipyard.blueprints.engine import RunContext
    from shipyard.delivery.queue import MergeQueue, Verified
    from shipyard.forge.local import LocalForge
    from shipyard.model import Action, Decision, Reason, Task
    from shipyard.store import Store

    repo, home, run_id, base, moved = sys.argv[1:6]
    store = Store.open(home=Path(home))
    forge = LocalForge(Path(repo))
    ctx = RunContext(run_id=run_id, task=Task(blueprint="submit", repo=repo), store=store,
                     home=Path(home))
    branch = f"shipyard/{run_id}"
    head = forge.branch_head(branch)
    merge = Decision(action=Action.MERGE, reasons=(Reason(rule="t", action=Action.MERGE, message="ok"),))
    MergeQueue(forge, home=Path(home)).land(
        ctx, branch=branch, into="main", verified=Verified(base=base, head=head, tree=forge.tree_of(head)),
        message="shipyard: change", proceed=frozenset({Action.MERGE}),
        reverify=lambda b, h: merge,
    )
    """
)


@pytest.mark.parametrize("point", [p for p in POINTS if p.startswith("merge.")])
def test_a_kill_at_any_step_never_merges_twice_or_loses_the_outcome(
    user_repo: Path, tmp_path: Path, point: str
) -> None:
    home = tmp_path / "home"
    store = Store.open(home=home)
    ctx = run_branch(user_repo, store, home, "a", {"a.txt": "a\n"})
    store.append(ctx.run_id, EventType.NODE_STARTED, {"node": "deliver"})
    moved = commit_file(user_repo, "b.txt", "b\n")  # so the rebase step is reached too
    env = {**os.environ, "SHIPYARD_FAILPOINTS": point}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(user_repo), str(home), ctx.run_id, ctx.values["base"], moved],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == -9, done.stderr  # killed at the failpoint, no cleanup ran
    store.close()
    store = Store.open(home=home)
    state = store.state(ctx.run_id)
    settled = recover(
        lambda run_id: RunContext(run_id=run_id, task=Task(**state.task), store=store, home=home),
        [state],
        home=home,
    )
    after = store.state(ctx.run_id)
    merged = merges_of(user_repo, ctx.run_id)
    assert len(merged) <= 1
    assert after.pending_intent is None
    if merged:
        assert after.status is RunStatus.MERGED
        assert after.delivered_commit == merged[0]
    elif point in ("merge.after_rebase",):
        # Killed before any intent: nothing to settle, and nothing merged; landing again works.
        assert settled == []
        assert after.status is RunStatus.RUNNING
    else:
        assert after.status is RunStatus.AWAITING_REVIEW
        assert "interrupted before it merged" in (settled[0] if settled else "")
    # Whatever happened, one more attempt never merges a second time.
    subprocess.run(
        [sys.executable, "-c", CHILD, str(user_repo), str(home), ctx.run_id, ctx.values["base"], moved],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert len(merges_of(user_repo, ctx.run_id)) == 1
    store.close()
