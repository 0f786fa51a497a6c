"""Dependency runs end to end through the real CLI: a local index over HTTP (with advisories and
links), real git, real bubblewrap, real pip and the seed policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.agent.replay import ReplayServer
from shipyard.deps.localindex import SIDECAR, serve
from tests.conftest import EXAMPLES, example_index, needs_bwrap, shipyard_cli
from tests.deps.conftest import make_wheel

sys.path.insert(0, str(EXAMPLES))
from scenario import branches, head, show

FIXTURES = Path(__file__).parents[1] / "deps" / "fixtures"
TOOLS = ("pytest", "coverage", "iniconfig", "pluggy", "packaging", "pygments")
DAY = 86400


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test tools from the example index, and alpha, beta, gamma and delta in several versions;
    alpha 1.0.0 has an advisory fixed in 1.0.1 and 1.1.0."""
    folder = tmp_path_factory.mktemp("index")
    for wheel in example_index().glob("*.whl"):
        if wheel.name.split("-")[0].lower() in TOOLS:
            (folder / wheel.name).symlink_to(wheel)
    month_ago = time.time() - 30 * DAY
    for name, versions in {
        "alpha": ("1.0.0", "1.0.1", "1.1.0", "2.0.0"),
        "beta": ("0.3.0", "0.3.1"),
        "gamma": ("1.0.0", "1.2.0", "2.0.0"),
        "delta": ("1.0.0", "1.0.1"),
    }.items():
        for version in versions:
            wheel = make_wheel(folder, name, version)
            if version != "2.0.0":  # the majors are brand new, the rest a month old
                os.utime(wheel, (month_ago, month_ago))
    (folder / "pages").mkdir()
    (folder / "pages" / "delta.md").write_text("# 1.0.1\n\nrenamed helpers\n\n# 1.0.0\n")
    (folder / SIDECAR).write_text(
        json.dumps(
            {
                "projects": {
                    "alpha": {
                        "project_urls": {"Changelog": "/pages/alpha.md", "Source": "/src/alpha"},
                        "vulnerabilities": [
                            {"id": "PYSEC-2026-11", "aliases": ["CVE-2026-4242"],
                             "summary": "alpha trusts its input", "affected": "<1.0.1",
                             "fixed_in": ["1.0.1", "1.1.0"]}
                        ],
                    },
                    "delta": {"project_urls": {"Changelog": "/pages/delta.md"}},
                }
            }
        )
    )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def deps_index(index_dir: Path) -> Iterator[str]:
    with serve(index_dir) as running:
        yield running.url


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    ).stdout


def make_project(root: Path, pins: dict[str, str], config: str = "") -> Path:
    """A tiny project whose tests need the 1.x API of every pinned package."""
    root.mkdir(parents=True)
    (root / "src" / "app").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "requirements.txt").write_text(
        "# runtime\n" + "".join(f"{n}=={v}\n" for n, v in pins.items())
    )
    (root / "src" / "app" / "__init__.py").write_text(
        "".join(f"import {n}\n" for n in pins)
        + "\n\ndef majors():\n"
        + "    return ["
        + ", ".join(f"{n}.VERSION.split('.')[0]" for n in pins)
        + "]\n"
    )
    (root / "tests" / "test_app.py").write_text(
        "import sys\n\nsys.path.insert(0, 'src')\n\nimport app\n\n\n"
        "def test_every_dependency_is_on_its_first_major():\n"
        "    assert set(app.majors()) <= {'0', '1'}\n"
    )
    (root / "shipyard.toml").write_text(
        '[gates.tests]\npaths = ["tests"]\nrequirements = ["requirements.txt"]\n'
        'coverage_source = ["src"]\n\n[deps]\nfiles = ["requirements.txt"]\n' + config
    )
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "add", "--all")
    git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "--quiet", "-m", "start")
    return root


def dry_run(home: Path, repo: Path, url: str) -> list[dict[str, object]]:
    out = shipyard_cli(home, "run", "deps", "--repo", str(repo), "--index-url", url,
                       "--dry-run", "--json").stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines()]


