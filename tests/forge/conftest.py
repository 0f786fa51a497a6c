"""Fixtures for forge tests: a user's repository and a run workspace with a committed change."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.forge.local import LocalForge
from shipyard.gitcmd import git
from shipyard.workspace import Workspace


def commit_file(repo: Path, name: str, content: str, message: str | None = None) -> str:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "-m", message or f"write {name}", cwd=repo)
    return rev(repo, "HEAD")


def rev(repo: Path, name: str) -> str:
    return git("rev-parse", "--verify", name, cwd=repo).stdout.strip()


def refs(repo: Path) -> str:
    """Every ref with what it points at: compared before and after to prove nothing moved."""
    return git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo).stdout


def status(worktree: Path) -> str:
    return git("status", "--porcelain=v1", "--untracked-files=all", cwd=worktree).stdout


@pytest.fixture
def user_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    repo.mkdir()
    git("init", "--quiet", cwd=repo)
    commit_file(repo, "README.md", "# project\n")
    commit_file(repo, "src/app.py", "one\ntwo\nthree\n")
    return repo


@pytest.fixture
def forge(user_repo: Path) -> LocalForge:
    return LocalForge(user_repo)


@pytest.fixture
def change(user_repo: Path, tmp_path: Path) -> Workspace:
    """A run workspace off main with a committed change (a new file, an edit), not yet published."""
    ws = Workspace.create(user_repo, base_ref="main", run_id="run-1", root=tmp_path / "workspaces")
    (ws.path / "CHANGELOG.md").write_text("- a change\n")
    (ws.path / "src" / "app.py").write_text("one\ntwo\nthree\nfour\n")
    ws.commit("the change")
    return ws
