"""Reading files a sandboxed command wrote, without letting it make the host read anything else."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

MAX_REPORT_BYTES = 64 * 1024 * 1024
"""Reports larger than this are not read: a test run has no business writing more."""


def read_report(path: Path) -> bytes | None:
    """The bytes of a report the sandbox wrote, or None unless it is a plain file of sane size.

    The directory is writable inside the sandbox, so the name may have been replaced by a symlink
    to a host file, a FIFO or a device: the host opens it without following links and reads it only
    if it is a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_REPORT_BYTES:
        os.close(fd)
        log.warning("ignoring report %s: not a regular file of at most 64 MiB", path)
        return None
    with os.fdopen(fd, "rb") as fh:
        return fh.read(MAX_REPORT_BYTES)
