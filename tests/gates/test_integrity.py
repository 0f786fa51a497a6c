"""The test-integrity gate: each way of making tests stop testing is caught, and its honest twin is not.

Every case builds the change as the harness does (each file's text before and after) and asserts the
finding's code, path and line, or that a legitimate change of the same shape finds nothing.
"""

from __future__ import annotations

from textwrap import dedent

import pytest

from shipyard.config import GatesConfig, IntegrityGateConfig
from shipyard.gates.base import ChangeView
from shipyard.gates.integrity import IntegrityGate, findings
from shipyard.model import ChangedFile, Finding

BASE = dedent(
    """\
    import pytest

    from pkg import parse


    def test_parses_numbers():
        assert parse("1") == 1
        assert parse("2") == 2


    def test_rejects_garbage():
        with pytest.raises(ValueError):
            parse("x")


    class TestEdges:
        def test_empty(self):
            assert parse("") is None
    """
)
TEST = "tests/test_parse.py"


def check(
    *files: ChangedFile, allowed: tuple[str, ...] = (), ci_paths: list[str] | None = None
) -> list[Finding]:
    """The integrity findings of a change made of ``files`` (default settings unless ``ci_paths``)."""
    cfg = IntegrityGateConfig(ci_paths=ci_paths) if ci_paths else IntegrityGateConfig()
    return findings(ChangeView.of(list(files), allowed), GatesConfig(integrity=cfg))


def edit(after: str, before: str = BASE, path: str = TEST) -> ChangedFile:
    """A modified file with its text before and after."""
    return ChangedFile(path=path, status="M", before=dedent(before), after=dedent(after))


def only(found: list[Finding], code: str) -> Finding:
    assert [f.code for f in found] == [code], [f.render() for f in found]
    return found[0]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(dedent(text).splitlines(), 1) if needle in line)


# --- deleted-test ------------------------------------------------------------------------------------


def test_a_deleted_test_is_caught_at_its_line_before() -> None:
    after = BASE.replace(
        'def test_rejects_garbage():\n    with pytest.raises(ValueError):\n        parse("x")\n', ""
    )
    f = only(check(edit(after)), "deleted-test")
    assert (f.path, f.line) == (TEST, line_of(BASE, "def test_rejects_garbage"))
    assert "test_rejects_garbage" in f.message
    assert f.snippet == "def test_rejects_garbage():"


@pytest.mark.parametrize(
    ("after", "name"),
    [
        (BASE.replace("def test_empty(self)", "def test_blank(self)"), "def test_empty"),
        (BASE.replace("def test_parses_numbers():", "# def test_parses_numbers():\ndef _unused():"), "def test_parses_numbers"),
    ],
    ids=["renamed", "commented-out"],
)  # fmt: skip
def test_a_renamed_or_commented_out_test_is_deleted(after: str, name: str) -> None:
    f = only(check(edit(after)), "deleted-test")
    assert (f.path, f.line) == (TEST, line_of(BASE, name))
    assert name.removeprefix("def ") in f.message


def test_tests_moved_into_a_class_reordered_and_reformatted_are_kept() -> None:
    after = """\
        import pytest
        from pkg import parse


        class TestEdges:
            def test_empty(self):
                assert parse("") is None


        class TestParse:
            def test_rejects_garbage(self):
                with pytest.raises(ValueError):
                    parse( "x" )

            def test_parses_numbers(self):
                assert parse("2") == 2
                assert parse("1") == 1
        """
    assert check(edit(after)) == []


def test_a_deleted_test_file_removes_each_of_its_tests() -> None:
    gone = ChangedFile(path=TEST, status="D", before=BASE, after=None)
    found = check(gone)
    assert [(f.code, f.line) for f in found] == [
        ("deleted-test", line_of(BASE, "def test_parses_numbers")),
        ("deleted-test", line_of(BASE, "def test_rejects_garbage")),
        ("deleted-test", line_of(BASE, "def test_empty")),
    ]
    assert {f.path for f in found} == {TEST}


def test_allowed_removals_match_path_name_and_path_class_name() -> None:
    gone = ChangedFile(path=TEST, status="D", before=BASE, after=None)
    allowed = (f"{TEST}::test_parses_*", f"{TEST}::TestEdges::test_empty")
    f = only(check(gone, allowed=allowed), "deleted-test")
    assert "test_rejects_garbage" in f.message
    assert check(gone, allowed=("tests/test_parse.py::*",)) == []


