"""A tree's wheelhouse: downloaded on the host once per dependency set, then reused for a while.

``pip download`` costs most of a second even when pip's HTTP cache holds every file, since pip
resolves the requirements again each time. Most changes leave the requirements alone, and a base
and its change usually share them, so the harness keeps each resolved wheelhouse under
``cache/wheelhouses/<key>/`` and links its wheels into the next tree that asks for the same set.

The key is the text of the requirement files (includes followed), the added requirements, the
index and the interpreter. Requirements that install from the tree itself are never cached. An
entry expires after ``WHEELHOUSE_TTL_SECONDS``: unpinned and transitive requirements may resolve to
newer releases, and an expired entry is resolved again. A resolution that fails is never kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from shipyard.deps.wheelhouse import download
from shipyard.gates.environment import requirement_contents

log = logging.getLogger(__name__)

WHEELHOUSE_FORMAT = 1
WHEELHOUSE_TTL_SECONDS = 6 * 3600
"""How long a resolved wheelhouse is reused before its requirements are resolved again."""
_COMPLETE = ".complete"
_GUARD = threading.Lock()
_LOCKS: dict[str, threading.Lock] = {}


class Fetched(NamedTuple):
    """The wheels now in the destination, and whether they came from the cache."""

    wheels: list[Path]
    reused: bool


def wheelhouse_key(
    tree: Path, files: Sequence[str], extra: Sequence[str], index_url: str
) -> str | None:
    """A digest of what a download depends on, or None when the requirements install from the tree."""
    contents = requirement_contents(tree, files)
    if contents is None:
        return None
    inputs = [WHEELHOUSE_FORMAT, contents, list(extra), index_url, sys.version, sys.platform]
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:32]


def fetch_wheels(
    tree: Path,
    *,
    files: Sequence[str],
    extra: Sequence[str],
    index_url: str,
    dest: Path,
    cache_dir: Path,
    reuse: bool = True,
    now: float | None = None,
) -> Fetched:
    """Fill ``dest`` with the wheels the tree's requirements resolve to; from the cache when fresh.

    Raises what ``download`` raises (a conflict is a ``DependencyConflict``), and then caches nothing.
    """
    key = wheelhouse_key(tree, files, extra, index_url) if reuse else None
    if key is None:
        return _fetch(tree, files, extra, index_url, dest, cache_dir, None, now)
    # A base and its change usually share their requirements and are measured at once: the second
    # waits for the first's download and links it instead of resolving the same set again.
    with _GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        return _fetch(tree, files, extra, index_url, dest, cache_dir, key, now)


def _fetch(
    tree: Path,
    files: Sequence[str],
    extra: Sequence[str],
    index_url: str,
    dest: Path,
    cache_dir: Path,
    key: str | None,
    now: float | None,
) -> Fetched:
    entry = cache_dir / "wheelhouses" / key if key else None
    if entry is not None and _fresh(entry, now if now is not None else time.time()):
        dest.mkdir(parents=True, exist_ok=True)
        wheels = sorted(entry.glob("*.whl"))
        for wheel in wheels:
            _link_or_copy(wheel, dest / wheel.name)
        log.info("wheelhouse %s reused (%d wheels)", key, len(wheels))
        return Fetched(sorted(dest.glob("*.whl")), reused=True)
    wheels = download(
        [tree / f for f in files],
        index_url=index_url,
        dest=dest,
        extra_requirements=extra,
        cache_dir=cache_dir / "pip",
    )
    if entry is not None:
        _keep(wheels, entry)
    return Fetched(wheels, reused=False)


def _fresh(entry: Path, now: float) -> bool:
    try:
        made = (entry / _COMPLETE).stat().st_mtime
    except OSError:
        return False
    return now - made < WHEELHOUSE_TTL_SECONDS


def _keep(wheels: Sequence[Path], entry: Path) -> None:
    """Publish the wheels as ``entry`` atomically: readers see a whole wheelhouse or none."""
    staging = entry.with_name(f".{entry.name}.{uuid.uuid4().hex[:8]}")
    try:
        staging.mkdir(parents=True)
        for wheel in wheels:
            _link_or_copy(wheel, staging / wheel.name)
        (staging / _COMPLETE).touch()
        if entry.exists():  # expired, or written by a concurrent run: replace it
            old = entry.with_name(f".{entry.name}.old.{uuid.uuid4().hex[:8]}")
            with contextlib.suppress(OSError):
                entry.rename(old)
                shutil.rmtree(old, ignore_errors=True)
        staging.rename(entry)
    except OSError as exc:  # another run published it first, or the disk is full: not fatal
        log.info("wheelhouse not cached at %s: %s", entry, exc)
        shutil.rmtree(staging, ignore_errors=True)


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
