"""A map of the repository for the agent's first look: each file with its most used definitions,
ranked by how much the rest of the code relies on them and cut to a token budget.

Like aider's repo map: tree-sitter finds each Python file's classes, functions and methods and the
names it uses; files form a graph (A uses a name B defines), a PageRank over it ranks files and
definitions, and files the task names or recent commits touched get a head start. Other files are
listed by path only. The same tree always gives the same map.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

import tree_sitter_python
from tree_sitter import Language, Node, Parser, Query, QueryCursor

from shipyard.agent.context.rules import CommitTree
from shipyard.agent.messages import estimate_tokens

MAX_FILE_BYTES = 100 * 1024
"""Larger files are left out of the map (generated code, data)."""
MAX_PARSED_FILES = 2000
NAMED_BOOST = 20.0
RECENT_BOOST = 4.0
SIGNATURE_CHARS = 160

_PYTHON_SUFFIXES = (".py", ".pyi")
_DAMPING = 0.85
_ITERATIONS = 100
# Statements whose blocks may hold definitions (``if TYPE_CHECKING:``, ``try: import``…);
# function bodies are not among them: what a function defines inside is private to it.
_CONTAINERS = frozenset(
    {"block", "if_statement", "elif_clause", "else_clause", "try_statement", "except_clause"}
    | {"finally_clause", "with_statement"}
)


@dataclass(frozen=True, kw_only=True)
class Definition:
    """A class, function or method: its name, signature line, 1-based line and enclosing class."""

    name: str
    signature: str
    line: int
    depth: int
    parent: int | None = None
    """Index of the enclosing class in the file's definitions."""


@dataclass(frozen=True, kw_only=True)
class FileSymbols:
    """What one file defines and which names it uses (and how often)."""

    path: str
    definitions: tuple[Definition, ...] = ()
    references: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RepoMap:
    """The rendered map, its estimated size, and the files it shows, best ranked first."""

    text: str
    tokens: int
    files: tuple[str, ...]
    total_files: int


@lru_cache(maxsize=1)
def _python() -> tuple[Parser, Query]:
    language = Language(tree_sitter_python.language())
    return Parser(language), Query(language, "(identifier) @name")


_CACHE_SIZE = 4096
# blob id -> symbols; content-addressed, so an entry is never stale
_by_blob: dict[str, tuple[tuple[Definition, ...], Mapping[str, int]]] = {}


def extract(path: str, source: str, *, blob: str | None = None) -> FileSymbols:
    """Definitions and referenced names of one Python file (tree-sitter tolerates syntax errors).

    With ``blob``, the git object id of ``source``, the result is kept: a worker maps the same
    commits again and again, and a blob's content never changes.
    """
    found = _by_blob.get(blob) if blob else None
    if found is None:
        found = _symbols(source)
        if blob:
            if len(_by_blob) >= _CACHE_SIZE:
                _by_blob.clear()
            _by_blob[blob] = found
    return FileSymbols(path=path, definitions=found[0], references=found[1])


def _symbols(source: str) -> tuple[tuple[Definition, ...], Mapping[str, int]]:
    parser, names = _python()
    data = source.encode()
    root = parser.parse(data).root_node
    defs: list[Definition] = []
    def_names: set[int] = set()

    def text(start: int, end: int) -> str:
        return data[start:end].decode(errors="replace")

    def visit(node: Node, depth: int, parent: int | None) -> None:
        for child in node.named_children:
            target = child.child_by_field_name("definition") or child
            name, body = target.child_by_field_name("name"), target.child_by_field_name("body")
            if target.type in ("class_definition", "function_definition") and name and body:
                def_names.add(name.start_byte)
                defs.append(
                    Definition(
                        name=text(name.start_byte, name.end_byte),
                        signature=_one_line(text(target.start_byte, body.start_byte)),
                        line=target.start_point.row + 1,
                        depth=depth,
                        parent=parent,
                    )
                )
                if target.type == "class_definition":
                    visit(body, depth + 1, len(defs) - 1)
            elif target.type in _CONTAINERS:
                visit(target, depth, parent)

    visit(root, 0, None)
    used = Counter(
        text(n.start_byte, n.end_byte)
        for n in QueryCursor(names).captures(root).get("name", [])
        if n.start_byte not in def_names
    )
    return tuple(defs), MappingProxyType(dict(used))


def _one_line(signature: str) -> str:
    flat = re.sub(r"\s+", " ", signature).strip()
    flat = re.sub(r"\( ", "(", re.sub(r",? \)", ")", flat))
    return flat if len(flat) <= SIGNATURE_CHARS else flat[: SIGNATURE_CHARS - 1] + "…"


def pagerank(
    nodes: Sequence[str], edges: Mapping[str, Mapping[str, float]], personal: Mapping[str, float]
) -> dict[str, float]:
    """Each node's share of a random walk along weighted edges that restarts by ``personal``."""
    total = sum(personal.get(n, 0.0) for n in nodes) or 1.0
    restart = {n: personal.get(n, 0.0) / total for n in nodes}
    out = {n: sum(edges.get(n, {}).values()) for n in nodes}
    rank = dict(restart)
    for _step in range(_ITERATIONS):
        dangling = sum(rank[n] for n in nodes if not out[n])
        new = {n: (1 - _DAMPING + _DAMPING * dangling) * restart[n] for n in nodes}
        for src in nodes:
            for dst, weight in edges.get(src, {}).items():
                new[dst] += _DAMPING * rank[src] * weight / out[src]
        done = sum(abs(new[n] - rank[n]) for n in nodes) < 1e-12
        rank = new
        if done:
            break
    return rank


