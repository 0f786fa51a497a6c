"""The one way shipyard runs git on the host: an environment built from scratch, and a configuration
under which nothing a repository names (hooks, fsmonitor, filters, drivers, ssh) is ever executed.

Workspaces hold content an agent chose, and a repository's ``.git/config`` (or a file it
includes) can name programs git runs on its own. Every call overrides those settings at command-line
scope, which beats every configuration file, and switches off each filter or driver defined.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from shipyard.errors import RepositoryError

logger = logging.getLogger(__name__)

IDENTITY = ("shipyard", "shipyard@localhost")
"""Author and committer of every commit shipyard makes unless the caller names someone else."""

# Fixed overrides at command-line scope (GIT_CONFIG_COUNT): no configuration file can undo them.
HARDENING: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", os.devnull),  # no hook of any kind, including reference-transaction
    ("core.fsmonitor", "false"),
    ("core.untrackedCache", "false"),
    ("core.sshCommand", "false"),
    ("core.askPass", ""),
    ("core.pager", "cat"),
    ("core.editor", "false"),
    ("core.attributesFile", os.devnull),
    ("core.excludesFile", os.devnull),
    ("core.alternateRefsCommand", "true"),
    ("core.quotePath", "false"),
    ("credential.helper", ""),
    ("diff.external", ""),
    ("merge.renormalize", "false"),
    ("merge.verifySignatures", "false"),
    ("log.showSignature", "false"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("submodule.recurse", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("protocol.allow", "never"),
    ("protocol.file.allow", "always"),
    ("rerere.enabled", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("init.defaultBranch", "main"),
    # Ownership checks guard against running a stranger's config; with nothing runnable left they
    # would only stop shipyard reading repositories another user (or a sandbox uid) created.
    ("safe.directory", "*"),
)

# Per-driver settings that name a program. The replacement makes a filter a no-op and a diff or
# merge driver a loud refusal (a merge through ``false`` is a conflict, never a wrong result).
_DRIVER_OVERRIDES: dict[str, tuple[tuple[str, str], ...]] = {
    "filter": (("clean", ""), ("smudge", ""), ("process", ""), ("required", "false")),
    "diff": (("command", "false"), ("textconv", "false")),
    "merge": (("driver", "false"),),
}

# Commands that never convert, diff or merge file contents, so a repository's drivers cannot matter.
_NO_CONTENT_COMMANDS = frozenset(
    {
        "branch",
        "check-ref-format",
        "clone",
        "commit-tree",
        "config",
        "fetch",
        "for-each-ref",
        "init",
        "merge-base",
        "remote",
        "rev-list",
        "rev-parse",
        "show-ref",
        "symbolic-ref",
        "update-ref",
    }
)

_SUMMARY_LINES = 3
_SUMMARY_CHARS = 500
_SHOWN_COMMAND_CHARS = 200


@lru_cache(maxsize=1)
def git_executable() -> str:
    """The absolute path of git on the host, found once on the caller's PATH."""
    found = shutil.which("git")
    if found is None:
        raise RepositoryError(
            "git is not installed or not on PATH; install git (apt-get install git)."
        )
    return found


