"""Host-side git runs nothing a repository names: hooks, fsmonitor, filters, drivers, transports."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from shipyard.errors import DeliveryError, RepositoryError
from shipyard.forge.local import LocalForge
from shipyard.gitcmd import driver_overrides, git
from shipyard.workspace import Workspace, inspect_repo

HOOKS = (
    "pre-commit",
    "commit-msg",
    "post-commit",
    "post-checkout",
    "post-merge",
    "pre-merge-commit",
    "reference-transaction",
    "post-rewrite",
    "pre-auto-gc",
)


def commit_all(repo: Path, message: str) -> str:
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo).stdout.strip()


def arm(repo: Path, markers: Path) -> None:
    """Make ``repo`` run a marker-writing script from every place its own config or hooks can."""
    markers.mkdir(exist_ok=True)

    def script(name: str, body: str = "") -> str:
        path = markers.parent / f"{name}.sh"
        path.write_text(f'#!/bin/sh\ntouch "{markers}/{name}"\n{body}')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    for hook in HOOKS:
        hook_path = repo / ".git" / "hooks" / hook
        hook_path.parent.mkdir(exist_ok=True)
        shutil.copy(script(f"hook-{hook}"), hook_path)
    settings = {
        "core.fsmonitor": script("fsmonitor"),
        "filter.evil.smudge": script("smudge", "cat\n"),
        "filter.evil.clean": script("clean", "cat\n"),
        "filter.evil.required": "true",
        "diff.evil.textconv": script("textconv", 'cat "$1"\n'),
        "diff.evil.command": script("diff-command"),
        "diff.external": script("diff-external"),
        "merge.evil.driver": script("merge-driver"),
    }
    for key, value in settings.items():
        git("config", key, value, cwd=repo)
    # A setting reached only through an include is overridden just the same.
    extra = markers.parent / "included.gitconfig"
    extra.write_text(f'[filter "sneaky"]\n\tsmudge = {script("included-smudge", "cat")}\n')
    git("config", "include.path", str(extra), cwd=repo)


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose .gitattributes route every file through drivers its config defines."""
    repo = tmp_path / "hostile"
    repo.mkdir()
    git("init", "--quiet", cwd=repo)
    (repo / ".gitattributes").write_text("* filter=evil diff=evil merge=evil\n*.s filter=sneaky\n")
    (repo / "a.txt").write_text("one\ntwo\nthree\n")
    (repo / "b.s").write_text("sneaky\n")
    commit_all(repo, "initial")
    markers = tmp_path / "markers"
    arm(repo, markers)
    return repo, markers


def plain_git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Unhardened git with nothing but an identity: shows that the traps are armed."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_traps_fire_under_plain_git(hostile: tuple[Path, Path]) -> None:
    repo, markers = hostile
    (repo / "a.txt").write_text("changed\n")
    (repo / "b.s").write_text("changed\n")
    plain_git("status", cwd=repo)
    plain_git("commit", "-qam", "x", cwd=repo)
    plain_git("diff", "HEAD~1", cwd=repo)
    plain_git("diff", "--no-ext-diff", "HEAD~1", cwd=repo)
    plain_git("checkout", "-q", "HEAD~1", "--", "a.txt", "b.s", cwd=repo)
    fired = {p.name for p in markers.iterdir()}
    assert {"fsmonitor", "clean", "smudge", "textconv", "diff-command", "included-smudge"} <= fired
    assert {"hook-pre-commit", "hook-post-commit", "hook-reference-transaction"} <= fired


def test_status_add_commit_diff_checkout_run_nothing(hostile: tuple[Path, Path]) -> None:
    repo, markers = hostile
    (repo / "a.txt").write_text("changed\n")
    (repo / "b.s").write_text("also changed\n")
    git("status", cwd=repo)
    first = git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    second = commit_all(repo, "change")
    git("diff", first, second, cwd=repo, check=False)  # porcelain diff, no --no-textconv
    git("log", "-p", "-1", cwd=repo, check=False)
    git("show", second, cwd=repo, check=False)
    git("checkout", "--quiet", first, "--", "a.txt", "b.s", cwd=repo)
    git("archive", "--format=tar", "-o", str(repo.parent / "t.tar"), second, cwd=repo)
    assert (repo / "a.txt").read_text() == "one\ntwo\nthree\n"  # the commands did run
    assert list(markers.iterdir()) == []