def test_a_renamed_test_file_whose_tests_survive_is_clean() -> None:
    renamed = ChangedFile(
        path="tests/unit/test_parsing.py", old_path=TEST, status="R", before=BASE, after=BASE
    )
    assert check(renamed) == []
    split = [
        ChangedFile(path=TEST, status="D", before=BASE, after=None),
        ChangedFile(
            path="tests/test_numbers.py", status="A", after=BASE.split("class TestEdges")[0]
        ),
        ChangedFile(
            path="tests/test_edges.py",
            status="A",
            after="class TestEdges" + BASE.split("class TestEdges")[1],
        ),
    ]
    assert check(*split) == []


def test_test_methods_of_test_classes_count_outside_test_files_too() -> None:
    before = "class TestThing:\n    def test_a(self):\n        assert 1 + 1 == 2\n"
    f = only(
        check(edit("class TestThing:\n    pass\n", before, path="src/pkg/selfcheck.py")),
        "deleted-test",
    )
    assert (f.path, f.line) == ("src/pkg/selfcheck.py", 2)
    helper = "def test_connection(db):\n    return db.ping()\n"
    assert check(edit("", helper, path="src/pkg/health.py")) == []


# --- new-skip ----------------------------------------------------------------------------------------

SKIPS = {
    "decorator": (
        "def test_parses_numbers():",
        '@pytest.mark.skip(reason="flaky")\ndef test_parses_numbers():',
        '@pytest.mark.skip(reason="flaky")',
    ),
    "skipif": (
        "def test_rejects_garbage():",
        "@pytest.mark.skipif(True, reason='later')\ndef test_rejects_garbage():",
        "@pytest.mark.skipif",
    ),
    "xfail": (
        "    def test_empty(self):",
        "    @pytest.mark.xfail\n    def test_empty(self):",
        "@pytest.mark.xfail",
    ),
    "call": (
        '    assert parse("1") == 1',
        '    pytest.skip("broken")\n    assert parse("1") == 1',
        'pytest.skip("broken")',
    ),
    "xfail-call": (
        '    assert parse("1") == 1',
        '    pytest.xfail("broken")\n    assert parse("1") == 1',
        'pytest.xfail("broken")',
    ),
    "module": (
        "from pkg import parse\n",
        "from pkg import parse\n\npytestmark = pytest.mark.skip\n",
        "pytestmark",
    ),
    "unittest-class": (
        "class TestEdges:",
        "import unittest\n\n\n@unittest.skip('wip')\nclass TestEdges:",
        "@unittest.skip('wip')",
    ),
    "skiptest": (
        '        assert parse("") is None',
        '        raise unittest.SkipTest("wip")\n        assert parse("") is None',
        "raise unittest.SkipTest",
    ),
}


@pytest.mark.parametrize("case", SKIPS, ids=list(SKIPS))
def test_a_skip_added_to_an_existing_test_is_caught(case: str) -> None:
    old, new, marker = SKIPS[case]
    after = BASE.replace(old, new, 1)
    f = only(check(edit(after)), "new-skip")
    assert (f.path, f.line) == (TEST, line_of(after, marker))
    assert marker.lstrip("@") in f.snippet


def test_a_skip_in_an_existing_fixture_skips_every_test_using_it() -> None:
    before = "import pytest\n\n@pytest.fixture\ndef db():\n    return 1\n\ndef test_a(db):\n    assert db\n"
    after = before.replace("    return 1", '    pytest.skip("no database")\n    return 1')
    f = only(check(edit(after, before)), "new-skip")
    assert (f.line, f.snippet) == (5, 'pytest.skip("no database")')


def test_skips_already_there_kept_reordered_or_on_new_tests_are_clean() -> None:
    before = BASE.replace(
        "def test_parses_numbers():",
        '@pytest.mark.slow\n@pytest.mark.skipif(sys.platform == "win32", reason="posix")\ndef test_parses_numbers():',
    )
    reordered = before.replace(
        '@pytest.mark.slow\n@pytest.mark.skipif(sys.platform == "win32", reason="posix")',
        "@pytest.mark.skipif(sys.platform == 'win32', reason='posix')\n@pytest.mark.slow",
    )
    new_test = (
        reordered
        + '\n\n@pytest.mark.skip(reason="needs network")\ndef test_download():\n    assert fetch()\n'
    )
    assert check(edit(new_test, before)) == []


# --- removed-assertion -------------------------------------------------------------------------------


