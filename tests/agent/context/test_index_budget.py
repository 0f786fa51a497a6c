"""Indexing under a time budget: the files a task names go first, then their neighbours, then
recently changed files; a tiny budget embeds one batch and searches only what is indexed, and later
calls fill in the rest without embedding anything twice (counted, not timed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.agent.context import CommitTree, gather_context
from shipyard.agent.context import retrieval as retrieval_module
from shipyard.agent.context.chunks import chunk_file
from shipyard.agent.context.retrieval import Retriever, index_order
from shipyard.agent.context.vectors import SqliteVectors
from shipyard.config import RetrievalConfig
from tests.agent.context.conftest import SMALL_REPO, Counting
from tests.agent.test_context import commit_all

PATHS = [
    "README.md",
    "docs/deploy.md",
    "shop/auth.py",
    "shop/billing.py",
    "shop/dates.py",
    "x/y.py",
]


def test_named_files_then_their_directory_then_recent_then_the_rest() -> None:
    order = index_order(PATHS, named=["shop/dates.py", "gone.py"], recent=["x/y.py", "README.md"])
    assert order == [
        "shop/dates.py", "shop/auth.py", "shop/billing.py", "x/y.py", "README.md", "docs/deploy.md",
    ]  # fmt: skip
    assert index_order(PATHS, named=[], recent=[]) == PATHS


@given(
    paths=st.lists(st.sampled_from(PATHS), unique=True),
    named=st.lists(st.sampled_from([*PATHS, "other.py"]), max_size=3),
    recent=st.lists(st.sampled_from([*PATHS, "deleted.md"]), max_size=4),
)
def test_the_order_is_a_permutation_with_named_files_first(
    paths: list[str], named: list[str], recent: list[str]
) -> None:
    order = index_order(paths, named=named, recent=recent)
    assert sorted(order) == sorted(paths)
    first = list(dict.fromkeys(p for p in named if p in paths))
    assert order[: len(first)] == first


def _chunks(path: str) -> int:
    return len(chunk_file(path, SMALL_REPO[path]))


def test_a_tiny_budget_embeds_one_batch_of_the_named_file_and_later_calls_fill_in(
    counting: Counting, small_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, commit = small_repo
    tree = CommitTree.at(repo, commit)
    assert _chunks("shop/dates.py") == 2
    retriever = Retriever(counting, SqliteVectors(tmp_path / "r.db"), batch=2)

    first = retriever.index(tree, named=["shop/dates.py"], seconds=0)
    assert first.embedded == len(counting.texts) == 2
    assert all(t.startswith("shop/dates.py ") for t in counting.texts)
    assert (first.files, first.covered, first.complete) == (6, 1, False)
    query = "Warn when items are running out and need to be reordered"
    assert {m.path for m in retriever.search(tree, query, k=20)} == {"shop/dates.py"}

    # Next: one more batch, from the named file's neighbours (auth.py comes first among them).
    counting.texts.clear()
    second = retriever.index(tree, named=["shop/dates.py"], seconds=0)
    assert second.embedded == 2
    assert all(t.startswith("shop/auth.py ") for t in counting.texts)
    assert second.covered == 1 + (_chunks("shop/auth.py") <= 2)

    counting.texts.clear()
    rest = retriever.index(tree, named=["shop/dates.py"])
    assert rest.complete
    assert rest.covered == 6
    total = sum(_chunks(p) for p in SMALL_REPO)
    assert first.embedded + second.embedded + rest.embedded == total
    assert not any(t.startswith("shop/dates.py ") for t in counting.texts)
    assert retriever.search(tree, query, k=1)[0].path == "shop/inventory.py"


def test_recently_changed_files_are_indexed_before_the_rest(
    counting: Counting, small_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, _ = small_repo
    (repo / "docs/deploy.md").write_text(SMALL_REPO["docs/deploy.md"] + "\nRoll out on Fridays.\n")
    tree = CommitTree.at(repo, commit_all(repo, "deploy note"))
    retriever = Retriever(counting, SqliteVectors(tmp_path / "r.db"), batch=1)
    stats = retriever.index(tree, seconds=0)
    assert (stats.embedded, stats.covered) == (1, 1)
    [text] = counting.texts
    assert text.startswith("docs/deploy.md text\n")


def test_a_run_that_runs_out_of_time_records_the_coverage_and_says_so(
    embedder: Counting,
    small_repo: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retrieval_module, "EMBED_BATCH", 2)
    repo, commit = small_repo
    task = "Parse the delivery date strictly"
    config = RetrievalConfig(index_seconds=0, min_score=-1.0)
    ctx = gather_context(
        repo, commit, task, store=None, repo=None, budget_tokens=8000, retrieval=config,
        home=tmp_path,
    )  # fmt: skip
    [record] = [r for r in ctx.record() if r["name"] == "retrieval"]
    index = record["index"]
    assert (index["files"], index["embedded"]) == (6, 2)
    assert 1 <= index["covered"] < 6
    assert 0 < len({c["path"] for c in record["chunks"]}) <= index["covered"]
    [note] = ctx.notes
    assert note.startswith(
        f"retrieval searched {index['covered']} of 6 files: indexing stopped after 0 s"
    )
    assert "index_seconds" in note
