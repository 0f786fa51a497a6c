"""The local forge: delivers into a git repository on this machine, usually the user's own checkout.

Every ref update is a compare-and-swap, so a concurrent change makes shipyard fail instead of
overwriting it; a merge is prepared in full (``merge-tree``, ``commit-tree``) before any ref or file
moves, so a conflict leaves the repository exactly as it was.
"""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import DeliveryError, MergeConflict, RepositoryError
from shipyard.gitcmd import IDENTITY, git
from shipyard.workspace import BRANCH_PREFIX, uncommitted_paths

if TYPE_CHECKING:
    from shipyard.workspace import Workspace

logger = logging.getLogger(__name__)

_SHOWN_PATHS = 10


class LocalForge:
    """A git repository on this machine (bare or with working trees) as the delivery target."""

    name = "local"

    def __init__(self, repo: Path, *, identity: tuple[str, str] = IDENTITY) -> None:
        path = repo.expanduser()
        if not path.is_dir():
            raise RepositoryError(f"{path}: no such directory; pass the path of a git repository.")
        found = git("rev-parse", "--absolute-git-dir", cwd=path, check=False)
        if found.returncode != 0:
            raise RepositoryError(f"{path}: not a git repository; pass the repository's path.")
        self.repo = path.resolve()
        self.url = str(self.repo)
        self.identity = identity

    def __repr__(self) -> str:
        return f"LocalForge({str(self.repo)!r})"

    # --- branches --------------------------------------------------------------------------------

    def branch_head(self, name: str) -> str | None:
        done = self._git("show-ref", "--verify", "--hash", self._ref(name), check=False)
        return done.stdout.strip() or None if done.returncode == 0 else None

    def branches(self, prefix: str = "shipyard/") -> dict[str, str]:
        out = self._git(
            "for-each-ref", "--format=%(refname:lstrip=2)%00%(objectname)", "refs/heads/"
        )
        pairs = (line.split("\0", 1) for line in out.stdout.splitlines() if "\0" in line)
        return {name: sha for name, sha in pairs if name.startswith(prefix)}

    def ensure_branch(self, name: str, *, start: str) -> None:
        ref = self._ref(name)
        if self.branch_head(name) is not None:
            return
        commit = self._resolve(start)
        if commit is None:
            raise DeliveryError(
                f"cannot create {name}: {start!r} is not a branch or commit in {self.repo}; "
                "check the target branch name."
            )
        # An empty old value means "must not exist yet": a concurrent creation is not overwritten.
        made = self._git(
            "update-ref", "-m", f"shipyard: create from {start}", ref, commit, "", check=False
        )
        if made.returncode != 0 and self.branch_head(name) is None:
            raise DeliveryError(f"cannot create {name} in {self.repo}: {_reason(made.stderr)}")
        logger.info("created %s at %s in %s", name, commit[:12], self.repo)

    def delete_branch(self, name: str) -> None:
        _own(name, "delete")
        head = self.branch_head(name)
        if head is None:
            return
        worktree = self._checked_out_in(name)
        if worktree is not None:
            raise DeliveryError(
                f"{name} is checked out in {worktree}; "
                "check out another branch there and try again."
            )
        done = self._git("update-ref", "-d", self._ref(name), head, check=False)
        if done.returncode != 0:
            raise DeliveryError(
                f"{name} changed while shipyard was deleting it ({_reason(done.stderr)}); "
                "it was left in place."
            )
        logger.info("deleted %s (was %s) in %s", name, head[:12], self.repo)

    # --- delivery --------------------------------------------------------------------------------

    def publish(self, workspace: Workspace) -> None:
        _own(workspace.branch, "publish")
        ref = self._ref(workspace.branch)
        worktree = self._checked_out_in(workspace.branch)
        if worktree is not None:
            raise DeliveryError(
                f"{workspace.branch} is checked out in {worktree}; check out another branch there "
                "so shipyard can update it."
            )
        head = git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=workspace.path).stdout.strip()
        # Forced: the run branch belongs to this run, and a fix cycle may have replaced its commit.
        self._git(
            "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules",
            "--", str(workspace.path), f"+{ref}:{ref}",
        )  # fmt: skip
        if self.branch_head(workspace.branch) != head:
            raise DeliveryError(
                f"{workspace.branch} in {self.repo} does not point at {head[:12]} after "
                "publishing; another process is changing it. Run the task again."
            )
        logger.info("published %s at %s to %s", workspace.branch, head[:12], self.repo)

    def merge(
        self, branch: str, target: str, *, message: str, expected_target: str | None = None
    ) -> str:
        if branch == target:
            raise DeliveryError(f"cannot merge {branch} into itself; name a different target.")
        head = self._require(branch)
        current = self._require(target)
        if self._is_ancestor(head, current):
            existing = self._merge_commit_of(head, current)
            logger.info("%s is already merged into %s (%s)", branch, target, existing[:12])
            return existing
        if expected_target is not None and self._resolve(expected_target) != current:
            raise DeliveryError(
                f"{target} moved to {current[:12]} since the change was verified against "
                f"{expected_target[:12]}; nothing was merged. Run the task again so it is verified "
                "against the new head."
            )
        if not message.strip():
            raise DeliveryError("a merge needs a message; nothing was merged.")
        worktree = self._checked_out_in(target)
        if worktree is not None:
            dirty = uncommitted_paths(worktree)
            if dirty:
                raise DeliveryError(
                    f"{target} is checked out in {worktree}, which has uncommitted changes "
                    f"({_shown(dirty)}); commit or stash them, then run `shipyard review approve` "
                    "again."
                )
        tree = self._merge_tree(current, head, branch=branch, target=target)
        commit = self._git(
            "commit-tree", tree, "-p", current, "-p", head, "-F", "-", input=message
        ).stdout.strip()
        if worktree is None:
            self._swap(
                target, commit, current, log=f"merge into {target}",
                race=f"{target} changed while shipyard was merging",
                consequence="nothing was merged. Run the task again so it is verified against the "
                "new head.",
            )  # fmt: skip
        else:
            self._fast_forward_checkout(worktree, target, commit, current)
        logger.info("merged %s into %s as %s in %s", branch, target, commit[:12], self.repo)
        return commit

    def find_merge(self, target: str, run_id: str) -> str | None:
        """The commit on ``target`` whose message carries ``Shipyard-Run: <run_id>``, if any."""
        if self.branch_head(target) is None:
            return None
        pattern = f"^{TRAILER}: {re.escape(run_id)}$"
        done = self._git(
            "log", "--format=%H", "--extended-regexp", f"--grep={pattern}", self._ref(target),
            "--", check=False,
        )  # fmt: skip
        found = done.stdout.split()
        return found[0] if done.returncode == 0 and found else None

    def tree_of(self, rev: str) -> str:
        return self._git("rev-parse", "--verify", f"{rev}^{{tree}}").stdout.strip()

    def rebase(self, branch: str, onto: str) -> str:
        """Replace ``branch`` by one commit on top of ``onto`` holding the same change.

        The new tree is git's three-way merge of ``onto`` and the branch; a conflict raises
        MergeConflict naming the files and moves nothing. Returns the new head of ``branch``.
        """
        _own(branch, "rebase")
        head, base = self._require(branch), self._require(onto)
        if self._is_ancestor(base, head):
            return head
        tree = self._merge_tree(base, head, branch=branch, target=onto)
        message = self._git("log", "-1", "--format=%B", head).stdout
        commit = self._git("commit-tree", tree, "-p", base, "-F", "-", input=message).stdout.strip()
        self._swap(
            branch, commit, head, log=f"rebase onto {onto}",
            race=f"{branch} changed while shipyard was rebasing it",
            consequence="nothing was merged.",
        )  # fmt: skip
        logger.info("rebased %s onto %s (%s) as %s", branch, onto, base[:12], commit[:12])
        return commit

    # --- internals -------------------------------------------------------------------------------

    def _git(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return git(*args, cwd=self.repo, check=check, input=input, identity=self.identity)

    def _ref(self, name: str) -> str:
        ref = f"refs/heads/{name}"
        if name.startswith("-") or self._git("check-ref-format", ref, check=False).returncode:
            raise DeliveryError(f"{name!r} is not a valid branch name; choose another.")
        return ref

    def _require(self, name: str) -> str:
        head = self.branch_head(name)
        if head is None:
            raise DeliveryError(
                f"there is no branch {name} in {self.repo}; it may have been deleted. "
                "Run the task again."
            )
        return head

    def _resolve(self, rev: str) -> str | None:
        """A branch name first, then anything git can resolve to a commit (a sha, a tag)."""
        head = self.branch_head(rev) if not rev.startswith("-") else None
        if head is not None:
            return head
        done = self._git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False
        )
        return done.stdout.strip() or None if done.returncode == 0 else None

    def _is_ancestor(self, ancestor: str, descendant: str) -> bool:
        done = self._git("merge-base", "--is-ancestor", ancestor, descendant, check=False)
        if done.returncode not in (0, 1):
            raise RepositoryError(
                f"cannot compare {ancestor[:12]} and {descendant[:12]}: {done.stderr}"
            )
        return done.returncode == 0

    def _merge_commit_of(self, head: str, target: str) -> str:
        """The commit that brought ``head`` into ``target``: the first merge with it as a parent."""
        if head == target:
            return head
        out = self._git(
            "rev-list", "--ancestry-path", "--merges", "--parents", "--reverse", f"{head}..{target}"
        ).stdout
        for line in out.splitlines():
            commit, *parents = line.split()
            if head in parents:
                return commit
        return head  # brought in without a merge commit of its own (a fast-forward)

    def _merge_tree(self, current: str, head: str, *, branch: str, target: str) -> str:
        done = self._git(
            "merge-tree", "--write-tree", "-z", "--name-only", "--no-messages", current, head,
            check=False,
        )  # fmt: skip
        fields = [f for f in done.stdout.split("\0") if f]
        if done.returncode == 1:
            conflicts = sorted(set(fields[1:]))
            raise MergeConflict(
                f"{branch} conflicts with {target} in {_shown(conflicts)}; nothing was merged. "
                f"Run the task again on the current {target}.",
                conflicts,
            )
        if done.returncode != 0 or not fields:
            raise DeliveryError(
                f"cannot merge {branch} into {target}: {_reason(done.stderr)}; nothing was merged."
            )
        return fields[0]

    def _swap(
        self, name: str, new: str, old: str, *, log: str, race: str, consequence: str
    ) -> None:
        """Move branch ``name`` from ``old`` to ``new`` only if it still points at ``old``."""
        done = self._git(
            "update-ref", "-m", f"shipyard: {log}", self._ref(name), new, old, check=False
        )
        if done.returncode != 0:
            raise DeliveryError(f"{race} ({_reason(done.stderr)}); {consequence}")

    def _fast_forward_checkout(self, worktree: Path, target: str, new: str, old: str) -> None:
        # The merge commit's first parent is the checked-out head, so a fast-forward moves branch,
        # index and files together, as a checkout would, and git refuses to overwrite a file.
        seen = git("rev-parse", "--verify", "HEAD", cwd=worktree).stdout.strip()
        if seen != old:
            raise DeliveryError(
                f"{target} in {worktree} moved to {seen[:12]} while shipyard was merging; nothing "
                "was merged. Run the task again so it is verified against the new head."
            )
        done = git(
            "merge", "--ff-only", "--quiet", "--no-stat", new,
            cwd=worktree, check=False, identity=self.identity,
        )  # fmt: skip
        if done.returncode != 0:
            raise DeliveryError(
                f"cannot update {target} in {worktree}: {_reason(done.stderr)}. Nothing was "
                "merged; move the files in the way aside, then run `shipyard review approve` again."
            )

    def _checked_out_in(self, name: str) -> Path | None:
        """The working tree that has branch ``name`` checked out, if any."""
        out = self._git("worktree", "list", "--porcelain", "-z").stdout
        for record in out.split("\0\0"):
            attrs: dict[str, str] = {}
            for line in record.split("\0"):
                key, _, value = line.partition(" ")
                attrs[key] = value
            if attrs.get("branch") == f"refs/heads/{name}" and "prunable" not in attrs:
                return Path(attrs["worktree"])
        return None


TRAILER = "Shipyard-Run"
"""The trailer that ties a merge commit to the run that made it: how a retry finds a done merge."""


def _own(branch: str, verb: str) -> None:
    """shipyard creates, rewrites and deletes only its own branches."""
    if not branch.startswith(BRANCH_PREFIX):
        raise DeliveryError(
            f"refusing to {verb} {branch}: shipyard only {verb}s branches under {BRANCH_PREFIX}"
        )


def _reason(stderr: str) -> str:
    lines = [
        line.removeprefix("fatal: ").removeprefix("error: ").strip() for line in stderr.splitlines()
    ]
    return "; ".join([line for line in lines if line][-3:]) or "git gave no reason"


def _shown(paths: list[str]) -> str:
    shown = ", ".join(paths[:_SHOWN_PATHS])
    return shown + (f" and {len(paths) - _SHOWN_PATHS} more" if len(paths) > _SHOWN_PATHS else "")
