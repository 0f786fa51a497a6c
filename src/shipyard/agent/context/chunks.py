"""Code and text cut into chunks worth retrieving on their own: a Python file into its functions,
classes (large ones into their methods) and the module code between them; any other text file,
or what tree-sitter cannot place, into windows of lines.

Chunks are pure values from a path and its text; the same text always gives the same chunks, and a
chunk's ``digest`` names what is embedded, so a vector is computed once for it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache

import tree_sitter_python
from tree_sitter import Language, Node, Parser

CHUNKER_VERSION = 2
"""Bumped when chunking changes, so cached chunks of an older chunker are not used."""
MAX_CHUNK_LINES = 80
"""A definition longer than this is cut into windows (a class first into its methods)."""
WINDOW_LINES = 40
WINDOW_OVERLAP = 8
MAX_EMBED_CHARS = 700
"""What of a chunk is embedded: the model reads its first 128 word pieces (about 400-600
characters of code) anyway, and the tokenizer need not split the rest."""
MAX_SUMMARY_CHARS = 160
PYTHON_SUFFIXES = (".py", ".pyi")
TEXT_SUFFIXES = (".md", ".rst", ".txt", ".toml", ".cfg", ".ini", ".yaml", ".yml")

_DEFINITIONS = frozenset({"function_definition", "class_definition"})
_DOCSTRING = re.compile(r"""\s*[rRuU]?(?:\"\"\"|\'\'\')\s*([^\n]*)""")
_HEADING = re.compile(r"\s*#+\s*([^\n]*)")


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """Lines ``start``..``end`` (1-based, inclusive) of ``path``: a ``kind`` of code named ``name``."""

    path: str
    start: int
    end: int
    kind: str
    """``function``, ``class``, ``method``, ``module`` (code between definitions) or ``text``."""
    name: str
    text: str
    summary: str = ""
    """What the file is about, in one line (its docstring's or heading's), for chunks that do not
    begin the file: a function of ``compaction.py`` reads as part of "Compaction of old turns"."""

    @property
    def embed_text(self) -> str:
        """What the model reads: where the chunk is, what it is called and what its file is about,
        then its head.

        The head is the chunk's non-blank lines, unindented, from the top: for a definition its
        decorators, signature, docstring and first statements, which is what the model's 128 word
        pieces hold of a long chunk.
        """
        label = f"{self.path} {self.kind} {self.name}".strip()
        if self.summary and self.start > 1:
            label = f"{label}: {self.summary}"
        head = "\n".join(line.strip() for line in self.text.splitlines() if line.strip())
        return f"{label}\n{head}"[:MAX_EMBED_CHARS]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.embed_text.encode()).hexdigest()


def indexable(path: str) -> bool:
    """Whether chunks are made of ``path``: Python sources and common text formats."""
    return path.endswith(PYTHON_SUFFIXES + TEXT_SUFFIXES)


def chunk_file(path: str, text: str) -> list[Chunk]:
    """The chunks of one file, in order of their first line; none for an empty file."""
    if not text.strip():
        return []
    if path.endswith(PYTHON_SUFFIXES):
        chunks = _python_chunks(path, text)
    else:
        chunks = list(_windows(path, text.splitlines(), 1, len(text.splitlines()), "text", ""))
    about = summary(path, text)
    return [replace(c, summary=about) for c in chunks] if about else chunks


def summary(path: str, text: str) -> str:
    """The first line of a Python file's docstring, or of a text file's opening ``#`` heading or
    comment; empty when the file opens otherwise."""
    pattern = _DOCSTRING if path.endswith(PYTHON_SUFFIXES) else _HEADING
    found = pattern.match(text)
    line = found.group(1).strip().rstrip("\"'").strip() if found else ""
    return line[:MAX_SUMMARY_CHARS]


@lru_cache(maxsize=1)
def _parser() -> Parser:
    return Parser(Language(tree_sitter_python.language()))


def _python_chunks(path: str, text: str) -> list[Chunk]:
    lines = text.splitlines()
    root = _parser().parse(text.encode()).root_node
    chunks: list[Chunk] = []
    pending: list[Node] = []  # module-level statements since the last definition

    def flush() -> None:
        # A run of imports alone tells nothing the repo map does not.
        if pending and not all(n.type.startswith(("import", "future_import")) for n in pending):
            start, end = pending[0].start_point.row + 1, pending[-1].end_point.row + 1
            chunks.extend(_windows(path, lines, start, end, "module", ""))
        pending.clear()

    for node in root.named_children:
        target = _definition(node)
        if target is None:
            pending.append(node)
            continue
        flush()
        chunks.extend(_definition_chunks(path, lines, node, target, prefix=""))
    flush()
    return chunks


def _definition(node: Node) -> Node | None:
    """The class or function ``node`` is (through its decorators), if it is one."""
    target = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
    if target is not None and target.type in _DEFINITIONS and target.child_by_field_name("name"):
        return target
    return None


def _definition_chunks(
    path: str, lines: list[str], node: Node, target: Node, *, prefix: str
) -> Iterator[Chunk]:
    name_node = target.child_by_field_name("name")
    name = prefix + (name_node.text or b"" if name_node else b"").decode(errors="replace")
    start, end = node.start_point.row + 1, node.end_point.row + 1
    is_class = target.type == "class_definition"
    kind = "class" if is_class else ("method" if prefix else "function")
    if end - start + 1 <= MAX_CHUNK_LINES:
        yield _chunk(path, lines, start, end, kind, name)
        return
    body = target.child_by_field_name("body")
    members = [
        (child, member)
        for child in (body.named_children if is_class and body is not None else [])
        if (member := _definition(child)) is not None
    ]
    if not members:
        yield from _windows(path, lines, start, end, kind, name)
        return
    # The class line, its docstring and attributes up to the first method, then each method.
    head_end = members[0][0].start_point.row
    yield from _windows(path, lines, start, max(start, head_end), "class", name)
    for child, member in members:
        yield from _definition_chunks(path, lines, child, member, prefix=f"{name}.")


def _windows(
    path: str, lines: list[str], start: int, end: int, kind: str, name: str
) -> Iterator[Chunk]:
    """Lines ``start``..``end`` in overlapping windows, blank ones left out."""
    first = start
    while first <= end:
        last = min(end, first + WINDOW_LINES - 1)
        chunk = _chunk(path, lines, first, last, kind, name)
        if chunk.text.strip():
            yield chunk
        if last == end:
            break
        first = last + 1 - WINDOW_OVERLAP


def _chunk(path: str, lines: list[str], start: int, end: int, kind: str, name: str) -> Chunk:
    text = "\n".join(lines[start - 1 : end])
    return Chunk(path=path, start=start, end=end, kind=kind, name=name, text=text)


__all__ = ["CHUNKER_VERSION", "Chunk", "chunk_file", "indexable"]
