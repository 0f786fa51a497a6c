"""The example project against its real dependencies, installed offline from the example index.

Pinned versions pass, slugkit's compatible minor release passes, moneyfmt's breaking major fails
named tests: the outcomes shipyard's demo relies on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, example_index

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("example-venv")]

PROJECT = EXAMPLES / "project"


def _run(argv: list[str], cwd: Path, venv: Path) -> subprocess.CompletedProcess[str]:
    # No PIP_* or user settings from the host: installs come from the example index only.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(venv.parent),  # never the source tree: tools may write there
        "PIP_CONFIG_FILE": os.devnull,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the pinned requirements, installed with no network."""
    root = tmp_path_factory.mktemp("example-venv")
    # No pip inside: the host's pip installs into it (`pip --python`), which is much faster.
    argv = [sys.executable, "-m", "venv", "--without-pip", str(root / "venv")]
    made = _run(argv, cwd=root, venv=root / "venv")
    assert made.returncode == 0, made.stderr
    _install(root / "venv", "-r", str(PROJECT / "requirements.txt"),
             "-r", str(PROJECT / "requirements-dev.txt"))  # fmt: skip
    return root / "venv"


def _install(venv: Path, *requirements: str) -> None:
    done = _run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--isolated", "--quiet",
         "--disable-pip-version-check", "--no-index", "--find-links", str(example_index()),
         *requirements],
        cwd=venv.parent,
        venv=venv,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _pytest(venv: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    done = _run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-rf"], cwd=project, venv=venv)
    failed = re.findall(r"^FAILED (\S+?)(?: - .*)?$", done.stdout, flags=re.MULTILINE)
    return done, sorted(failed)


def _count(outcome: str, summary: str) -> int:
    match = re.search(rf"(\d+) {outcome}", summary)
    assert match, summary
    return int(match[1])


def test_pinned_versions_pass_with_enough_coverage(venv: Path, tmp_path: Path) -> None:
    _install(venv, "slugkit==1.0.0", "moneyfmt==1.4.0")
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    python = str(venv / "bin" / "python")
    tested = _run([python, "-m", "coverage", "run", "-m", "pytest", "-q"], cwd=project, venv=venv)
    assert tested.returncode == 0, tested.stdout
    assert 18 <= _count("passed", tested.stdout) <= 30
    total = _run([python, "-m", "coverage", "report", "--format=total"], cwd=project, venv=venv)
    assert int(total.stdout.strip()) >= 85, total.stdout


def test_slugkit_minor_update_keeps_the_tests_passing(venv: Path, tmp_path: Path) -> None:
    _install(venv, "slugkit==1.1.0", "moneyfmt==1.4.0")
    done, failed = _pytest(venv, tmp_path)
    assert done.returncode == 0, done.stdout
    assert failed == []


def test_moneyfmt_major_update_fails_the_pricing_and_report_tests(
    venv: Path, tmp_path: Path
) -> None:
    _install(venv, "slugkit==1.0.0", "moneyfmt==2.0.0")
    done, failed = _pytest(venv, tmp_path)
    assert done.returncode == 1, done.stdout
    assert failed == [
        "tests/test_pricing.py::test_parse_price_reads_what_people_type",
        "tests/test_pricing.py::test_price_label_in_dollars_with_thousands",
        "tests/test_pricing.py::test_price_label_in_euros",
        "tests/test_pricing.py::test_stock_value_label",
        "tests/test_report.py::test_report_has_one_aligned_line_per_item",
        "tests/test_report.py::test_report_of_empty_stock_has_headers_and_zero_total",
    ]
    # Enough failures for the seed policy's pass-rate floor (0.95) to halt the update.
    passed = _count("passed", done.stdout)
    assert passed / (passed + len(failed)) < 0.95
