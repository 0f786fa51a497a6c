"""The test-integrity gate: changes that make the tests stop testing.

An agent that cannot make a test pass can make it stop failing instead: delete it, skip it, strip its
assertions, assert something always true, exclude code from coverage, or stop the test run from
collecting the test or from failing. ``IntegrityGate`` reads only the text of each changed file before
and after the change and runs nothing of the tree. It reports what the change newly does; what the
baseline already did is not held against it, and a refactor that keeps every test, skip and check
(tests moved into a class or another file, decorators reordered, code reformatted) finds nothing.

Tests are compared in ``integrity_python``, settings and CI definitions in ``integrity_config``; this
module adds the ``conftest.py`` hooks that deselect tests or rewrite their outcomes, and turns every
finding into the gate's result. Codes: ``deleted-test``, ``new-skip``, ``removed-assertion``,
``trivial-assertion``, ``unparsable-test``, ``coverage-config``, ``test-run-disabled``.
"""

from __future__ import annotations

import ast
import time
from collections import Counter
from dataclasses import asdict
from pathlib import PurePosixPath

import pathspec

from shipyard.config import GatesConfig
from shipyard.gates.base import ChangeView
from shipyard.gates.integrity_config import (
    STRUCTURED_CONFIG,
    ci_findings,
    coverage_findings,
    pragma_findings,
    pytest_findings,
)
from shipyard.gates.integrity_python import (
    dotted,
    finding,
    parse,
    python_findings,
    skips_in,
    source_line,
)
from shipyard.model import ChangedFile, Finding, GateResult

GATE = "integrity"
_COLLECTION_HOOKS = {"pytest_collection_modifyitems", "pytest_collection_finish"}
_REMOVES = {"remove", "pop", "clear", "pytest_deselected"}
_CLAIMS = {"pytest_pyfunc_call", "pytest_runtest_protocol", "pytest_runtest_call"}
"""Hooks whose non-``None`` return means "handled": the test body is not run by pytest."""
_OUTCOME_ATTRS = {"outcome", "longrepr", "wasxfail", "exitstatus", "excinfo"}
_REWRITES = {"force_result", "force_exception", "set_result"}
_IGNORE_LISTS = ("collect_ignore", "collect_ignore_glob")


def _hook_signals(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[int, str]]:
    """What in a pytest hook drops tests, skips them, or rewrites their outcome."""
    out = list(skips_in(fn.body))
    for n in (sub for stmt in fn.body for sub in ast.walk(stmt)):
        method = dotted(n.func).rpartition(".")[2] if isinstance(n, ast.Call) else ""
        targets = n.targets if isinstance(n, ast.Assign) else []
        if isinstance(n, ast.AugAssign | ast.AnnAssign):
            targets = [n.target]
        collecting = fn.name in _COLLECTION_HOOKS
        if (
            (collecting and method in _REMOVES)
            or method in _REWRITES
            or (collecting and isinstance(n, ast.Delete))
            or (collecting and any(isinstance(t, ast.Subscript) for t in targets))
            or any(isinstance(t, ast.Attribute) and t.attr in _OUTCOME_ATTRS for t in targets)
            or any(
                ".option." in f"{dotted(t)}." or dotted(t).endswith("config.args") for t in targets
            )
            or (
                isinstance(n, ast.Return)
                and n.value is not None
                and fn.name in (*_CLAIMS, "pytest_ignore_collect")
                and not (isinstance(n.value, ast.Constant) and n.value.value in (None, False))
            )
        ):
            out.append((getattr(n, "lineno", fn.lineno), ast.unparse(n)))
    return out


def _conftest_signals(text: str | None) -> list[tuple[str, int, str]]:
    """Each (hook or ``module``, line, source) in a conftest that stops tests being collected or judged."""
    try:
        tree = parse(text) if text is not None else None
    except SyntaxError:
        tree = None
    out: list[tuple[str, int, str]] = []
    for stmt in tree.body if tree else []:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            if stmt.name.startswith("pytest_"):
                out += [(stmt.name, line, src) for line, src in _hook_signals(stmt)]
            continue
        for n in ast.walk(stmt):
            if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                names = [t.id for t in targets if isinstance(t, ast.Name) and t.id in _IGNORE_LISTS]
                value = n.value
                if names and isinstance(value, ast.List | ast.Tuple):
                    out += [
                        ("module", e.lineno, f"{names[0]} {ast.unparse(e)}") for e in value.elts
                    ]
                elif names and value is not None:
                    out.append(("module", n.lineno, ast.unparse(n)))
            elif isinstance(n, ast.Call) and dotted(n.func).startswith(tuple(_IGNORE_LISTS)):
                out.append(("module", n.lineno, ast.unparse(n)))
    return out


def conftest_findings(f: ChangedFile) -> list[Finding]:
    """``collect_ignore`` entries and hooks the change adds that drop, skip or pass tests unrun."""
    had = Counter((owner, src) for owner, _, src in _conftest_signals(f.before))
    out: list[Finding] = []
    for owner, line, src in _conftest_signals(f.after):
        if had[(owner, src)] > 0:
            had[(owner, src)] -= 1
            continue
        where = "at module level" if owner == "module" else f"in {owner}"
        msg = f"adds `{src.splitlines()[0]}` {where}: tests are not collected, run or judged"
        out.append(finding("test-run-disabled", f.path, line, msg, source_line(f.after, line)))
    return out


def findings(view: ChangeView, config: GatesConfig) -> list[Finding]:
    """Every way the change weakens the tests, sorted by place. Pure: reads only ``view``."""
    ci = pathspec.GitIgnoreSpec.from_lines(config.integrity.ci_paths)
    out = python_findings(view)
    for f in view.files:
        paths = [p for p in (f.path, f.old_path) if p]
        names = {PurePosixPath(p).name for p in paths}
        out += coverage_findings(f) + pragma_findings(f)
        if "conftest.py" in names:
            out += conftest_findings(f)
        if any(ci.match_file(p) for p in paths):
            out += pytest_findings(f)
            if not names & STRUCTURED_CONFIG:
                out += ci_findings(f)
    return sorted(out, key=lambda x: (x.path, x.line or 0, x.code, x.message))


def render(f: Finding) -> str:
    """The finding and its offending lines, indented under it."""
    return "\n".join([f.render(), *(f"    {line}" for line in f.snippet.splitlines())])


class IntegrityGate:
    """Checks that the change does not make tests stop testing (a ``DiffGate``)."""

    name = GATE

    def check(self, view: ChangeView, config: GatesConfig) -> GateResult:
        if not config.integrity.enabled:
            summary = "test integrity not checked: gates.integrity.enabled is false"
            return GateResult(gate=GATE, passed=True, summary=summary, skipped=True)
        start = time.monotonic()
        found = findings(view, config)
        counts = Counter(f.code for f in found)
        if found:
            kinds = ", ".join(f"{n} {code}" for code, n in sorted(counts.items()))
            summary = f"the change weakens the tests in {len(found)} place(s): {kinds}"
        else:
            summary = f"no test weakened in {len(view.files)} changed file(s)"
        return GateResult(
            gate=GATE,
            passed=not found,
            summary=summary,
            facts={"findings": [asdict(f) for f in found], "counts": dict(counts)},
            details=tuple(render(f) for f in found),
            duration_seconds=time.monotonic() - start,
        )
