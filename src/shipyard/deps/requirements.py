"""requirements.txt pins: read them, and rewrite one version leaving every other byte as it was."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from shipyard.errors import DependencyError

# The version of a `name[extras]==version` line, located so it can be replaced in place.
# `===` (arbitrary equality) is deliberately not a pin: it is not a version we can compare.
_PIN = re.compile(
    r"^(?P<head>[ \t]*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)[ \t]*(?:\[[^\]]*\])?[ \t]*==(?!=)[ \t]*)"
    r"(?P<version>[^\s;#\\,]+)"
)
# pip strips a comment only when `#` starts the line or follows whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")
# Per-requirement options such as `--hash=sha256:...` after the requirement itself.
_OPTIONS = re.compile(r"\s+--?[A-Za-z].*$")


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` line of a requirements file."""

    name: str
    canonical_name: NormalizedName
    version: Version
    line_no: int
    file: str


@dataclass(frozen=True)
class OtherLine:
    """A requirement line that is not an exact pin (range, option, include, URL): never updated."""

    text: str
    line_no: int
    file: str


@dataclass(frozen=True)
class Requirements:
    """A parsed requirements file: its exact pins and the requirement lines that are not pins."""

    pins: tuple[Pin, ...]
    not_updatable: tuple[OtherLine, ...]


def read_requirements(path: Path, *, relative_to: Path | None = None) -> Requirements:
    """Parse a requirements file; ``file`` in the results is relative to ``relative_to``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DependencyError(f"{path}: cannot be read as UTF-8 text ({exc}).") from exc
    name = path.relative_to(relative_to).as_posix() if relative_to else path.name
    return parse_text(text, file=name)


def parse_requirements(path: Path, *, relative_to: Path | None = None) -> list[Pin]:
    """Every exact pin in a requirements file, in file order."""
    return list(read_requirements(path, relative_to=relative_to).pins)


def parse_text(text: str, *, file: str = "requirements.txt") -> Requirements:
    """Parse requirements text. A line continued with a backslash counts once, by its first line."""
    pins: list[Pin] = []
    other: list[OtherLine] = []
    for line_no, first, logical in _logical_lines(text):
        content = _OPTIONS.sub("", _COMMENT.sub("", logical)).strip()
        if not content and not logical.strip().startswith("-"):
            continue  # blank or comment only
        pin = _pin(first, content, line_no, file)
        if pin is None:
            other.append(OtherLine(text=logical.strip(), line_no=line_no, file=file))
        else:
            pins.append(pin)
    return Requirements(pins=tuple(pins), not_updatable=tuple(other))


def parse_pins(text: str, *, file: str = "requirements.txt") -> list[Pin]:
    """The exact pins in requirements text."""
    return list(parse_text(text, file=file).pins)


def set_pin(text: str, name: str, new_version: str, *, line_no: int | None = None) -> str:
    """``text`` with the pin of ``name`` set to ``new_version``; every other byte stays as it was.

    When ``name`` is pinned on several lines (say, under different markers), ``line_no`` picks one.
    """
    try:
        Version(new_version)
    except InvalidVersion as exc:
        raise DependencyError(f"{new_version!r} is not a valid version for {name}.") from exc
    wanted = canonicalize_name(name)
    lines = text.splitlines(keepends=True)
    matches = [
        (number, match)
        for number, first, logical in _logical_lines(text)
        if (match := _PIN.match(first)) is not None
        and canonicalize_name(match["name"]) == wanted
        and _pin(first, _OPTIONS.sub("", _COMMENT.sub("", logical)).strip(), number, "") is not None
        and (line_no is None or number == line_no)
    ]
    if not matches:
        where = f" on line {line_no}" if line_no is not None else ""
        raise DependencyError(
            f"no `{name}==…` pin found{where} to update; was the file changed meanwhile?"
        )
    if len(matches) > 1:
        numbers = ", ".join(str(n) for n, _ in matches)
        raise DependencyError(
            f"{name} is pinned on lines {numbers}; say which line to update (line_no)."
        )
    number, match = matches[0]
    line = lines[number - 1]
    lines[number - 1] = line[: match.start("version")] + new_version + line[match.end("version") :]
    return "".join(lines)


def _pin(first: str, content: str, line_no: int, file: str) -> Pin | None:
    """A Pin when the line is exactly ``name[extras]==version`` (markers allowed), else None."""
    match = _PIN.match(first)
    if match is None:
        return None
    try:
        req = Requirement(content)
        version = Version(match["version"])
    except (InvalidRequirement, InvalidVersion):
        return None
    specs = list(req.specifier)
    if req.url or len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
        return None
    return Pin(
        name=req.name,
        canonical_name=canonicalize_name(req.name),
        version=version,
        line_no=line_no,
        file=file,
    )


def _logical_lines(text: str) -> list[tuple[int, str, str]]:
    """(number of its first physical line, that line, the joined text) for each logical line."""
    out: list[tuple[int, str, str]] = []
    physical = text.splitlines()
    i = 0
    while i < len(physical):
        start, first, parts = i + 1, physical[i], [physical[i]]
        # A comment line never continues, as in pip; any other line ending in `\` does.
        while parts[-1].endswith("\\") and not _COMMENT.match(parts[-1]) and i + 1 < len(physical):
            parts[-1] = parts[-1][:-1]
            i += 1
            parts.append(physical[i])
        out.append((start, first, " ".join(parts)))
        i += 1
    return out
