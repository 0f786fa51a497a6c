"""Repository checks, run workspaces, commits and diff facts, on real git repositories."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shipyard.errors import DirtyRepositoryError, PatchError, RepositoryError
from shipyard.gitcmd import git
from shipyard.model import FileChange
from shipyard.workspace import Workspace, changed_files, inspect_repo, parse_raw_numstat

BINARY = bytes(range(256)) * 4


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def make_repo(path: Path, files: dict[str, str | bytes]) -> Path:
    path.mkdir(parents=True)
    git("init", "--quiet", cwd=path)
    write(path, files)
    git("add", "--all", cwd=path)
    git("commit", "--quiet", "-m", "initial", cwd=path)
    return path


def head(repo: Path, rev: str = "HEAD") -> str:
    return git("rev-parse", "--verify", rev, cwd=repo).stdout.strip()


def refs(repo: Path) -> str:
    return git("for-each-ref", cwd=repo).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "user repo",
        {
            "README.md": "# demo\n",
            "src/app.py": "print('one')\nprint('two')\nprint('three')\n",
            "old name.txt": "".join(f"line {i}\n" for i in range(20)),
            "gone.txt": "a\nb\n",
            "logo.bin": BINARY,
        },
    )


@pytest.fixture
def ws(repo: Path, tmp_path: Path) -> Workspace:
    return Workspace.create(repo, base_ref="main", run_id="run-1", root=tmp_path / "workspaces")


# --- inspect_repo -------------------------------------------------------------------------------


def test_inspect_repo_reports_top_level_branch_and_head(repo: Path) -> None:
    info = inspect_repo(repo / "src")
    assert info.path == repo.resolve()
    assert info.branch == "main"
    assert info.default_target == "main"
    assert info.head == head(repo)


def test_inspect_repo_detached_head_has_no_branch(repo: Path) -> None:
    git("checkout", "--quiet", "--detach", cwd=repo)
    info = inspect_repo(repo)
    assert info.branch is None
    assert info.default_target is None


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such directory"),
        ("plain", "not a git repository; run `git init`"),
        ("empty", "no commits yet; commit your project first"),
        ("bare", "not inside a working tree"),
    ],
)
def test_inspect_repo_refuses_unusable_paths(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / setup
    if setup != "missing":
        path.mkdir()
    if setup == "empty":
        git("init", "--quiet", cwd=path)
    if setup == "bare":
        git("init", "--quiet", "--bare", cwd=path)
    with pytest.raises(RepositoryError, match=message) as caught:
        inspect_repo(path)
    assert "\n" not in str(caught.value)


def test_inspect_repo_refuses_uncommitted_changes_and_lists_five(repo: Path) -> None:
    write(repo, {f"src/m{i}.py": "x\n" for i in range(7)})
    git("add", "src", cwd=repo)
    (repo / "README.md").write_text("changed\n")
    with pytest.raises(DirtyRepositoryError, match="commit or stash them first") as caught:
        inspect_repo(repo)
    message = str(caught.value)
    assert "README.md" in message
    assert "and 3 more" in message  # 8 dirty paths, 5 shown


def test_inspect_repo_ignores_untracked_files_and_can_skip_the_check(repo: Path) -> None:
    (repo / "notes.txt").write_text("untracked\n")
    assert inspect_repo(repo).branch == "main"
    (repo / "README.md").write_text("changed\n")
    assert inspect_repo(repo, require_clean=False).head == head(repo)


# --- Workspace.create ---------------------------------------------------------------------------


def test_create_clones_on_a_run_branch_at_the_base(
    repo: Path, ws: Workspace, tmp_path: Path
) -> None:
    assert ws.path == (tmp_path / "workspaces" / "run-1" / "repo").resolve()
    assert ws.branch == "shipyard/run-1"
    assert ws.base_commit == head(repo, "main")
    assert git("symbolic-ref", "--short", "HEAD", cwd=ws.path).stdout.strip() == ws.branch
    assert head(ws.path) == ws.base_commit
    assert (
        ws.path / "src" / "app.py"
    ).read_text() == "print('one')\nprint('two')\nprint('three')\n"


def test_create_leaves_the_user_repository_alone_and_shares_nothing(
    repo: Path, tmp_path: Path
) -> None:
    before = refs(repo)
    ws = Workspace.create(repo, base_ref="main", run_id="r", root=tmp_path / "w")
    assert refs(repo) == before
    assert git("remote", cwd=ws.path).stdout.strip() == ""  # no way back to the user's repository
    objects = ws.path / ".git" / "objects"
    assert not (objects / "info" / "alternates").exists()
    files = [p for p in objects.rglob("*") if p.is_file()]
    assert files
    assert all(p.stat().st_nlink == 1 for p in files)  # copied, not hard-linked


def test_create_from_a_tag_or_a_commit(repo: Path, tmp_path: Path) -> None:
    first = head(repo)
    git("tag", "v1", cwd=repo)
    (repo / "README.md").write_text("two\n")
    git("commit", "--quiet", "-am", "two", cwd=repo)
    assert (
        Workspace.create(repo, base_ref="v1", run_id="a", root=tmp_path / "w").base_commit == first
    )
    by_sha = Workspace.create(repo, base_ref=first[:10], run_id="b", root=tmp_path / "w")
    assert head(by_sha.path) == first


def test_create_from_a_commit_on_no_branch(repo: Path, tmp_path: Path) -> None:
    git("checkout", "--quiet", "--detach", cwd=repo)
    (repo / "README.md").write_text("detached\n")
    git("commit", "--quiet", "-am", "detached", cwd=repo)
    loose = head(repo)
    git("checkout", "--quiet", "main", cwd=repo)
    ws = Workspace.create(repo, base_ref=loose, run_id="c", root=tmp_path / "w")
    assert (ws.path / "README.md").read_text() == "detached\n"


def test_create_refuses_unknown_base_and_bad_run_id(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="'nope' is not a branch, tag or commit"):
        Workspace.create(repo, base_ref="nope", run_id="x", root=tmp_path / "w")
    for bad in ("../escape", "a b", "x.lock", "-x", ""):
        with pytest.raises(RepositoryError, match="cannot name a workspace"):
            Workspace.create(repo, base_ref="main", run_id=bad, root=tmp_path / "w")
    assert not (tmp_path / "w" / "x").exists()


def test_create_replaces_a_half_made_workspace(repo: Path, tmp_path: Path) -> None:
    stale = tmp_path / "w" / "again" / "repo"
    stale.mkdir(parents=True)
    (stale / "junk").write_text("left over\n")
    ws = Workspace.create(repo, base_ref="main", run_id="again", root=tmp_path / "w")
    assert not (ws.path / "junk").exists()
    assert head(ws.path) == head(repo)


# --- apply_patch --------------------------------------------------------------------------------


def make_patch(repo: Path, tmp_path: Path, edit: dict[str, str | bytes | None]) -> Path:
    """A git patch (binary included) for ``edit`` against ``repo``'s HEAD, made in a clone."""
    scratch = tmp_path / "scratch"
    git("clone", "--quiet", str(repo), str(scratch), cwd=tmp_path)
    for name, content in edit.items():
        if content is None:
            (scratch / name).unlink()
        else:
            write(scratch, {name: content})
    git("add", "--all", cwd=scratch)
    patch = tmp_path / "change.patch"
    diff = git("diff", "--cached", "--binary", "-M", "--no-ext-diff", "--no-textconv", cwd=scratch)
    patch.write_text(diff.stdout)
    return patch


