"""Fix cycles of the agent blueprints end to end: a cycle that repairs what the gates found, the
no-progress stop, a cycle that lessens static errors counting as progress, and the cap of two cycles.
The real CLI, git, bubblewrap and gates; the real openai client against the replay server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from shipyard.agent.replay import ReplayServer
from tests.blueprints.test_agent_runs import (
    CI_LOG,
    FIXTURES,
    MODEL,
    Run,
    commit,
    configured,
    euro_only,
    every_call_answered,
    git,
    published_nothing,
    run,
)
from tests.conftest import EXAMPLES, needs_bwrap

sys.path.insert(0, str(EXAMPLES))
from scenario import head, make_repo, show

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.xdist_group("test_agent_fix_cycles")]


NO_RERUNS = "reruns = 0"
"""[gates.flaky] for scenarios whose failures are real: re-running them alone only takes time."""


def total_units_task(
    repo: Path, home: Path, fixture: str, index_url: str
) -> tuple[Run, str, list[dict[str, Any]]]:
    """Run the task of adding Stock.total_units(); the scripted agent breaks Stock.value() on the
    way. Returns the run, main's commit before it, and the requests the model received."""
    main = commit(repo, "Failures are not re-run", configured(repo, gates__flaky=NO_RERUNS))
    with ReplayServer(FIXTURES / fixture) as model:
        done = run(
            home, "task", "--repo", str(repo), *MODEL, "--index-url", index_url,
            "--task", "Add Stock.total_units(): the number of units on hand over all items.",
            model_url=model.url,
        )  # fmt: skip
        assert model.remaining == 0
        every_call_answered(model)
    return done, main, [r.body for r in model.requests]


BROKEN_BY_VALUE = {
    "tests.test_stock::test_value_is_the_sum_over_items",
    "tests.test_pricing::test_stock_value_label",
    "tests.test_report::test_report_has_one_aligned_line_per_item",
}