def test_a_test_losing_assertions_is_caught_with_the_lost_lines() -> None:
    after = BASE.replace('    assert parse("2") == 2\n', "")
    f = only(check(edit(after)), "removed-assertion")
    assert (f.path, f.line) == (TEST, line_of(after, "def test_parses_numbers"))
    assert f.snippet == 'assert parse("2") == 2'
    assert "1 check(s), down from 2" in f.message


def test_losing_a_pytest_raises_block_is_caught() -> None:
    after = BASE.replace(
        '    with pytest.raises(ValueError):\n        parse("x")', '    parse("x")'
    )
    f = only(check(edit(after)), "removed-assertion")
    assert f.line == line_of(after, "def test_rejects_garbage")


def test_assertions_rewritten_in_another_style_are_clean() -> None:
    before = "class TestX(unittest.TestCase):\n    def test_a(self):\n        self.assertEqual(f(1), 2)\n        m.assert_called_once()\n"
    after = "class TestX(unittest.TestCase):\n    def test_a(self):\n        assert f(1) == 2\n        m.assert_called_once_with(1)\n"
    assert check(edit(after, before)) == []


def test_assertions_moved_into_a_checking_helper_are_clean() -> None:
    before = "def test_row():\n    row = load()\n    assert row.ok\n    assert row.size > 0\n"
    after = "def check(row):\n    assert row.ok\n    assert row.size > 0\n\n\ndef test_row():\n    check(load())\n"
    assert check(edit(after, before)) == []
    emptied = after.replace("    assert row.size > 0\n", "")
    f = only(check(edit(emptied, before)), "removed-assertion")
    assert f.line == line_of(emptied, "def test_row")
    assert "1 check(s), down from 2" in f.message


# --- trivial-assertion -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trivial",
    ["assert True", "assert 1", 'assert "ok"', "assert x == x", "assert parse('1') or True",
     "assert (parse('1'), 'msg')", "assert not None", "assert 2 > 1"],
)  # fmt: skip
def test_an_added_assertion_that_cannot_fail_is_caught(trivial: str) -> None:
    after = BASE.replace('    assert parse("2") == 2', f"    {trivial}")
    f = only(check(edit(after)), "trivial-assertion")
    assert (f.path, f.line, f.snippet) == (TEST, line_of(after, trivial), trivial)


def test_real_assertions_and_an_old_trivial_one_are_clean() -> None:
    before = BASE.replace('    assert parse("2") == 2', "    assert True  # placeholder")
    after = before.replace('assert parse("1") == 1', 'assert parse("1") == x') + (
        "\n\ndef test_flags():\n    assert parse('t') is True\n    assert x == y\n    assert (a or b)\n"
    )
    assert check(edit(after, before)) == []


def test_self_assert_true_of_a_constant_is_caught() -> None:
    before = (
        "class TestX(unittest.TestCase):\n    def test_a(self):\n        self.assertTrue(f())\n"
    )
    f = only(check(edit(before.replace("f()", "1"), before)), "trivial-assertion")
    assert f.line == 3


# --- coverage-config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "before", "after", "needle"),
    [
        (".coveragerc", "[run]\nomit =\n    */vendor/*\n", "[run]\nomit =\n    */vendor/*\n    src/pkg/core.py\n", "core.py"),
        ("setup.cfg", "[coverage:report]\nexclude_lines =\n    if TYPE_CHECKING:\n", "[coverage:report]\nexclude_lines =\n    if TYPE_CHECKING:\n    def \n", "def"),
        ("pyproject.toml", "[tool.coverage.report]\nfail_under = 90\n", "[tool.coverage.report]\nfail_under = 60\n", "fail_under"),
        ("tox.ini", "[coverage:run]\nsource = pkg, tools\n", "[coverage:run]\nsource = tools\n", "source"),
        ("pyproject.toml", '[tool.coverage.report]\nexclude_also = ["raise NotImplementedError"]\n', '[tool.coverage.report]\nexclude_also = ["raise NotImplementedError", "if .*:"]\n', "exclude_also"),
    ],
    ids=["coveragerc-omit", "setup-cfg-exclude", "fail-under", "source-narrowed", "exclude-also"],
)  # fmt: skip
def test_coverage_settings_that_hide_code_are_caught(
    path: str, before: str, after: str, needle: str
) -> None:
    f = only(check(edit(after, before, path=path)), "coverage-config")
    assert (f.path, f.line) == (path, line_of(after, needle))


