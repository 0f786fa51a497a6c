"""Run reports are rendered from events alone and say what happened and why."""

from __future__ import annotations

from pathlib import Path

from shipyard.delivery.report import render_report
from shipyard.events import EventType
from shipyard.model import Task
from shipyard.store import Store


def test_halted_run_report_names_decision_reasons_failing_tests_and_outcome(tmp_path: Path) -> None:
    store = Store.open(home=tmp_path)
    run_id = store.create_run(
        Task(blueprint="deps", repo="/r", title="Update moneyfmt from 1.4.0 to 2.0.0")
    )
    store.append(
        run_id,
        EventType.CHANGE_COMMITTED,
        {
            "branch": "shipyard/x",
            "commit": "c" * 40,
            "base": "b" * 40,
            "files": ["requirements.txt"],
        },
    )
    store.append(
        run_id,
        EventType.GATE_FINISHED,
        {"gate": "tests", "phase": "baseline", "passed": True, "summary": "24 passed"},
    )
    store.append(
        run_id,
        EventType.GATE_FINISHED,
        {
            "gate": "tests",
            "phase": "change",
            "passed": False,
            "summary": "18 passed, 6 failed",
            "facts": {"failed": ["tests.test_pricing::test_euros"]},
        },
    )
    store.append(
        run_id,
        EventType.GATE_FINISHED,
        {
            "gate": "tests",
            "phase": "verdict",
            "passed": False,
            "status": "failed",
            "summary": "pass rate 75.00 % over 24 tests, 6 failing",
            "details": ["✗ tests.test_pricing::test_euros: assert 1 == 2", "    E  assert 1 == 2"],
        },
    )
    store.append(
        run_id,
        EventType.DECISION_MADE,
        {
            "action": "HALT",
            "policy": "seed",
            "reasons": [
                {
                    "rule": "quality.pass_rate",
                    "action": "HALT",
                    "message": "pass rate 75 % is below 95 %",
                }
            ],
        },
    )
    store.append(run_id, EventType.RUN_HALTED, {"reason": "pass rate 75 % is below 95 %"})
    text = render_report(run_id, store.events(run_id))
    assert text.startswith(f"# shipyard run {run_id}")
    assert "Update moneyfmt from 1.4.0 to 2.0.0" in text
    assert "## Decision: HALT (seed policy)" in text
    assert "`quality.pass_rate` → HALT: pass rate 75 % is below 95 %" in text
    assert (
        "| tests | passed | failed | failed | pass rate 75.00 % over 24 tests, 6 failing |" in text
    )
    assert "### tests: pass rate 75.00 % over 24 tests, 6 failing" in text
    assert "✗ tests.test_pricing::test_euros: assert 1 == 2\n    E  assert 1 == 2" in text
    assert "Halted: pass rate 75 % is below 95 %. Nothing was published." in text
    assert text.count("| run.created |") == 1
    store.close()


def test_merged_run_report_names_the_commit(tmp_path: Path) -> None:
    store = Store.open(home=tmp_path)
    run_id = store.create_run(Task(blueprint="submit", repo="/r", title="t"))
    store.append(
        run_id,
        EventType.DELIVERY_MERGED,
        {"target": "main", "commit": "abc123", "branch": "shipyard/x"},
    )
    assert "Merged into main as `abc123`." in render_report(run_id, store.events(run_id))
    store.close()


def test_report_shows_the_classification_and_its_evidence(tmp_path: Path) -> None:
    store = Store.open(home=tmp_path)
    run_id = store.create_run(Task(blueprint="submit", repo="/r", title="t"))
    store.append(
        run_id,
        EventType.CHANGE_CLASSIFIED,
        {
            "declared": "documentation",
            "observed": ["api_change"],
            "change_type": "api_change",
            "note": "declared documentation (MERGE), but the change is api_change (REVIEW)",
            "evidence": ["api_change: lib/stock.py: public restock was removed"],
        },
    )
    text = render_report(run_id, store.events(run_id))
    assert "## Classification: api_change" in text
    assert "declared documentation (MERGE), but the change is api_change (REVIEW)" in text
    assert "- api_change: lib/stock.py: public restock was removed" in text
    store.close()
