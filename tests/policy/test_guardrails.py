"""Gitignore-style path matching, and how it differs from fnmatch."""

from __future__ import annotations

import fnmatch

import pytest

from shipyard.policy import PathRules, load_policy
from shipyard.policy.guardrails import PatternList


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # a pattern without a slash matches at any depth
        ("*.md", "docs/a/b.md", True),
        ("*.md", "README.md", True),
        (".env*", ".env.prod", True),
        (".env*", "config/.env", True),
        ("requirements*.txt", "services/api/requirements-dev.txt", True),
        # ** spans directories, but a directory name must match whole
        ("src/auth/**", "src/auth/x/y.py", True),
        ("src/auth/**", "src/auth/login.py", True),
        ("src/auth/**", "src/authz.py", False),
        ("src/auth/**", "src/auth", False),
        ("**/fixtures/*.json", "a/b/fixtures/x.json", True),
        # * does not cross /
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/pkg/a.py", False),
        ("config/production*", "config/production.toml", True),
        ("config/production*", "config/production/x.toml", True),
        # a slash anchors at the root; so does a leading /
        ("src/auth/**", "lib/src/auth/x.py", False),
        ("/setup.py", "setup.py", True),
        ("/setup.py", "pkg/setup.py", False),
        ("setup.py", "pkg/setup.py", True),
        # a trailing / means a directory: files under it, never a file of that name
        ("build/", "build/x.whl", True),
        ("build/", "a/build/x.whl", True),
        ("build/", "build", False),
    ],
)
def test_gitignore_semantics(pattern: str, path: str, expected: bool) -> None:
    assert (PatternList((pattern,)).match(path) == pattern) is expected


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("src/*.py", "src/pkg/a.py"),  # fnmatch's * crosses /
        (".env*", "config/.env"),  # fnmatch matches the whole path only
        ("/setup.py", "setup.py"),  # fnmatch has no anchoring
        ("build/", "build/x.whl"),  # fnmatch has no notion of directories
    ],
)
def test_differs_from_fnmatch(pattern: str, path: str) -> None:
    ours = PatternList((pattern,)).match(path) is not None
    assert ours != fnmatch.fnmatch(path, pattern)


def test_negation_re_includes_and_the_last_matching_pattern_decides() -> None:
    patterns = PatternList(("secrets/**", "!secrets/README.md", "secrets/*.md"))
    assert patterns.match("secrets/key.pem") == "secrets/**"
    assert patterns.match("secrets/README.md") == "secrets/*.md"
    assert PatternList(("secrets/**", "!secrets/README.md")).match("secrets/README.md") is None


def test_path_rules_report_path_and_pattern() -> None:
    rules = PathRules.from_config(load_policy().paths)
    paths = ["src/auth/login.py", "config/.env.local", "src/api/v1.py", "README.md", "src/app.py"]
    assert rules.forbidden(paths) == [
        ("src/auth/login.py", "src/auth/**"),
        ("config/.env.local", ".env*"),
    ]
    assert rules.review(paths) == [("src/api/v1.py", "src/api/**")]
    assert rules.outside_allowlist(paths) == [
        "src/auth/login.py",
        "config/.env.local",
        "src/api/v1.py",
        "src/app.py",
    ]


def test_empty_allowlist_covers_nothing_and_double_star_covers_everything() -> None:
    assert PathRules().outside_allowlist(["README.md"]) == ["README.md"]
    everything = PathRules(allowlist_patterns=PatternList(("**",)))
    assert everything.outside_allowlist(["README.md", "a/b/.env", "x"]) == []


def test_pattern_lists_compare_by_patterns() -> None:
    assert PatternList(("a/**",)) == PatternList(("a/**",))
    assert PatternList(("a/**",)) != PatternList(("b/**",))
