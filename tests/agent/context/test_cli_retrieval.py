"""``shipyard retrieval index``: fills the cache a run searches (in-process, with the session's
model), embeds nothing the second time, and refuses a path that is not a repository or a host with
retrieval off, in one line without a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.agent.context import CommitTree
from shipyard.agent.context.retrieval import Retriever
from shipyard.agent.context.vectors import SqliteVectors
from shipyard.cli_retrieval import index
from tests.agent.context.conftest import Counting
from tests.conftest import shipyard_cli


def test_indexing_ahead_fills_the_cache_runs_search(
    counting: Counting,
    small_repo: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, commit = small_repo
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    index(repo=repo, commit="HEAD", seconds=None, json_out=True)
    first = json.loads(capsys.readouterr().out)
    assert (first["files"], first["covered"]) == (6, 6)
    assert first["embedded"] > 0

    index(repo=repo, commit="HEAD", seconds=None, json_out=True)
    again = json.loads(capsys.readouterr().out)
    assert (again["embedded"], again["covered"]) == (0, 6)

    # A run's retriever over the same cache finds every file indexed: nothing left to embed.
    retriever = Retriever(counting, SqliteVectors(home / "retrieval.db"))
    stats = retriever.index(CommitTree.at(repo, commit), seconds=0)
    assert (stats.embedded, stats.covered) == (0, 6)
    assert counting.texts == []


def test_a_path_that_is_not_a_repository_or_retrieval_off_is_one_clear_line(
    small_repo: tuple[Path, str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    done = shipyard_cli(home, "retrieval", "index", "--repo", str(tmp_path), ok=False)
    assert done.returncode != 0
    assert f"{tmp_path} is not a git repository; pass one with --repo PATH" in done.stderr
    assert "Traceback" not in done.stderr
    repo, _ = small_repo
    off = shipyard_cli(home, "retrieval", "index", "--repo", str(repo), ok=False)
    assert off.returncode != 0
    assert "retrieval is off on this host ($SHIPYARD_RETRIEVAL=off)" in off.stderr
    assert not (home / "retrieval.db").exists()
