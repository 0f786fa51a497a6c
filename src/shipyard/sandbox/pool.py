"""The warm environment pool: Python environments built once per dependency set, lent to each run.

An entry is a virtual environment built in a sandbox at the in-sandbox path every run uses (a venv's
scripts and ``pyvenv.cfg`` hold absolute paths), keyed by the caller's digest of its inputs. A run gets a
copy-on-write view of it: a kernel overlay where shipyard may mount (root), in a private mount
namespace so that it never appears on the host and dies with the process, a
``cp --reflink=auto`` copy where it may not. Entries are never written after they are published, so a
run's writes land only in its own layer.

Concurrency: one flock per key, exclusive while building (into a temporary directory that is renamed into
place), shared while a run uses the entry; eviction only removes entries whose lock it can take
exclusively, so nothing in use disappears. Eviction keeps the ``keep`` most recently used entries.
Nothing blocks inside flock: a run tries the lock it needs, looks at the entry again between tries and
gives up with a SandboxError naming the lock file after ``wait_seconds``. (A thread that saw the entry
missing and blocked for the exclusive lock could wait forever on a sibling thread of its own process
that built the entry meanwhile and holds it shared until the sibling's caller is done: ``verify``
measures a change and its base in two threads that need the same key.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from shipyard.errors import ConfigError, SandboxError
from shipyard.sandbox import mountns
from shipyard.sandbox.base import CommandResult

log = logging.getLogger(__name__)

Mechanism = Literal["overlay", "copy"]
T = TypeVar("T")
DEFAULT_KEEP = 8
DEFAULT_WAIT_SECONDS = 1800.0
"""How long a run waits for another's build of its entry (or an eviction) before giving up."""
KEEP_VARIABLE = "SHIPYARD_POOL_KEEP"
DIR_VARIABLE = "SHIPYARD_POOL_DIR"
ENTRY_ENVIRONMENT = "venv"
"""The directory inside an entry (and inside a build's scratch) that holds the environment itself."""

_POLL_FIRST, _POLL_MAX = 0.01, 0.25
"""Seconds between tries of a lock someone else holds: doubling from the first to the most."""
_OVERLAY_UNSAFE = (",", ":", "\\", "\n")


Builder = Callable[[Path], CommandResult]
"""Builds an environment into ``<dir>/venv`` (the directory it is given) and says how that went."""


@dataclass(frozen=True, kw_only=True)
class Layer:
    """A run's private, writable view of a pooled environment at ``path`` on the host."""

    path: Path
    mechanism: Mechanism
    seconds: float
    note: str = ""
    """Why a copy was made where an overlay was wanted; empty otherwise."""
    namespace: mountns.PrivateMounts | None = None
    """The private mount namespace holding an overlay. The host sees at ``path`` only the entry's
    ``pyvenv.cfg`` (so host-side checks see a prepared environment); sandboxes over ``path`` and
    ``visit`` see the whole layer."""

    def visit(self, fn: Callable[[], T]) -> T:
        """``fn()`` where ``path`` shows the layer itself (inside the overlay's namespace)."""
        return fn() if self.namespace is None else self.namespace.run(fn)


@dataclass(frozen=True, kw_only=True)
class Checkout:
    """What one run got from the pool."""

    key: str
    hit: bool
    layer: Layer | None
    """None when the build failed (``built`` says why)."""
    built: CommandResult | None = None
    """The build's result when this run built the entry; None on a hit."""


def keep_from_env(environ: Mapping[str, str] = os.environ) -> int:
    """How many entries to keep: ``$SHIPYARD_POOL_KEEP`` or the default."""
    value = environ.get(KEEP_VARIABLE, "")
    if not value:
        return DEFAULT_KEEP
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{KEEP_VARIABLE}={value!r}: use a whole number of entries, at least 1.")
    return int(value)


