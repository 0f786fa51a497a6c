"""The Renovate comparison's reading of Renovate's JSON log and its comparison with shipyard's
``run deps --dry-run --json`` output, on log excerpts captured from real Renovate 44 runs (Flask
2.3.2 and Celery 5.2.7 from their sdists, looked up on PyPI). Renovate itself does not run here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks.renovate.compare import compare, counts, renovate_findings, shipyard_findings
from benchmarks.renovate.logparse import (
    RenovateLogError,
    dependencies,
    extraction_stats,
    problems,
    read_records,
    renovate_version,
    timing_splits,
)

FIXTURES = Path(__file__).parent / "fixtures"


def records(name: str) -> list[dict[str, object]]:
    return read_records((FIXTURES / name).read_text().splitlines())


def test_every_dependency_of_every_package_file_is_read() -> None:
    deps = dependencies(records("renovate-flask.jsonl"))
    files = {(d.manager, d.package_file) for d in deps}
    assert files == {
        ("pip_requirements", "requirements/tests.txt"),
        ("poetry", "pyproject.toml"),
        ("poetry", "examples/javascript/pyproject.toml"),
    }
    pytest_dep = next(d for d in deps if d.name == "pytest" and d.manager == "pip_requirements")
    assert (pytest_dep.current_value, pytest_dep.current_version) == ("==7.3.1", "7.3.1")
    # The newest minor and the newest major are separate entries.
    assert [(u.new_version, u.new_value, u.update_type) for u in pytest_dep.updates] == [
        ("7.4.4", "==7.4.4", "minor"),
        ("9.2.0", "==9.2.0", "major"),
    ]
    werkzeug = next(d for d in deps if d.name == "werkzeug")
    assert werkzeug.current_value == ">=2.3.3"
    assert werkzeug.updates == ()
    assert werkzeug.dep_type == "project.dependencies"
    unpinned = [d for d in deps if d.package_file == "examples/javascript/pyproject.toml"]
    assert {d.skip_reason for d in unpinned} == {"unspecified-version"}


def test_names_are_canonical_and_skips_and_ranges_kept() -> None:
    deps = dependencies(records("renovate-celery.jsonl"))
    billiard = next(d for d in deps if d.name == "billiard")
    assert billiard.current_value == ">=3.6.4.0,<4.0"
    assert [(u.new_value, u.update_type) for u in billiard.updates] == [(">=4.3.2,<4.4", "major")]
    assert all(d.name == d.name.lower() and "_" not in d.name for d in deps)
    auth = [d for d in deps if d.package_file == "requirements/extras/auth.txt"]
    assert [(d.name, d.skip_reason) for d in auth] == [("cryptography", "invalid-value")]


def test_counts_packages_and_entries_separately() -> None:
    found = renovate_findings(dependencies(records("renovate-flask.jsonl")))
    c = counts(found)
    # requirements/tests.txt: six pins with an update, two of them (packaging, pytest) with both
    # a minor and a major entry.
    assert c["packages_with_update"] == 6
    assert c["manifest_package_pairs"] == 6
    assert c["update_entries"] == 8


def test_timing_version_extraction_and_warnings() -> None:
    recs = records("renovate-flask.jsonl")
    splits = timing_splits(recs)
    assert set(splits) >= {"init", "extract", "lookup", "total"}
    assert splits["total"] >= splits["lookup"] > 0
    assert renovate_version(recs) == "44.121.2"
    stats = extraction_stats(recs)
    assert stats["managers"]["pip_requirements"]["fileCount"] == 7
    assert "RE2 not usable, falling back to RegExp" in problems(recs)


def test_stray_lines_are_skipped_and_a_missing_record_is_a_clear_error() -> None:
    text = (FIXTURES / "renovate-flask.jsonl").read_text()
    recs = read_records(["not json", "{broken", *text.splitlines(), "[1, 2]"])
    assert len(recs) == len(text.splitlines())
    without = [r for r in recs if r.get("msg") != "packageFiles with updates"]
    with pytest.raises(RenovateLogError, match="LOG_LEVEL=debug"):
        dependencies(without)


def _shipyard(*updates: dict[str, object]) -> str:
    return "\n".join(json.dumps(u) for u in updates) + "\n"


def test_comparison_classifies_each_difference() -> None:
    deps = dependencies(records("renovate-flask.jsonl"))
    out = shipyard_findings(
        _shipyard(
            # Same newest target as Renovate in the same file: agreement.
            {
                "package": "pytest",
                "manifest": "requirements/tests.txt",
                "current": "7.3.1",
                "target": "9.2.0",
                "update_type": "major",
                "reason": "newest release",
            },
            # One update applied in two files; Renovate leaves the pyproject range alone.
            {
                "package": "Werkzeug",
                "manifest": "requirements/tests.txt",
                "manifests": ["pyproject.toml", "requirements/dev.txt"],
                "current": "2.3.3",
                "target": "3.1.9",
                "update_type": "major",
                "reason": "newest release",
            },
            # A lower target than Renovate's.
            {
                "package": "pluggy",
                "manifest": "requirements/tests.txt",
                "current": "1.0.0",
                "target": "1.6.0",
                "update_type": "minor",
                "reason": "newest release",
            },
        )
    )
    assert {(f.manifest, f.package) for f in out.updates} >= {
        ("pyproject.toml", "werkzeug"),
        ("requirements/dev.txt", "werkzeug"),
    }
    result = compare(deps, out, facts=lambda package, version: {})
    by = {(d["manifest"], d["package"]): d for d in result["differences"]}
    assert ("requirements/tests.txt", "pytest") not in by
    assert by[("pyproject.toml", "werkzeug")]["category"] == "range already admits the target"
    assert (
        by[("requirements/dev.txt", "werkzeug")]["category"] == "manifest not scanned by Renovate"
    )
    assert by[("requirements/tests.txt", "pluggy")]["kind"] == "different_target"
    assert by[("requirements/tests.txt", "iniconfig")]["kind"] == "renovate_only"
    # Renovate's intermediate minor entry (7.4.4) is not counted as a miss when the newest agrees.
    assert result["both"]["pairs_same_newest_target"] == 1
    assert result["renovate_pairs_missed_by_shipyard"] == 4  # iniconfig, packaging, dotenv, asgiref


def test_release_facts_explain_a_renovate_only_update() -> None:
    deps = dependencies(records("renovate-flask.jsonl"))

    def facts(package: str, version: str) -> dict[str, object]:
        return {"age_days": 3.0} if package == "asgiref" else {"yanked": package == "iniconfig"}

    result = compare(deps, shipyard_findings(""), facts=facts)
    by = {d["package"]: d for d in result["differences"]}
    assert by["asgiref"]["category"] == "release age"
    assert by["iniconfig"]["category"] == "yanked"
    assert result["shipyard"]["update_entries"] == 0


def test_shipyard_output_as_one_document_with_skipped_dependencies() -> None:
    doc = {
        "updates": [{"package": "six", "manifest": "r.txt", "current": "1.0", "target": "1.17.0"}],
        "skipped": [{"package": "flask", "manifest": "r.txt", "reason": "ignored by the rules"}],
    }
    out = shipyard_findings(json.dumps(doc))
    assert [(f.package, f.target) for f in out.updates] == [("six", "1.17.0")]
    assert out.skipped[0]["reason"] == "ignored by the rules"


def test_a_range_renovate_leaves_and_the_open_run_limit_are_told_apart() -> None:
    # Values as Renovate logged them for Prefect 2.10.0's requirements.txt, where it widens
    # "click >= 8.0, < 8.2" but lists no update for the SQLAlchemy range.
    record = {
        "msg": "packageFiles with updates",
        "config": {
            "pip_requirements": [
                {
                    "packageFile": "requirements.txt",
                    "deps": [
                        {"depName": "sqlalchemy", "packageName": "sqlalchemy",
                         "currentValue": ">= 1.4.22, != 1.4.33, < 2.0",
                         "currentVersion": "1.4.54", "datasource": "pypi", "updates": []},
                        {"depName": "jsonschema", "packageName": "jsonschema",
                         "currentValue": ">=3.2.0", "currentVersion": "4.26.0",
                         "datasource": "pypi", "updates": []},
                        {"depName": "click", "packageName": "click",
                         "currentValue": "==8.0.0", "currentVersion": "8.0.0",
                         "datasource": "pypi",
                         "updates": [{"newVersion": "8.5.1", "newValue": "==8.5.1",
                                      "updateType": "minor"}]},
                    ],
                }
            ]
        },
    }  # fmt: skip
    deps = dependencies([record])
    out = shipyard_findings(
        _shipyard(
            {
                "package": "SQLAlchemy",
                "manifest": "requirements.txt",
                "current": "1.4.54",
                "target": "2.1.9",
                "update_type": "major",
            },
            {
                "package": "jsonschema",
                "manifest": "requirements.txt",
                "current": "4.26.0",
                "target": "4.26.1",
                "update_type": "patch",
            },
        )
    )
    result = compare(deps, out, held=frozenset({("requirements.txt", "click")}))
    by = {d["package"]: d for d in result["differences"]}
    assert by["sqlalchemy"]["category"] == "range Renovate does not widen"
    assert "!=" in by["sqlalchemy"]["explanation"]
    assert by["jsonschema"]["category"] == "range already admits the target"
    assert by["click"]["category"] == "held back by shipyard's open-run limit"
    assert result["renovate_pairs_missed_by_shipyard"] == 1


def test_lock_maintenance_records_are_not_updates() -> None:
    lock = {"package": None, "manifest": None, "current": None, "target": None,
            "update_type": "lock-maintenance", "run": {"kind": "lock"}}  # fmt: skip
    out = shipyard_findings(_shipyard(lock))
    assert out.updates == []
    assert out.skipped == [lock]
