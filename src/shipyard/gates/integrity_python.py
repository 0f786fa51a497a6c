"""Test integrity, Python side: the tests of each changed file before and after, and what they lost.

Tests are read with ``ast`` (nothing is imported or run): test functions and methods, the checks each
makes (asserts, ``assert*`` calls, ``pytest.raises``/``warns``), the skips and xfails that apply to them
(decorators, class and module ``pytestmark``, ``pytest.skip`` calls, ``raise SkipTest``) and the
assertions that cannot fail. A test before is paired with the same test after even when it moved into a
class or to another file, so a refactor that keeps every test, skip and check produces no finding.
"""

from __future__ import annotations

import ast
import operator
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import PurePosixPath
from typing import Any

from shipyard.gates.base import ChangeView
from shipyard.model import Finding

TOOL = "integrity"
SNIPPET_CHARS = 200
"""Longest offending line quoted in a finding; longer lines are cut."""


def is_test_file(path: str) -> bool:
    """``test_*.py``, ``*_test.py``, ``conftest.py``, or any Python file under a ``tests``/``test`` dir."""
    p = PurePosixPath(path)
    if p.suffix != ".py":
        return False
    n = p.name
    return (
        n == "conftest.py"
        or n.startswith("test_")
        or n.endswith("_test.py")
        or any(part in ("tests", "test") for part in p.parts[:-1])
    )


def finding(code: str, path: str, line: int | None, message: str, snippet: str = "") -> Finding:
    """A finding of this gate (its message cut to a readable length)."""
    if len(message) > 2 * SNIPPET_CHARS:
        message = message[: 2 * SNIPPET_CHARS] + "..."
    return Finding(tool=TOOL, code=code, path=path, line=line, message=message, snippet=snippet)


def source_line(text: str | None, line: int | None) -> str:
    """Line ``line`` (1-based) of ``text``, stripped; empty when there is no such line."""
    lines = (text or "").splitlines()
    found = lines[line - 1].strip() if line and 0 < line <= len(lines) else ""
    return found if len(found) <= SNIPPET_CHARS else found[:SNIPPET_CHARS] + "..."


def dotted(node: ast.AST) -> str:
    """``pytest.mark.skip`` for that attribute chain; empty for anything but names and attributes."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def parse(text: str) -> ast.Module:
    """The module's syntax tree, without the warnings Python prints about it.

    Raises ``SyntaxError`` (also for null bytes or nesting too deep to parse).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(text)
        except (ValueError, RecursionError, MemoryError) as e:
            raise SyntaxError(f"cannot be parsed: {e}") from e


_MARKS = ("mark.skip", "mark.skipif", "mark.xfail")


def _is_skip(name: str) -> bool:
    """Whether a called or decorating name skips or xfails: pytest's, unittest's, or ``SkipTest``."""
    head, _, last = name.rpartition(".")
    return (
        name.endswith(_MARKS)
        or (last in ("skip", "xfail", "importorskip") and head in ("", "pytest"))
        or (last in ("skipIf", "skipUnless", "expectedFailure") and head in ("", "unittest"))
        or (last == "skip" and head == "unittest")
        or last in ("skipTest", "SkipTest")
        or name.endswith("skip.Exception")
    )


def skips_in(nodes: Iterable[ast.expr | ast.stmt]) -> list[tuple[int, str]]:
    """Each skip or xfail in the nodes, as (line, normalised source)."""
    found: dict[str, int] = {}
    for top in nodes:
        if not isinstance(top, ast.Call) and _is_skip(dotted(top)):  # a bare decorator or raise
            found.setdefault(ast.unparse(top), top.lineno)
        consumed: set[int] = set()
        for n in ast.walk(top):
            if isinstance(n, ast.Call) and _is_skip(dotted(n.func)):
                found.setdefault(ast.unparse(n), n.lineno)
                consumed.add(id(n.func))
            elif isinstance(n, ast.Raise) and n.exc is not None and _is_skip(dotted(n.exc)):
                found.setdefault(ast.unparse(n.exc), n.lineno)
            elif (
                isinstance(n, ast.Attribute)
                and id(n) not in consumed
                and dotted(n).endswith(_MARKS)
            ):
                found.setdefault(ast.unparse(n), n.lineno)
    return [(line, text) for text, line in found.items()]


