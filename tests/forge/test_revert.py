"""Reverting a merged change on real repositories: the tree it restores, retries, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import DeliveryError, MergeConflict
from shipyard.forge.local import LocalForge, with_rollback_trailer
from shipyard.gitcmd import git
from shipyard.workspace import Workspace
from tests.forge.conftest import commit_file, refs, rev, status

RUN = "run-1"


@pytest.fixture
def merged(forge: LocalForge, change: Workspace) -> str:
    """The change merged into main (checked out in the user's repository) by shipyard."""
    forge.publish(change)
    return forge.merge(
        change.branch, "main", message=f"shipyard: the change\n\nShipyard-Run: {RUN}\n"
    )


def show(repo: Path, rev_: str, path: str) -> str | None:
    done = git("show", f"{rev_}:{path}", cwd=repo, check=False)
    return done.stdout if done.returncode == 0 else None


def message(repo: Path, commit: str) -> str:
    """The commit message exactly as stored."""
    raw = git("cat-file", "commit", commit, cwd=repo).stdout
    return raw.split("\n\n", 1)[1]


def test_revert_restores_the_first_parents_tree_and_updates_the_checkout(
    forge: LocalForge, merged: str, change: Workspace, user_repo: Path
) -> None:
    others = [
        line for line in refs(user_repo).splitlines() if not line.startswith("refs/heads/main ")
    ]
    reverted = forge.revert("main", merged, message="Roll back the change", run_id=RUN)
    assert rev(user_repo, "main") == reverted
    parents = git("rev-list", "--parents", "-n1", reverted, cwd=user_repo).stdout.split()[1:]
    assert parents == [merged]  # one new commit on top of the head, history kept
    assert forge.tree_of(reverted) == forge.tree_of(change.base_commit)
    assert message(user_repo, reverted) == f"Roll back the change\n\nShipyard-Rollback: {RUN}\n"
    # The checked-out main shows the revert: files, index and HEAD agree.
    assert not (user_repo / "CHANGELOG.md").exists()
    assert (user_repo / "src" / "app.py").read_text() == "one\ntwo\nthree\n"
    assert status(user_repo) == ""
    assert [
        line for line in refs(user_repo).splitlines() if not line.startswith("refs/heads/main ")
    ] == others
    assert forge.find_revert("main", RUN) == reverted
    assert forge.find_merge("main", RUN) == merged  # the revert is not taken for the merge


def test_a_later_unrelated_commit_survives_the_revert(
    forge: LocalForge, merged: str, user_repo: Path
) -> None:
    commit_file(user_repo, "later.txt", "someone else's work\n")
    # An edit to the same file, apart from the lines the change touched: a real three-way merge.
    later = commit_file(user_repo, "src/app.py", "ONE\ntwo\nthree\nfour\n")
    reverted = forge.revert("main", merged, message="roll back", run_id=RUN)
    assert rev(user_repo, f"{reverted}^") == later
    assert show(user_repo, reverted, "later.txt") == "someone else's work\n"
    assert show(user_repo, reverted, "src/app.py") == "ONE\ntwo\nthree\n"
    assert show(user_repo, reverted, "CHANGELOG.md") is None
    assert (user_repo / "later.txt").exists()
    assert status(user_repo) == ""


def test_revert_is_idempotent(forge: LocalForge, merged: str, user_repo: Path) -> None:
    first = forge.revert("main", merged, message="roll back", run_id=RUN)
    after_first = refs(user_repo)
    assert forge.revert("main", merged, message="roll back", run_id=RUN) == first
    assert refs(user_repo) == after_first
    # Found deeper in history too: a retry after more work landed still reverts nothing twice.
    commit_file(user_repo, "later.txt", "x\n")
    after_later = refs(user_repo)
    assert forge.revert("main", merged, message="another wording", run_id=RUN) == first
    assert refs(user_repo) == after_later
    count = git("rev-list", "--count", "--grep=^Shipyard-Rollback: run-1$", "main", cwd=user_repo)
    assert count.stdout.strip() == "1"


def test_a_conflicting_later_change_is_refused_and_nothing_moves(
    forge: LocalForge, merged: str, user_repo: Path
) -> None:
    commit_file(user_repo, "src/app.py", "one\ntwo\nthree\nFOUR, edited since\n")
    before, files_before = refs(user_repo), status(user_repo)
    with pytest.raises(MergeConflict, match=r"conflicts with later changes on main") as caught:
        forge.revert("main", merged, message="roll back", run_id=RUN)
    assert caught.value.paths == ["src/app.py"]
    assert "nothing was reverted" in str(caught.value)
    assert refs(user_repo) == before
    assert status(user_repo) == files_before == ""
    assert (user_repo / "src" / "app.py").read_text() == "one\ntwo\nthree\nFOUR, edited since\n"
    assert not (user_repo / ".git" / "MERGE_HEAD").exists()
    assert forge.find_revert("main", RUN) is None


def test_a_dirty_checked_out_target_is_refused_and_nothing_moves(
    forge: LocalForge, merged: str, user_repo: Path
) -> None:
    (user_repo / "README.md").write_text("# work in progress\n")
    before = refs(user_repo)
    with pytest.raises(DeliveryError, match="uncommitted changes") as caught:
        forge.revert("main", merged, message="roll back", run_id=RUN)
    assert "README.md" in str(caught.value)
    assert "commit or stash them" in str(caught.value)
    assert refs(user_repo) == before
    assert (user_repo / "README.md").read_text() == "# work in progress\n"
    assert (user_repo / "CHANGELOG.md").exists()


def test_an_untracked_file_in_the_way_is_never_overwritten(
    forge: LocalForge, user_repo: Path
) -> None:
    deleted = git("rm", "--quiet", "README.md", cwd=user_repo)
    assert deleted.returncode == 0
    git("commit", "--quiet", "-m", "drop the readme", cwd=user_repo)
    dropped = rev(user_repo, "HEAD")
    (user_repo / "README.md").write_text("my own notes\n")  # untracked, where the revert restores
    before = refs(user_repo)
    with pytest.raises(DeliveryError, match=r"README\.md") as caught:
        forge.revert("main", dropped, message="bring it back", run_id=RUN)
    assert "Nothing was reverted" in str(caught.value)
    assert refs(user_repo) == before
    assert (user_repo / "README.md").read_text() == "my own notes\n"


def test_revert_of_a_branch_checked_out_elsewhere_updates_that_worktree_only(
    forge: LocalForge, merged: str, user_repo: Path, tmp_path: Path
) -> None:
    git("checkout", "--quiet", "-b", "dev", cwd=user_repo)
    (user_repo / "notes.txt").write_text("dirt on dev is no obstacle\n")
    other = tmp_path / "main-tree"
    git("worktree", "add", "--quiet", str(other), "main", cwd=user_repo)
    reverted = forge.revert("main", merged, message="roll back", run_id=RUN)
    assert rev(other, "HEAD") == reverted
    assert not (other / "CHANGELOG.md").exists()
    assert status(other) == ""
    assert (user_repo / "CHANGELOG.md").exists()  # dev still has the change, untouched
    assert rev(user_repo, "dev") == merged


def test_revert_in_a_bare_repository(change: Workspace, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git("clone", "--quiet", "--bare", str(change.path), str(bare), cwd=tmp_path)
    git("update-ref", "refs/heads/main", change.base_commit, cwd=bare)
    forge = LocalForge(bare)
    merged = forge.merge(change.branch, "main", message="m")
    reverted = forge.revert("main", merged, message="roll back", run_id=RUN)
    assert rev(bare, "main") == reverted
    assert forge.tree_of(reverted) == forge.tree_of(change.base_commit)


def test_a_single_parent_commit_is_reverted(forge: LocalForge, user_repo: Path) -> None:
    before = rev(user_repo, "HEAD")
    direct = commit_file(user_repo, "src/app.py", "one\ntwo\nthree\nfour\n")
    reverted = forge.revert("main", direct, message="", run_id=RUN)
    assert forge.tree_of(reverted) == forge.tree_of(before)
    text = message(user_repo, reverted)
    assert text.startswith('Revert "write src/app.py"\n\nThis reverts commit ')
    assert text.endswith(f"\n\nShipyard-Rollback: {RUN}\n")


def test_a_commit_not_on_the_target_is_refused(
    forge: LocalForge, merged: str, user_repo: Path
) -> None:
    git("checkout", "--quiet", "-b", "dev", cwd=user_repo)
    elsewhere = commit_file(user_repo, "dev.txt", "only on dev\n")
    git("checkout", "--quiet", "main", cwd=user_repo)
    before = refs(user_repo)
    with pytest.raises(DeliveryError, match=r"is not on main .*nothing was reverted"):
        forge.revert("main", elsewhere, message="roll back", run_id=RUN)
    with pytest.raises(DeliveryError, match="not a commit in"):
        forge.revert("main", "0" * 40, message="roll back", run_id=RUN)
    with pytest.raises(DeliveryError, match="there is no branch gone"):
        forge.revert("gone", merged, message="roll back", run_id=RUN)
    assert refs(user_repo) == before


def test_the_first_commit_cannot_be_reverted(forge: LocalForge, user_repo: Path) -> None:
    root = git("rev-list", "--max-parents=0", "main", cwd=user_repo).stdout.strip()
    before = refs(user_repo)
    with pytest.raises(DeliveryError, match="first commit"):
        forge.revert("main", root, message="m", run_id=RUN)
    assert refs(user_repo) == before


def test_find_revert_matches_the_whole_run_id(
    forge: LocalForge, merged: str, user_repo: Path
) -> None:
    assert forge.find_revert("main", RUN) is None
    reverted = forge.revert("main", merged, message="roll back", run_id=RUN)
    assert forge.find_revert("main", "run-") is None
    assert forge.find_revert("main", "run-1.") is None
    assert forge.find_revert("main", RUN) == reverted
    assert forge.find_revert("missing-branch", RUN) is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("roll back", "roll back\n\nShipyard-Rollback: r1\n"),
        ("roll back\n\nShipyard-Rollback: r1\n\n", "roll back\n\nShipyard-Rollback: r1\n"),
        (
            "roll back\n\nReason: error rate\n",
            "roll back\n\nReason: error rate\nShipyard-Rollback: r1\n",
        ),
        ("rollout: revert it", "rollout: revert it\n\nShipyard-Rollback: r1\n"),  # a subject
        ("undo\n\nShipyard-Run: r1\n", "undo\n\nShipyard-Rollback: r1\n"),
        (
            "undo\n\nShipyard-Rollback: r0\n",
            "undo\n\nShipyard-Rollback: r0\nShipyard-Rollback: r1\n",
        ),
    ],
)
def test_the_rollback_trailer_ends_every_message(given: str, expected: str) -> None:
    assert with_rollback_trailer(given, "r1") == expected


def test_a_change_cannot_pass_off_its_own_commit_as_its_revert_or_merge(
    forge: LocalForge, user_repo: Path, tmp_path: Path
) -> None:
    """An agent that writes shipyard's trailers into its commit message fools neither lookup."""
    ws = Workspace.create(user_repo, base_ref="main", run_id=RUN, root=tmp_path / "sneaky")
    (ws.path / "src" / "app.py").write_text("broken\n")
    ws.commit(f"the change\n\nShipyard-Rollback: {RUN}\nShipyard-Run: other-run\n")
    forge.publish(ws)
    assert forge.find_merge("main", "other-run") is None
    merged = forge.merge(ws.branch, "main", message=f"shipyard: merge\n\nShipyard-Run: {RUN}\n")
    assert forge.find_revert("main", RUN) is None  # the change's own commit is not a revert
    assert forge.find_merge("main", "other-run") is None
    reverted = forge.revert("main", merged, message="Roll back", run_id=RUN)
    assert reverted != merged
    assert rev(user_repo, "main") == reverted
    assert (user_repo / "src" / "app.py").read_text() == "one\ntwo\nthree\n"