def test_workspace_clone_commit_and_diff_run_nothing(
    hostile: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, markers = hostile
    inspect_repo(repo)
    ws = Workspace.create(repo, base_ref="main", run_id="r1", root=tmp_path / "ws")
    # Even if the workspace's own config were rewritten, shipyard's git would ignore what it names.
    arm(ws.path, tmp_path / "ws-markers")
    (ws.path / "a.txt").write_text("one\ntwo\nthree\nfour\n")
    commit = ws.commit("four")
    facts = ws.diff_facts()
    assert [(f.path, f.added) for f in facts.files] == [("a.txt", 1)]
    assert git("rev-parse", "HEAD", cwd=ws.path).stdout.strip() == commit
    assert list(markers.iterdir()) == []
    assert list((tmp_path / "ws-markers").iterdir()) == []


def test_forge_publish_and_merge_into_checked_out_branch_run_nothing(
    hostile: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, markers = hostile
    ws = Workspace.create(repo, base_ref="main", run_id="r2", root=tmp_path / "ws")
    (ws.path / "new.txt").write_text("new\n")
    ws.commit("add new.txt")
    forge = LocalForge(repo)
    forge.publish(ws)
    merged = forge.merge(ws.branch, "main", message="merge", expected_target=ws.base_commit)
    assert git("rev-parse", "HEAD", cwd=repo).stdout.strip() == merged
    assert (repo / "new.txt").read_text() == "new\n"  # the working tree was updated
    assert list(markers.iterdir()) == []


def test_a_repository_merge_driver_becomes_a_conflict_not_a_program(
    hostile: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, markers = hostile
    ws = Workspace.create(repo, base_ref="main", run_id="r3", root=tmp_path / "ws")
    (ws.path / "a.txt").write_text("zero\none\ntwo\nthree\n")
    ws.commit("prepend")
    (repo / "a.txt").write_text("one\ntwo\nthree\nfour\n")
    commit_all(repo, "append")
    forge = LocalForge(repo)
    forge.publish(ws)
    with pytest.raises(DeliveryError, match=r"conflicts with main in a\.txt"):
        forge.merge(ws.branch, "main", message="merge")
    assert list(markers.iterdir()) == []
    # Plain git would have run the repository's driver for the same merge.
    plain_git("merge-tree", "--write-tree", "main", ws.branch, cwd=repo)
    assert (markers / "merge-driver").exists()


def test_driver_overrides_cover_every_driver_defined(hostile: tuple[Path, Path]) -> None:
    repo, _ = hostile
    overrides = dict(driver_overrides(repo))
    assert overrides["filter.evil.smudge"] == ""
    assert overrides["filter.evil.process"] == ""
    assert overrides["filter.evil.required"] == "false"
    assert overrides["filter.sneaky.smudge"] == ""
    assert overrides["diff.evil.textconv"] == "false"
    assert overrides["merge.evil.driver"] == "false"


def test_only_local_transports_run_so_ssh_command_never_does(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git("init", "--quiet", cwd=repo)
    marker = tmp_path / "ssh-ran"
    ssh = tmp_path / "ssh.sh"
    ssh.write_text(f'#!/bin/sh\ntouch "{marker}"\nexit 1\n')
    ssh.chmod(0o755)
    git("config", "core.sshCommand", str(ssh), cwd=repo)
    for url in ("ssh://example.invalid/repo.git", f"ext::sh -c touch% {marker}"):
        assert git("fetch", url, cwd=repo, check=False).returncode != 0
    assert not marker.exists()
    plain_git("fetch", "ssh://example.invalid/repo.git", cwd=repo)
    assert marker.exists()  # the trap was armed


def test_host_environment_and_user_config_do_not_leak_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Intruder\n[shipyardtest]\n\tseen = yes\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Intruder")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    repo = tmp_path / "r"
    repo.mkdir()
    git("init", "--quiet", cwd=repo)
    (repo / "f").write_text("x\n")
    commit_all(repo, "one")
    assert git("log", "-1", "--format=%an <%ae>|%cn", cwd=repo).stdout.strip() == (
        "shipyard <shipyard@localhost>|shipyard"
    )
    assert "shipyardtest" not in git("config", "--list", cwd=repo).stdout
    (repo / "f").write_text("y\n")
    git("commit", "-qam", "two", cwd=repo, identity=("Ada", "ada@example.org"))
    assert git("log", "-1", "--format=%an <%ae>", cwd=repo).stdout.strip() == (
        "Ada <ada@example.org>"
    )


def test_failure_names_the_command_and_gits_reason(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git("init", "--quiet", cwd=repo)
    with pytest.raises(RepositoryError, match=r"`git rev-parse --verify nosuchref` failed in .*"):
        git("rev-parse", "--verify", "nosuchref", cwd=repo)
    with pytest.raises(RepositoryError, match="Needed a single revision"):
        git("rev-parse", "--verify", "nosuchref", cwd=repo)
    done = git("rev-parse", "--verify", "nosuchref", cwd=repo, check=False)
    assert done.returncode == 128


def test_a_missing_directory_is_a_repository_error(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="no such directory"):
        git("status", cwd=tmp_path / "missing")


def test_a_hanging_command_times_out(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes, which never does
    with pytest.raises(RepositoryError, match="took longer than"):
        git("hash-object", str(fifo), cwd=tmp_path, timeout=0.5)


def test_input_is_passed_on_stdin(tmp_path: Path) -> None:
    sha = git("hash-object", "--stdin", cwd=tmp_path, input=b"hello\n").stdout.strip()
    assert sha == "ce013625030ba8dba906f756967f9e9ca394464a"