def test_apply_patch_adds_modifies_deletes_and_renames(
    repo: Path, ws: Workspace, tmp_path: Path
) -> None:
    renamed = (repo / "old name.txt").read_text()
    patch = make_patch(
        repo,
        tmp_path,
        {
            "src/app.py": "print('one')\nprint('2')\nprint('three')\n",
            "docs/new é.md": "new\n",
            "gone.txt": None,
            "old name.txt": None,
            "new name.txt": renamed,
            "logo.bin": BINARY[::-1],
        },
    )
    ws.apply_patch(patch)
    assert (ws.path / "src" / "app.py").read_text() == "print('one')\nprint('2')\nprint('three')\n"
    assert (ws.path / "docs" / "new é.md").read_text() == "new\n"
    assert not (ws.path / "gone.txt").exists()
    assert not (ws.path / "old name.txt").exists()
    assert (ws.path / "new name.txt").read_text() == renamed
    assert (ws.path / "logo.bin").read_bytes() == BINARY[::-1]


def test_a_patch_that_does_not_apply_leaves_the_workspace_unchanged(
    ws: Workspace, tmp_path: Path
) -> None:
    patch = tmp_path / "stale.patch"
    patch.write_text(
        "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-# not what is there\n+# new\n"
        "--- a/gone.txt\n+++ b/gone.txt\n@@ -1,2 +0,0 @@\n-a\n-b\n"
    )
    with pytest.raises(PatchError, match=r"stale\.patch does not apply to .*README\.md") as caught:
        ws.apply_patch(patch)
    assert "against the target branch" in str(caught.value)
    assert (ws.path / "gone.txt").exists()  # the part that would have applied did not
    assert git("status", "--porcelain", cwd=ws.path).stdout == ""


