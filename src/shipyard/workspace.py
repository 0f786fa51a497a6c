"""Repositories and run workspaces: the checks before a run, a private clone per run on its own
branch, the run's commit, and the diff facts the policy reads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import DirtyRepositoryError, PatchError, RepositoryError
from shipyard.gitcmd import git
from shipyard.model import ChangedFile, DiffFacts, FileChange

logger = logging.getLogger(__name__)

BRANCH_PREFIX = "shipyard/"
"""Every branch shipyard creates starts with this."""

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_SHOWN_DIRTY_PATHS = 5


@dataclass(frozen=True, kw_only=True)
class RepoInfo:
    """A repository shipyard may change, as it was when inspected."""

    path: Path
    """The resolved top-level directory of the working tree."""
    branch: str | None
    """The checked-out branch, or None when HEAD is detached."""
    head: str
    """The commit HEAD points at."""

    @property
    def default_target(self) -> str | None:
        """The branch changes land on unless configured otherwise: the one checked out."""
        return self.branch


def inspect_repo(path: Path, *, require_clean: bool = True) -> RepoInfo:
    """Check that ``path`` is in a git working tree with at least one commit and, by default, no
    uncommitted changes to tracked files (untracked files are never in the way)."""
    path = path.expanduser()
    if not path.is_dir():
        raise RepositoryError(f"{path}: no such directory; pass the path of a git repository.")
    where = git("rev-parse", "--is-bare-repository", "--is-inside-work-tree", cwd=path, check=False)
    answers = where.stdout.split()
    if where.returncode != 0 or len(answers) != 2:
        raise RepositoryError(
            f"{path}: not a git repository; run `git init` there and commit your project first."
        )
    if answers[0] == "true" or answers[1] != "true":
        raise RepositoryError(
            f"{path}: not inside a working tree (a bare repository or a .git directory); "
            "pass the directory of a checkout instead."
        )
    top = Path(git("rev-parse", "--show-toplevel", cwd=path).stdout.strip()).resolve()
    head = git("rev-parse", "--verify", "--quiet", "HEAD^{commit}", cwd=top, check=False)
    if head.returncode != 0:
        raise RepositoryError(
            f"{top}: the repository has no commits yet; commit your project first (git commit)."
        )
    branch = git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=top, check=False).stdout.strip()
    if require_clean:
        dirty = uncommitted_paths(top)
        if dirty:
            shown = ", ".join(dirty[:_SHOWN_DIRTY_PATHS])
            more = len(dirty) - _SHOWN_DIRTY_PATHS
            if more > 0:
                shown += f" and {more} more"
            raise DirtyRepositoryError(
                f"{top} has uncommitted changes to tracked files ({shown}); "
                "commit or stash them first."
            )
    return RepoInfo(path=top, branch=branch or None, head=head.stdout.strip())


def uncommitted_paths(worktree: Path) -> list[str]:
    """Tracked paths with staged or unstaged changes in ``worktree`` (untracked files excluded)."""
    out = git(
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=no",
        "--ignore-submodules=dirty",
        cwd=worktree,
    ).stdout
    fields = out.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields) and fields[i]:
        code, path = fields[i][:2], fields[i][3:]
        paths.append(path)
        # A rename or copy is followed by its source path in a field of its own.
        i += 2 if code[0] in "RC" else 1
    return paths


@dataclass(frozen=True, kw_only=True)
class Workspace:
    """A private clone of the repository where one run makes its change on ``shipyard/<run-id>``."""

    path: Path
    run_id: str
    branch: str
    base_commit: str

    @classmethod
    def create(cls, repo: Path, *, base_ref: str, run_id: str, root: Path) -> Workspace:
        """Clone ``repo`` to ``root/<run_id>/repo``, branch ``shipyard/<run_id>`` off ``base_ref``.

        Objects are copied, never hard-linked or borrowed through alternates: the sandbox later
        writes the workspace, and nothing it reaches may be shared with the user's repository.
        """
        if not _RUN_ID.fullmatch(run_id) or ".." in run_id or run_id.endswith((".", ".lock")):
            raise RepositoryError(
                f"run id {run_id!r} cannot name a workspace and branch; "
                "use letters, digits, '-' and '_'."
            )
        repo = repo.expanduser().resolve()
        resolved = git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{base_ref}^{{commit}}",
            cwd=repo, check=False,
        )  # fmt: skip
        if resolved.returncode != 0:
            raise RepositoryError(
                f"{repo}: {base_ref!r} is not a branch, tag or commit there; "
                "check the target branch name (shipyard.toml [repo] target_branch)."
            )
        base = resolved.stdout.strip()
        dest = root.expanduser().resolve() / run_id / "repo"
        if dest.exists():
            # Left by an earlier attempt of this run that stopped half-way; start afresh.
            logger.warning("removing the stale workspace %s before cloning again", dest)
            _rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        git(
            "clone", "--quiet", "--no-hardlinks", "--no-checkout", "--template=", "--",
            str(repo), str(dest), cwd=dest.parent,
        )  # fmt: skip
        if git("cat-file", "-e", f"{base}^{{commit}}", cwd=dest, check=False).returncode != 0:
            # A detached commit reachable from no branch or tag is not copied by clone.
            git("fetch", "--quiet", "--no-tags", "--", str(repo), base, cwd=dest)
        branch = f"{BRANCH_PREFIX}{run_id}"
        git("checkout", "--quiet", "-b", branch, base, cwd=dest)
        # The workspace stands alone: nothing in it points back at the user's repository.
        git("remote", "remove", "origin", cwd=dest)
        logger.info("workspace %s on %s at %s", dest, branch, base[:12])
        return cls(path=dest, run_id=run_id, branch=branch, base_commit=base)

    def apply_patch(self, patch: Path) -> None:
        """Apply a unified or git diff (new, deleted, renamed and binary files included).

        Either the whole patch applies or the workspace is left exactly as it was.
        """
        patch = patch.expanduser().resolve()
        if not patch.is_file():
            raise PatchError(f"{patch}: no such patch file; check the path you passed.")
        checked = git(
            "apply", "--check", "--whitespace=nowarn", str(patch), cwd=self.path, check=False
        )
        if checked.returncode != 0:
            lines = [ln.removeprefix("error: ").strip() for ln in checked.stderr.splitlines()]
            reason = "; ".join([ln for ln in lines if ln][:3]) or "git apply refused it"
            raise PatchError(
                f"{patch.name} does not apply to {self.base_commit[:12]}: {reason}. "
                "Make the patch against the target branch's current head and submit it again."
            )
        git("apply", "--whitespace=nowarn", str(patch), cwd=self.path)

    def commit(self, message: str) -> str:
        """Commit every change in the workspace (new files too) on the run branch; returns it."""
        if not message.strip():
            raise RepositoryError("a commit needs a message; describe the change.")
        git("add", "--all", cwd=self.path)
        staged = git(
            "diff",
            "--cached",
            "--quiet",
            "--no-ext-diff",
            "--no-textconv",
            cwd=self.path,
            check=False,
        )
        if staged.returncode == 0:
            raise RepositoryError(
                f"the change is empty: nothing in {self.path} differs from the last commit."
            )
        git(
            "commit",
            "--quiet",
            "--no-verify",
            "--no-gpg-sign",
            "--file=-",
            cwd=self.path,
            input=message,
        )
        return git("rev-parse", "--verify", "HEAD", cwd=self.path).stdout.strip()

    def diff_facts(self, base: str | None = None, head: str = "HEAD") -> DiffFacts:
        """Files and line counts between ``base`` (default: the base commit) and ``head``."""
        return diff_facts(self.path, base or self.base_commit, head)

    def changed_paths(self, base: str | None = None, head: str = "HEAD") -> tuple[str, ...]:
        """Every path the change touches, old names of renamed files included."""
        return self.diff_facts(base, head).paths

    def remove(self) -> None:
        """Delete the workspace from disk; attributes stay readable, a second call is harmless."""
        _rmtree(self.path)
        # The run's directory goes too, unless something else of the run still lives there.
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()


def diff_facts(repo: Path, base: str, head: str) -> DiffFacts:
    """What git measures between two commits: status, renames (with the old path) and line counts.

    Binary files count no lines and are marked ``binary``.
    """
    out = git(
        "diff", "--raw", "--numstat", "-z", "-M", "--no-ext-diff", "--no-textconv", "--no-relative",
        base, head, "--", cwd=repo,
    ).stdout  # fmt: skip
    return parse_raw_numstat(out)


MAX_READ_BYTES = 1024 * 1024
"""Larger files are classified by path only; their contents are not read."""
MAX_READ_FILES = 300
"""Beyond this many files a change is classified by paths only."""


def changed_files(repo: Path, base: str, head: str, diff: DiffFacts) -> list[ChangedFile]:
    """Each changed file with its text at ``base`` and at ``head`` for the classifier.

    Binary files, files over ``MAX_READ_BYTES`` and every file of a change larger than
    ``MAX_READ_FILES`` carry no text (``None``), which the classifier treats as unknown content.
    """
    read = len(diff.files) <= MAX_READ_FILES
    out = []
    for f in diff.files:
        old = f.old_path or f.path
        before = None if f.status == "A" or f.binary or not read else _blob(repo, base, old)
        after = None if f.status == "D" or f.binary or not read else _blob(repo, head, f.path)
        out.append(
            ChangedFile(
                path=f.path, status=f.status, before=before, after=after, old_path=f.old_path
            )
        )
    return out


def _blob(repo: Path, rev: str, path: str) -> str | None:
    spec = f"{rev}:{path}"
    size = git("cat-file", "-s", spec, cwd=repo, check=False)
    if size.returncode != 0 or int(size.stdout.strip() or 0) > MAX_READ_BYTES:
        return None
    return git("cat-file", "blob", spec, cwd=repo).stdout


def parse_raw_numstat(out: str) -> DiffFacts:
    """Parse ``git diff --raw --numstat -z``: all raw records, then one numstat record for each."""
    fields = out.split("\0")
    i = 0
    raw: list[tuple[str, str, str | None]] = []  # (status letter, path, old path)
    while i < len(fields) and fields[i].startswith(":"):
        letter = fields[i].split()[-1][:1]
        if letter in ("R", "C"):
            raw.append((letter, fields[i + 2], fields[i + 1]))
            i += 3
        else:
            raw.append((letter, fields[i + 1], None))
            i += 2
    counts: list[tuple[str, str]] = []
    while i < len(fields) and fields[i]:
        added, deleted, path = fields[i].split("\t", 2)
        counts.append((added, deleted))
        i += 1 if path else 3  # an empty path means the old and new names follow
    if len(counts) != len(raw):
        raise RepositoryError(
            f"git diff reported {len(raw)} files but counted lines for {len(counts)}; "
            "this git version's output is not understood."
        )
    files = []
    for (letter, path, old_path), (added, deleted) in zip(raw, counts, strict=True):
        binary = added == "-"
        files.append(
            FileChange(
                path=path,
                old_path=old_path,
                status=letter,
                added=0 if binary else int(added),
                deleted=0 if binary else int(deleted),
                binary=binary,
            )
        )
    return DiffFacts(files=tuple(files))


def _rmtree(path: Path) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    try:
        shutil.rmtree(path)
    except OSError:
        # Sandboxed commands may leave read-only or unreadable directories; the workspace is ours.
        _make_dirs_writable(path)
        shutil.rmtree(path)


def _make_dirs_writable(top: Path) -> None:
    owner_rwx = stat.S_IRWXU
    os.chmod(top, os.stat(top).st_mode | owner_rwx)
    for current, dirs, _files in os.walk(top):
        for name in dirs:
            child = os.path.join(current, name)
            if not os.path.islink(child):  # os.walk lists the child before it descends into it
                os.chmod(child, os.stat(child).st_mode | owner_rwx)


__all__ = [
    "BRANCH_PREFIX",
    "RepoInfo",
    "Workspace",
    "diff_facts",
    "inspect_repo",
    "parse_raw_numstat",
    "uncommitted_paths",
]