def _assertions(
    fn: ast.FunctionDef | ast.AsyncFunctionDef, helpers: dict[str, int] | None = None
) -> tuple[tuple[str, int], ...]:
    """The checks a test makes, as (source, line).

    Asserts, ``assert*`` calls (``self.assertEqual``, ``mock.assert_called_once``), ``pytest.raises``
    and ``pytest.warns``; a call of one of the file's own ``helpers`` counts as the checks it makes.
    """
    out: list[tuple[str, int]] = []
    for n in (sub for stmt in fn.body for sub in ast.walk(stmt)):
        if isinstance(n, ast.Assert):
            out.append((ast.unparse(n), n.lineno))
        elif isinstance(n, ast.Call):
            name = dotted(n.func)
            last = name.rpartition(".")[2]
            if last.startswith("assert") or name in ("pytest.raises", "pytest.warns", "raises"):
                out.append((ast.unparse(n), n.lineno))
            else:
                out += [(ast.unparse(n), n.lineno)] * (helpers or {}).get(last, 0)
    return tuple(out)


def _helpers(tree: ast.Module) -> dict[str, int]:
    """The file's functions that are not tests but check something (``check_row``), and how much."""
    fns = (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
    counts = {n.name: len(_assertions(n)) for n in fns if not n.name.startswith("test")}
    return {name: count for name, count in counts.items() if count}


@dataclass(frozen=True, eq=False)
class _Test:
    path: str
    base: str  # the file's identity across the change: its path before
    qual: str  # "name" or "Class::name"
    name: str
    line: int
    snippet: str
    asserts: tuple[tuple[str, str], ...]  # (normalised source, source line)


@dataclass(frozen=True)
class _Site:
    owner: str  # "test:name", "class:Qual", "module" or "func:qual"
    text: str  # normalised source: what tells one site from another across the change
    line: int
    snippet: str
    covers: tuple[str, ...] = ()  # names of the tests it applies to


@dataclass
class _Module:
    tests: list[_Test] = field(default_factory=list)
    skips: list[_Site] = field(default_factory=list)
    functions: set[str] = field(default_factory=set)
    trivial: list[_Site] = field(default_factory=list)


_FN = (ast.FunctionDef, ast.AsyncFunctionDef)


def _analyse(tree: ast.Module, text: str, path: str, base: str) -> _Module:
    """The tests of one parsed file, the skips that apply to them, and its always-true assertions."""
    mod = _Module()
    test_file = is_test_file(path)
    helpers = _helpers(tree)

    def site(owner: str, found: list[tuple[int, str]], covers: Iterable[str] = ()) -> list[_Site]:
        return [_Site(owner, t, ln, source_line(text, ln), tuple(covers)) for ln, t in found]

    def add_fn(fn: ast.FunctionDef | ast.AsyncFunctionDef, qual: str, is_test: bool) -> list[str]:
        found = skips_in([*fn.decorator_list, *fn.body])
        if not is_test:
            mod.functions.add(qual)
            if not fn.name.startswith("pytest_"):  # hooks are judged as hooks (see integrity.py)
                mod.skips += site(f"func:{qual}", found)
            return []
        checks = tuple((s, source_line(text, ln)) for s, ln in _assertions(fn, helpers))
        mod.tests.append(
            _Test(path, base, qual, fn.name, fn.lineno, source_line(text, fn.lineno), checks)
        )
        mod.skips += site(f"test:{fn.name}", found, [fn.name])
        return [fn.name]

    def add_class(cls: ast.ClassDef, prefix: str) -> list[str]:
        qual = f"{prefix}{cls.name}"
        is_test_cls = cls.name.startswith("Test") or any(
            dotted(b).endswith("TestCase") for b in cls.bases
        )
        names: list[str] = []
        rest: list[ast.expr | ast.stmt] = list(cls.decorator_list)
        for stmt in cls.body:
            if isinstance(stmt, _FN):
                is_test = is_test_cls and stmt.name.startswith("test")
                names += add_fn(stmt, f"{qual}::{stmt.name}", is_test)
            elif isinstance(stmt, ast.ClassDef):
                names += add_class(stmt, f"{qual}::")
            else:
                rest.append(stmt)
        mod.skips += site(f"class:{qual}", skips_in(rest), names)
        return names

    names: list[str] = []
    rest: list[ast.expr | ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, _FN):
            names += add_fn(stmt, stmt.name, test_file and stmt.name.startswith("test"))
        elif isinstance(stmt, ast.ClassDef):
            names += add_class(stmt, "")
        else:
            rest.append(stmt)
    mod.skips += site("module", skips_in(rest), names)
    if not (test_file or mod.tests):
        mod.skips = []
    if test_file:
        trivial = [(getattr(n, "lineno", 0), ast.unparse(n)) for n in ast.walk(tree) if _trivial(n)]
        mod.trivial = site("module", trivial)
    return mod


_CMP: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip


def _truth(e: ast.expr) -> bool | None:
    """The expression's truth value when it is the same whatever the code does, else ``None``."""
    if isinstance(e, ast.Constant):
        return bool(e.value)
    if isinstance(e, ast.Tuple | ast.List | ast.Set):
        return True if e.elts else None
    if isinstance(e, ast.JoinedStr):
        return True if any(isinstance(v, ast.Constant) and v.value for v in e.values) else None
    if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.Not):
        inner = _truth(e.operand)
        return None if inner is None else not inner
    if isinstance(e, ast.BoolOp):
        values = [_truth(v) for v in e.values]
        if isinstance(e.op, ast.Or):
            return True if True in values else (False if all(v is False for v in values) else None)
        return False if False in values else (True if all(values) else None)
    if isinstance(e, ast.Compare) and len(e.ops) == 1:
        left, right, op = e.left, e.comparators[0], e.ops[0]
        if ast.dump(left) == ast.dump(right) and isinstance(
            op, ast.Eq | ast.Is | ast.LtE | ast.GtE
        ):
            return True
        try:
            return bool(_CMP[type(op)](ast.literal_eval(left), ast.literal_eval(right)))
        except (KeyError, ValueError, TypeError, SyntaxError, RecursionError):
            return None
    return None


