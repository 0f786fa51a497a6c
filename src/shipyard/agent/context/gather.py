"""What the agent is shown before its first step: the repository's rules, the files the task names,
past runs on those files, code chunks like the task (by local embeddings) and a map of the code,
together within a token budget.

Each section is built by one function in ``SECTIONS``, in priority order, from the committed tree
and the store; a new kind of context is one more function there.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.agent.context.repomap import build_repo_map
from shipyard.agent.context.retrieval import Retriever, open_retriever, render_chunks
from shipyard.agent.context.rules import CommitTree, read_rules
from shipyard.agent.messages import estimate_tokens
from shipyard.config import RetrievalConfig, shipyard_home
from shipyard.errors import ShipyardError
from shipyard.events import EventType, RunState
from shipyard.store import Store

logger = logging.getLogger(__name__)

MAX_NAMED_FILES = 5
NAMED_FILE_CAP_CHARS = 12_000
MAX_PAST_RUNS = 5
PAST_RUNS_SCANNED = 50
"""How many of the repository's latest runs are searched for ones that touched the same files."""

# Candidates for paths in a task's text: a backticked span, or a run of path characters.
_MENTION = re.compile(r"`([^`\n]{1,300})`|([\w./-]{2,300})")
_LINE_SUFFIX = re.compile(r"(?::\d+){1,2}$")  # src/x.py:12 or src/x.py:12:4
_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_CUT_NOTE = "\n[… cut to fit the context budget]"
_FILE_OVERHEAD = 120  # heading, fences and the cut note around a file's text


@dataclass(frozen=True, kw_only=True)
class Section:
    """One part of the context: a stable ``name`` for the record, a title and its body."""

    name: str
    title: str
    body: str
    sources: tuple[str, ...] = ()
    """What it was made from: paths, or run ids."""
    details: dict[str, Any] | None = None
    """More for the record: the retrieved chunks with their scores, say."""

    @property
    def text(self) -> str:
        return f"## {self.title}\n\n{self.body}"

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.text)


@dataclass(frozen=True, kw_only=True)
class AgentContext:
    """The gathered sections, ready for the prompt, and a record of what went into it."""

    commit: str
    sections: tuple[Section, ...] = ()
    notes: tuple[str, ...] = ()
    """One line each on what was left out and why (retrieval off: no embedding model, say)."""

    def render(self) -> str:
        return "\n\n".join(s.text for s in self.sections)

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.render())

    def record(self) -> list[dict[str, Any]]:
        """Each section's name, size and sources, for the run's events (DESIGN invariant 10)."""
        return [
            {"name": s.name, "tokens": s.tokens, "sources": list(s.sources), **(s.details or {})}
            for s in self.sections
        ]


@dataclass(frozen=True, kw_only=True)
class Inputs:
    """What every section builder may draw on."""

    tree: CommitTree
    task_text: str
    named: tuple[str, ...]
    store: Store | None
    repo: str | None
    run_id: str | None
    retriever: Retriever | None = None
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    notes: list[str] = field(default_factory=list)
    """Where builders say what they left out (the one mutable part)."""


def named_files(text: str, paths: Sequence[str]) -> list[str]:
    """Files of ``paths`` that ``text`` names, in order of first mention.

    A mention is a path (``src/x.py``, ``./src/x.py:12``), the end of one (``inventory/x.py``), a
    file name (``x.py``) or a dotted module (``inventory.x``); one that fits more than three files
    names none of them.
    """
    by_name: dict[str, list[str]] = {}
    for path in paths:
        by_name.setdefault(posixpath.basename(path), []).append(path)

    def ending(mention: str) -> list[str]:
        tail = "/" + mention
        same = by_name.get(posixpath.basename(mention), [])
        return [p for p in same if p == mention or p.endswith(tail)]

    found: dict[str, None] = {}
    for match in _MENTION.finditer(text):
        mention = (match.group(1) or match.group(2)).strip().rstrip(".,;:!?)")
        mention = _LINE_SUFFIX.sub("", mention).removeprefix("./").lstrip("/")
        if match.group(2) and "." not in mention and "/" not in mention:
            continue  # a plain word
        hits = ending(mention)
        if not hits and _MODULE.fullmatch(mention):
            module = mention.replace(".", "/")
            hits = ending(f"{module}.py") or ending(f"{module}/__init__.py")
        if 0 < len(hits) <= 3:
            found.update(dict.fromkeys(hits))
    return list(found)[:MAX_NAMED_FILES]


