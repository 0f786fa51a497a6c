"""The Forge protocol: where verified changes are delivered (a local repository, a hosted forge)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shipyard.workspace import Workspace


class Forge(Protocol):
    """A place that holds the user's branches. Every method is safe to call again after a crash.

    Branch names are short names (``main``, ``shipyard/<run-id>``), never ``refs/heads/...``.
    """

    name: str
    url: str
    """Where the forge is: the repository's path for the local forge."""

    def publish(self, workspace: Workspace) -> None:
        """Make ``workspace.branch`` exist here, pointing at the workspace branch's head."""
        ...

    def merge(
        self, branch: str, target: str, *, message: str, expected_target: str | None = None
    ) -> str:
        """Merge ``branch`` into ``target`` with a merge commit; returns that commit.

        If ``branch`` is already merged, returns the existing merge commit instead of merging again.
        ``expected_target`` is where the decision saw ``target``; if it moved, nothing is done.
        """
        ...

    def ensure_branch(self, name: str, *, start: str) -> None:
        """Create branch ``name`` at ``start`` unless it exists; an existing one is left alone."""
        ...

    def branch_head(self, name: str) -> str | None:
        """The commit ``name`` points at, or None when there is no such branch."""
        ...

    def delete_branch(self, name: str) -> None:
        """Delete branch ``name``; deleting a branch that does not exist does nothing."""
        ...

    def find_merge(self, target: str, run_id: str) -> str | None:
        """The commit on ``target`` carrying the ``Shipyard-Run: <run_id>`` trailer, if any."""
        ...

    def revert(self, target: str, commit: str, *, message: str, run_id: str) -> str:
        """Undo ``commit`` on ``target`` with a new commit on top of its head; returns that commit.

        ``commit`` is a merge shipyard made (undone against its first parent) or a single-parent
        commit. The message ends with the trailer ``Shipyard-Rollback: <run_id>``; if ``target``
        already has a commit carrying it, that commit is returned and nothing is reverted again.
        ``target`` moves by compare-and-swap, with its checkout if it has one (refused while that
        has uncommitted changes). A clash with later commits raises MergeConflict naming the files,
        and a ``commit`` not on ``target`` raises DeliveryError; either way nothing moves.
        """
        ...

    def find_revert(self, target: str, run_id: str) -> str | None:
        """The commit on ``target`` carrying the ``Shipyard-Rollback: <run_id>`` trailer, if any."""
        ...

    def tree_of(self, rev: str) -> str:
        """The tree object ``rev`` points at: equal trees mean byte-identical content."""
        ...

    def rebase(self, branch: str, onto: str) -> str:
        """Put ``branch``'s change on top of ``onto``; returns the new head (MergeConflict if not)."""
        ...

    def branches(self, prefix: str = "shipyard/") -> dict[str, str]:
        """Branches whose names start with ``prefix``, each with the commit it points at."""
        ...
