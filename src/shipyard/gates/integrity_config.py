"""Test integrity, settings side: coverage, pytest and CI settings that stop tests counting or running.

Each changed configuration file is read before and after (``tomllib``, ``configparser``, CI definitions
line by line) and only what the change adds is reported: coverage exclusions gained, ``fail_under``
lowered or ``source`` narrowed (``coverage-config``, also for new ``# pragma: no cover``); pytest options
that deselect or ignore tests, collection patterns narrowed, test commands removed or made unable to
fail (``test-run-disabled``).
"""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from shipyard.gates.integrity_python import finding, source_line
from shipyard.model import ChangedFile, Finding

COVERAGE_FILES = (".coveragerc", "setup.cfg", "tox.ini", "pyproject.toml")
PYTEST_FILES = (
    "pytest.ini",
    "pytest.toml",
    ".pytest.toml",
    "tox.ini",
    "setup.cfg",
    "pyproject.toml",
)
STRUCTURED_CONFIG = {
    ".coveragerc",
    "setup.cfg",
    "pytest.ini",
    "pyproject.toml",
    "pytest.toml",
    ".pytest.toml",
}
"""Settings files read as settings only; other files in ``ci_paths`` are also read line by line."""
_REGEX_LISTS = {"exclude_lines", "exclude_also", "partial_branches", "partial_branches_always"}
_COVERAGE_GAINS = (*(f"report.{k}" for k in sorted(_REGEX_LISTS)), "run.omit", "report.omit")
_PRAGMA = re.compile(r"#\s*pragma:\s*no\s*(cover|branch)", re.IGNORECASE)


class _Unreadable(Exception):
    """A settings file that does not parse: the tools reading it fail on it, so it is not compared."""


def _toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _Unreadable(str(e)) from e


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error as e:
        raise _Unreadable(str(e)) from e
    return parser


def _list(value: Any, *, regex: bool = False, shell: bool = False) -> list[str]:
    """A setting's entries, whether TOML gave a list or an ini file a string."""
    if isinstance(value, list):
        return [str(v).strip() for v in value]
    if value is None:
        return []
    if shell:
        try:
            return shlex.split(str(value))
        except ValueError:
            return str(value).split()
    return [s.strip() for s in re.split(r"\n" if regex else r"[\n,]", str(value)) if s.strip()]


def coverage_settings(path: str, text: str | None) -> dict[str, Any]:
    """coverage.py's settings in one file, as ``"section.key" -> value`` (e.g. ``report.fail_under``)."""
    name = PurePosixPath(path).name
    if text is None or name not in COVERAGE_FILES:
        return {}
    if name == "pyproject.toml":
        tables = _toml(text).get("tool", {}).get("coverage", {})
        return {
            f"{s}.{k}": v for s, t in tables.items() if isinstance(t, dict) for k, v in t.items()
        }
    parser, out = _ini(text), {}
    for section in parser.sections():
        short = section.removeprefix("coverage:")
        if short != section or name == ".coveragerc":
            out.update({f"{short}.{k}": v for k, v in parser.items(section, raw=True)})
    return out


def pytest_settings(path: str, text: str | None) -> dict[str, list[str]]:
    """pytest's settings in one file that can narrow what runs, each as its list of entries."""
    name = PurePosixPath(path).name
    if text is None or name not in PYTEST_FILES:
        return {}
    raw: dict[str, Any] = {}
    if name == "pyproject.toml":
        table = _toml(text).get("tool", {}).get("pytest", {})
        raw = {**table, **table.get("ini_options", {})}
    elif name.endswith(".toml"):
        raw = _toml(text).get("pytest", {})
    else:
        parser = _ini(text)
        section = "tool:pytest" if name == "setup.cfg" else "pytest"
        raw = dict(parser.items(section, raw=True)) if parser.has_section(section) else {}
    return {k: _list(v, shell=True) for k, v in raw.items() if k in _PYTEST_DEFAULTS}


_PYTEST_DEFAULTS: dict[str, list[str]] = {
    "addopts": [],
    "testpaths": [],
    "python_files": ["test_*.py", "*_test.py"],
    "python_classes": ["Test"],
    "python_functions": ["test"],
    "norecursedirs": [
        "*.egg",
        ".*",
        "_darcs",
        "build",
        "CVS",
        "dist",
        "node_modules",
        "venv",
        "{arch}",
    ],
}
_VALUE_OPTS = ("-k", "-m", "-p", "--deselect", "--ignore", "--ignore-glob")
_NO_RUN = {"--co", "--collect-only", "--fixtures", "--markers", "--setup-only", "--setup-plan"}
_HARMLESS_PLUGINS = {"no:cacheprovider", "no:randomly"}