def _trivial(n: ast.AST) -> bool:
    """An assertion that cannot fail: ``assert True``, ``assert x == x``, ``self.assertTrue(1)``..."""
    if isinstance(n, ast.Assert):
        return _truth(n.test) is True
    if isinstance(n, ast.Call) and n.args:
        last = dotted(n.func).rpartition(".")[2]
        if last == "assertTrue":
            return _truth(n.args[0]) is True
        if last == "assertFalse":
            return _truth(n.args[0]) is False
        if last in ("assertEqual", "assertIs") and len(n.args) >= 2:
            return ast.dump(n.args[0]) == ast.dump(n.args[1])
    return False


def _match(
    before: list[_Test], after: list[_Test]
) -> tuple[list[tuple[_Test, _Test]], list[_Test]]:
    """Pair each test before with the same test after: same file and class, same file, then anywhere.

    Returns the pairs and the tests before that have no counterpart after.
    """
    pairs: list[tuple[_Test, _Test]] = []
    keys: tuple[Callable[[_Test], object], ...] = (
        lambda t: (t.base, t.qual),
        lambda t: (t.base, t.name),
        lambda t: t.name,
    )
    for key in keys:
        pool: dict[object, list[_Test]] = {}
        for t in after:
            pool.setdefault(key(t), []).append(t)
        unmatched: list[_Test] = []
        for b in before:
            if pool.get(key(b)):
                pairs.append((b, pool[key(b)].pop(0)))
            else:
                unmatched.append(b)
        taken = {id(a) for _, a in pairs}
        before, after = unmatched, [t for t in after if id(t) not in taken]
    return pairs, before