@pytest.mark.parametrize(
    ("path", "before", "after"),
    [
        (".coveragerc", "[run]\nomit =\n    */vendor/*\n    src/pkg/core.py\n", "[run]\nomit = */vendor/*\nbranch = true\n"),
        ("pyproject.toml", "[tool.coverage.report]\nfail_under = 60\n", "[tool.coverage.report]\nfail_under = 90\nshow_missing = true\n"),
        ("tox.ini", "[coverage:run]\nsource = tools\n", "[coverage:run]\nsource =\n    tools\n    pkg\n"),
    ],
    ids=["omit-shrinks", "fail-under-raised", "source-widened"],
)  # fmt: skip
def test_coverage_settings_that_measure_more_are_clean(path: str, before: str, after: str) -> None:
    assert check(edit(after, before, path=path)) == []


def test_a_new_no_cover_pragma_is_caught_but_a_moved_one_is_not() -> None:
    before = "def f(x):\n    if x:  # pragma: no cover\n        return 1\n    return 2\n"
    moved = "def g():\n    pass\n\n\ndef f(x):\n    if x:  # pragma: no cover\n        return 1\n    return 2\n"
    assert check(edit(moved, before, path="src/pkg/mod.py")) == []
    added = moved.replace("    return 2", "    return 2  # pragma: no cover")
    f = only(check(edit(added, before, path="src/pkg/mod.py")), "coverage-config")
    assert (f.path, f.line, f.snippet) == ("src/pkg/mod.py", 8, "return 2  # pragma: no cover")


# --- test-run-disabled -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "before", "after", "needle"),
    [
        ("pytest.ini", "[pytest]\naddopts = -q\n", "[pytest]\naddopts = -q --ignore=tests/test_parse.py\n", "--ignore"),
        ("pyproject.toml", '[tool.pytest.ini_options]\naddopts = "-q"\n', '[tool.pytest.ini_options]\naddopts = "-q -k \'not parse\'"\n', "-k"),
        ("setup.cfg", "[tool:pytest]\naddopts = -ra\n", "[tool:pytest]\naddopts = -ra -p no:python\n", "no:python"),
        ("tox.ini", "[pytest]\ntestpaths = tests integration\n", "[pytest]\ntestpaths = tests\n", "testpaths"),
        ("pytest.ini", "[pytest]\nnorecursedirs = .git\n", "[pytest]\nnorecursedirs = .git tests/unit\n", "norecursedirs"),
        ("pyproject.toml", '[tool.pytest.ini_options]\npython_files = ["test_*.py", "*_test.py"]\n', '[tool.pytest.ini_options]\npython_files = ["test_*.py"]\n', "python_files"),
    ],
    ids=["ignore", "k-expr", "no-python-plugin", "testpaths", "norecursedirs", "python-files"],
)  # fmt: skip
def test_pytest_settings_that_drop_tests_are_caught(
    path: str, before: str, after: str, needle: str
) -> None:
    f = only(check(edit(after, before, path=path)), "test-run-disabled")
    assert (f.path, f.line) == (path, line_of(after, needle))


@pytest.mark.parametrize(
    ("path", "before", "after"),
    [
        ("pytest.ini", "[pytest]\naddopts = -q\n", "[pytest]\naddopts = -q -ra --strict-markers -p no:cacheprovider\n"),
        ("pyproject.toml", '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n', '[tool.pytest.ini_options]\ntestpaths = ["tests", "integration"]\npython_files = ["test_*.py", "*_test.py", "check_*.py"]\n'),
        ("tox.ini", "[pytest]\naddopts = -k slow\n", "[pytest]\naddopts = -k slow -v\n"),
    ],
    ids=["harmless-options", "widened-collection", "existing-k"],
)  # fmt: skip
def test_pytest_settings_that_keep_every_test_are_clean(path: str, before: str, after: str) -> None:
    assert check(edit(after, before, path=path)) == []


WORKFLOW = dedent(
    """\
    name: ci
    on: [push]
    jobs:
      test:
        runs-on: ubuntu-latest
        steps:
          - uses: actions/checkout@v4
          - run: pip install -e . pytest
          - run: python -m pytest -q tests
    """
)
CI = ".github/workflows/ci.yml"