def risky_options(tokens: Sequence[str]) -> list[str]:
    """The pytest options among ``tokens`` that deselect, ignore or stop running tests."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        opt, _, value = (
            tokens[i].partition("=") if tokens[i].startswith("--") else (tokens[i], "", "")
        )
        if opt[:2] in ("-k", "-m", "-p") and len(opt) > 2 and not opt.startswith("--"):
            opt, value = opt[:2], opt[2:]
        if opt in _VALUE_OPTS:
            if not value and i + 1 < len(tokens):
                i += 1
                value = tokens[i]
            if opt != "-p" or (value.startswith("no:") and value not in _HARMLESS_PLUGINS):
                out.append(f"{opt} {value}")
        elif opt in _NO_RUN:
            out.append(opt)
        i += 1
    return out


def _line_of(text: str | None, *needles: str) -> int | None:
    """The first line (1-based) of ``text`` containing one of the needles, tried in order."""
    lines = (text or "").splitlines()
    for needle in needles:
        for n, line in enumerate(lines, 1):
            if needle and needle in line:
                return n
    return None


def _at(code: str, f: ChangedFile, message: str, *needles: str) -> Finding:
    line = _line_of(f.after, *needles)
    return finding(code, f.path, line, message, source_line(f.after, line))


def coverage_findings(f: ChangedFile) -> list[Finding]:
    """Coverage exclusions gained, ``fail_under`` lowered or ``source`` narrowed in one file."""
    try:
        before = coverage_settings(f.old_path or f.path, f.before)
        after = coverage_settings(f.path, f.after)
    except _Unreadable:
        return []
    out: list[Finding] = []
    for key in _COVERAGE_GAINS:
        regex = key.split(".")[1] in _REGEX_LISTS
        old = set(_list(before.get(key), regex=regex))
        new = [v for v in _list(after.get(key), regex=regex) if v not in old]
        if new:
            msg = f"coverage {key} gains {', '.join(new)}: that code no longer counts against coverage"
            out.append(_at("coverage-config", f, msg, new[0], key.split(".")[1]))
    try:
        floor = (
            float(before.get("report.fail_under", 0)),
            float(after.get("report.fail_under", 0)),
        )
    except (TypeError, ValueError):
        floor = (0.0, 0.0)
    if floor[1] < floor[0]:
        to = f"to {floor[1]:g}" if "report.fail_under" in after else "by removing it"
        msg = f"coverage fail_under lowered from {floor[0]:g} {to}"
        out.append(_at("coverage-config", f, msg, "fail_under", "[tool.coverage", "[coverage"))
    for key in ("run.source", "run.source_pkgs"):
        gone = [v for v in _list(before.get(key)) if v not in _list(after.get(key))]
        if gone:
            msg = f"coverage {key} no longer measures {', '.join(gone)}"
            out.append(_at("coverage-config", f, msg, key.split(".")[1], "[tool.coverage", "[cov"))
    return out


def pragma_findings(f: ChangedFile) -> list[Finding]:
    """``# pragma: no cover`` comments the change adds to a Python file."""
    if not f.path.endswith(".py") or f.after is None:
        return []
    had = Counter(line.strip() for line in (f.before or "").splitlines() if _PRAGMA.search(line))
    out: list[Finding] = []
    for n, line in enumerate(f.after.splitlines(), 1):
        if not _PRAGMA.search(line):
            continue
        if had[line.strip()] > 0:
            had[line.strip()] -= 1
            continue
        msg = "adds a coverage exclusion pragma: this code no longer counts against coverage"
        out.append(finding("coverage-config", f.path, n, msg, line.strip()))
    return out


def pytest_findings(f: ChangedFile) -> list[Finding]:
    """pytest settings that deselect tests, stop collecting them or stop running them."""
    try:
        old = {**_PYTEST_DEFAULTS, **pytest_settings(f.old_path or f.path, f.before)}
        new = {**_PYTEST_DEFAULTS, **pytest_settings(f.path, f.after)}
    except _Unreadable:
        return []
    out: list[Finding] = []
    added = list(Counter(risky_options(new["addopts"])) - Counter(risky_options(old["addopts"])))
    for opt in added:
        msg = f"pytest addopts gains `{opt}`: tests are deselected or not run"
        out.append(_at("test-run-disabled", f, msg, opt.split()[-1], "addopts"))
    for key in ("testpaths", "python_files", "python_classes", "python_functions"):
        gone = [v for v in old[key] if v not in new[key]]
        if gone and (key != "testpaths" or new[key]):
            msg = (
                f"pytest {key} no longer includes {', '.join(gone)}: tests there are not collected"
            )
            out.append(_at("test-run-disabled", f, msg, key))
    extra = [v for v in new["norecursedirs"] if v not in old["norecursedirs"]]
    if extra:
        msg = f"pytest norecursedirs gains {', '.join(extra)}: tests there are not collected"
        out.append(_at("test-run-disabled", f, msg, extra[0], "norecursedirs"))
    return out


