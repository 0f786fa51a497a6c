"""The per-run wheelhouse: the host resolves and downloads binary wheels only, so no package code
runs on the host, and the sandbox installs from it with no network.

pip runs isolated from the host's configuration (no pip.conf, no PIP_* variables): the index the run
names is the only source.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from shipyard.deps.index import redact
from shipyard.errors import DependencyError

log = logging.getLogger(__name__)

_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_NOT_FOUND = re.compile(
    r"(?:No matching distribution found for"
    r"|Could not find a version that satisfies the requirement) (?P<requirement>\S+)"
)


def pip_env() -> dict[str, str]:
    """A minimal environment for pip: nothing from the host's PIP_* variables or config files."""
    keep = ("PATH", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        # os.devnull here makes pip skip every configuration file: global, user and site.
        PIP_CONFIG_FILE=os.devnull,
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONNOUSERSITE="1",
        # No home: no ~/.netrc, ~/.config/pip or keyring state to pick up.
        HOME="/nonexistent",
    )
    return env


def download_argv(
    requirement_files: Sequence[Path],
    *,
    index_url: str,
    dest: Path,
    extra_requirements: Sequence[str] = (),
    cache_dir: Path | None = None,
) -> list[str]:
    """The pip command line of ``download`` (it holds ``index_url``'s credentials: never log it)."""
    argv = [sys.executable, "-m", "pip", "download", "--isolated", "--disable-pip-version-check"]
    argv += ["--no-input", "--quiet", "--progress-bar", "off", "--only-binary=:all:"]
    argv += ["--dest", str(dest), "--index-url", index_url]
    argv += ["--cache-dir", str(cache_dir)] if cache_dir is not None else ["--no-cache-dir"]
    parts = urlsplit(index_url)
    if parts.scheme == "http" and parts.hostname:
        # pip caches plain-HTTP downloads only from trusted hosts; for http:// there is no TLS for
        # this to weaken (never added for https://, where it would skip certificate checks).
        host = parts.netloc.rsplit("@", 1)[-1]
        argv += ["--trusted-host", host]
    for path in requirement_files:
        argv += ["-r", str(path)]
    return argv + list(extra_requirements)


def download(
    requirement_files: Sequence[Path],
    *,
    index_url: str,
    dest: Path,
    extra_requirements: Sequence[str] = (),
    timeout: float = 300,
    cache_dir: Path | None = None,
) -> list[Path]:
    """Download every wheel the requirements resolve to (dependencies included) into ``dest``.

    Returns the wheels in ``dest``. ``cache_dir`` is pip's HTTP cache, shared between runs so that a
    repeated download does not fetch the same files again.
    """
    if not requirement_files and not extra_requirements:
        return []
    for path in requirement_files:
        if not path.is_file():
            raise DependencyError(f"{path}: requirements file not found.")
    dest.mkdir(parents=True, exist_ok=True)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    argv = download_argv(
        requirement_files,
        index_url=index_url,
        dest=dest,
        extra_requirements=extra_requirements,
        cache_dir=cache_dir,
    )
    log.info("downloading wheels from %s into %s", redact(index_url), dest)
    try:
        done = subprocess.run(
            argv, env=pip_env(), capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise DependencyError(
            f"downloading wheels from {redact(index_url)} took longer than {timeout:.0f} s; "
            "is the index slow or unreachable?"
        ) from exc
    except OSError as exc:
        raise DependencyError(f"cannot run pip ({exc.strerror}); is pip installed?") from exc
    if done.returncode != 0:
        raise DependencyError(_failure(done.stderr, index_url))
    return sorted(dest.glob("*.whl"))


def _failure(stderr: str, index_url: str) -> str:
    """What went wrong in one message: the package pip could not find, and its output's tail."""
    text = _URL_CREDENTIALS.sub(r"\1***@", stderr)
    missing = _NOT_FOUND.search(text)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    tail = " | ".join((errors or lines)[-4:]) or "pip failed without a message"
    where = redact(index_url)
    if missing:
        return (
            f"{missing['requirement']} has no binary wheel on {where} that fits this Python "
            f"(only wheels are used, never sdists). pip said: {tail}"
        )
    return f"could not download wheels from {where}. pip said: {tail}"