def test_a_fix_cycle_that_changes_nothing_relevant_stops_as_no_progress_and_halts(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    done, main, requests = total_units_task(
        repo, tmp_path / "home", "agent_no_progress.json", index_url
    )
    # Two verifications with the same failures, then the cycles stop although one is left.
    tests = done.verdicts("tests")
    assert len(tests) == 2
    assert set(tests[0]["facts"]["failing"]) == set(tests[1]["facts"]["failing"]) == BROKEN_BY_VALUE
    stop = [d for d in done.of("log") if d["message"] == "no progress: stopping the fix cycles"]
    assert len(stop) == 1
    assert set(stop[0]["failing"]) == BROKEN_BY_VALUE
    assert any(m.startswith("fix cycle 1 of 2:") for m in done.logs())
    assert not any(m.startswith("fix cycle 2 of 2") for m in done.logs())
    # The model was handed the failures once, and nothing more was asked of it.
    reports = [m for m in done.messages("user") if "shipyard's gates measured" in m["content"]]
    assert len(reports) == 1
    # The run_tests the first answer asked for after finish was answered, not run, and not lost.
    skipped = [
        m for m in requests[3]["messages"] if m["role"] == "tool" and "not run" in m["content"]
    ]
    assert [m["content"] for m in skipped] == [
        "not run: `finish` came before this call in the same answer."
    ]
    tools = [t["tool"] for t in done.of("agent.tool")]
    assert tools == ["edit_file", "edit_file", "finish", "edit_file", "finish"]
    assert done.state["status"] == "halted"
    assert done.rules()[0] == "quality.pass_rate"
    assert "test_value_is_the_sum_over_items" in done.state["decision"]["reasons"][0]["message"]
    published_nothing(repo, main)


def test_a_fix_cycle_repairs_what_the_gates_found_and_the_change_goes_to_review(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    done, main, _ = total_units_task(repo, tmp_path / "home", "agent_fix_cycle.json", index_url)
    tests = done.verdicts("tests")
    assert [t["status"] for t in tests] == ["failed", "passed"]
    assert set(tests[0]["facts"]["failing"]) == BROKEN_BY_VALUE
    assert tests[1]["facts"]["counted"] == 25
    assert any(m.startswith("fix cycle 1 of 2: ") for m in done.logs())
    assert not any("no progress" in m for m in done.logs())
    # The failure report named the failing tests; the run_tests in the cycle passed.
    [report] = [m for m in done.messages("user") if "shipyard's gates measured" in m["content"]]
    assert "test_value_is_the_sum_over_items" in report["content"]
    assert "25 passed, 0 failed" in done.messages("tool", "run_tests")[0]["content"]
    # Two commits on the run branch: the change, then its fix; a feature in src/ waits for review.
    commits = done.of("change.committed")
    assert len(commits) == 2
    assert done.state["status"] == "awaiting_review", done.state
    assert done.state["decision"]["action"] == "REVIEW"
    branch = f"shipyard/{done.id}"
    stock = show(repo, branch, "src/inventory/stock.py")
    assert "def total_units" in stock
    assert "return sum(item.unit_price * qty for item, qty in self.lines())" in stock
    assert head(repo) == main
    assert "Fix after the gates (cycle 1)" in git(repo, "log", "--format=%B", branch)


def test_a_fix_cycle_that_lessens_static_errors_is_progress_and_gets_another_cycle(
    tmp_path: Path, index_url: str
) -> None:
    """No test fails here: the halt is on static errors, two, then one, then none."""
    repo = make_repo(tmp_path / "repo")
    main = head(repo)
    with ReplayServer(FIXTURES / "agent_static_progress.json") as model:
        done = run(
            tmp_path / "home", "task", "--repo", str(repo), *MODEL, "--index-url", index_url,
            "--task", "Add Stock.apply_counts(sheet): set quantities from a count sheet.",
            model_url=model.url,
        )  # fmt: skip
        assert model.remaining == 0
        every_call_answered(model)
    static = done.verdicts("static")
    assert [g["facts"]["introduced"] for g in static] == [2, 1, 0]
    assert all(f["code"] == "B307" for f in static[0]["facts"]["findings"])
    cycles = [m.split(":")[0] for m in done.logs() if m.startswith("fix cycle")]
    assert cycles == ["fix cycle 1 of 2", "fix cycle 2 of 2"]
    assert not any("no progress" in m for m in done.logs())
    # Clean at last: a feature in src/ waits for review, and no quality rule fires.
    assert done.state["status"] == "awaiting_review", done.state
    assert not [r for r in done.rules() if r.startswith("quality.")]
    stock = show(repo, f"shipyard/{done.id}", "src/inventory/stock.py")
    assert "eval(" not in stock
    assert "json.loads(sheet)" in stock
    assert head(repo) == main


def test_ci_fix_gets_at_most_two_fix_cycles(tmp_path: Path, index_url: str) -> None:
    repo = make_repo(tmp_path / "repo")
    euro_only(repo)
    main = commit(repo, "Failures are not re-run", configured(repo, gates__flaky=NO_RERUNS))
    log = tmp_path / "ci.log"
    log.write_text(CI_LOG)
    with ReplayServer(FIXTURES / "agent_ci_fix_cap.json") as model:
        done = run(
            tmp_path / "home", "ci-fix", "--repo", str(repo), "--log", str(log), *MODEL,
            "--index-url", index_url, model_url=model.url,
        )  # fmt: skip
        # Every scripted answer was used, and no third cycle asked for more.
        assert model.remaining == 0
        assert len(model.requests) == 9
        every_call_answered(model)
    tests = done.verdicts("tests")
    failing = [set(t["facts"]["failing"]) for t in tests]
    # Each cycle failed differently (progress of a kind), so only the cap ended them.
    assert len(failing) == 3
    assert failing[0] == BROKEN_BY_VALUE
    assert failing[1] == {
        "tests.test_stock::test_adding_accumulates",
        "tests.test_stock::test_removing_lowers_the_quantity",
        "tests.test_stock::test_cannot_remove_more_than_in_stock",
        "tests.test_stock::test_unknown_sku_has_no_stock",
    }
    assert failing[2] == {
        "tests.test_pricing::test_price_label_in_euros",
        "tests.test_pricing::test_price_label_in_dollars_with_thousands",
        "tests.test_report::test_report_has_one_aligned_line_per_item",
    }
    cycles = [m for m in done.logs() if m.startswith("fix cycle")]
    assert [c.split(":")[0] for c in cycles] == ["fix cycle 1 of 2", "fix cycle 2 of 2"]
    assert not any("no progress" in m for m in done.logs())
    reports = [m for m in done.messages("user") if "shipyard's gates measured" in m["content"]]
    assert len(reports) == 2
    assert done.state["status"] == "halted"
    assert done.rules()[0] == "quality.pass_rate"
    published_nothing(repo, main)