def test_dry_run_lists_each_update_with_its_reason_and_changes_nothing(
    tmp_path: Path, deps_index: str
) -> None:
    repo = make_project(tmp_path / "repo", {"alpha": "1.0.0", "beta": "0.3.0", "gamma": "1.0.0"})
    before = head(repo)
    records = dry_run(tmp_path / "home", repo, deps_index)
    assert [(r["package"], r["current"], r["target"], r["update_type"], r["run"]["kind"])
            for r in records] == [
        ("alpha", "1.0.0", "1.0.1", "patch", "security"),
        ("beta", "0.3.0", "0.3.1", "patch", "update"),
        ("gamma", "1.0.0", "2.0.0", "major", "update"),
    ]  # fmt: skip
    for record in records:
        assert {"package", "manifest", "current", "target", "update_type", "reason",
                "vulnerabilities", "release_age_days", "links"} <= set(record)  # fmt: skip
        assert record["manifest"] == "requirements.txt"
    (advisory,) = records[0]["vulnerabilities"]  # type: ignore[misc]
    assert advisory["id"] == "PYSEC-2026-11"
    assert advisory["aliases"] == ["CVE-2026-4242"]
    assert advisory["fixed_in"] == ["1.0.1", "1.1.0"]
    assert "smallest release" in str(records[0]["reason"])
    assert str(records[0]["links"]["Changelog"]).endswith("/pages/alpha.md")  # type: ignore[index]
    assert head(repo) == before
    assert git(repo, "status", "--porcelain") == ""
    table = shipyard_cli(tmp_path / "home", "run", "deps", "--repo", str(repo), "--index-url",
                         deps_index, "--dry-run").stdout  # fmt: skip
    assert "dry run: nothing was changed" in table
    assert "PYSEC-2026-11" in table


def test_dry_run_lists_updates_over_the_open_run_limit_as_deferred(
    tmp_path: Path, deps_index: str
) -> None:
    pins = {"alpha": "1.0.0", "beta": "0.3.0", "gamma": "1.0.0"}
    repo = make_project(tmp_path / "repo", pins, "max_open_runs = 1\n")
    records = dry_run(tmp_path / "home", repo, deps_index)
    # the security fix ignores the limit; one regular run fits; the other is listed, deferred
    assert [(r["package"], r["run"]["kind"], r["deferred"]) for r in records] == [
        ("alpha", "security", None),
        ("beta", "update", None),
        ("gamma", "update", "deferred: open-run limit 1 reached"),
    ]
    table = shipyard_cli(tmp_path / "home", "run", "deps", "--repo", str(repo), "--index-url",
                         deps_index, "--dry-run").stdout  # fmt: skip
    assert "gamma" in table
    assert "open-run limit 1" in " ".join(table.split())


def test_rules_ignore_cooldown_per_type_grouping_and_allowed_versions(
    tmp_path: Path, deps_index: str
) -> None:
    pins = {"alpha": "1.0.1", "beta": "0.3.0", "gamma": "1.0.0", "delta": "1.0.0"}
    rules = (
        "cooldown = { major = 7, minor = 1 }\n"
        '[[deps.groups]]\nname = "non-major"\nupdate_types = ["minor", "patch"]\n'
        '[[deps.packages]]\nmatch = ["delta"]\nignore = true\n'
        '[[deps.packages]]\nmatch = ["gam*"]\nallowed_versions = "<1.1"\n'
    )
    repo = make_project(tmp_path / "repo", pins, rules)
    records = dry_run(tmp_path / "home", repo, deps_index)
    shown = {r["package"]: (r["target"], r["run"]["kind"], r["run"]["name"]) for r in records}
    # alpha 2.0.0 is a day old: held by the 7-day major cooldown, while the month-old minor is not
    assert shown == {
        "alpha": ("1.1.0", "update", "non-major"),
        "beta": ("0.3.1", "update", "non-major"),
    }
    assert {r["run"]["title"] for r in records} == {"Update non-major group (2 packages)"}
    table = shipyard_cli(tmp_path / "home", "run", "deps", "--repo", str(repo), "--index-url",
                         deps_index, "--dry-run").stdout  # fmt: skip
    assert "ignored by the rules" in table  # delta
    assert "not allowed by the rules" in table  # gamma: 1.2.0 and 2.0.0 are outside <1.1