def root_from_env(default: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """Where runs keep their pool: ``$SHIPYARD_POOL_DIR`` or ``default`` (the home's cache).

    Several homes on one host (a CLI and a server, or workers with homes of their own) may name
    one directory: entries are locked per key, published by a rename and never written after, so
    each dependency set is built once for all of them.
    """
    value = environ.get(DIR_VARIABLE, "").strip()
    if not value:
        return default
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ConfigError(
            f"{DIR_VARIABLE}={value!r}: use an absolute path, for example /var/cache/shipyard/envs."
        )
    return path


class EnvPool:
    """Prepared environments under ``root`` (shipyard's cache in its home), at most ``keep`` of them."""

    def __init__(
        self,
        root: Path,
        *,
        keep: int = DEFAULT_KEEP,
        mechanism: Mechanism | None = None,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
    ) -> None:
        if keep < 1:
            raise ConfigError(f"the environment pool must keep at least 1 entry, not {keep}.")
        self.root = root
        self.keep = keep
        self.mechanism = mechanism
        """Force one mechanism; None tries an overlay and falls back to a copy."""
        self.wait_seconds = wait_seconds
        """How long a checkout waits for a key someone else holds (see ``checkout``)."""
        self._overlay_refused = ""

    def entry(self, key: str) -> Path:
        return self.root / "entries" / key

    def recent_keys(self) -> list[str]:
        """Published entries, most recently used first."""
        found = []
        for path in (self.root / "entries").glob("*"):
            with contextlib.suppress(FileNotFoundError):  # evicted while we looked
                found.append((path.stat().st_mtime, path.name))
        return [name for _, name in sorted(found, reverse=True)]

    @contextlib.contextmanager
    def checkout(
        self,
        key: str,
        *,
        build: Builder,
        target: Path,
        workdir: Path,
        wait_seconds: float | None = None,
    ) -> Iterator[Checkout]:
        """The entry for ``key`` (built first when missing) as a private layer at ``target``.

        ``workdir`` holds the overlay's upper and work directories; both it and ``target`` are removed
        afterwards. The entry cannot be evicted while the block runs. When the build fails, the key
        is not held during the block (there is nothing to protect), so others may try it meanwhile.

        Raises SandboxError when the key stays held by others (a build, or an entry that vanished
        under a run still using it) for ``wait_seconds`` (default: the pool's) in a row.
        """
        _check_key(key)
        lock = _KeyLock(self.root / "locks" / f"{key}.lock")
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        try:
            built = self._present(key, build, lock, wait)
            if built is not None and not built.ok:
                yield Checkout(key=key, hit=False, layer=None, built=built)
                return
            os.utime(self.entry(key))
            with self._layer(self.entry(key) / ENTRY_ENVIRONMENT, target, workdir) as layer:
                log.info(
                    "environment %s: %s, %s in %.0f ms%s",
                    key[:12], "pool hit" if built is None else "built", layer.mechanism,
                    layer.seconds * 1000, f" ({layer.note})" if layer.note else "",
                )  # fmt: skip
                yield Checkout(key=key, hit=built is None, layer=layer, built=built)
        finally:
            lock.release()
        if built is not None:
            self.evict()

    def evict(self) -> list[str]:
        """Remove all but the ``keep`` most recently used entries that no run is using."""
        removed = []
        for key in self.recent_keys()[self.keep :]:
            lock = _KeyLock(self.root / "locks" / f"{key}.lock")
            try:
                if lock.acquire(exclusive=True) and self.entry(key).is_dir():
                    self._discard(self.entry(key))
                    lock.path.unlink(missing_ok=True)
                    removed.append(key)
            finally:
                lock.release()
        for leftover in (self.root / "tmp").glob("*"):
            lock = _KeyLock(self.root / "locks" / f"{leftover.name.split('.', 1)[0]}.lock")
            try:
                if lock.acquire(exclusive=True):  # not being built: a crash's leftover
                    shutil.rmtree(leftover, ignore_errors=True)
            finally:
                lock.release()
        return removed

    def _present(
        self, key: str, build: Builder, lock: _KeyLock, wait_seconds: float
    ) -> CommandResult | None:
        """Hold ``lock`` shared with the entry published; the build's result when this call built it.

        A failed build returns with ``lock`` released. Locks are only tried, never waited for inside
        flock: whoever holds the key shared keeps it published, so a run that saw the entry missing
        and cannot get the key exclusively looks again rather than waiting for every user to leave
        (one of them may be a thread of this process whose caller waits for this one).
        """
        entry = self.entry(key)
        built = None
        deadline = time.monotonic() + wait_seconds
        delay = _POLL_FIRST
        while True:
            if entry.is_dir():
                if lock.acquire(exclusive=False):
                    if entry.is_dir():  # still there now that it cannot be evicted
                        return built
                    lock.release()  # evicted between the look and the lock: look again
                    continue
            elif lock.acquire(exclusive=True):
                try:
                    if not entry.is_dir():  # nobody built it since the look
                        built = self._build(key, build)
                        if not built.ok:
                            return built
                        deadline = time.monotonic() + wait_seconds
                finally:
                    lock.release()
                continue
            # Someone holds the key: building it, evicting it, or (entry missing) using it shared.
            if time.monotonic() >= deadline:
                raise _stuck(key, lock.path, entry, wait_seconds)
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    def _build(self, key: str, build: Builder) -> CommandResult:
        staging_root = self.root / "tmp"
        staging_root.mkdir(parents=True, exist_ok=True)
        for stale in staging_root.glob(f"{key}.*"):  # a crashed build of this key
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=staging_root))
        try:
            started = time.monotonic()
            result = build(staging)
            if result.ok:
                if not (staging / ENTRY_ENVIRONMENT).is_dir():
                    raise SandboxError(
                        f"the environment build for {key[:12]} succeeded but left no "
                        f"{ENTRY_ENVIRONMENT}/ in {staging}; the builder must create it there."
                    )
                meta = {"key": key, "built_seconds": round(time.monotonic() - started, 3)}
                (staging / "entry.json").write_text(json.dumps(meta), encoding="utf-8")
                self.entry(key).parent.mkdir(parents=True, exist_ok=True)
                staging.rename(self.entry(key))
            return result
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @contextlib.contextmanager
    def _layer(self, lower: Path, target: Path, workdir: Path) -> Iterator[Layer]:
        started = time.monotonic()
        namespace, note = self._mount(lower, target, workdir)
        try:
            if namespace is None:
                copy_tree(lower, target)
                yield Layer(
                    path=target, mechanism="copy", seconds=time.monotonic() - started, note=note
                )
            else:
                with mountns.lend(target, namespace, writes=workdir / "upper"):
                    yield Layer(
                        path=target, mechanism="overlay", seconds=time.monotonic() - started,
                        namespace=namespace,
                    )  # fmt: skip
        finally:
            if namespace is not None:
                namespace.close()  # the overlay goes with its namespace
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(workdir, ignore_errors=True)

    def _mount(
        self, lower: Path, target: Path, workdir: Path
    ) -> tuple[mountns.PrivateMounts | None, str]:
        """An overlay in a private namespace when allowed and possible; else None and why not."""
        if self.mechanism == "copy":
            return None, ""
        if not self._overlay_refused:
            try:
                return mount_overlay(lower, target, workdir), ""
            except OverlayUnavailable as exc:
                if self.mechanism == "overlay":
                    raise
                self._overlay_refused = str(exc)
        return None, self._overlay_refused

    def _discard(self, path: Path) -> None:
        """Move out of sight first, so a half-deleted entry is never seen as published."""
        trash = self.root / "tmp" / f"{path.name}.evicted-{os.getpid()}"
        path.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)


