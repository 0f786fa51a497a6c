"""Private mount namespaces: mounts that only shipyard's sandboxes see and that vanish with the process.

The environment pool lends overlays. Mounted on the host they would outlive a shipyard process killed
with SIGKILL (nothing is left to unmount them), pile up, and make the directories beneath them
undeletable. So every overlay is mounted in a namespace of its own instead:

- a short-lived thread calls ``unshare(CLONE_NEWNS)`` (which affects only the calling thread), makes the
  new namespace a *slave* of the host's (host mounts keep reaching it, nothing mounted in it reaches the
  host), mounts, and opens ``/proc/thread-self/ns/mnt``. That descriptor is the only thing keeping the
  namespace alive; the thread ends.
- each bubblewrap started over a lent path joins the namespace (``setns`` after fork, before exec) and
  builds its own namespace from there, so the sandbox sees the mount at the usual path.
- when the descriptor is closed, or the process dies by any means, the kernel frees the namespace and
  every mount in it. The host's mount table never held them.

Joining needs CAP_SYS_ADMIN, as the overlay mount itself does: this is only used as root.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from shipyard.errors import SandboxError

CLONE_NEWNS = 0x00020000
CLONE_FS = 0x00000200
MS_REC = 0x4000
MS_SLAVE = 1 << 19

_libc = ctypes.CDLL(None, use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]

T = TypeVar("T")


class NamespaceUnavailable(SandboxError):
    """This host does not let shipyard create (or join) a private mount namespace."""


def _check(result: int, what: str) -> None:
    if result != 0:
        raise NamespaceUnavailable(f"{what}: {os.strerror(ctypes.get_errno())}")


def mount(source: str, target: Path, fstype: str, options: str) -> None:
    """``mount(2)`` in the calling thread's namespace; OSError with the kernel's reason on refusal."""
    if _libc.mount(source.encode(), bytes(target), fstype.encode(), 0, options.encode()) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class PrivateMounts:
    """A private mount namespace held open by a descriptor; closing it frees every mount inside."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def create(cls, setup: Callable[[], None]) -> PrivateMounts:
        """A new namespace (a slave of the host's) in which ``setup`` has run, e.g. to mount.

        Errors from ``setup`` propagate; the namespace is then already gone.
        """

        def inside() -> int:
            _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
            _check(
                _libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /"
            )
            setup()
            return os.open(
                f"/proc/self/task/{threading.get_native_id()}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC
            )

        return cls(_in_thread(inside))

    def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a thread that has joined this namespace (the caller's stays where it is)."""

        def inside() -> T:
            self.enter()
            return fn()

        return _in_thread(inside)

    def enter(self) -> None:
        """Join this namespace in the calling process: for a freshly forked child, before exec.

        setns refuses a process whose filesystem attributes are shared. A child forked from a
        thread of a process that loaded some native libraries (torch, for the embedding model) was
        seen sharing them, so the caller takes a private copy first (``run``'s threads share
        theirs with the process, so they do the same)."""
        _check(_libc.unshare(CLONE_FS), "unshare(CLONE_FS)")
        _check(_libc.setns(self.fd, CLONE_NEWNS), "setns(mount namespace)")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a thread of its own (that ends afterwards) and return or raise what it did."""
    out: list[T] = []
    failed: list[BaseException] = []

    def body() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # re-raised in the caller
            failed.append(exc)

    thread = threading.Thread(target=body, name="shipyard-mountns", daemon=True)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return out[0]


@dataclass(frozen=True)
class _Lent:
    path: Path
    namespace: PrivateMounts
    writes: Path
    """Where writes through the mount land on the host (the overlay's upper layer)."""


_lent: dict[Path, _Lent] = {}
_lock = threading.Lock()


@contextlib.contextmanager
def lend(path: Path, namespace: PrivateMounts, *, writes: Path) -> Iterator[None]:
    """While the block runs, sandboxes over ``path`` (or a directory holding it) join ``namespace``."""
    key = path.resolve()
    with _lock:
        _lent[key] = _Lent(key, namespace, writes)
    try:
        yield
    finally:
        with _lock:
            _lent.pop(key, None)


@dataclass(frozen=True)
class Join:
    """What a sandbox over some paths must do: join ``namespace``, also watch ``writes`` for disk use."""

    namespace: PrivateMounts | None
    writes: tuple[Path, ...]


def join_for(sources: Iterable[Path]) -> Join:
    """The lent namespace that the mount sources ``sources`` need, if any."""
    resolved = [s.resolve() for s in sources]
    with _lock:
        found = [
            lent
            for lent in _lent.values()
            if any(lent.path == s or s in lent.path.parents for s in resolved)
        ]
    namespaces = {id(lent.namespace) for lent in found}
    if len(namespaces) > 1:
        raise SandboxError(
            "one sandbox cannot bind two pooled environments lent to different runs: "
            + ", ".join(str(lent.path) for lent in found)
        )
    return Join(
        namespace=found[0].namespace if found else None,
        writes=tuple(lent.writes for lent in found),
    )


def mounts_under(directory: Path, mountinfo: str) -> list[str]:
    """Mount points at or below ``directory`` in a ``/proc/<pid>/mountinfo`` text."""
    base = str(directory.resolve())
    found = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if point == base or point.startswith(base + "/"):
            found.append(point)
    return found


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


__all__ = [
    "Join",
    "NamespaceUnavailable",
    "PrivateMounts",
    "join_for",
    "lend",
    "mount",
    "mounts_under",
]
