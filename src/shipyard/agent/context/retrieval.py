"""Retrieval of the code chunks most like a task's text, by local embeddings.

``Retriever.index`` chunks the committed files of a tree and embeds only chunks it has no vector
for (a file version already indexed is not even read again); ``Retriever.search`` ranks the chunks
of that tree against a query. ``open_retriever`` builds one from the ``[agent.retrieval]`` settings,
or says in one line why retrieval is off.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipyard.agent.context.chunks import CHUNKER_VERSION, Chunk, chunk_file, indexable
from shipyard.agent.context.embeddings import (
    INSTALL_HINT,
    Embedder,
    embedding_model_missing,
    load_embedder,
)
from shipyard.agent.context.rules import CommitTree
from shipyard.agent.context.vectors import (
    FileKey,
    Match,
    SqliteVectors,
    Vectors,
    VectorsUnavailable,
    open_vectors,
)
from shipyard.config import RetrievalConfig
from shipyard.errors import ConfigError
from shipyard.store import Store

logger = logging.getLogger(__name__)

MAX_INDEXED_FILES = 5000
MAX_FILE_BYTES = 100 * 1024
"""Larger files (generated code, data) are not chunked."""
HOST_SWITCH = "SHIPYARD_RETRIEVAL"
"""Set to ``off`` on a host to turn retrieval off there, whatever repositories configure."""
EMBED_BATCH = 64
"""New chunks embedded and stored together: an interrupted index keeps what it did, and the time
budget is checked between batches."""
RECENT_COMMITS = 50
"""Files changed by this many commits up to the indexed one are indexed before the rest."""
READ_FILES = 100
"""Files read from git at a time, so a short budget does not read the whole tree."""


@dataclass(frozen=True, kw_only=True)
class IndexStats:
    """What one ``index`` call did: files in scope, file versions chunked now, chunks embedded now
    and chunks whose vectors were already stored; ``covered`` files of the scope are searchable
    afterwards (fewer than ``files`` when the time budget ran out first)."""

    files: int
    chunked: int
    embedded: int
    reused: int
    seconds: float
    covered: int

    @property
    def complete(self) -> bool:
        return self.covered == self.files


def index_order(paths: Sequence[str], *, named: Sequence[str], recent: Sequence[str]) -> list[str]:
    """``paths`` in the order they are indexed: the files a task names, then the other files of
    their directories, then recently changed files (newest first), then the rest as given."""
    known = set(paths)
    first = [p for p in named if p in known]
    dirs = {posixpath.dirname(p) for p in first}
    near = [p for p in paths if posixpath.dirname(p) in dirs]
    fresh = [p for p in recent if p in known]
    return list(dict.fromkeys([*first, *near, *fresh, *paths]))


class Retriever:
    """Indexes trees into ``vectors`` with ``embedder`` and searches them."""

    def __init__(self, embedder: Embedder, vectors: Vectors, *, batch: int | None = None) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.batch = batch or EMBED_BATCH
        self.space = f"{embedder.name}/chunker-{CHUNKER_VERSION}"

    def index(
        self,
        tree: CommitTree,
        *,
        named: Sequence[str] = (),
        seconds: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> IndexStats:
        """Chunk and embed the files of ``tree`` not indexed yet, most relevant first (see
        ``index_order``), until done or ``seconds`` have passed.

        The budget is checked before each batch of new chunks, and the first batch is always
        embedded, so the files the task names are searchable even under a tiny budget. A file is
        searchable once all its chunks are stored; what is left waits for the next call.
        ``progress(covered, files)`` is called after each batch.
        """
        began = time.monotonic()
        scope = _scope(tree)
        done = self.vectors.indexed(self.space, scope)
        blobs = dict(scope)
        order = index_order(
            [path for path, _ in scope], named=named, recent=tree.recently_changed(RECENT_COMMITS)
        )
        todo = [(path, blobs[path]) for path in order if (path, blobs[path]) not in done]
        embedded = reused = chunked = batches = 0
        waiting: dict[FileKey, list[Chunk]] = {}  # chunked, some chunk not yet embedded
        queue: dict[str, Chunk] = {}  # new chunks by digest, in index order

        def covered() -> int:  # files whose every chunk is stored
            return len(scope) - len(todo) + chunked - len(waiting)

        def out_of_time() -> bool:
            return seconds is not None and batches > 0 and time.monotonic() - began >= seconds

        def embed(count: int) -> None:
            nonlocal embedded, batches
            digests = list(queue)[:count]
            vectors = self.embedder.embed([queue[d].embed_text for d in digests])
            fresh = dict(zip(digests, vectors, strict=True))
            for digest in digests:
                del queue[digest]
            ready = {k: c for k, c in waiting.items() if not any(x.digest in queue for x in c)}
            self.vectors.add(self.space, self.embedder.name, ready, fresh)
            for key in ready:
                del waiting[key]
            embedded += len(digests)
            batches += 1
            if progress is not None:
                progress(covered(), len(scope))

        stopped = False
        for group in range(0, len(todo), READ_FILES):
            keys = todo[group : group + READ_FILES]
            texts = tree.read([path for path, _ in keys], max_bytes=MAX_FILE_BYTES)
            # A binary file is recorded with no chunks, so it is not read again.
            chunks = {k: chunk_file(k[0], texts[k[0]]) if k[0] in texts else [] for k in keys}
            digests = [c.digest for found in chunks.values() for c in found]
            known = self.vectors.known(self.embedder.name, digests)
            reused += len(known)
            for key, found in chunks.items():
                queue.update((c.digest, c) for c in found if c.digest not in known)
                waiting[key] = found
                chunked += 1
                while len(queue) >= self.batch and not (stopped := out_of_time()):
                    embed(self.batch)
                if stopped:
                    break
            if stopped:
                break
        while queue and not out_of_time():
            embed(self.batch)  # the last, partial batch
        embed(0)  # files whose chunks all had vectors already
        stats = IndexStats(
            files=len(scope), chunked=chunked, embedded=embedded, reused=reused,
            seconds=round(time.monotonic() - began, 3), covered=covered(),
        )  # fmt: skip
        logger.info("indexed %s at %s: %s", tree.workspace, tree.commit[:12], stats)
        return stats

    def search(self, tree: CommitTree, query: str, *, k: int) -> list[Match]:
        """The ``k`` chunks of ``tree`` most like ``query`` (index the tree first)."""
        if not query.strip():
            return []
        [vector] = self.embedder.embed([query])
        return self.vectors.search(self.space, self.embedder.name, vector, _scope(tree), k)

    def close(self) -> None:
        self.vectors.close()


def _scope(tree: CommitTree) -> list[FileKey]:
    keys = [
        (path, tree.entries[path].oid)
        for path in tree.files()
        if indexable(path) and 0 < tree.entries[path].size <= MAX_FILE_BYTES
    ]
    return keys[:MAX_INDEXED_FILES]


def open_retriever(
    config: RetrievalConfig, *, store: Store | None, home: Path
) -> tuple[Retriever | None, str | None]:
    """A retriever for these settings, and a one-line note when retrieval is off or degraded.

    ``mode = "auto"`` turns retrieval off (with the note) when the embedding model is not
    installed; ``"on"`` raises RetrievalUnavailable instead. ``$SHIPYARD_RETRIEVAL=off`` turns it
    off on this host. When the store is PostgreSQL without
    pgvector, the vectors go to the SQLite cache under ``home`` (noted).
    """
    if config.mode == "off":
        return None, None
    host = os.environ.get(HOST_SWITCH, "")
    if host not in ("", "off"):
        raise ConfigError(f"${HOST_SWITCH} is {host!r}; set it to 'off' or leave it unset.")
    if host == "off":
        return None, None
    missing = embedding_model_missing()
    if missing is not None:
        if config.mode == "on":
            load_embedder()  # raises, saying what to install
        return None, f"retrieval of code chunks is off: {missing}; {INSTALL_HINT}."
    embedder = load_embedder()
    note = None
    url = store_url(store)
    try:
        vectors = open_vectors(url, home)
    except VectorsUnavailable as exc:
        vectors = SqliteVectors(home / "retrieval.db")
        note = f"retrieval vectors kept in {vectors.path}: {exc}"
    return Retriever(embedder, vectors), note


def store_url(store: Store | None) -> str | None:
    if store is None or store.engine.dialect.name != "postgresql":
        return None
    return store.engine.url.render_as_string(hide_password=False)


def render_chunks(
    tree: CommitTree, matches: Sequence[Match], *, budget_chars: int, skip: Sequence[str] = ()
) -> tuple[str, list[Match]]:
    """The matched chunks' text as it is in ``tree``, best first, within ``budget_chars``.

    Chunks of ``skip`` (files shown whole elsewhere) and chunks overlapping one already shown are
    left out.
    """
    texts = tree.read({m.path for m in matches if m.path not in skip}, max_bytes=MAX_FILE_BYTES)
    parts: list[str] = []
    used: list[Match] = []
    shown: dict[str, list[tuple[int, int]]] = {}
    room = budget_chars
    for match in matches:
        text = texts.get(match.path)
        spans = shown.setdefault(match.path, [])
        if text is None or any(s <= match.end and match.start <= e for s, e in spans):
            continue
        lines = text.splitlines()[match.start - 1 : match.end]
        label = f" ({match.kind} {match.name})" if match.name else ""
        part = (
            f"### {match.path}:{match.start}-{match.end}{label}, similarity {match.score:.2f}\n\n"
            + _fenced("\n".join(lines))
        )
        if len(part) + 2 > room:
            continue
        parts.append(part)
        used.append(match)
        spans.append((match.start, match.end))
        room -= len(part) + 2
    return "\n\n".join(parts), used


def _fenced(text: str) -> str:
    """``text`` in a fence no line of it can close."""
    fence = "`" * max([3, *(len(run) + 1 for run in re.findall(r"`+", text))])
    return f"{fence}\n{text.rstrip()}\n{fence}"


__all__ = ["IndexStats", "Retriever", "index_order", "open_retriever", "render_chunks", "store_url"]