def _stuck(key: str, lock: Path, entry: Path, waited: float) -> SandboxError:
    """Why a checkout gave up waiting for ``key``, and what to do about it."""
    present = entry.is_dir()
    shared_here = _KeyLock.held_shared_here(lock)
    holder = (
        "a run in this process uses it" if shared_here
        else "another process holds it" if present
        else "another process is building it or holds it"
    )  # fmt: skip
    state = "published" if present else "missing"
    return SandboxError(
        f"gave up after {waited:.0f}s waiting for the pooled environment {key[:12]}: its lock "
        f"{lock} stayed held ({holder}) and the entry {entry} is {state}. A build elsewhere ends "
        f"within the tests gate's time limit; otherwise see who holds it (`fuser -v {lock}`, or "
        "its inode in /proc/locks) and stop that process, then run again."
    )


class _KeyLock:
    """An flock on one key's lock file, robust against the file being replaced by eviction."""

    _shared_here: ClassVar[dict[Path, int]] = {}
    """Shared holds this process has per lock file (to say who holds a key a run gave up on)."""
    _registry: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.exclusive = False

    @classmethod
    def held_shared_here(cls, path: Path) -> bool:
        with cls._registry:
            return cls._shared_here.get(path, 0) > 0

    def acquire(self, *, exclusive: bool) -> bool:
        """Try to take the lock; False at once when someone else holds it in a conflicting mode.

        Never waits: a caller that must have the lock tries again (see ``EnvPool._present``).
        """
        self.release()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, flags)
            except BlockingIOError:
                os.close(fd)
                return False
            if _same_file(fd, self.path):
                self.fd, self.exclusive = fd, exclusive
                if not exclusive:
                    with self._registry:
                        self._shared_here[self.path] = self._shared_here.get(self.path, 0) + 1
                return True
            os.close(fd)  # eviction unlinked this file meanwhile: lock the new one

    def release(self) -> None:
        if self.fd is not None:
            if not self.exclusive:
                with self._registry:
                    left = self._shared_here.pop(self.path, 1) - 1
                    if left:
                        self._shared_here[self.path] = left
            os.close(self.fd)
            self.fd = None