@pytest.mark.slow
@needs_bwrap
@pytest.mark.xdist_group("test_deps_runs")
def test_security_first_then_updates_and_a_failing_update_leaves_main_untouched(
    tmp_path: Path, deps_index: str
) -> None:
    repo = make_project(tmp_path / "repo", {"alpha": "1.0.0", "beta": "0.3.0", "gamma": "1.0.0"})
    home = tmp_path / "home"
    done = shipyard_cli(home, "run", "deps", "--repo", str(repo), "--index-url", deps_index,
                        "--json", ok=False)  # fmt: skip
    runs = json.loads(done.stdout)
    assert [(r["task"]["title"], r["status"]) for r in runs] == [
        ("Fix alpha from 1.0.0 to 1.0.1 (PYSEC-2026-11)", "merged"),
        ("Update beta from 0.3.0 to 0.3.1", "merged"),
        ("Update gamma from 1.0.0 to 2.0.0", "halted"),
    ], done.stdout + done.stderr
    security, _beta, gamma = runs
    assert security["task"]["params"]["change_type"] == "security_patch"
    assert security["decision"]["action"] == "MERGE"
    requirements = show(repo, "main", "requirements.txt")
    # the smallest fixing release, not the newest; the failing major never reached main
    assert requirements.splitlines() == ["# runtime", "alpha==1.0.1", "beta==0.3.1", "gamma==1.0.0"]
    assert sorted(branches(repo)) == ["main"]
    assert any(r["rule"] == "quality.pass_rate" for r in gamma["decision"]["reasons"])
    message = git(repo, "log", "--format=%B", "main")
    assert "alpha 1.0.0 → 1.0.1 (patch" in message
    assert (
        "fixes PYSEC-2026-11 (CVE-2026-4242): alpha trusts its input; fixed in 1.0.1, 1.1.0"
        in message
    )
    report = (home / "runs" / security["run_id"] / "report.md").read_text()
    assert "## Updates" in report
    assert "| alpha | 1.0.0 | 1.0.1 | patch |" in report
    assert "### Vulnerabilities fixed" in report
    assert "PYSEC-2026-11" in report
    assert "## Gates" in report
    halted = (home / "runs" / gamma["run_id"] / "report.md").read_text()
    assert "Halted:" in halted
    assert "| gamma | 1.0.0 | 2.0.0 | major |" in halted
    assert "### Risk: high (heuristic)" in halted
    # nothing more to do for the security fix: the next plan has no advisory left
    again = dry_run(home, repo, deps_index)
    assert all(not r["vulnerabilities"] for r in again)


@pytest.mark.slow
@needs_bwrap
@pytest.mark.xdist_group("test_deps_runs")
def test_a_model_that_reads_the_notes_and_says_not_to_proceed_asks_for_review(
    tmp_path: Path, deps_index: str
) -> None:
    with ReplayServer(FIXTURES / "risk_review.json") as model:
        config = (
            'risk_assessment = "model"\n\n[agent]\nmodel = "replay-model"\n'
            f'base_url = "{model.url}"\nmax_retries = 0\n'
        )
        repo = make_project(tmp_path / "repo", {"delta": "1.0.0"}, config)
        before = head(repo)
        done = shipyard_cli(tmp_path / "home", "run", "deps", "--repo", str(repo), "--index-url",
                            deps_index, "--json", ok=False)  # fmt: skip
        assert model.remaining == 0
    (run,) = json.loads(done.stdout)
    assert run["status"] == "awaiting_review", done.stdout + done.stderr
    assert run["decision"]["action"] == "REVIEW"
    assert [r["rule"] for r in run["decision"]["reasons"]][-1] == "deps.risk"
    assert head(repo) == before
    shown = shipyard_cli(tmp_path / "home", "runs", "show", run["run_id"], "--json").stdout
    assert '"source": "model"' in shown
    assert "slugify() renamed" in shown
