"""Requirements files (pip's format, pip-compile's ``.in`` sources and outputs): read and edit in place.

Every requirement keeps its layout: extras, markers, comments, ``\\`` continuations, CRLF line ends
and the indentation of ``--hash`` lines. A change rewrites the version (or the constraint) and, for a
hashed requirement, the hashes; nothing else.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from shipyard.deps.manifests.compiled import CompileHeader, parse_header
from shipyard.deps.manifests.model import (
    Change,
    Dependency,
    HashSource,
    ManifestKind,
    Unreadable,
)
from shipyard.errors import DependencyError

log = logging.getLogger(__name__)

SECTION = "requirements"
# pip strips a comment only when `#` starts the line or follows whitespace.
_COMMENT = re.compile(r"(^|\s)#.*$")
_HEAD = re.compile(
    r"^(?P<lead>\s*)(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*"
    r"(?:\[(?P<extras>[^\]]*)\]\s*)?"
)
# Where the constraint ends: a marker, a per-requirement option, or the end of the content.
_SPEC_END = re.compile(r"\s*(?:;|\s--?[A-Za-z]|$)")
_OPTION = re.compile(r"(?:^|\s)(--?[A-Za-z][A-Za-z-]*)")
_HASH = re.compile(r"--hash(?:=|\s+)(?P<algo>[A-Za-z0-9]+):(?P<digest>[0-9A-Fa-f]+)")
_INCLUDE = re.compile(
    r"^\s*(?P<opt>-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=-[rc]))(?P<path>\S+)"
)


class _Segment(NamedTuple):
    line: int  # index into the physical lines
    start: int  # column in that line where this segment's content begins
    offset: int  # where the segment begins in the logical text


@dataclass(frozen=True)
class _Logical:
    """One logical line (a requirement continued over physical lines counts once)."""

    first: int  # index of its first physical line
    last: int  # index of its last physical line
    text: str
    segments: tuple[_Segment, ...]

    def locate(self, offset: int) -> tuple[int, int]:
        """(physical line index, column) of a logical offset."""
        for seg in reversed(self.segments):
            if offset >= seg.offset:
                return seg.line, seg.start + offset - seg.offset
        return self.segments[0].line, offset  # pragma: no cover - offsets are never negative


@dataclass(frozen=True)
class Include:
    """A ``-r``/``-c`` line: another requirements (or constraints) file this one pulls in."""

    path: str
    constraint: bool
    line: int


@dataclass
class RequirementsFile:
    """A requirements file's text and what it says. ``compiled_from`` is the pip-compile source of
    an output file (from its header); ``header`` the command that compiled it."""

    path: str
    text: str
    compiled_from: str | None = None
    header: CompileHeader | None = None
    kind: ManifestKind = ManifestKind.REQUIREMENTS
    compile_dir: str = ""
    """The repo-relative folder the compile command ran in (its paths are relative to it)."""
    includes: list[Include] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    """Requirement lines that are not PEP 508: skipped with a warning, never rewritten."""
    _entries: list[tuple[_Logical, Dependency, re.Match[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.header = parse_header(self.text, self.path) if self.header is None else self.header
        if self.header is not None and self.compiled_from is None and self.header.sources:
            self.compiled_from = self.header.sources[0]
        self._parse()

    def dependencies(self) -> list[Dependency]:
        return [dep for _, dep, _ in self._entries]

    def apply(self, changes: Sequence[Change], *, hashes: HashSource) -> str:
        lines = self.text.splitlines(keepends=True)
        for change in changes:
            if change.manifest != self.path or change.section not in (None, SECTION):
                continue
            hits = [e for e in self._entries if e[1].canonical_name == change.canonical_name]
            if not hits:
                raise DependencyError(
                    f"{self.path}: {change.canonical_name} is not a requirement here; "
                    "was the file changed meanwhile? Plan the update again."
                )
            for logical, dep, head in hits:
                self._edit(lines, logical, dep, head, change, hashes)
        return "".join(lines)

    # -- reading

    def _parse(self) -> None:
        for logical in _logical_lines(self.text):
            content = _COMMENT.sub("", logical.text).rstrip()
            if not content.strip():
                continue
            if include := _INCLUDE.match(content):
                self.includes.append(
                    Include(
                        path=include["path"],
                        constraint=include["opt"] in ("-c", "--constraint"),
                        line=logical.first + 1,
                    )
                )
                continue
            if content.lstrip().startswith("-"):
                continue  # -e, --index-url, --find-links and other options
            entry = self._entry(logical, content)
            if entry is not None:
                self._entries.append(entry)

    def _entry(
        self, logical: _Logical, content: str
    ) -> tuple[_Logical, Dependency, re.Match[str]] | None:
        head = _HEAD.match(content)
        options = _OPTION.search(content, head.end() if head else 0)
        requirement = content[: options.start()] if options else content
        try:
            req = Requirement(requirement.strip())
        except InvalidRequirement as exc:
            if head is None or "/" in requirement or ":" in requirement.split(";")[0]:
                return None  # a path or URL to an archive: nothing to update
            # pip would refuse the line too, but one bad line must not hide every other update:
            # it is reported (dry run, events) and left exactly as written.
            problem = Unreadable(
                manifest=self.path,
                line=logical.first + 1,
                text=requirement.strip(),
                reason=f"{_first_line(exc)}; fix the line (PEP 508: name[extras]<constraint>; "
                "marker)",
            )
            log.warning("%s; left alone", problem.message())
            self.unreadable.append(problem)
            return None
        if req.url or head is None:
            return None
        end = _SPEC_END.search(content, head.end())
        specifier = content[head.end() : end.start() if end else len(content)].strip()
        pinned = _exact(req.specifier)
        return (
            logical,
            Dependency(
                name=req.name,
                specifier=specifier,
                pinned=pinned,
                manifest=self.path,
                section=SECTION,
                extras=tuple(sorted(req.extras)),
                marker=str(req.marker) if req.marker else None,
                hashed=bool(_HASH.search(content)),
                line=logical.first + 1,
            ),
            head,
        )

    # -- editing

    def _edit(
        self,
        lines: list[str],
        logical: _Logical,
        dep: Dependency,
        head: re.Match[str],
        change: Change,
        hashes: HashSource,
    ) -> None:
        new_spec = new_constraint(dep, change)
        if dep.hashed:
            self._rehash(lines, logical, dep, change.new_version, hashes)
        if new_spec != dep.specifier:
            start = head.end()
            line, col = logical.locate(start)
            text = lines[line]
            # The written constraint starts at ``col`` on its line (possibly after spaces).
            at = text.index(dep.specifier, col) if dep.specifier else col
            lines[line] = text[:at] + new_spec + text[at + len(dep.specifier) :]

    def _rehash(
        self,
        lines: list[str],
        logical: _Logical,
        dep: Dependency,
        version: Version,
        hashes: HashSource,
    ) -> None:
        digests = sorted({d if ":" in d else f"sha256:{d}" for d in hashes(dep.name, version)})
        if not digests:
            raise DependencyError(
                f"{dep.location}: {dep.name} {version} has no file hashes on the index, but the "
                "file requires hashes; check the index, or drop --hash for this requirement."
            )
        found = [
            (i, m) for i in range(logical.first, logical.last + 1)
            for m in _HASH.finditer(lines[i])
        ]  # fmt: skip
        own_lines = [i for i, m in found if _bare(lines[i]) == m.group(0)]
        if found and len(own_lines) == len(found):
            # pip-compile's layout: one `--hash` per line, each but the last continued with `\`.
            first, last = own_lines[0], own_lines[-1]
            indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
            eol = _eol(lines[first])
            tail = lines[last][found[-1][1].end() :]  # the last line's ending (maybe `\`)
            new = [f"{indent}--hash={d} \\{eol}" for d in digests[:-1]]
            new.append(f"{indent}--hash={digests[-1]}{tail}")
            lines[first : last + 1] = ["".join(new)] + [""] * (last - first)
            return
        # Hashes written inline: replace the run from the first to the last in place.
        line = found[0][0]
        if any(i != line for i, _ in found):
            raise DependencyError(
                f"{dep.location}: the --hash options of {dep.name} are laid out in a way shipyard "
                "cannot rewrite safely; put each on its own line, or all on the requirement's line."
            )
        text = lines[line]
        start, end = found[0][1].start(), found[-1][1].end()
        lines[line] = text[:start] + " ".join(f"--hash={d}" for d in digests) + text[end:]


def _exact(specifier: SpecifierSet) -> Version | None:
    specs = list(specifier)
    if len(specs) != 1 or specs[0].operator != "==" or specs[0].version.endswith(".*"):
        return None
    try:
        return Version(specs[0].version)
    except InvalidVersion:  # pragma: no cover - packaging validated it
        return None


def _repin(specifier: str, version: Version) -> str:
    """``specifier`` (an exact pin, possibly with spaces) with its version replaced."""
    op, _, rest = specifier.partition("==")
    spaces = rest[: len(rest) - len(rest.lstrip())]
    return f"{op}=={spaces}{version}"


def _eol(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :] or "\n"


def _logical_lines(text: str) -> list[_Logical]:
    physical = text.splitlines()
    out: list[_Logical] = []
    i = 0
    while i < len(physical):
        first = i
        segments = [_Segment(i, 0, 0)]
        parts = [physical[i]]
        # A comment line never continues, as in pip; any other line ending in `\` does.
        while (
            parts[-1].endswith("\\")
            and not _COMMENT.match(parts[-1].lstrip())
            and i + 1 < len(physical)
        ):
            parts[-1] = parts[-1][:-1]
            i += 1
            offset = sum(len(p) for p in parts) + len(parts) - 1 + 1
            segments.append(_Segment(i, 0, offset))
            parts.append(physical[i])
        out.append(_Logical(first, i, " ".join(parts), tuple(segments)))
        i += 1
    return out


def canonical(name: str) -> str:
    """The canonical form of a project name (PEP 503)."""
    return str(canonicalize_name(name))


def specifier_span(requirement: str) -> tuple[int, int]:
    """Where the constraint of a PEP 508 string is written (start, end); empty span if none."""
    head = _HEAD.match(requirement)
    if head is None:
        raise DependencyError(f"{requirement!r} does not start with a project name.")
    end = _SPEC_END.search(requirement, head.end())
    stop = end.start() if end else len(requirement)
    text = requirement[head.end() : stop]
    start = head.end() + len(text) - len(text.lstrip())
    return start, start + len(text.strip())


def new_constraint(dep: Dependency, change: Change) -> str:
    """The constraint text ``dep`` gets from ``change`` (its own text when it already admits it)."""
    if change.new_specifier is not None:
        return change.new_specifier
    if dep.pinned is not None:
        return _repin(dep.specifier, change.new_version)
    if SpecifierSet(dep.specifier).contains(change.new_version, prereleases=True):
        return dep.specifier
    raise DependencyError(
        f"{dep.location}: {dep.name}{dep.specifier} does not admit {change.new_version}; "
        "give the change a new specifier (range strategy)."
    )


def _first_line(exc: Exception) -> str:
    """packaging's parse errors draw a caret under the text; the first line says what is wrong."""
    return str(exc).splitlines()[0].strip()


def _bare(line: str) -> str:
    """A physical line without its comment, continuation and surrounding space."""
    return _COMMENT.sub("", line.rstrip("\r\n")).strip().removesuffix("\\").strip()
