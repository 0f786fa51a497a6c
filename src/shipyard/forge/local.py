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
        worktree = self._clean_checkout(target, then="run `shipyard review approve` again")
        tree = self._merge_tree(
            current, head, conflict=f"{branch} conflicts with {target}",
            failure=f"cannot merge {branch} into {target}",
            after=f"nothing was merged. Run the task again on the current {target}.",
        )  # fmt: skip
        commit = self._git(
            "commit-tree", tree, "-p", current, "-p", head, "-F", "-", input=message
        ).stdout.strip()
        self._advance(
            target, commit, current, worktree, log=f"merge into {target}", doing="merging",
            undone="nothing was merged. Run the task again so it is verified against the new head.",
            blocked="Nothing was merged; move the files in the way aside, then run "
            "`shipyard review approve` again.",
        )  # fmt: skip
        logger.info("merged %s into %s as %s in %s", branch, target, commit[:12], self.repo)
        return commit

    def find_merge(self, target: str, run_id: str) -> str | None:
        """The commit on ``target`` whose message carries ``Shipyard-Run: <run_id>``, if any."""
        return self._find_trailer(target, TRAILER, run_id)

    def revert(self, target: str, commit: str, *, message: str, run_id: str) -> str:
        """Undo ``commit`` on ``target`` with a new commit on top of its head; returns that commit.

        The change undone is ``commit`` against its first parent (a merge shipyard made, or a
        single-parent commit). The new tree is git's three-way merge of target's head and that
        parent, based on ``commit`` -- ``git revert -m 1`` without a worktree -- so later commits
        keep their changes, a clash raises MergeConflict, and nothing moves until it is whole.
        A retry finds the ``Shipyard-Rollback: <run_id>`` trailer and returns the earlier revert.
        """
        done = self.find_revert(target, run_id)
        if done is not None:
            logger.info("run %s was already reverted on %s (%s)", run_id, target, done[:12])
            return done
        current = self._require(target)
        undone = self._resolve(commit)
        if undone is None:
            raise DeliveryError(
                f"cannot revert {commit!r}: it is not a commit in {self.repo}; nothing was "
                "reverted. Check the merge commit recorded for the run."
            )
        if not self._is_ancestor(undone, current):
            raise DeliveryError(
                f"cannot revert {undone[:12]}: it is not on {target} (head {current[:12]}); "
                "nothing was reverted. It may have been merged into another branch, or "
                f"{target} was reset."
            )
        parents = self._git("rev-list", "--parents", "-n1", undone).stdout.split()[1:]
        if not parents:
            raise DeliveryError(
                f"cannot revert {undone[:12]}: it is the first commit of {target}, with nothing "
                "before it to return to; nothing was reverted."
            )
        worktree = self._clean_checkout(target, then="run `shipyard rollout watch` again")
        # A commit holding the parent's tree on top of ``commit``: merging it into the head makes
        # ``commit`` the merge base, so merge-tree computes the revert (git < 2.40 lacks
        # ``--merge-base``). The helper commit is never referenced and is garbage-collected.
        inverse = self._git(
            "commit-tree", f"{parents[0]}^{{tree}}", "-p", undone, "-F", "-",
            input=f"shipyard: inverse of {undone}\n",
        ).stdout.strip()  # fmt: skip
        tree = self._merge_tree(
            current, inverse, conflict=f"reverting {undone[:12]} conflicts with later changes "
            f"on {target}", failure=f"cannot revert {undone[:12]} on {target}",
            after="nothing was reverted. Revert it by hand, or fix forward.",
        )  # fmt: skip
        if not message.strip():  # a rollback is never held up for want of words
            subject = self._git("log", "-1", "--format=%s", undone).stdout.strip()
            message = f'Revert "{subject}"\n\nThis reverts commit {undone}.'
        text = with_rollback_trailer(message, run_id)
        made = self._git("commit-tree", tree, "-p", current, "-F", "-", input=text).stdout.strip()
        self._advance(
            target, made, current, worktree, log=f"revert {undone[:12]} on {target}",
            doing="reverting", undone="nothing was reverted. Roll back again to revert it on "
            "the new head.",
            blocked="Nothing was reverted; move the files in the way aside, then roll back again.",
        )  # fmt: skip
        logger.info("reverted %s on %s as %s in %s", undone[:12], target, made[:12], self.repo)
        return made

    def find_revert(self, target: str, run_id: str) -> str | None:
        """The commit on ``target`` whose message carries ``Shipyard-Rollback: <run_id>``, if any."""
        return self._find_trailer(target, ROLLBACK_TRAILER, run_id)

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
        tree = self._merge_tree(
            base, head, conflict=f"{branch} conflicts with {onto}",
            failure=f"cannot rebase {branch} onto {onto}",
            after=f"nothing was merged. Run the task again on the current {onto}.",
        )  # fmt: skip
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

    def _find_trailer(self, target: str, key: str, run_id: str) -> str | None:
        """The newest commit on ``target``'s first-parent line with ``<key>: <run_id>`` in its message.

        Only the first-parent line: merges and reverts shipyard makes land there, while the commits
        of a merged branch (whose messages an agent may have written) hang off its second parents,
        so a change cannot pass off one of its own commits as its merge or its revert.
        """
        if self.branch_head(target) is None:
            return None
        pattern = f"^{key}: {re.escape(run_id)}$"
        done = self._git(
            "log", "--first-parent", "--format=%H", "--extended-regexp", f"--grep={pattern}",
            self._ref(target), "--", check=False,
        )  # fmt: skip
        found = done.stdout.split()
        return found[0] if done.returncode == 0 and found else None

    def _merge_tree(
        self, ours: str, theirs: str, *, conflict: str, failure: str, after: str
    ) -> str:
        """The tree of merging ``theirs`` into ``ours``, written without touching any worktree.

        Errors read ``<conflict> in <files>; <after>`` and ``<failure>: <git's reason>; <after>``.
        """
        done = self._git(
            "merge-tree", "--write-tree", "-z", "--name-only", "--no-messages", ours, theirs,
            check=False,
        )  # fmt: skip
        fields = [f for f in done.stdout.split("\0") if f]
        if done.returncode == 1:
            conflicts = sorted(set(fields[1:]))
            raise MergeConflict(f"{conflict} in {_shown(conflicts)}; {after}", conflicts)
        if done.returncode != 0 or not fields:
            raise DeliveryError(f"{failure}: {_reason(done.stderr)}; {after}")
        return fields[0]

    def _clean_checkout(self, target: str, *, then: str) -> Path | None:
        """The worktree with ``target`` checked out, if any; refused while it has uncommitted work."""
        worktree = self._checked_out_in(target)
        if worktree is not None:
            dirty = uncommitted_paths(worktree)
            if dirty:
                raise DeliveryError(
                    f"{target} is checked out in {worktree}, which has uncommitted changes "
                    f"({_shown(dirty)}); commit or stash them, then {then}."
                )
        return worktree

    def _advance(
        self, target: str, new: str, old: str, worktree: Path | None, *,
        log: str, doing: str, undone: str, blocked: str,
    ) -> None:  # fmt: skip
        """Move ``target`` from ``old`` to its child ``new``, with its checkout if it has one."""
        if worktree is None:
            self._swap(
                target, new, old, log=log, race=f"{target} changed while shipyard was {doing}",
                consequence=undone,
            )  # fmt: skip
        else:
            self._fast_forward_checkout(
                worktree, target, new, old, doing=doing, undone=undone, blocked=blocked
            )

    def _swap(
        self, name: str, new: str, old: str, *, log: str, race: str, consequence: str
    ) -> None:
        """Move branch ``name`` from ``old`` to ``new`` only if it still points at ``old``."""
        done = self._git(
            "update-ref", "-m", f"shipyard: {log}", self._ref(name), new, old, check=False
        )
        if done.returncode != 0:
            raise DeliveryError(f"{race} ({_reason(done.stderr)}); {consequence}")

    def _fast_forward_checkout(
        self, worktree: Path, target: str, new: str, old: str, *,
        doing: str, undone: str, blocked: str,
    ) -> None:  # fmt: skip
        # The new commit's first parent is the checked-out head, so a fast-forward moves branch,
        # index and files together, as a checkout would, and git refuses to overwrite a file.
        seen = git("rev-parse", "--verify", "HEAD", cwd=worktree).stdout.strip()
        if seen != old:
            raise DeliveryError(
                f"{target} in {worktree} moved to {seen[:12]} while shipyard was {doing}; {undone}"
            )
        done = git(
            "merge", "--ff-only", "--quiet", "--no-stat", new,
            cwd=worktree, check=False, identity=self.identity,
        )  # fmt: skip
        if done.returncode != 0:
            raise DeliveryError(
                f"cannot update {target} in {worktree}: {_reason(done.stderr)}. {blocked}"
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

ROLLBACK_TRAILER = "Shipyard-Rollback"
"""The trailer that ties a revert to the run it undid: how a retried rollback finds a done revert."""

_TRAILER_LINE = re.compile(r"^[A-Za-z0-9-]+: \S")


def with_rollback_trailer(message: str, run_id: str) -> str:
    """``message`` ending in ``Shipyard-Rollback: <run_id>`` (joined to a trailer block it ends in).

    ``Shipyard-Run`` lines are dropped: they mark a run's merge, and ``find_merge`` would take the
    revert for it.
    """
    line = f"{ROLLBACK_TRAILER}: {run_id}"
    kept = [row for row in message.splitlines() if not row.startswith(f"{TRAILER}: ")]
    body = "\n".join(kept).rstrip()
    if body.splitlines()[-1:] == [line]:
        return body + "\n"
    _, sep, last = body.rpartition("\n\n")
    # git reads trailers from the last paragraph only, and never from the subject.
    in_block = bool(sep) and all(_TRAILER_LINE.match(row) for row in last.splitlines())
    return body + ("\n" if in_block else "\n\n") + line + "\n"


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