@pytest.mark.parametrize(
    ("after", "needle"),
    [
        (WORKFLOW.replace("-q tests", "-q tests || true"), "|| true"),
        (
            WORKFLOW.replace("    runs-on:", "    continue-on-error: true\n    runs-on:"),
            "continue-on-error",
        ),
        (
            WORKFLOW.replace("-q tests", "-q tests --deselect tests/test_parse.py::test_empty"),
            "--deselect",
        ),
        (WORKFLOW.replace("    runs-on:", "    if: false\n    runs-on:"), "if: false"),
    ],
    ids=["or-true", "continue-on-error", "deselect", "if-false"],
)
def test_a_workflow_made_unable_to_fail_is_caught(after: str, needle: str) -> None:
    f = only(check(edit(after, WORKFLOW, path=CI)), "test-run-disabled")
    assert (f.path, f.line) == (CI, line_of(after, needle))


def test_a_workflow_step_running_the_tests_removed_is_caught_at_its_line_before() -> None:
    after = WORKFLOW.replace("      - run: python -m pytest -q tests\n", "")
    f = only(check(edit(after, WORKFLOW, path=CI)), "test-run-disabled")
    assert (f.path, f.line) == (CI, line_of(WORKFLOW, "python -m pytest"))
    commented = WORKFLOW.replace("      - run: python -m pytest", "      # - run: python -m pytest")
    assert only(check(edit(commented, WORKFLOW, path=CI)), "test-run-disabled").line == 9


def test_a_workflow_edited_to_run_the_tests_differently_is_clean() -> None:
    named = WORKFLOW.replace(
        "      - run: python -m pytest -q tests",
        "      - name: tests\n        run: python -m pytest -q --cov=pkg tests",
    )
    assert check(edit(named, WORKFLOW, path=CI)) == []
    assert check(edit(WORKFLOW + "      - run: ruff check .\n", WORKFLOW, path=CI)) == []
    lenient = WORKFLOW.replace("-q tests", "-q tests || true")  # already lenient at baseline
    assert check(edit(lenient.replace("pip install -e .", "pip install ."), lenient, path=CI)) == []


def test_a_nox_session_deselecting_tests_is_caught_and_one_adding_output_is_not() -> None:
    before = 'import nox\n\n\n@nox.session\ndef tests(session):\n    session.run("pytest", "-q")\n'
    deselect = before.replace('"-q")', '"-q", "-k", "not parse")')
    f = only(check(edit(deselect, before, path="noxfile.py")), "test-run-disabled")
    assert (f.path, f.line) == ("noxfile.py", 6)
    assert "`-k not parse`" in f.message
    verbose = before.replace('"-q")', '"-q", "-ra", "--durations=5")')
    assert check(edit(verbose, before, path="noxfile.py")) == []


TOX = "[testenv]\ndeps =\n    pytest\ncommands =\n    pytest {posargs}\n"


def test_tox_commands_removed_or_ignored_are_caught_but_deps_edits_are_not() -> None:
    f = only(
        check(edit(TOX.replace("commands =\n    pytest {posargs}\n", ""), TOX, path="tox.ini")),
        "test-run-disabled",
    )
    assert (f.line, f.snippet) == (5, "pytest {posargs}")
    ignored = TOX.replace("    pytest {posargs}", "    - pytest {posargs}")
    assert only(check(edit(ignored, TOX, path="tox.ini")), "test-run-disabled").line == 5
    assert (
        check(
            edit(
                TOX.replace("    pytest\n", "    pytest>=8\n    hypothesis\n"), TOX, path="tox.ini"
            )
        )
        == []
    )


def test_only_files_in_ci_paths_are_read_as_ci() -> None:
    broken = WORKFLOW.replace("-q tests", "-q tests || true")
    assert check(edit(broken, WORKFLOW, path="docs/example-ci.yml")) == []
    custom = check(edit(broken, WORKFLOW, path="docs/example-ci.yml"), ci_paths=["docs/*.yml"])
    assert only(custom, "test-run-disabled").line == 9


def test_a_makefile_test_target_ignoring_failures_is_caught() -> None:
    before = "test:\n\tpytest -q\n"
    f = only(check(edit("test:\n\t-pytest -q\n", before, path="Makefile")), "test-run-disabled")
    assert (f.path, f.line) == ("Makefile", 2)
    assert check(edit("test:\n\tpytest -q -x\n", before, path="Makefile")) == []


CONFTEST = dedent(
    """\
    import pytest

    collect_ignore = ["setup.py"]


    def pytest_collection_modifyitems(config, items):
        items.sort(key=lambda item: item.name)
    """
)