_RUNS_TESTS = re.compile(
    r"(?<![\w.\-])(pytest|py\.test|tox|nox|unittest|coverage\s+run)(?![\w.\-=<>~!\[])"
    r"|\bmake\s+(test|check)\b"
)
_MASKS: tuple[tuple[str, str], ...] = (
    ("`|| true` ignores the exit status", r"\|\|\s*(true\b|:|exit\s+0\b)|;\s*exit\s+0\b"),
    (
        "`continue-on-error` lets the job fail silently",
        r"continue-on-error:\s*(true|\$\{\{\s*true)",
    ),
    ("`allow_failure` lets the job fail silently", r"allow_failure:\s*true"),
    ("`ignore_outcome` ignores the test outcome", r"ignore_outcome\s*=\s*true"),
    ("`ignore_errors` ignores failing commands", r"ignore_errors\s*=\s*true"),
    ("`--exit-zero` reports success whatever happens", r"--exit-zero\b"),
    ("`set +e` ignores failing commands", r"\bset\s+\+e\b"),
    ("`success_codes` accepts failing exit codes", r"success_codes"),
    ("`if: false` never runs the job", r"^\s*if:\s*(false|\$\{\{\s*false\s*\}\})\s*$"),
)
_IGNORED_STATUS = re.compile(r"^(\t|\s*(commands\s*=)?\s*)-\s*\S")
"""A Makefile recipe or tox command whose failure is ignored (``-pytest``, ``- pytest``)."""


def _ci_lines(text: str | None) -> list[tuple[int, str]]:
    """Numbered lines of a CI definition that are neither blank, comments nor section headers."""
    return [
        (n, line)
        for n, line in enumerate((text or "").splitlines(), 1)
        if line.strip() and not line.strip().startswith(("#", "[", "//"))
    ]


def _masks(path: str, line: str) -> list[str]:
    """What in a CI line makes failures go unnoticed."""
    found = [label for label, pattern in _MASKS if re.search(pattern, line)]
    name = PurePosixPath(path).name
    if name in ("Makefile", "tox.ini") and _IGNORED_STATUS.search(line) and _is_run(line):
        found.append("a `-` prefix ignores the test command's exit status")
    return found


def _tokens(line: str, python: bool) -> list[str]:
    """The words after the ``pytest`` word of a command line (in Python, its string literals)."""
    if python:
        words = [a or b for a, b in re.findall(r'"([^"]*)"|\'([^\']*)\'', line)]
    else:
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split()
    starts = [i for i, w in enumerate(words) if re.search(r"(^|/)(pytest|py\.test)$", w)]
    return words[starts[0] + 1 :] if starts else []


def ci_findings(f: ChangedFile) -> list[Finding]:
    """CI lines running the tests removed, or changed so that failures or tests go unnoticed."""
    old, new = _ci_lines(f.before), _ci_lines(f.after)
    out: list[Finding] = []
    had = Counter((m, line.strip()) for _, line in old for m in _masks(f.path, line))
    for n, line in new:
        for mask in _masks(f.path, line):
            if had[(mask, line.strip())] > 0:
                had[(mask, line.strip())] -= 1
            else:
                out.append(finding("test-run-disabled", f.path, n, mask, line.strip()))
    runs_old = _runs(f.old_path or f.path, f.before)
    runs_new = [line for _, line in _runs(f.path, f.after)]
    python = f.path.endswith(".py")
    risky_old = Counter(o for _, ln in runs_old for o in risky_options(_tokens(ln, python)))
    for n, line in _runs(f.path, f.after):
        for opt in risky_options(_tokens(line, python)):
            if risky_old[opt] > 0:
                risky_old[opt] -= 1
            else:
                msg = f"the test command gains `{opt}`: tests are deselected or not run"
                out.append(finding("test-run-disabled", f.path, n, msg, line))
    gone = Counter(line for _, line in runs_old) - Counter(runs_new)
    arrived = sum((Counter(runs_new) - Counter(line for _, line in runs_old)).values())
    removed: list[tuple[int, str]] = []
    for n, line in runs_old:
        if gone[line] > 0:
            gone[line] -= 1
            removed.append((n, line))
    for n, line in removed[arrived:]:  # a line edited in place is checked above, not removed
        msg = "removes a command that runs the tests"
        out.append(finding("test-run-disabled", f.old_path or f.path, n, msg, line))
    return out


def _is_run(line: str) -> bool:
    return bool(_RUNS_TESTS.search(line)) and not re.search(r"\binstall\b|^\s*(name|deps):", line)


def _runs(path: str, text: str | None) -> list[tuple[int, str]]:
    """The numbered lines that run the tests (in ``tox.ini``, only lines of ``commands`` settings)."""
    tox = PurePosixPath(path).name == "tox.ini"
    key, out = "", []
    for n, line in enumerate((text or "").splitlines(), 1):
        if line.startswith("["):
            key = ""
        elif m := re.match(r"([A-Za-z_][\w.\-]*)\s*[=:]", line):
            key = m[1]
        if line.strip().startswith("#") or (tox and not key.startswith("commands")):
            continue
        if _is_run(line):
            out.append((n, line.strip()))
    return out