def rules_section(inputs: Inputs, budget: int) -> Section | None:
    rules = read_rules(inputs.tree)
    body = "\n\n".join(f"### {r.path}\n\n{r.text}" for r in rules)
    return _fitted("rules", "Repository rules", body, tuple(r.path for r in rules), budget)


def files_section(inputs: Inputs, budget: int) -> Section | None:
    texts = inputs.tree.read(inputs.named)
    room = (budget - estimate_tokens("## Files the task names\n\n")) * 4  # in characters
    parts: list[str] = []
    included: list[str] = []
    for path in inputs.named:
        text = texts.get(path)
        limit = min(NAMED_FILE_CAP_CHARS, room - len(path) - _FILE_OVERHEAD)
        if text is None:
            part = f"### {path}\n\n(binary or too large to show)"
        elif limit < 200:
            part = f"### {path}\n\n(not shown: over the context budget; read it with a tool)"
        else:
            part = _file_block(path, text, limit)
        if len(part) + 2 > room:
            break
        parts.append(part)
        included.append(path)
        room -= len(part) + 2
    body = "\n\n".join(parts)
    return _fitted("files", "Files the task names", body, tuple(included), budget)


def _file_block(path: str, text: str, limit: int) -> str:
    """The file in a fence no line of it can close, cut to ``limit`` characters with a note."""
    shown = text if len(text) <= limit else text[:limit].rsplit("\n", 1)[0]
    note = (
        "" if shown is text else f"\n[… cut: {len(text)} characters, the first {len(shown)} shown]"
    )
    fence = "`" * max(3, _longest_backtick_run(shown) + 1)
    return f"### {path}\n\n{fence}\n{shown.rstrip()}\n{fence}{note}"


def past_runs_section(inputs: Inputs, budget: int) -> Section | None:
    if inputs.store is None or inputs.repo is None or not inputs.named:
        return None
    lines, ids = [], []
    for state in inputs.store.list_runs(repo=inputs.repo, limit=PAST_RUNS_SCANNED):
        if state.run_id == inputs.run_id or state.change_commit is None:
            continue
        touched: set[str] = set()
        for event in inputs.store.events(state.run_id):
            if event.type == EventType.CHANGE_COMMITTED:
                touched.update(str(f) for f in event.data.get("files", []))
        same = sorted(touched.intersection(inputs.named))
        if same:
            ids.append(state.run_id)
            lines.append(_run_line(state, same))
        if len(lines) == MAX_PAST_RUNS:
            break
    body = "\n".join(lines)
    return _fitted("past_runs", "Past runs that changed these files", body, tuple(ids), budget)


def retrieval_section(inputs: Inputs, budget: int) -> Section | None:
    """The chunks most like the task's text, best first; files shown whole are not repeated."""
    retriever, config = inputs.retriever, inputs.retrieval
    if retriever is None or not inputs.task_text.strip():
        return None
    try:
        stats = retriever.index(inputs.tree, named=inputs.named, seconds=config.index_seconds)
        matches = retriever.search(inputs.tree, inputs.task_text, k=2 * config.top_k)
    except ShipyardError as exc:
        if config.mode == "on":
            raise
        logger.warning("retrieval skipped: %s", exc)
        inputs.notes.append(f"retrieval of code chunks skipped: {exc}")
        return None
    if not stats.complete:
        inputs.notes.append(
            f"retrieval searched {stats.covered} of {stats.files} files: indexing stopped after "
            f"{config.index_seconds:g} s ([agent.retrieval] index_seconds); later runs index more, "
            "or `shipyard retrieval index` does it ahead of time"
        )
    title = "Code like the task (retrieved by embeddings)"
    room = (min(budget, config.max_tokens) - estimate_tokens(f"## {title}\n\n") - 1) * 4
    good = [m for m in matches if m.score >= config.min_score]
    body, used = render_chunks(inputs.tree, good, budget_chars=room, skip=inputs.named)
    used = used[: config.top_k]
    if len(used) < len(good):
        body, used = render_chunks(inputs.tree, used, budget_chars=room, skip=inputs.named)
    details = {
        "backend": retriever.vectors.backend,
        "model": retriever.embedder.name,
        "index": {"files": stats.files, "covered": stats.covered, "chunked": stats.chunked,
                  "embedded": stats.embedded, "reused": stats.reused, "seconds": stats.seconds},
        "chunks": [{"path": m.path, "lines": [m.start, m.end], "kind": m.kind, "name": m.name,
                    "score": round(m.score, 4)} for m in used],
    }  # fmt: skip
    if not used:
        return None
    sources = tuple(dict.fromkeys(m.path for m in used))
    return Section(name="retrieval", title=title, body=body, sources=sources, details=details)