def rank_symbols(
    files: Sequence[FileSymbols], boost: Mapping[str, float]
) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """File ranks, and each (file, name)'s share of the rank flowing to it from files that use it.

    A name defined in several files is shared among them; dunder names are called implicitly and
    tell nothing about who depends on whom.
    """
    definers: dict[str, list[str]] = {}
    for f in files:
        for d in f.definitions:
            if f.path not in definers.setdefault(d.name, []):
                definers[d.name].append(f.path)
    edges: dict[str, dict[str, float]] = {}
    via: dict[str, dict[tuple[str, str], float]] = {}
    for f in files:
        for name, count in sorted(f.references.items()):
            targets = [p for p in definers.get(name, ()) if p != f.path]
            if name.startswith("__") or not targets:
                continue
            for dst in targets:
                weight = math.sqrt(count) / len(definers[name])
                edges.setdefault(f.path, {}).setdefault(dst, 0.0)
                edges[f.path][dst] += weight
                via.setdefault(f.path, {})[(dst, name)] = weight
    paths = [f.path for f in files]
    ranks = pagerank(paths, edges, {p: boost.get(p, 1.0) for p in paths})
    scores: dict[tuple[str, str], float] = {}
    for src, used in via.items():
        out = sum(used.values())
        for key, weight in used.items():
            scores[key] = scores.get(key, 0.0) + ranks[src] * weight / out
    return ranks, scores


def render(
    files: Sequence[FileSymbols], ranks: Mapping[str, float], chosen: Iterable[tuple[str, int]]
) -> tuple[str, tuple[str, ...]]:
    """The text for the chosen (path, definition index) pairs (index -1: the path alone)."""
    by_path: dict[str, set[int]] = {}
    for path, index in chosen:
        by_path.setdefault(path, set()).add(index)
    symbols = {f.path: f for f in files}
    order = sorted(by_path, key=lambda p: (-ranks[p], p))
    lines: list[str] = []
    shown_defs = 0
    for path in order:
        defs = symbols[path].definitions
        shown = {i for i in by_path[path] if i >= 0}
        for i in list(shown):  # a method is shown inside its class
            while (parent := defs[i].parent) is not None:
                shown.add(parent)
                i = parent
        shown_defs += len(shown)
        lines.append(path)
        lines += [
            f"  {defs[i].line}: {'    ' * defs[i].depth}{defs[i].signature}" for i in sorted(shown)
        ]
    hidden = {
        "files": len(files) - len(order),
        "definitions": sum(len(f.definitions) for f in files) - shown_defs,
    }
    if lines and any(hidden.values()):
        counts = ", ".join(f"{n} more {what}" for what, n in hidden.items() if n)
        lines.append(f"[… not shown: {counts}]")
    return "\n".join(lines), tuple(order)


def _defs(files: Iterable[FileSymbols]) -> Iterator[tuple[FileSymbols, int, Definition]]:
    return ((f, i, d) for f in files for i, d in enumerate(f.definitions))


def build_repo_map(
    tree: CommitTree,
    *,
    budget_tokens: int,
    named: Iterable[str] = (),
    recent: Iterable[str] = (),
) -> RepoMap:
    """The map of ``tree`` in at most ``budget_tokens``; ``named`` and ``recent`` files rank higher."""
    boost = dict.fromkeys(recent, RECENT_BOOST) | dict.fromkeys(named, NAMED_BOOST)
    candidates = [p for p in tree.files() if tree.entries[p].size <= MAX_FILE_BYTES]
    python = sorted(
        (p for p in candidates if p.endswith(_PYTHON_SUFFIXES)), key=lambda p: (p not in boost, p)
    )[:MAX_PARSED_FILES]
    sources = tree.read(python, max_bytes=MAX_FILE_BYTES)
    text_files = tree.text_files()
    files = [
        extract(p, sources[p], blob=tree.entries[p].oid) if p in sources else FileSymbols(path=p)
        for p in candidates
        if p in sources or p in text_files
    ]
    ranks, scores = rank_symbols(files, boost)
    # The budget is filled from the front: definitions other files use, by how much rank flows
    # to them; then every file's path, by rank; then the remaining definitions, by their file's rank.
    items = sorted(
        [
            (0, -scores[(f.path, d.name)], f.path, i)
            for f, i, d in _defs(files)
            if (f.path, d.name) in scores
        ]
        + [(1, -ranks[f.path], f.path, -1) for f in files]
        + [
            (2, -ranks[f.path], f.path, i)
            for f, i, d in _defs(files)
            if (f.path, d.name) not in scores
        ]
    )
    chosen = [(path, index) for _tier, _score, path, index in items]

    def fits(count: int) -> bool:
        return estimate_tokens(render(files, ranks, chosen[:count])[0]) <= budget_tokens

    low, high = 0, len(chosen)  # fits(low) always holds: nothing chosen renders as ""
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    text, shown = render(files, ranks, chosen[:low])
    return RepoMap(text=text, tokens=estimate_tokens(text), files=shown, total_files=len(files))


__all__ = [
    "Definition",
    "FileSymbols",
    "RepoMap",
    "build_repo_map",
    "extract",
    "pagerank",
    "rank_symbols",
    "render",
]
