"""The pass rate the policy sees: a union over baseline and change, where vanished tests count as failed."""

from __future__ import annotations

from shipyard.gates.tests import compare
from shipyard.model import TestCase, TestReport


def report(*cases: tuple[str, str], coverage: float | None = 90.0, **kw: bool) -> TestReport:
    return TestReport(
        cases=tuple(TestCase(id=i, outcome=o) for i, o in cases), coverage_percent=coverage, **kw
    )


def test_all_passing_gives_full_rate_and_coverage_delta() -> None:
    base = report(("a", "passed"), ("b", "passed"), coverage=90.0)
    change = report(("a", "passed"), ("b", "passed"), ("c", "passed"), coverage=88.5)
    result = compare(base, change)
    assert result.pass_rate == 1.0
    assert result.new == ("c",)
    assert result.coverage_delta == -1.5


def test_a_test_deleted_by_the_change_counts_as_failed() -> None:
    base = report(("a", "passed"), ("b", "passed"))
    change = report(("a", "passed"))
    result = compare(base, change)
    assert result.missing == ("b",)
    assert result.failing == ("b",)
    assert result.pass_rate == 0.5


def test_a_test_newly_skipped_counts_as_failed_but_one_skipped_before_does_not_count() -> None:
    base = report(("a", "passed"), ("b", "passed"), ("s", "skipped"))
    change = report(("a", "passed"), ("b", "skipped"), ("s", "skipped"))
    result = compare(base, change)
    assert result.failing == ("b",)
    assert result.counted == 2


def test_failures_and_errors_are_named() -> None:
    base = report(("a", "passed"), ("b", "passed"), ("c", "passed"))
    change = report(("a", "failed"), ("b", "error"), ("c", "passed"))
    result = compare(base, change)
    assert result.failing == ("a", "b")
    assert round(result.pass_rate, 4) == 0.3333


def test_install_failure_or_timeout_means_nothing_passed() -> None:
    base = report(("a", "passed"))
    assert compare(base, report(("a", "passed"), install_failed=True)).pass_rate == 0.0
    assert compare(base, report(("a", "passed"), timed_out=True)).pass_rate == 0.0


def test_no_report_at_all_is_a_zero_rate_not_a_division_error() -> None:
    assert compare(report(), report()).pass_rate == 0.0


def test_missing_coverage_gives_no_delta() -> None:
    assert (
        compare(report(("a", "passed"), coverage=None), report(("a", "passed"))).coverage_delta
        is None
    )
