"""Reading the reports a sandbox wrote: the host never follows a planted link, FIFO or device."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from shipyard.gates.tests import read_coverage, read_junit, read_report

JUNIT = """<?xml version="1.0"?>
<testsuites><testsuite name="s"><testcase classname="tests.t" name="test_a"/>
<testcase classname="tests.t" name="test_b"><failure message="boom"/></testcase></testsuite></testsuites>
"""


def test_a_regular_report_is_read(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text(JUNIT)
    (tmp_path / "coverage.json").write_text(json.dumps({"totals": {"percent_covered": 91.234}}))
    cases = read_junit(tmp_path / "junit.xml")
    assert [(c.id, c.outcome) for c in cases] == [
        ("tests.t::test_a", "passed"),
        ("tests.t::test_b", "failed"),
    ]
    assert read_coverage(tmp_path / "coverage.json") == 91.23


def test_a_symlink_to_a_host_file_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.json"
    secret.write_text(json.dumps({"totals": {"percent_covered": 100.0}}))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "coverage.json").symlink_to(secret)
    (scratch / "junit.xml").symlink_to(tmp_path / "elsewhere.xml")
    (tmp_path / "elsewhere.xml").write_text(JUNIT)
    assert read_report(scratch / "coverage.json") is None
    assert read_coverage(scratch / "coverage.json") is None
    assert read_junit(scratch / "junit.xml") == ()


def test_a_fifo_does_not_block_the_host(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "junit.xml")
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(read_junit(tmp_path / "junit.xml")))
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert result == [()]


def test_a_device_or_directory_is_not_a_report(tmp_path: Path) -> None:
    (tmp_path / "coverage.json").symlink_to("/dev/zero")
    (tmp_path / "junit.xml").mkdir()
    assert read_coverage(tmp_path / "coverage.json") is None
    assert read_junit(tmp_path / "junit.xml") == ()
