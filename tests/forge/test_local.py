"""The local forge on real repositories: publishing, safe merges, branches."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import DeliveryError, MergeConflict, RepositoryError
from shipyard.forge.local import LocalForge
from shipyard.gitcmd import git
from shipyard.workspace import Workspace
from tests.forge.conftest import commit_file, refs, rev, status

# --- publish -------------------------------------------------------------------------------------


def test_publish_puts_the_run_branch_into_the_repository(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    assert forge.branch_head(change.branch) is None
    forge.publish(change)
    assert forge.branch_head(change.branch) == rev(change.path, "HEAD")
    assert rev(user_repo, "main") == change.base_commit  # nothing else moved
    assert git("symbolic-ref", "--short", "HEAD", cwd=user_repo).stdout.strip() == "main"


def test_publish_again_after_the_run_replaced_its_commit(
    forge: LocalForge, change: Workspace
) -> None:
    forge.publish(change)
    git("commit", "--quiet", "--amend", "-m", "the change, fixed", cwd=change.path)
    forge.publish(change)
    assert forge.branch_head(change.branch) == rev(change.path, "HEAD")


def test_publish_refuses_a_run_branch_someone_checked_out(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    git("checkout", "--quiet", change.branch, cwd=user_repo)
    (change.path / "more.txt").write_text("more\n")
    change.commit("more")
    with pytest.raises(DeliveryError, match="is checked out in"):
        forge.publish(change)


# --- merge --------------------------------------------------------------------------------------


def test_merge_into_the_checked_out_branch_updates_the_working_tree(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    head = forge.branch_head(change.branch)
    merged = forge.merge(
        change.branch, "main", message="shipyard: the change", expected_target=change.base_commit
    )
    assert rev(user_repo, "main") == merged
    parents = git("rev-list", "--parents", "-n1", merged, cwd=user_repo).stdout.split()[1:]
    assert parents == [change.base_commit, head]  # a real merge commit, target first
    assert git("log", "-1", "--format=%s", merged, cwd=user_repo).stdout.strip() == (
        "shipyard: the change"
    )
    assert (user_repo / "CHANGELOG.md").read_text() == "- a change\n"
    assert (user_repo / "src" / "app.py").read_text() == "one\ntwo\nthree\nfour\n"
    assert status(user_repo) == ""  # index and files agree with the new head


def test_merge_refuses_a_dirty_checked_out_target_and_changes_nothing(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    (user_repo / "README.md").write_text("# work in progress\n")
    before = refs(user_repo)
    with pytest.raises(DeliveryError, match="uncommitted changes") as caught:
        forge.merge(change.branch, "main", message="m")
    assert "README.md" in str(caught.value)
    assert "commit or stash them, then run `shipyard review approve` again" in str(caught.value)
    assert refs(user_repo) == before
    assert (user_repo / "README.md").read_text() == "# work in progress\n"
    assert not (user_repo / "CHANGELOG.md").exists()


def test_merge_never_overwrites_an_untracked_file_in_the_way(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    (user_repo / "CHANGELOG.md").write_text("my own notes\n")
    before = refs(user_repo)
    with pytest.raises(DeliveryError, match=r"CHANGELOG\.md") as caught:
        forge.merge(change.branch, "main", message="m")
    assert "Nothing was merged" in str(caught.value)
    assert refs(user_repo) == before
    assert (user_repo / "CHANGELOG.md").read_text() == "my own notes\n"
    assert (user_repo / "src" / "app.py").read_text() == "one\ntwo\nthree\n"


def test_merge_into_a_branch_not_checked_out_leaves_the_working_tree_alone(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    git("checkout", "--quiet", "-b", "dev", cwd=user_repo)
    commit_file(user_repo, "dev.txt", "dev work\n")
    (user_repo / "README.md").write_text("# uncommitted on dev\n")  # dirt elsewhere is no obstacle
    dev_before, status_before = rev(user_repo, "dev"), status(user_repo)
    merged = forge.merge(change.branch, "main", message="m", expected_target=change.base_commit)
    assert rev(user_repo, "main") == merged
    assert git("show", f"{merged}:CHANGELOG.md", cwd=user_repo).stdout == "- a change\n"
    assert git("symbolic-ref", "--short", "HEAD", cwd=user_repo).stdout.strip() == "dev"
    assert rev(user_repo, "dev") == dev_before
    assert status(user_repo) == status_before
    assert not (user_repo / "CHANGELOG.md").exists()


def test_merge_into_a_branch_checked_out_in_another_worktree(
    forge: LocalForge, change: Workspace, user_repo: Path, tmp_path: Path
) -> None:
    forge.publish(change)
    git("checkout", "--quiet", "-b", "dev", cwd=user_repo)
    other = tmp_path / "main-tree"
    git("worktree", "add", "--quiet", str(other), "main", cwd=user_repo)
    merged = forge.merge(change.branch, "main", message="m")
    assert rev(other, "HEAD") == merged
    assert (other / "CHANGELOG.md").read_text() == "- a change\n"
    assert status(other) == ""
    assert not (user_repo / "CHANGELOG.md").exists()


def test_a_conflict_is_refused_and_every_branch_stays_where_it_was(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    commit_file(user_repo, "src/app.py", "one\nTWO\nthree\nFOUR\n")
    before, files_before = refs(user_repo), status(user_repo)
    with pytest.raises(DeliveryError, match=r"conflicts with main in src/app\.py; nothing was"):
        forge.merge(change.branch, "main", message="m")
    assert refs(user_repo) == before
    assert status(user_repo) == files_before == ""
    assert (user_repo / "src" / "app.py").read_text() == "one\nTWO\nthree\nFOUR\n"
    assert not (user_repo / ".git" / "MERGE_HEAD").exists()


def test_merging_twice_returns_the_first_merge(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    first = forge.merge(change.branch, "main", message="m", expected_target=change.base_commit)
    after_first = refs(user_repo)
    # A retry after a crash passes the same (now stale) expectation: it must not merge again.
    again = forge.merge(change.branch, "main", message="m", expected_target=change.base_commit)
    assert again == first
    assert refs(user_repo) == after_first
    commit_file(user_repo, "later.txt", "someone else's work\n")
    assert forge.merge(change.branch, "main", message="m") == first


def test_a_stale_expected_target_refuses_the_merge(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    commit_file(user_repo, "other.txt", "landed meanwhile\n")
    before = refs(user_repo)
    with pytest.raises(DeliveryError, match=r"moved to .* since the change was verified"):
        forge.merge(change.branch, "main", message="m", expected_target=change.base_commit)
    assert refs(user_repo) == before


def test_the_ref_update_is_a_compare_and_swap(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    git("checkout", "--quiet", "-b", "dev", cwd=user_repo)
    head = forge.branch_head(change.branch)
    assert head is not None
    before = refs(user_repo)
    with pytest.raises(DeliveryError, match="changed while shipyard was merging"):
        # ``old`` no longer matches main, as if another process had moved it.
        forge._swap(
            "main", head, "0" * 39 + "1", log="merge into main",
            race="main changed while shipyard was merging", consequence="nothing was merged.",
        )  # fmt: skip
    assert refs(user_repo) == before


def test_merge_of_a_missing_branch_or_into_itself_is_refused(
    forge: LocalForge, user_repo: Path
) -> None:
    with pytest.raises(DeliveryError, match="there is no branch shipyard/gone"):
        forge.merge("shipyard/gone", "main", message="m")
    with pytest.raises(DeliveryError, match="into itself"):
        forge.merge("main", "main", message="m")


def test_merge_into_a_bare_repository(change: Workspace, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git("clone", "--quiet", "--bare", str(change.path), str(bare), cwd=tmp_path)
    git("update-ref", "refs/heads/main", change.base_commit, cwd=bare)
    git("update-ref", "-d", f"refs/heads/{change.branch}", cwd=bare)
    forge = LocalForge(bare)
    forge.publish(change)
    merged = forge.merge(change.branch, "main", message="m", expected_target=change.base_commit)
    assert rev(bare, "main") == merged


# --- branches -----------------------------------------------------------------------------------


def test_staging_branch_is_created_from_main_and_then_left_alone(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    main = rev(user_repo, "main")
    forge.ensure_branch("staging", start="main")
    assert forge.branch_head("staging") == main
    commit_file(user_repo, "next.txt", "main moves on\n")
    forge.ensure_branch("staging", start="main")
    assert forge.branch_head("staging") == main  # an existing branch is never moved
    forge.publish(change)
    merged = forge.merge(change.branch, "staging", message="stage it")
    assert forge.branch_head("staging") == merged
    assert rev(user_repo, "main") != merged


def test_ensure_branch_refuses_an_unknown_start_and_bad_names(forge: LocalForge) -> None:
    with pytest.raises(DeliveryError, match="'nope' is not a branch or commit"):
        forge.ensure_branch("staging", start="nope")
    with pytest.raises(DeliveryError, match="not a valid branch name"):
        forge.ensure_branch("bad..name", start="main")
    assert forge.branch_head("staging") is None


def test_branches_and_delete_branch(forge: LocalForge, change: Workspace, user_repo: Path) -> None:
    forge.publish(change)
    forge.ensure_branch("staging", start="main")
    assert forge.branches() == {change.branch: rev(change.path, "HEAD")}
    assert set(forge.branches("")) == {"main", "staging", change.branch}
    forge.delete_branch(change.branch)
    assert forge.branch_head(change.branch) is None
    forge.delete_branch(change.branch)  # already gone: nothing to do
    assert forge.branches() == {}


def test_delete_branch_refuses_a_checked_out_branch(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    git("checkout", "--quiet", change.branch, cwd=user_repo)
    with pytest.raises(DeliveryError, match=f"{change.branch} is checked out in"):
        forge.delete_branch(change.branch)
    assert forge.branch_head(change.branch) == rev(change.path, "HEAD")


@pytest.mark.parametrize("verb", ["delete", "rebase"])
def test_only_shipyard_branches_are_ever_deleted_or_rewritten(
    forge: LocalForge, user_repo: Path, verb: str
) -> None:
    git("branch", "feature", cwd=user_repo)
    before = refs(user_repo)
    attempt = (
        (lambda: forge.delete_branch("feature"))
        if verb == "delete"
        else (lambda: forge.rebase("main", onto="feature"))
    )
    with pytest.raises(DeliveryError, match=f"refusing to {verb} (main|feature)"):
        attempt()
    assert refs(user_repo) == before


def test_find_merge_finds_the_run_trailer_and_nothing_else(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    assert forge.find_merge("main", "run-1") is None
    merged = forge.merge(change.branch, "main", message="m\n\nShipyard-Run: run-1")
    assert forge.find_merge("main", "run-1") == merged
    assert forge.find_merge("main", "run-") is None  # a prefix of a run id is not that run
    assert forge.find_merge("main", "run-1.") is None
    commit_file(user_repo, "later.txt", "x\n")
    assert forge.find_merge("main", "run-1") == merged  # found deeper in history too
    assert forge.find_merge("missing-branch", "run-1") is None


def test_rebase_moves_the_change_onto_the_new_target(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    moved = commit_file(user_repo, "README.md", "# project, edited\n")
    new_head = forge.rebase(change.branch, onto="main")
    assert rev(user_repo, f"{new_head}^") == moved
    assert forge.branch_head(change.branch) == new_head
    shown = git("show", f"{new_head}:src/app.py", cwd=user_repo).stdout
    assert shown == "one\ntwo\nthree\nfour\n"
    assert git("show", f"{new_head}:README.md", cwd=user_repo).stdout == "# project, edited\n"
    assert forge.rebase(change.branch, onto="main") == new_head  # already on top: unchanged


def test_a_conflicting_rebase_names_the_files_and_moves_nothing(
    forge: LocalForge, change: Workspace, user_repo: Path
) -> None:
    forge.publish(change)
    commit_file(user_repo, "src/app.py", "one\nTWO\nthree\nfive\n")
    before = refs(user_repo)
    with pytest.raises(MergeConflict) as caught:
        forge.rebase(change.branch, onto="main")
    assert caught.value.paths == ["src/app.py"]
    assert refs(user_repo) == before


def test_a_forge_needs_a_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="no such directory"):
        LocalForge(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(RepositoryError, match="not a git repository"):
        LocalForge(tmp_path / "plain")