def test_a_patch_cannot_write_into_git_metadata(ws: Workspace, tmp_path: Path) -> None:
    patch = tmp_path / "evil.patch"
    patch.write_text(
        "diff --git a/.git/hooks/post-commit b/.git/hooks/post-commit\nnew file mode 100755\n"
        "--- /dev/null\n+++ b/.git/hooks/post-commit\n@@ -0,0 +1 @@\n+touch pwned\n"
    )
    with pytest.raises(PatchError):
        ws.apply_patch(patch)
    assert not (ws.path / ".git" / "hooks" / "post-commit").exists()


def test_a_missing_patch_file_is_a_patch_error(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(PatchError, match="no such patch file"):
        ws.apply_patch(tmp_path / "nope.patch")


# --- commit -------------------------------------------------------------------------------------


def test_commit_records_every_change_on_the_run_branch(ws: Workspace) -> None:
    write(ws.path, {"brand new.txt": "new\n", "README.md": "# changed\n"})
    (ws.path / "gone.txt").unlink()
    sha = ws.commit("Update things\n\nWith a body.")
    assert sha == head(ws.path, ws.branch)
    assert git("rev-parse", f"{sha}^", cwd=ws.path).stdout.strip() == ws.base_commit
    assert git("status", "--porcelain", cwd=ws.path).stdout == ""
    assert git("log", "-1", "--format=%B", cwd=ws.path).stdout.strip() == (
        "Update things\n\nWith a body."
    )
    assert sorted(ws.changed_paths()) == ["README.md", "brand new.txt", "gone.txt"]


def test_commit_refuses_an_empty_change(ws: Workspace) -> None:
    with pytest.raises(RepositoryError, match="the change is empty"):
        ws.commit("nothing")
    assert head(ws.path) == ws.base_commit


# --- diff facts ---------------------------------------------------------------------------------


def test_diff_facts_measure_every_kind_of_change(ws: Workspace) -> None:
    renamed = (ws.path / "old name.txt").read_text()
    (ws.path / "old name.txt").unlink()
    write(
        ws.path,
        {
            "new name.txt": renamed + "one more\n",
            "src/app.py": "print('one')\nprint('2')\nprint('3')\nprint('four')\n",
            "dir with space/ünïcødé file.txt": "x\ny\nz\n",
            "logo.bin": BINARY[::-1],
            "data.bin": b"\x00\x01\x02",
        },
    )
    (ws.path / "gone.txt").unlink()
    ws.commit("everything")
    facts = {f.path: f for f in ws.diff_facts().files}
    assert facts["src/app.py"] == FileChange(path="src/app.py", added=3, deleted=2, status="M")
    assert facts["dir with space/ünïcødé file.txt"] == FileChange(
        path="dir with space/ünïcødé file.txt", added=3, status="A"
    )
    assert facts["gone.txt"] == FileChange(path="gone.txt", deleted=2, status="D")
    assert facts["new name.txt"] == FileChange(
        path="new name.txt", old_path="old name.txt", added=1, status="R"
    )
    assert facts["logo.bin"] == FileChange(path="logo.bin", status="M", binary=True)
    assert facts["data.bin"] == FileChange(path="data.bin", status="A", binary=True)
    assert len(facts) == 6
    diff = ws.diff_facts()
    assert diff.lines_added == 3 + 3 + 1
    assert diff.lines_deleted == 2 + 2
    assert "old name.txt" in ws.changed_paths()


def test_diff_facts_between_named_commits(ws: Workspace) -> None:
    write(ws.path, {"a.txt": "1\n"})
    first = ws.commit("a")
    write(ws.path, {"a.txt": "1\n2\n"})
    second = ws.commit("b")
    assert ws.diff_facts(first, second).files == (FileChange(path="a.txt", added=1, status="M"),)
    assert ws.diff_facts(head=first).files == (FileChange(path="a.txt", added=1, status="A"),)


def test_parse_raw_numstat_pairs_records_in_order() -> None:
    out = (
        ":100644 100644 aaa bbb R090\0old\0new\0:000000 100644 000 ccc A\0bin\0"
        "2\t1\t\0old\0new\0-\t-\tbin\0"
    )
    files = parse_raw_numstat(out).files
    assert files == (
        FileChange(path="new", old_path="old", added=2, deleted=1, status="R"),
        FileChange(path="bin", status="A", binary=True),
    )
    assert parse_raw_numstat("").files == ()


# --- remove -------------------------------------------------------------------------------------


def test_remove_deletes_the_workspace_even_with_read_only_directories(ws: Workspace) -> None:
    locked = ws.path / "locked"
    locked.mkdir()
    (locked / "f").write_text("x\n")
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    hidden = ws.path / "hidden"
    hidden.mkdir()
    (hidden / "f").write_text("x\n")
    hidden.chmod(0)
    run_dir = ws.path.parent
    ws.remove()
    assert not ws.path.exists()
    assert not run_dir.exists()
    assert ws.branch == "shipyard/run-1"  # still readable for reports
    ws.remove()  # a second call is harmless
    assert os.path.isdir(run_dir.parent)


def test_changed_files_carry_text_before_and_after_but_never_binary(ws: Workspace) -> None:
    renamed = (ws.path / "old name.txt").read_text()
    (ws.path / "old name.txt").unlink()
    write(
        ws.path,
        {
            "new name.txt": renamed + "one more\n",
            "src/app.py": "print('1')\n",
            "added.py": "x = 1\n",
            "logo.bin": BINARY[::-1],
        },
    )
    (ws.path / "gone.txt").unlink()
    commit = ws.commit("everything")
    files = {f.path: f for f in changed_files(ws.path, ws.base_commit, commit, ws.diff_facts())}
    assert files["src/app.py"].before == "print('one')\nprint('two')\nprint('three')\n"
    assert files["src/app.py"].after == "print('1')\n"
    assert (files["added.py"].before, files["added.py"].after) == (None, "x = 1\n")
    assert (files["gone.txt"].before, files["gone.txt"].after) == ("a\nb\n", None)
    assert files["new name.txt"].old_path == "old name.txt"
    assert files["new name.txt"].before == renamed
    assert (files["logo.bin"].before, files["logo.bin"].after) == (None, None)
