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
from typing import NamedTuple
from urllib.parse import quote, urlsplit, urlunsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from shipyard.deps.credentials import index_auth
from shipyard.deps.index import redact
from shipyard.deps.network import PROXY_VARIABLES
from shipyard.errors import DependencyConflict, DependencyError

log = logging.getLogger(__name__)

_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_NOT_FOUND = re.compile(
    r"(?:No matching distribution found for"
    r"|Could not find a version that satisfies the requirement) (?P<requirement>\S+)"
)


def pip_env() -> dict[str, str]:
    """A minimal environment for pip: nothing from the host's PIP_* variables or config files."""
    keep = ("PATH", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR", "TMPDIR")
    # The same trust and proxies as the index client (shipyard.deps.network): pip reads the
    # proxy variables itself, in either case.
    proxies = (*PROXY_VARIABLES, *(v.lower() for v in PROXY_VARIABLES))
    env = {k: os.environ[k] for k in (*keep, *proxies) if k in os.environ}
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
    # Not --quiet: pip explains a resolution conflict ("The conflict is caused by: ...") only at its
    # normal verbosity, and that explanation is what the user needs. The output is captured, not shown.
    argv += ["--no-input", "--progress-bar", "off", "--only-binary=:all:"]
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
        # pip runs with no home and no environment of ours: credentials found in the environment
        # or netrc travel in the URL, on the host only (the argv is never logged).
        index_url=with_credentials(index_url),
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
        raise _failure(done.stderr, index_url, done.stdout)
    return sorted(dest.glob("*.whl"))


def with_credentials(index_url: str) -> str:
    """``index_url`` with the credentials ``index_auth`` finds for it (URL, environment, netrc)."""
    auth = index_auth(index_url)
    if auth.source in ("none", "url") or auth.header is None:
        return index_url
    parts = urlsplit(auth.url)
    userinfo = quote(auth.username or "", safe="") + ":" + quote(auth.password or "", safe="")
    return urlunsplit(
        (parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, parts.query, parts.fragment)
    )


_CONFLICT_HEADER = "The conflict is caused by:"
_PIP_DEPENDS = re.compile(r"(?P<who>\S+ \S+) depends on (?P<requirement>.+)")
_PIP_REQUESTED = re.compile(
    r"The user requested (?P<constraint>\(constraint\) )?(?P<requirement>.+)"
)
_CANNOT_INSTALL = re.compile(r"Cannot install (?P<what>.+?) because these package versions")


class Demand(NamedTuple):
    """One requirement in a conflict: who asks for it (``None``: the requirement files) and what."""

    who: str | None
    requirement: str
    constraint: bool = False


def requirement_name(requirement: str) -> str:
    """The canonical project name a requirement string is about (best effort for odd strings)."""
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return canonicalize_name(re.split(r"[\s\[<>=!~;@(]", requirement.strip(), maxsplit=1)[0])


def conflict_sentences(demands: Sequence[Demand]) -> tuple[str, ...]:
    """One sentence per clashing project, e.g. "a 2.0 requires b>=3, but the requirements pin b==2.5".

    Demands are grouped by the project they are about; a project asked for only once clashes with
    nothing and is left out, unless no project is asked for twice (then every package's demand is told).
    """
    groups: dict[str, list[Demand]] = {}
    for demand in dict.fromkeys(demands):
        groups.setdefault(requirement_name(demand.requirement), []).append(demand)
    clashing = [g for g in groups.values() if len(g) > 1]
    if not clashing:
        clashing = [g for g in groups.values() if any(d.who for d in g)]
    return tuple(_sentence(group) for group in clashing)


def _sentence(group: Sequence[Demand]) -> str:
    parts = sorted(f"{d.who} requires {d.requirement}" for d in group if d.who)
    for source, constraint in (("requirements", False), ("constraints", True)):
        asked = [d.requirement for d in group if d.who is None and d.constraint == constraint]
        if asked:
            verb = "pin" if all(_is_pin(r) for r in asked) else "ask for"
            parts.append(("but " if parts else "") + f"the {source} {verb} " + " and ".join(asked))
    if len(parts) == 1 and not parts[0].startswith("the "):
        parts.append("which no available version satisfies")
    return ", ".join(parts)


def _is_pin(requirement: str) -> bool:
    try:
        specs = list(Requirement(requirement).specifier)
    except InvalidRequirement:
        return False
    return len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version


def pip_conflicts(output: str) -> tuple[str, ...] | None:
    """The conflicts pip explained in its output, as sentences; None unless resolution was impossible."""
    if "ResolutionImpossible" not in output and _CONFLICT_HEADER not in output:
        return None
    demands: list[Demand] = []
    lines = output.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if _CONFLICT_HEADER in line), len(lines))
    for line in lines[start:]:
        line = line.strip()
        if not line or line.startswith("To fix this"):
            break
        if requested := _PIP_REQUESTED.fullmatch(line):
            demands.append(Demand(None, requested["requirement"], bool(requested["constraint"])))
        elif depends := _PIP_DEPENDS.fullmatch(line):
            demands.append(Demand(depends["who"], depends["requirement"]))
    cannot = _CANNOT_INSTALL.search(output)
    what = cannot["what"] if cannot else "the requirements"
    return conflict_sentences(demands) or (f"{what} have conflicting dependencies",)


def _failure(stderr: str, index_url: str, stdout: str = "") -> DependencyError:
    """What went wrong, as the error to raise: a conflict between requirements, a package pip could
    not find, or else pip's output's tail."""
    text = _URL_CREDENTIALS.sub(r"\1***@", stderr)
    missing = _NOT_FOUND.search(text)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    tail = " | ".join((errors or lines)[-4:]) or "pip failed without a message"
    where = redact(index_url)
    conflicts = pip_conflicts(_URL_CREDENTIALS.sub(r"\1***@", f"{stdout}\n{text}"))
    if conflicts is not None:
        return DependencyConflict(
            "the requirements cannot all be installed together: "
            + "; ".join(conflicts)
            + ". Change the pins so every package's requirements hold at once (update the package "
            "that is pinned too old or too new, or pick versions that accept each other), "
            "then run again.",
            conflicts,
        )
    if missing:
        return DependencyError(
            f"{missing['requirement']} has no binary wheel on {where} that fits this Python "
            f"(only wheels are used, never sdists). pip said: {tail}"
        )
    return DependencyError(f"could not download wheels from {where}. pip said: {tail}")
