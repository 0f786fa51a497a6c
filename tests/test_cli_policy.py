"""``shipyard policy decide`` and ``policy explain`` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.events import EventType
from shipyard.model import Task
from shipyard.store import Store
from tests.test_cli import cli

DEPS = {
    "change_type": "dependency_update",
    "files": [{"path": "requirements.txt", "added": 1, "deleted": 1}],
    "test_pass_rate": 1.0,
    "static_errors": 0,
    "coverage": 91.5,
    "coverage_delta": 0.3,
}


def facts_file(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "facts.json"
    path.write_text(json.dumps({**DEPS, **changes}))
    return path


def decide_json(tmp_path: Path, *args: str) -> dict[str, object]:
    done = cli(tmp_path / "home", "policy", "decide", *args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_issue_example_merges_under_seed(tmp_path: Path) -> None:
    result = decide_json(tmp_path, "--facts", str(facts_file(tmp_path)))
    assert result["decision"] == "MERGE"
    assert result["policy"] == "seed"
    assert result["reasons"] == [
        {
            "rule": "routing.type",
            "action": "MERGE",
            "message": "change type dependency_update routes to MERGE",
        }
    ]
    assert result["inputs"]["coverage_percent"] == 91.5  # type: ignore[index]


@pytest.mark.parametrize(
    ("changes", "decision", "rule"),
    [
        ({"test_pass_rate": 0.9}, "HALT", "quality.pass_rate"),
        ({"static_errors": 2}, "HALT", "quality.static_errors"),
        ({"coverage_delta": -2.5}, "HALT", "quality.coverage_delta"),
        ({"coverage": 80.0}, "REVIEW", "quality.coverage_below_merge_min"),
        ({"files": [{"path": "src/auth/x.py", "added": 1}]}, "HALT", "paths.forbidden"),
        ({"files": [{"path": "src/api/x.py", "added": 1}]}, "REVIEW", "paths.review"),
        ({"change_type": "database_migration"}, "STAGING_ONLY", "routing.type"),
        ({"change_type": "feature"}, "REVIEW", "routing.type"),
    ],
)
def test_each_rule_shows_in_the_output(
    tmp_path: Path, changes: dict[str, object], decision: str, rule: str
) -> None:
    result = decide_json(tmp_path, "--facts", str(facts_file(tmp_path, **changes)))
    assert result["decision"] == decision
    assert rule in {r["rule"] for r in result["reasons"]}  # type: ignore[attr-defined]


def test_the_strict_preset_and_a_config_file_change_the_outcome(tmp_path: Path) -> None:
    facts = str(facts_file(tmp_path))
    assert decide_json(tmp_path, "--facts", facts, "--preset", "strict")["decision"] == "REVIEW"
    config = tmp_path / "shipyard.toml"
    config.write_text('[policy]\npreset = "seed"\nextra_forbidden = ["requirements.txt"]\n')
    result = decide_json(tmp_path, "--facts", facts, "--config", str(config))
    assert result["decision"] == "HALT"


def test_a_preset_file_written_by_a_user_extends_a_builtin(tmp_path: Path) -> None:
    (tmp_path / "team.toml").write_text(
        'extends = "seed"\n[routing.types]\ndependency_update = "STAGING_ONLY"\n'
    )
    config = tmp_path / "shipyard.toml"
    config.write_text('[policy]\npreset = "team.toml"\n')
    result = decide_json(tmp_path, "--facts", str(facts_file(tmp_path)), "--config", str(config))
    assert result["decision"] == "STAGING_ONLY"
    assert result["policy"] == "team"


def test_unknown_fields_are_ignored_and_named(tmp_path: Path) -> None:
    done = cli(
        tmp_path / "home", "policy", "decide", "--facts",
        str(facts_file(tmp_path, repo="x", pr=3)), "--json",
    )  # fmt: skip
    assert done.returncode == 0
    assert json.loads(done.stdout)["ignored_fields"] == ["pr", "repo"]
    assert "ignored unknown facts fields: pr, repo" in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a JSON facts file"),
        ("[1]", "must be a JSON object"),
        (json.dumps({**DEPS, "change_type": "yolo"}), "facts.json: change_type: Input should be"),
        (json.dumps({**DEPS, "test_pass_rate": 3}), "test_pass_rate: Input should be less than"),
        (json.dumps({"change_type": "feature"}), "files: Field required"),
    ],
)
def test_a_bad_facts_file_is_one_clear_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "facts.json"
    path.write_text(content)
    done = cli(tmp_path / "home", "policy", "decide", "--facts", str(path))
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_explain_shows_decisions_rules_facts_and_classification(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store.open(home=home)
    run_id = store.create_run(Task(blueprint="submit", repo="/r", title="Remove restock"))
    store.append(
        run_id,
        EventType.CHANGE_CLASSIFIED,
        {
            "change_type": "api_change",
            "note": "declared documentation (MERGE), but the change is api_change (REVIEW)",
            "evidence": ["api_change: lib/stock.py: public restock was removed"],
        },
    )
    store.append(
        run_id,
        EventType.DECISION_MADE,
        {
            "action": "REVIEW",
            "policy": "seed",
            "reasons": [
                {"rule": "routing.type", "action": "REVIEW", "message": "routes to REVIEW"}
            ],
            "inputs": {"change_type": "api_change", "pass_rate": 1.0},
        },
    )
    store.close()
    done = cli(home, "policy", "explain", run_id[:8])
    assert done.returncode == 0, done.stderr
    for expected in (
        "type: api_change",
        "public restock was removed",
        "decision 1: REVIEW",
        "routing.type",
        "pass_rate",
    ):
        assert expected in done.stdout
    as_json = json.loads(cli(home, "policy", "explain", run_id, "--json").stdout)
    assert as_json["decisions"][0]["action"] == "REVIEW"


def test_explain_of_an_undecided_or_unknown_run_says_why(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store.open(home=home)
    run_id = store.create_run(Task(blueprint="submit", repo="/r"))
    store.close()
    undecided = cli(home, "policy", "explain", run_id)
    assert undecided.returncode == 4
    assert "has no decision yet" in undecided.stderr
    unknown = cli(home, "policy", "explain", "nope")
    assert unknown.returncode != 0
    assert "Traceback" not in unknown.stderr


def test_recover_with_nothing_pending_says_so(tmp_path: Path) -> None:
    done = cli(tmp_path / "home", "recover")
    assert done.returncode == 0
    assert "nothing to recover" in done.stdout
