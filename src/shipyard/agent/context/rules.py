"""The repository's instructions for agents (AGENTS.md and its kin), and the committed tree they
and every other context section are read from.

Everything comes out of git's object store at one commit, never from the worktree: an untracked
file or a symlink pointing at the host cannot smuggle host files into a prompt. A symlink is only
followed to another file of the same commit (``CLAUDE.md -> AGENTS.md``).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import RepositoryError
from shipyard.gitcmd import git

logger = logging.getLogger(__name__)

RULES_PATHS = ("AGENTS.md", "CLAUDE.md", ".github/copilot-instructions.md", "CONTRIBUTING.md")
"""Where repositories write instructions for agents and contributors, most specific first."""
RULES_CAP_CHARS = 8000
MAX_READ_BYTES = 256 * 1024
"""Files larger than this are never read into a context."""

_REGULAR = frozenset({"100644", "100755"})
_SYMLINK = "120000"
_BATCH = 500  # objects per `git cat-file --batch` call
_SYMLINK_HOPS = 8


@dataclass(frozen=True, kw_only=True)
class TreeEntry:
    """One blob of the committed tree: a regular file or a symlink (whose blob is its target)."""

    path: str
    mode: str
    oid: str
    size: int

    @property
    def is_file(self) -> bool:
        return self.mode in _REGULAR


class CommitTree:
    """The files of one commit as git stores them. Build with ``CommitTree.at``."""

    def __init__(self, workspace: Path, commit: str, entries: Mapping[str, TreeEntry]) -> None:
        self.workspace = workspace
        self.commit = commit
        self.entries = dict(entries)

    @classmethod
    def at(cls, workspace: Path, commit: str) -> CommitTree:
        """List the blobs of ``commit`` (a sha or any revision) in the repository at ``workspace``."""
        found = git(
            "rev-parse",
            "--verify",
            "-q",
            "--end-of-options",
            f"{commit}^{{commit}}",
            cwd=workspace,
            check=False,
        )
        sha = found.stdout.strip()
        if found.returncode != 0 or not sha:
            raise RepositoryError(
                f"{commit!r} is not a commit of the repository at {workspace}; "
                "give the workspace's base or change commit."
            )
        listing = git("ls-tree", "-r", "-l", "-z", "--full-tree", sha, cwd=workspace).stdout
        entries: dict[str, TreeEntry] = {}
        for record in listing.split("\0"):
            meta, tab, path = record.partition("\t")
            fields = meta.split()
            if not tab or len(fields) != 4 or fields[1] != "blob":
                continue  # submodules (commits) are not part of this repository's text
            entries[path] = TreeEntry(path=path, mode=fields[0], oid=fields[2], size=int(fields[3]))
        return cls(workspace, sha, entries)

    def files(self) -> list[str]:
        """Paths of the regular files, sorted."""
        return sorted(p for p, e in self.entries.items() if e.is_file)

    def read(self, paths: Iterable[str], *, max_bytes: int = MAX_READ_BYTES) -> dict[str, str]:
        """The text of each path that is a blob of at most ``max_bytes``, UTF-8 and without NUL.

        Others (missing, too large, binary) are left out. A symlink's text is its target.
        """
        wanted = sorted(
            {
                self.entries[p]
                for p in paths
                if p in self.entries and self.entries[p].size <= max_bytes
            },
            key=lambda e: e.path,
        )
        texts: dict[str, str] = {}
        for start in range(0, len(wanted), _BATCH):
            texts.update(self._read_batch(wanted[start : start + _BATCH]))
        return texts

    def _read_batch(self, entries: list[TreeEntry]) -> dict[str, str]:
        if not entries:
            return {}
        feed = "".join(f"{e.oid}\n" for e in entries)
        out = git("cat-file", "--batch", cwd=self.workspace, input=feed).stdout
        headers = [f"{e.oid} blob {e.size}\n" for e in entries]
        texts: dict[str, str] = {}
        pos = 0
        for i, entry in enumerate(entries):
            if not out.startswith(headers[i], pos):
                raise RepositoryError(
                    f"`git cat-file --batch` in {self.workspace} answered out of order at "
                    f"{entry.path}; check the repository with `git fsck`."
                )
            start = pos + len(headers[i])
            # Output arrives decoded (invalid UTF-8 replaced), so byte sizes cannot place the end
            # of a blob; the next header, known in advance, does. Text must re-encode to its size.
            end = out.find(headers[i + 1], start) - 1 if i + 1 < len(entries) else len(out) - 1
            if end < start:
                raise RepositoryError(
                    f"`git cat-file --batch` in {self.workspace} left out the blob after "
                    f"{entry.path}; check the repository with `git fsck`."
                )
            text = out[start:end]
            if len(text.encode()) == entry.size and "\0" not in text:
                texts[entry.path] = text
            pos = end + 1
        return texts

    def text_files(self) -> frozenset[str]:
        """Paths of the non-empty files git does not consider binary."""
        out = git("grep", "-I", "--name-only", "-z", "-e", "", self.commit, cwd=self.workspace)
        prefix = f"{self.commit}:"
        return frozenset(p.removeprefix(prefix) for p in out.stdout.split("\0") if p)

    def recently_changed(self, commits: int = 10) -> list[str]:
        """Files changed by the last ``commits`` commits up to this one that still exist, newest first."""
        out = git(
            "log",
            "--format=",
            "--name-only",
            "-z",
            "--no-renames",
            f"-n{commits}",
            self.commit,
            cwd=self.workspace,
        )
        seen: dict[str, None] = {}
        for path in out.stdout.replace("\n", "\0").split("\0"):
            if path in self.entries and self.entries[path].is_file:
                seen.setdefault(path, None)
        return list(seen)

    def resolve(self, path: str) -> str | None:
        """The regular file ``path`` names, following symlinks only within this tree."""
        for _hop in range(_SYMLINK_HOPS):
            entry = self.entries.get(path)
            if entry is None:
                return None
            if entry.is_file:
                return path
            if entry.mode != _SYMLINK:
                return None
            target = self.read([path]).get(path, "")
            joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            if not target or target.startswith("/") or joined == ".." or joined.startswith("../"):
                logger.info("not following %s: its target %r is outside the tree", path, target)
                return None
            path = joined
        return None


@dataclass(frozen=True, kw_only=True)
class RulesFile:
    """One rules file as shown to the agent; ``text`` ends with a note when it was cut."""

    path: str
    text: str
    truncated: bool


def read_rules(tree: CommitTree, *, cap_chars: int = RULES_CAP_CHARS) -> list[RulesFile]:
    """The rules files present in the tree, in ``RULES_PATHS`` order, each cut to ``cap_chars``.

    A file that is a symlink to another rules file already shown is left out.
    """
    found: list[RulesFile] = []
    shown: set[str] = set()
    for path in RULES_PATHS:
        real = tree.resolve(path)
        if real is None or real in shown:
            continue
        text = tree.read([real], max_bytes=4 * MAX_READ_BYTES).get(real)
        if text is None:
            logger.info("rules file %s is binary or too large; left out", path)
            continue
        shown.add(real)
        truncated = len(text) > cap_chars
        if truncated:
            text = (
                text[:cap_chars].rstrip()
                + f"\n[… cut: {path} has {len(text)} characters, the first {cap_chars} are shown;"
                " read the file for the rest]"
            )
        found.append(RulesFile(path=path, text=text.strip(), truncated=truncated))
    return found


__all__ = ["RULES_PATHS", "CommitTree", "RulesFile", "TreeEntry", "read_rules"]