def _modules(view: ChangeView) -> tuple[dict[str, _Module], dict[str, _Module], list[Finding]]:
    """Each changed Python file analysed before and after (keyed by its path after the change)."""
    before: dict[str, _Module] = {}
    after: dict[str, _Module] = {}
    broken: list[Finding] = []
    for f in view.files:
        base = f.old_path or f.path
        if not (base.endswith(".py") or f.path.endswith(".py")):
            continue
        try:  # a file renamed away from .py no longer holds tests
            new = parse(f.after) if f.after is not None and f.path.endswith(".py") else None
        except SyntaxError as e:
            if is_test_file(f.path):
                line = e.lineno
                msg = f"does not parse after the change ({e.msg}): none of its tests can run"
                broken.append(
                    finding("unparsable-test", f.path, line, msg, source_line(f.after, line))
                )
            continue  # its tests are neither deleted nor kept: the file no longer runs at all
        try:
            if f.before is not None:
                before[f.path] = _analyse(parse(f.before), f.before, base, base)
        except SyntaxError:
            pass  # no baseline to compare with
        if new is not None and f.after is not None:
            after[f.path] = _analyse(new, f.after, f.path, base)
    return before, after, broken


def python_findings(view: ChangeView) -> list[Finding]:
    """Deleted tests, new skips, removed and always-true assertions, test files that do not parse."""
    before, after, out = _modules(view)
    old_tests = [t for m in before.values() for t in m.tests]
    pairs, deleted = _match(old_tests, [t for m in after.values() for t in m.tests])
    for t in deleted:
        ids = (f"{t.path}::{t.name}", f"{t.path}::{t.qual}")
        if not any(fnmatch(i, p) for i in ids for p in view.allowed_removals):
            msg = f"removes the test {t.path}::{t.qual}"
            out.append(finding("deleted-test", t.path, t.line, msg, t.snippet))
    for b, a in pairs:
        if len(a.asserts) < len(b.asserts):
            gone = Counter(s for s, _ in b.asserts) - Counter(s for s, _ in a.asserts)
            lines = [line for s, line in b.asserts if gone[s] > 0]
            msg = f"{a.qual} now makes {len(a.asserts)} check(s), down from {len(b.asserts)}"
            out.append(finding("removed-assertion", a.path, a.line, msg, "\n".join(lines)))
    had_skip = Counter((s.owner, s.text) for m in before.values() for s in m.skips)
    functions = {q for m in before.values() for q in m.functions}
    existing = {t.name for t in old_tests}
    for path, mod in after.items():
        for s in _new(mod.skips, had_skip):
            hit = [n for n in s.covers if n in existing]
            if hit:
                whom = f"{len(hit)} existing test(s): {', '.join(hit[:5])}"
            elif s.owner.startswith("func:") and s.owner[5:] in functions:
                whom = f"every test using {s.owner[5:].replace('::', '.')}"
            else:
                continue  # a skip on a test the change adds: nothing that used to run stops running
            out.append(
                finding("new-skip", path, s.line, f"adds {s.text}, skipping {whom}", s.snippet)
            )
        had = Counter((s.owner, s.text) for s in before[path].trivial) if path in before else None
        for s in _new(mod.trivial, had or Counter()):
            msg = f"adds an assertion that cannot fail: {s.text}"
            out.append(finding("trivial-assertion", path, s.line, msg, s.snippet))
    return out


def _new(sites: list[_Site], had: Counter[tuple[str, str]]) -> list[_Site]:
    """The sites not already there before (each site before accounts for one after)."""
    out: list[_Site] = []
    for s in sites:
        if had[(s.owner, s.text)] > 0:
            had[(s.owner, s.text)] -= 1
        else:
            out.append(s)
    return out