def git_env(*, identity: tuple[str, str] = IDENTITY) -> dict[str, str]:
    """The whole environment git runs with: no user or system config, no prompts, one identity."""
    name, email = identity
    return {
        "PATH": f"{Path(git_executable()).parent}:/usr/bin:/bin",
        "HOME": os.devnull,  # nothing to read under it, nothing can be written under it
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "file",
        "GIT_EDITOR": "false",
        "GIT_SEQUENCE_EDITOR": "false",
        "GIT_MERGE_AUTOEDIT": "no",
        "GIT_PAGER": "cat",
        "GIT_OPTIONAL_LOCKS": "0",  # reading a user's repository must not rewrite its index
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def _with_config(env: dict[str, str], settings: Iterable[tuple[str, str]]) -> dict[str, str]:
    # GIT_CONFIG_KEY_n/VALUE_n carry key and value apart, so a driver name holding "=" or spaces
    # cannot be misparsed the way ``-c key=value`` would be.
    out = dict(env)
    count = 0
    for count, (key, value) in enumerate(settings, start=1):
        out[f"GIT_CONFIG_KEY_{count - 1}"] = key
        out[f"GIT_CONFIG_VALUE_{count - 1}"] = value
    out["GIT_CONFIG_COUNT"] = str(count)
    return out


def _run(
    argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float, input: bytes | None
) -> subprocess.CompletedProcess[bytes]:
    shown = _shown(argv[1:])
    try:
        return subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RepositoryError(
            f"`{shown}` took longer than {timeout:.0f} s in {cwd}; "
            "check that the repository is on a responsive disk, or raise the timeout."
        ) from exc
    except OSError as exc:
        raise RepositoryError(f"`{shown}` could not start in {cwd}: {exc.strerror or exc}") from exc


def driver_overrides(cwd: Path, *, timeout: float = 30) -> list[tuple[str, str]]:
    """Settings that neutralise each filter, diff and merge driver defined for ``cwd``.

    Reads the effective configuration (following includes); outside a repository there is none.
    """
    env = _with_config(git_env(), HARDENING)
    argv = [git_executable(), "config", "--list", "-z", "--includes"]
    done = _run(argv, cwd=cwd, env=env, timeout=timeout, input=None)
    if done.returncode != 0:
        # Fail closed: if the configuration cannot be read, nobody can tell what it would run.
        raise RepositoryError(
            f"cannot read the git configuration in {cwd}: {_summary(done)}; "
            "fix the repository's .git/config and try again."
        )
    drivers: dict[str, set[str]] = {section: set() for section in _DRIVER_OVERRIDES}
    for entry in done.stdout.decode("utf-8", "replace").split("\0"):
        key = entry.split("\n", 1)[0]
        section, _, rest = key.partition(".")
        subsection, _, _variable = rest.rpartition(".")
        if subsection and section.lower() in drivers:
            drivers[section.lower()].add(subsection)
    overrides: list[tuple[str, str]] = []
    for section, names in drivers.items():
        for name in sorted(names):
            overrides += [
                (f"{section}.{name}.{var}", value) for var, value in _DRIVER_OVERRIDES[section]
            ]
    return overrides


def git(
    *args: str,
    cwd: Path,
    timeout: float = 120,
    check: bool = True,
    input: bytes | str | None = None,
    identity: tuple[str, str] = IDENTITY,
) -> subprocess.CompletedProcess[str]:
    """Run ``git *args`` in ``cwd``, hardened. Output is decoded as UTF-8.

    With ``check`` a non-zero exit raises RepositoryError showing the command and git's reason;
    without it the caller reads ``returncode``. ``identity``: (name, email) of author and committer.
    """
    if not args:
        raise ValueError("git() needs a subcommand")
    if not cwd.is_dir():
        raise RepositoryError(f"{cwd}: no such directory; check the repository path.")
    settings = list(HARDENING)
    if args[0] not in _NO_CONTENT_COMMANDS:
        settings += driver_overrides(cwd, timeout=timeout)
    env = _with_config(git_env(identity=identity), settings)
    data = input.encode() if isinstance(input, str) else input
    argv = [git_executable(), *args]
    logger.debug("git %s (in %s)", shlex.join(args), cwd)
    done = _run(argv, cwd=cwd, env=env, timeout=timeout, input=data)
    result = subprocess.CompletedProcess(
        args=["git", *args],
        returncode=done.returncode,
        stdout=done.stdout.decode("utf-8", "replace"),
        stderr=done.stderr.decode("utf-8", "replace"),
    )
    if check and done.returncode != 0:
        raise RepositoryError(f"`{_shown(args)}` failed in {cwd}: {_summary(done)}")
    return result


def _shown(args: Iterable[str]) -> str:
    text = shlex.join(["git", *args])
    return text if len(text) <= _SHOWN_COMMAND_CHARS else text[: _SHOWN_COMMAND_CHARS - 1] + "…"


def _summary(done: subprocess.CompletedProcess[bytes]) -> str:
    text = (done.stderr or done.stdout).decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return f"exit code {done.returncode}"
    summary = "; ".join(lines[-_SUMMARY_LINES:])
    return summary if len(summary) <= _SUMMARY_CHARS else summary[: _SUMMARY_CHARS - 1] + "…"


__all__ = ["HARDENING", "IDENTITY", "driver_overrides", "git", "git_env", "git_executable"]
