"""A run's diff for the run page: read from the repository, redacted, each line highlighted.

Highlighting is Pygments' HTML, which escapes the text it is given; nothing from the diff reaches
the page unescaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup, escape

# Pygments ships no type information (and the lock has no stubs for it).
from pygments import highlight  # type: ignore[import-untyped]
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]
from pygments.lexer import Lexer  # type: ignore[import-untyped]
from pygments.lexers import TextLexer, get_lexer_for_filename  # type: ignore[import-untyped]
from pygments.util import ClassNotFound  # type: ignore[import-untyped]

from shipyard.errors import ShipyardError
from shipyard.gitcmd import git
from shipyard.redaction import redact_text

MAX_DIFF_LINES = 4000
"""Beyond this the page shows a note instead of the rest; the repository has the whole diff."""

_FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")


@dataclass(frozen=True, kw_only=True)
class DiffLine:
    kind: str  # add | del | ctx | hunk
    old: int | None
    new: int | None
    html: Markup


@dataclass(kw_only=True)
class DiffFile:
    path: str
    old_path: str | None = None
    added: int = 0
    deleted: int = 0
    binary: bool = False
    lines: list[DiffLine] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Diff:
    files: list[DiffFile]
    truncated: bool = False
    missing: str | None = None
    """Why no diff is shown (the commits are gone, the run made none)."""


def read_diff(repo: Path, base: str | None, head: str | None) -> Diff:
    """The diff between two commits of ``repo``, parsed for display."""
    if not base or not head:
        return Diff(files=[], missing="this run committed no change")
    try:
        out = git("diff", "--no-color", "--no-ext-diff", "-M", base, head, "--", cwd=repo).stdout
    except ShipyardError as exc:
        return Diff(files=[], missing=f"the change's commits are no longer in {repo}: {exc}")
    return parse_diff(redact_text(out))


def parse_diff(text: str, *, max_lines: int = MAX_DIFF_LINES) -> Diff:
    """Parse ``git diff`` output into files and highlighted lines (at most ``max_lines``)."""
    files: list[DiffFile] = []
    current: DiffFile | None = None
    lexer: Lexer = TextLexer()
    old = new = 0
    shown = 0
    truncated = False
    for raw in text.splitlines():
        if raw.startswith("diff --git "):
            current = DiffFile(path=_path_of(raw))
            files.append(current)
            lexer = _lexer_for(current.path)
            continue
        if current is None:
            continue
        if raw.startswith("rename from "):
            current.old_path = raw.removeprefix("rename from ")
        elif raw.startswith("rename to "):
            current.path = raw.removeprefix("rename to ")
        elif raw.startswith("Binary files "):
            current.binary = True
        elif raw.startswith("+++ ") or raw.startswith("--- "):
            continue
        elif raw.startswith("@@"):
            old, new = _hunk_start(raw)
            shown += 1
            if shown <= max_lines:
                current.lines.append(DiffLine(kind="hunk", old=None, new=None, html=escape(raw)))
        elif raw[:1] in ("+", "-", " ") or raw == "":
            sign, body = raw[:1], raw[1:]
            if sign == "+":
                current.added += 1
                line = DiffLine(kind="add", old=None, new=new, html=_highlight(body, lexer))
                new += 1
            elif sign == "-":
                current.deleted += 1
                line = DiffLine(kind="del", old=old, new=None, html=_highlight(body, lexer))
                old += 1
            else:
                line = DiffLine(kind="ctx", old=old, new=new, html=_highlight(body, lexer))
                old, new = old + 1, new + 1
            shown += 1
            if shown <= max_lines:
                current.lines.append(line)
            else:
                truncated = True
    return Diff(files=files, truncated=truncated)


def _path_of(header: str) -> str:
    # "diff --git a/x b/x": the b/ side is the path after the change.
    _, _, rest = header.partition(" b/")
    return rest or header.removeprefix("diff --git ")


def _hunk_start(header: str) -> tuple[int, int]:
    try:
        ranges = header.split("@@")[1].split()
        old = int(ranges[0].lstrip("-").split(",")[0])
        new = int(ranges[1].lstrip("+").split(",")[0])
    except (IndexError, ValueError):
        return 0, 0
    return old, new


def _lexer_for(path: str) -> Lexer:
    try:
        return get_lexer_for_filename(path, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


def _highlight(code: str, lexer: Lexer) -> Markup:
    # Each line on its own: a string or comment spanning lines loses its colour, never its escaping.
    return Markup(highlight(code, lexer, _FORMATTER).rstrip("\n"))


def stylesheet() -> str:
    """The CSS classes the highlighted lines use."""
    return str(_FORMATTER.get_style_defs(".diff"))