class OverlayUnavailable(SandboxError):
    """The host does not let shipyard mount an overlay here; copies are used instead."""


def mount_overlay(lower: Path, target: Path, workdir: Path) -> mountns.PrivateMounts:
    """Mount ``lower`` read-only under a fresh writable upper layer at ``target``, in a private mount
    namespace: sandboxes lent ``target`` see it, the host never does, and it is gone when the namespace
    is closed or this process dies (see shipyard.sandbox.mountns)."""
    upper, work = workdir / "upper", workdir / "work"
    paths = (lower.resolve(), upper.resolve(), work.resolve(), target.resolve())
    if any(ch in str(p) for p in paths for ch in _OVERLAY_UNSAFE):
        raise OverlayUnavailable(f"a path contains one of {' '.join(_OVERLAY_UNSAFE[:3])}")
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    # Covered by the overlay inside the namespace; what host-side code sees of the environment.
    if (lower / "pyvenv.cfg").is_file():
        shutil.copyfile(lower / "pyvenv.cfg", target / "pyvenv.cfg")
    options = f"lowerdir={paths[0]},upperdir={paths[1]},workdir={paths[2]}"
    try:
        return mountns.PrivateMounts.create(
            lambda: mountns.mount("overlay", paths[3], "overlay", options)
        )
    except mountns.NamespaceUnavailable as exc:
        (target / "pyvenv.cfg").unlink(missing_ok=True)
        raise OverlayUnavailable(f"no private mount namespace: {exc}") from exc
    except OSError as exc:
        (target / "pyvenv.cfg").unlink(missing_ok=True)
        raise OverlayUnavailable(f"overlay mount refused: {exc.strerror}") from exc


def copy_tree(source: Path, target: Path) -> None:
    """A copy of ``source`` at ``target``, sharing blocks where the filesystem can (reflinks)."""
    if target.exists():
        target.rmdir()  # an empty mount point made for an overlay that could not be mounted
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["cp", "-a", "--reflink=auto", str(source), str(target)],
            capture_output=True, text=True, timeout=300, check=False,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"could not copy the pooled environment {source}: {exc}") from exc
    if done.returncode != 0:
        raise SandboxError(
            f"could not copy the pooled environment {source}: {done.stderr.strip()[:300]}; "
            "is the disk full?"
        )


def _same_file(fd: int, path: Path) -> bool:
    try:
        held, current = os.fstat(fd), path.stat()
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)


def _check_key(key: str) -> None:
    if not key or not all(c.isalnum() or c in "-_" for c in key):
        raise SandboxError(f"pool key {key!r} must be letters, digits, '-' or '_' (a digest)")


__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_WAIT_SECONDS",
    "ENTRY_ENVIRONMENT",
    "Checkout",
    "EnvPool",
    "Layer",
    "OverlayUnavailable",
    "copy_tree",
    "keep_from_env",
    "mount_overlay",
    "root_from_env",
]
