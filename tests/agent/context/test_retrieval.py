"""Retrieval with the real embedding model: the obvious chunk ranks first, and re-indexing embeds
only what changed (counted, not timed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.agent.context import CommitTree
from shipyard.agent.context.retrieval import Retriever, render_chunks
from shipyard.agent.context.vectors import SqliteVectors
from tests.agent.context.conftest import QUERIES, Counting
from tests.agent.test_context import commit_all


@pytest.fixture
def retriever(counting: Counting, tmp_path: Path) -> Retriever:
    return Retriever(counting, SqliteVectors(tmp_path / "home" / "retrieval.db"))


def test_the_obviously_relevant_chunk_ranks_first(
    retriever: Retriever, small_repo: tuple[Path, str]
) -> None:
    tree = CommitTree.at(*small_repo)
    retriever.index(tree)
    for query, (path, name) in QUERIES.items():
        best, *rest = retriever.search(tree, query, k=3)
        assert (best.path, best.name) == (path, name), query
        assert best.score > rest[0].score
        assert -1.0 <= rest[-1].score < best.score <= 1.0


def test_reindexing_embeds_only_chunks_that_changed(
    retriever: Retriever, counting: Counting, small_repo: tuple[Path, str]
) -> None:
    repo, commit = small_repo
    first = retriever.index(CommitTree.at(repo, commit))
    assert first.embedded == len(counting.texts) > 0
    assert first.chunked == first.files == 6
    assert first.reused == 0

    counting.texts.clear()
    again = retriever.index(CommitTree.at(repo, commit))
    assert (again.chunked, again.embedded) == (0, 0)
    assert counting.texts == []

    # One function of billing.py changes: that file is chunked again, one chunk embedded.
    billing = repo / "shop/billing.py"
    billing.write_text(billing.read_text().replace('f"EUR {amount:,.2f}"', 'f"{amount:.2f} EUR"'))
    changed = commit_all(repo, "currency after the amount")
    stats = retriever.index(CommitTree.at(repo, changed))
    assert (stats.chunked, stats.embedded, stats.reused) == (1, 1, 2)
    [text] = counting.texts
    assert text.startswith("shop/billing.py function format_currency: Invoices for orders.\n")

    # The old commit's files are still indexed: going back embeds nothing.
    counting.texts.clear()
    assert retriever.index(CommitTree.at(repo, commit)).embedded == 0
    assert counting.texts == []


def test_search_sees_only_the_files_of_the_commit_asked_about(
    retriever: Retriever, small_repo: tuple[Path, str]
) -> None:
    repo, commit = small_repo
    retriever.index(CommitTree.at(repo, commit))
    (repo / "shop/inventory.py").unlink()
    later = CommitTree.at(repo, commit_all(repo, "no inventory"))
    retriever.index(later)
    query = "Warn when items are running out and need to be reordered"
    assert "shop/inventory.py" not in {m.path for m in retriever.search(later, query, k=20)}
    old = CommitTree.at(repo, commit)
    assert retriever.search(old, query, k=1)[0].path == "shop/inventory.py"


def test_rendered_chunks_are_the_committed_lines_within_the_budget(
    retriever: Retriever, small_repo: tuple[Path, str]
) -> None:
    tree = CommitTree.at(*small_repo)
    retriever.index(tree)
    matches = retriever.search(tree, "invoice amount with VAT", k=5)
    body, used = render_chunks(tree, matches, budget_chars=10_000)
    assert used[0].path == "shop/billing.py"
    assert "### shop/billing.py:4-7 (function invoice_total), similarity" in body
    assert "net = sum(price * qty for price, qty in lines)" in body
    small, fitted = render_chunks(tree, matches, budget_chars=400)
    assert len(small) <= 400
    assert len(fitted) < len(used)
    skipped, rest = render_chunks(tree, matches, budget_chars=10_000, skip=["shop/billing.py"])
    assert "shop/billing.py" not in {m.path for m in rest}
    assert "invoice_total" not in skipped
