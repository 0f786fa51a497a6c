"""Path guardrails: which paths of a change are forbidden, need review, or are not allowlisted.

Patterns use gitignore rules (pathspec's ``GitIgnoreSpec``), the semantics users know from
``.gitignore``, not shell ``fnmatch``. The differences that matter here:

- ``*`` does not cross ``/``: ``src/*.py`` matches ``src/a.py`` but not ``src/pkg/a.py``
  (fnmatch's ``*`` matches ``/`` too, so ``src/*.py`` would match both);
- a pattern without a slash (other than a trailing one) matches at any depth: ``*.md`` matches
  ``docs/a/b.md`` and ``.env*`` matches ``config/.env``; fnmatch would only match the whole path;
- a pattern with a slash is anchored at the repository root: ``src/auth/**`` does not match
  ``lib/src/auth/x.py``; a leading ``/`` anchors a slash-less pattern: ``/setup.py`` matches
  only the top-level file;
- ``**`` spans any number of directories: ``src/auth/**`` matches ``src/auth/x/y.py`` but not
  ``src/authz.py``, because a directory name must match whole;
- a trailing ``/`` means a directory: ``build/`` matches every file under any ``build`` directory,
  but not a file named ``build``;
- ``!pattern`` re-includes what an earlier pattern matched, and the last matching pattern decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from pathspec import GitIgnoreSpec

from .config import PathsRules


@lru_cache(maxsize=64)
def _compile(patterns: tuple[str, ...]) -> GitIgnoreSpec:
    # Compiling is the only costly step; a process sees few distinct pattern lists.
    return GitIgnoreSpec.from_lines(patterns)


@dataclass(frozen=True)
class PatternList:
    """An ordered list of gitignore-style patterns, matched as one ``.gitignore`` file would be."""

    patterns: tuple[str, ...] = ()
    _spec: GitIgnoreSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_spec", _compile(tuple(self.patterns)))

    def match(self, path: str) -> str | None:
        """The pattern that decides that ``path`` matches, or None when it does not match."""
        result = self._spec.check_file(path)
        if result.include and result.index is not None:
            return self.patterns[result.index]
        return None

    def matches(self, paths: Iterable[str]) -> list[tuple[str, str]]:
        """``(path, pattern)`` for every path that matches, in the order given."""
        found = []
        for path in paths:
            pattern = self.match(path)
            if pattern is not None:
                found.append((path, pattern))
        return found


@dataclass(frozen=True)
class PathRules:
    """A policy's three path lists, ready to apply to the paths a change touches."""

    forbidden_patterns: PatternList = field(default_factory=PatternList)
    review_patterns: PatternList = field(default_factory=PatternList)
    allowlist_patterns: PatternList = field(default_factory=PatternList)

    @classmethod
    def from_config(cls, paths: PathsRules) -> PathRules:
        return cls(
            forbidden_patterns=PatternList(paths.forbidden),
            review_patterns=PatternList(paths.review),
            allowlist_patterns=PatternList(paths.automerge_allowlist),
        )

    def forbidden(self, paths: Iterable[str]) -> list[tuple[str, str]]:
        """``(path, pattern)`` for each path the change may never touch."""
        return self.forbidden_patterns.matches(paths)

    def review(self, paths: Iterable[str]) -> list[tuple[str, str]]:
        """``(path, pattern)`` for each path that needs a person's review."""
        return self.review_patterns.matches(paths)

    def outside_allowlist(self, paths: Iterable[str]) -> list[str]:
        """Paths no allowlist pattern covers. An empty allowlist covers nothing."""
        return [p for p in paths if self.allowlist_patterns.match(p) is None]