def repo_map_section(inputs: Inputs, budget: int) -> Section | None:
    header = estimate_tokens("## Repository map\n\n") + 1
    recent = inputs.tree.recently_changed()
    repo_map = build_repo_map(
        inputs.tree, budget_tokens=budget - header, named=inputs.named, recent=recent
    )
    return _fitted("repo_map", "Repository map", repo_map.text, repo_map.files, budget)


SectionBuilder = Callable[[Inputs, int], "Section | None"]

SECTIONS: tuple[tuple[SectionBuilder, float], ...] = (
    (rules_section, 0.3),
    (files_section, 0.4),
    (past_runs_section, 0.1),
    (retrieval_section, 0.35),
    (repo_map_section, 1.0),
)
"""Builders in priority order, each with the largest share of the whole budget it may take."""


def gather_context(
    workspace: Path,
    commit: str,
    task_text: str,
    *,
    store: Store | None,
    repo: str | None,
    budget_tokens: int,
    run_id: str | None = None,
    retrieval: RetrievalConfig | None = None,
    home: Path | None = None,
) -> AgentContext:
    """The context for a task on ``commit`` of ``workspace``, rendering to at most ``budget_tokens``.

    Only committed files are read. ``store`` and ``repo`` (as recorded on runs) find past runs;
    ``run_id``, the run asking, is left out of them. ``retrieval`` turns on the retrieved chunks
    (their vectors are cached in the store when it is PostgreSQL, else under ``home``).
    """
    tree = CommitTree.at(workspace, commit)
    named = tuple(named_files(task_text, tree.files()))
    config = retrieval or RetrievalConfig(mode="off")
    retriever, note = open_retriever(config, store=store, home=home or shipyard_home())
    inputs = Inputs(
        tree=tree, task_text=task_text, named=named, store=store, repo=repo, run_id=run_id,
        retriever=retriever, retrieval=config, notes=[note] if note else [],
    )  # fmt: skip
    sections: list[Section] = []
    remaining = budget_tokens
    try:
        for build, share in SECTIONS:
            # Sections are joined by a blank line, which costs at most one token.
            section = build(inputs, min(remaining, int(budget_tokens * share)) - 1)
            if section is not None:
                sections.append(section)
                remaining -= section.tokens + 1
    finally:
        if retriever is not None:
            retriever.close()
    return AgentContext(commit=tree.commit, sections=tuple(sections), notes=tuple(inputs.notes))


def _fitted(
    name: str, title: str, body: str, sources: tuple[str, ...], budget: int
) -> Section | None:
    """The section, its body cut to ``budget`` tokens; none when empty or nothing fits."""
    if not body.strip():
        return None
    section = Section(name=name, title=title, body=body, sources=sources)
    if section.tokens <= budget:
        return section
    room = budget * 4 - len(Section(name=name, title=title, body=_CUT_NOTE).text)
    if room < 200:
        return None
    cut = body[:room].rsplit("\n", 1)[0]
    return Section(name=name, title=title, body=cut + _CUT_NOTE, sources=sources)


def _run_line(state: RunState, files: Sequence[str]) -> str:
    title = str(state.task.get("title") or state.task.get("blueprint") or "(untitled)")
    reasons = []
    if state.decision is not None:
        reasons = [str(r.get("message", "")) for r in state.decision.get("reasons", [])][:2]
    extra = state.reason or state.error
    why = "; ".join([r for r in reasons if r] + ([extra] if extra and extra not in reasons else []))
    if state.action is not None:
        why = f"{state.action}: {why}" if why else state.action
    line = f"- {state.run_id} [{state.status.value}] {title}: {why or 'no decision'}"
    line = line if len(line) <= 300 else line[:299] + "…"
    return f"{line} (changed {', '.join(files)})"


def _longest_backtick_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"`+", text)), default=0)


__all__ = [
    "SECTIONS",
    "AgentContext",
    "Inputs",
    "Section",
    "gather_context",
    "named_files",
]
