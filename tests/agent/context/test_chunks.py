"""Chunking: a Python file into its definitions (large classes into methods) and the module code
between them; other text, and definitions too long to embed whole, into windows of lines."""

from __future__ import annotations

from shipyard.agent.context.chunks import (
    MAX_CHUNK_LINES,
    MAX_EMBED_CHARS,
    WINDOW_LINES,
    WINDOW_OVERLAP,
    chunk_file,
    indexable,
)

SOURCE = '''"""A module."""

import os
from typing import Any

LIMIT = 10


@decorator
def first(x: int) -> int:
    return x + 1


class Small:
    """Little."""

    def method(self) -> None:
        pass


if __name__ == "__main__":
    first(LIMIT)
'''


def spans(path: str, text: str) -> list[tuple[str, str, int, int]]:
    return [(c.kind, c.name, c.start, c.end) for c in chunk_file(path, text)]


def test_a_python_file_is_cut_at_its_definitions_with_decorators_and_module_code() -> None:
    assert spans("m.py", SOURCE) == [
        ("module", "", 1, 6),  # docstring, imports and the constant: not imports alone
        ("function", "first", 9, 11),
        ("class", "Small", 14, 18),
        ("module", "", 21, 22),
    ]
    [_, first, *_] = chunk_file("m.py", SOURCE)
    assert first.text.startswith("@decorator\ndef first")


def test_imports_alone_make_no_chunk() -> None:
    assert spans("m.py", "import os\nfrom x import y\n\n\ndef f():\n    pass\n") == [
        ("function", "f", 5, 6)
    ]


def test_a_large_class_is_cut_into_its_head_and_methods() -> None:
    methods = "".join(
        f"    def m{i}(self) -> int:\n" + "        x = 1\n" * 10 + "        return x\n\n"
        for i in range(8)
    )
    text = 'class Big:\n    """Many methods."""\n\n    size = 3\n\n' + methods
    found = spans("big.py", text)
    assert found[0][:2] == ("class", "Big")
    assert [name for kind, name, *_ in found[1:]] == [f"Big.m{i}" for i in range(8)]
    assert all(kind == "method" for kind, *_ in found[1:])
    assert all(end - start < MAX_CHUNK_LINES for *_, start, end in found)


def test_a_long_function_and_plain_text_fall_back_to_overlapping_line_windows() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(150))
    found = spans("long.py", "def long():\n" + body)
    assert {(k, n) for k, n, *_ in found} == {("function", "long")}
    assert found[0][2:] == (1, WINDOW_LINES)
    assert found[1][2] == WINDOW_LINES + 1 - WINDOW_OVERLAP
    assert found[-1][3] == 151
    text = "\n".join(f"line {i}" for i in range(1, 101))
    windows = spans("notes.md", text)
    assert all(kind == "text" for kind, *_ in windows)
    assert windows[0][2:] == (1, WINDOW_LINES)
    assert windows[-1][3] == 100


def test_broken_python_still_gives_chunks_and_empty_files_none() -> None:
    broken = "def ok():\n    return 1\n\ndef broken(:\n    pass\n"
    assert ("function", "ok", 1, 2) in spans("b.py", broken)
    assert chunk_file("e.py", "\n\n") == []
    assert chunk_file("e.md", "") == []


def test_the_digest_names_what_is_embedded_path_included() -> None:
    [a] = chunk_file("a.py", "def f():\n    return 1\n")
    [same] = chunk_file("a.py", "def f():\n    return 1\n")
    [moved] = chunk_file("b.py", "def f():\n    return 1\n")
    assert a.digest == same.digest != moved.digest
    assert a.embed_text.startswith("a.py function f\n")


def test_only_python_and_text_formats_are_indexed() -> None:
    assert indexable("src/x.py")
    assert indexable("README.md")
    assert indexable("pyproject.toml")
    assert not indexable("logo.png")
    assert not indexable("data.bin")
    assert not indexable("Makefile")


def test_what_is_embedded_is_the_label_and_the_head_of_the_chunk() -> None:
    body = "\n".join(f"    total += {i}  # step {i}" for i in range(200))
    text = f'def long(items):\n\n    """Sum of the items."""\n    total = 0\n{body}\n    return total\n'
    [chunk] = [c for c in chunk_file("m.py", text) if c.start == 1]
    embedded = chunk.embed_text
    assert embedded.startswith('m.py function long\ndef long(items):\n"""Sum of the items."""\n')
    assert "\n\n" not in embedded
    assert "\n    " not in embedded
    assert len(embedded) == MAX_EMBED_CHARS < len(chunk.text)


def test_chunks_after_the_first_carry_what_their_file_is_about() -> None:
    source = '"""Stock levels of the warehouse."""\n\n\ndef low(items):\n    return items\n'
    first, low = chunk_file("shop/stock.py", source)
    assert low.summary == "Stock levels of the warehouse."
    assert low.embed_text.startswith(
        "shop/stock.py function low: Stock levels of the warehouse.\ndef low(items):"
    )
    assert first.embed_text.startswith('shop/stock.py module\n"""Stock levels')
    [doc] = chunk_file("docs/deploy.md", "# Deploying\n\n" + "text\n" * 50)[1:]
    assert doc.embed_text.startswith("docs/deploy.md text: Deploying\n")