@pytest.mark.parametrize(
    ("after", "needle"),
    [
        (CONFTEST.replace('["setup.py"]', '["setup.py", "tests/test_parse.py"]'), "collect_ignore"),
        (CONFTEST.replace("    items.sort", "    items[:] = [i for i in items if 'parse' not in i.name]\n    items.sort"), "items[:]"),
        (CONFTEST.replace("    items.sort", "    config.hook.pytest_deselected(items=items[1:])\n    items.sort"), "pytest_deselected"),
        (CONFTEST.replace("    items.sort", "    for i in items:\n        i.add_marker(pytest.mark.skip)\n    items.sort"), "add_marker"),
        (CONFTEST + dedent('''
            @pytest.hookimpl(hookwrapper=True)
            def pytest_runtest_makereport(item, call):
                outcome = yield
                report = outcome.get_result()
                report.outcome = "passed"
            '''), "report.outcome"),
        (CONFTEST + "\n\ndef pytest_pyfunc_call(pyfuncitem):\n    return True\n", "return True"),
    ],
    ids=["collect-ignore", "items-slice", "deselected", "skip-marker", "makereport", "pyfunc-call"],
)  # fmt: skip
def test_a_conftest_that_drops_or_passes_tests_is_caught(after: str, needle: str) -> None:
    f = only(check(edit(after, CONFTEST, path="tests/conftest.py")), "test-run-disabled")
    assert (f.path, f.line) == ("tests/conftest.py", line_of(after, needle))


def test_a_conftest_gaining_fixtures_and_harmless_hooks_is_clean() -> None:
    after = CONFTEST.replace(
        "    items.sort(key=lambda item: item.name)",
        "    items.sort(key=lambda item: item.nodeid)\n    for i in items:\n        i.add_marker(pytest.mark.slow)",
    ) + dedent(
        """

        @pytest.fixture
        def client():
            return object()


        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            outcome = yield
            item.report = outcome.get_result()
        """
    )
    assert check(edit(after, CONFTEST, path="tests/conftest.py")) == []


# --- unparsable code and the gate's result -----------------------------------------------------------


def test_settings_files_that_do_not_parse_are_not_compared() -> None:
    before = "[tool.coverage.report]\nfail_under = 90\n"
    assert (
        check(edit("[tool.coverage.report\nfail_under = 90\n", before, path="pyproject.toml")) == []
    )
    assert check(edit("[pytest\naddopts = -k x\n", "[pytest]\n", path="pytest.ini")) == []


def test_a_test_file_that_no_longer_parses_is_one_finding_not_a_crash() -> None:
    after = BASE.replace("def test_empty(self):", "def test_empty(self:")
    f = only(check(edit(after)), "unparsable-test")
    assert (f.path, f.line) == (TEST, line_of(after, "def test_empty(self:"))
    assert check(edit("def broken(:\n", "def broken():\n    pass\n", path="src/pkg/mod.py")) == []
    assert check(edit(BASE, "def broken(:\n")) == []  # a baseline that did not parse is no baseline


def test_the_gate_result_carries_findings_counts_and_rendered_details() -> None:
    after = BASE.replace('    assert parse("2") == 2', "    assert True").replace(
        "class TestEdges:", "@pytest.mark.skip\nclass TestEdges:"
    )
    result = IntegrityGate().check(ChangeView.of([edit(after)]), GatesConfig())
    assert (result.gate, result.passed, result.skipped) == ("integrity", False, False)
    assert result.facts["counts"] == {"trivial-assertion": 1, "new-skip": 1}
    assert [f["code"] for f in result.facts["findings"]] == ["trivial-assertion", "new-skip"]
    assert result.facts["findings"][0]["line"] == line_of(after, "assert True")
    assert result.details[0].splitlines() == [
        f"{TEST}:{line_of(after, 'assert True')}: integrity trivial-assertion adds an assertion that cannot fail: assert True",
        "    assert True",
    ]
    assert "2 place(s)" in result.summary


def test_the_gate_passes_a_clean_change_and_skips_when_disabled() -> None:
    view = ChangeView.of([edit(BASE + "\n\ndef test_more():\n    assert parse('3') == 3\n")])
    clean = IntegrityGate().check(view, GatesConfig())
    assert (clean.passed, clean.skipped, clean.facts["counts"]) == (True, False, {})
    bad = ChangeView.of([ChangedFile(path=TEST, status="D", before=BASE, after=None)])
    off = IntegrityGate().check(bad, GatesConfig(integrity=IntegrityGateConfig(enabled=False)))
    assert (off.skipped, off.status) == (True, "skipped")
