"""The built-in tools on a real git repository, every call through real bubblewrap.

Security properties are tested by trying to break them: paths and symlinks out of the workspace,
writes to forbidden paths and to .git, the network, the host's home and environment, git commands
that would change history.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from shipyard.agent.messages import ToolCall
from shipyard.agent.tools.base import Capability, PathGuard, ToolContext, ToolResult
from shipyard.agent.tools.builtin import builtin_tools, default_toolshed
from shipyard.agent.tools.files import BadRequest, call_inside
from shipyard.gitcmd import git
from shipyard.policy.guardrails import PatternList
from shipyard.sandbox import BwrapSandbox, CommandResult, Limits, Mount
from shipyard.sandbox.base import WORKSPACE
from tests.conftest import needs_bwrap

pytestmark = [needs_bwrap, pytest.mark.sandbox]

APP = """\
def greet(name):
    return "hello " + name


def part(name):
    return "hello " + name
"""
LOGIN = "def login(user):\n    return True\n"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    return bare


@pytest.fixture
def repo(tmp_path: Path, remote: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    files = {
        "README.md": "# demo\n",
        "src/app.py": APP,
        "src/auth/login.py": LOGIN,
        ".gitignore": "build/\n*.log\n",
        ".github/workflows/ci.yml": "on: push\n",
        "tests/test_app.py": "from src.app import greet\n",
    }
    for name, text in files.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text)
    git("init", "-q", "-b", "main", cwd=ws)
    git("add", "-A", cwd=ws)
    git("commit", "-qm", "initial", cwd=ws)
    git("remote", "add", "origin", str(remote), cwd=ws)
    git("push", "-q", "origin", "main", cwd=ws)
    (ws / "build").mkdir()
    (ws / "build" / "out.py").write_text("hello from build\n")
    (ws / "debug.log").write_text("hello from log\n")
    return ws


@pytest.fixture
def ctx(repo: Path) -> ToolContext:
    return ToolContext(
        run_id="t",
        workspace=repo,
        sandbox=BwrapSandbox(),
        guard=PathGuard(forbidden=PatternList(("src/auth/**",))),
        limits=Limits(wall_seconds=30),
    )


def call(ctx: ToolContext, name: str, **arguments: Any) -> ToolResult:
    granted = default_toolshed().grant([t.spec.name for t in builtin_tools()])
    return granted.call(ToolCall(id="c1", name=name, arguments=arguments), ctx)


def refs(repo: Path) -> str:
    return git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo).stdout


# --- reading -----------------------------------------------------------------------------------


def test_read_file_numbers_lines_and_reads_a_range(ctx: ToolContext) -> None:
    whole = call(ctx, "read_file", path="src/app.py")
    assert whole.ok
    assert "src/app.py (lines 1-6 of 6)" in whole.content
    assert '     2\t    return "hello " + name' in whole.content

    part = call(ctx, "read_file", path="./src/app.py", start_line=5, end_line=6)
    assert "(lines 5-6 of 6)" in part.content
    assert "     5\tdef part(name):" in part.content
    assert "greet" not in part.content


def test_read_file_cuts_a_large_file_and_says_where_to_read_on(ctx: ToolContext) -> None:
    (ctx.workspace / "big.txt").write_text(
        "".join(f"line {n:05} " + "x" * 90 + "\n" for n in range(5000))
    )
    result = call(ctx, "read_file", path="big.txt")
    assert result.ok
    assert len(result.content) < 70_000
    assert "line 00000" in result.content
    assert "line 04999" not in result.content
    assert "read on with start_line=" in result.content


def test_read_file_of_a_missing_file_or_directory_explains(ctx: ToolContext) -> None:
    missing = call(ctx, "read_file", path="nope.py")
    assert not missing.ok
    assert "does not exist" in missing.content
    directory = call(ctx, "read_file", path="src")
    assert "is a directory" in directory.content
    (ctx.workspace / "logo.png").write_bytes(b"\x89PNG\x00\x00data")
    assert "binary file" in call(ctx, "read_file", path="logo.png").content


def test_list_files_respects_gitignore_shows_hidden_and_skips_git(ctx: ToolContext) -> None:
    result = call(ctx, "list_files")
    listed = result.content.splitlines()
    assert {"README.md", "src/app.py", ".github/workflows/ci.yml", ".gitignore"} <= set(listed)
    assert "build/out.py" not in listed
    assert "debug.log" not in listed
    assert not any(p.startswith(".git/") for p in listed)

    python = call(ctx, "list_files", pattern="*.py").content.splitlines()
    assert python == ["src/app.py", "src/auth/login.py", "tests/test_app.py"]
    under = call(ctx, "list_files", path="src", pattern="src/auth/*").content.splitlines()
    assert under == ["src/auth/login.py"]


def test_search_finds_lines_and_leaves_ignored_files_out(ctx: ToolContext) -> None:
    result = call(ctx, "search", pattern=r"hello \S* \+")
    assert result.ok
    assert result.content.splitlines() == [
        'src/app.py:2:    return "hello " + name',
        'src/app.py:6:    return "hello " + name',
    ]
    assert "build/out.py" not in call(ctx, "search", pattern="hello").content
    assert "build" not in call(ctx, "search", pattern="hello", glob="*.py").content

    fixed = call(ctx, "search", pattern="login(", fixed_string=True, path="src")
    assert fixed.content == "src/auth/login.py:1:def login(user):"
    assert call(ctx, "search", pattern="def", glob="!*.py").content == "no matches."

    bad = call(ctx, "search", pattern="login(")
    assert not bad.ok
    assert "regex parse error" in bad.content


def test_search_output_is_capped_with_a_note(ctx: ToolContext) -> None:
    (ctx.workspace / "many.txt").write_text("needle\n" * 1000)
    result = call(ctx, "search", pattern="needle")
    lines = result.content.splitlines()
    assert lines[:2] == ["many.txt:1:needle", "many.txt:2:needle"]
    assert len(lines) == 201
    assert lines[-1] == "[more matches not shown; narrow the pattern, path or glob]"


# --- editing -----------------------------------------------------------------------------------


def test_edit_file_replaces_exactly_once_and_shows_the_place(ctx: ToolContext) -> None:
    result = call(
        ctx, "edit_file", path="src/app.py", old="def greet(name):", new="def greet(who):"
    )
    assert result.ok, result.content
    assert "     1\tdef greet(who):" in result.content
    assert result.data == {"paths": ["src/app.py"], "replacements": 1}
    assert (ctx.workspace / "src/app.py").read_text() == APP.replace("greet(name)", "greet(who)")


def test_edit_file_keeps_windows_line_endings(ctx: ToolContext) -> None:
    (ctx.workspace / "win.txt").write_bytes(b"one\r\ntwo\r\n")
    assert call(ctx, "edit_file", path="win.txt", old="two", new="2").ok
    assert (ctx.workspace / "win.txt").read_bytes() == b"one\r\n2\r\n"


def test_edit_file_with_no_match_explains_and_changes_nothing(ctx: ToolContext) -> None:
    result = call(ctx, "edit_file", path="src/app.py", old="def greet(nme):", new="x")
    assert not result.ok
    assert "0 matches" in result.content
    assert "     1\tdef greet(name):" in result.content  # the line most like it, with its number
    assert (ctx.workspace / "src/app.py").read_text() == APP


def test_edit_file_with_two_matches_needs_replace_all(ctx: ToolContext) -> None:
    old = 'return "hello " + name'
    result = call(ctx, "edit_file", path="src/app.py", old=old, new="return name")
    assert not result.ok
    assert "2 times" in result.content
    assert "lines 2, 6" in result.content
    assert (ctx.workspace / "src/app.py").read_text() == APP

    every = call(ctx, "edit_file", path="src/app.py", old=old, new="return name", replace_all=True)
    assert every.ok
    assert every.data["replacements"] == 2
    assert (ctx.workspace / "src/app.py").read_text().count("return name") == 2


def test_edit_file_creates_nothing(ctx: ToolContext) -> None:
    result = call(ctx, "edit_file", path="src/new.py", old="a", new="b")
    assert not result.ok
    assert not (ctx.workspace / "src/new.py").exists()


def test_write_file_creates_directories_and_overwrites(ctx: ToolContext) -> None:
    created = call(ctx, "write_file", path="docs/guide/intro.md", content="# Intro\n\ntext\n")
    assert created.ok
    assert created.content == "created docs/guide/intro.md (3 lines)"
    assert (ctx.workspace / "docs/guide/intro.md").read_text() == "# Intro\n\ntext\n"

    again = call(ctx, "write_file", path="README.md", content="# new\n")
    assert again.content.startswith("overwrote README.md")
    assert (ctx.workspace / "README.md").read_text() == "# new\n"


def _diff_of(
    repo: Path, change: dict[str, str | None], rename: tuple[str, str] | None = None
) -> str:
    """A real ``git diff`` of a change, made on the host and then undone."""
    if rename:
        git("mv", *rename, cwd=repo)
    for name, text in change.items():
        if text is None:
            (repo / name).unlink()
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text)
    git("add", "-A", cwd=repo)
    patch = git("diff", "--no-ext-diff", "--cached", "-M", "HEAD", cwd=repo).stdout
    git("reset", "-q", "--hard", "HEAD", cwd=repo)
    git("clean", "-fdq", "--", "src", "docs", cwd=repo)
    return patch


def test_apply_patch_applies_a_git_diff_with_new_file_and_rename(ctx: ToolContext) -> None:
    repo = ctx.workspace
    patch = _diff_of(
        repo,
        {"src/helpers.py": APP + "\n\ndef extra():\n    pass\n", "docs/new.md": "new\n"},
        rename=("src/app.py", "src/helpers.py"),
    )
    assert "rename from src/app.py" in patch
    result = call(ctx, "apply_patch", patch=patch)
    assert result.ok, result.content
    assert "src/helpers.py (renamed from src/app.py)" in result.content
    assert "docs/new.md (new)" in result.content
    assert not (repo / "src/app.py").exists()
    assert (repo / "src/helpers.py").read_text().endswith("def extra():\n    pass\n")
    assert set(result.data["paths"]) == {"src/app.py", "src/helpers.py", "docs/new.md"}


def test_apply_patch_that_does_not_fit_changes_nothing(ctx: ToolContext) -> None:
    patch = _diff_of(ctx.workspace, {"README.md": "# demo\nmore\n", "src/app.py": APP + "# end\n"})
    (ctx.workspace / "src/app.py").write_text("something else\n")
    result = call(ctx, "apply_patch", patch=patch)
    assert not result.ok
    assert "does not apply" in result.content
    assert (ctx.workspace / "README.md").read_text() == "# demo\n"  # all or nothing


def test_apply_patch_rejects_text_that_is_no_diff(ctx: ToolContext) -> None:
    result = call(ctx, "apply_patch", patch="please change the README")
    assert not result.ok
    assert "no file diffs" in result.content


# --- constraints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("edit_file", {"path": "src/auth/login.py", "old": "True", "new": "False"}),
        ("write_file", {"path": "src/auth/login.py", "content": "pass\n"}),
        ("write_file", {"path": "/workspace/src/x/../auth/login.py", "content": "pass\n"}),
        ("edit_file", {"path": "src/../src/auth/login.py", "old": "True", "new": "False"}),
    ],
)
def test_forbidden_path_is_refused_and_left_untouched(
    ctx: ToolContext, tool: str, arguments: dict[str, str]
) -> None:
    result = call(ctx, tool, **arguments)
    assert not result.ok
    assert "matches the forbidden pattern 'src/auth/**'" in result.content
    assert (ctx.workspace / "src/auth/login.py").read_text() == LOGIN


def test_apply_patch_touching_a_forbidden_path_is_refused_whole(ctx: ToolContext) -> None:
    repo = ctx.workspace
    patch = _diff_of(repo, {"README.md": "# changed\n", "src/auth/login.py": "pass\n"})
    result = call(ctx, "apply_patch", patch=patch)
    assert not result.ok
    assert "src/auth/login.py matches the forbidden pattern" in result.content
    assert (repo / "README.md").read_text() == "# demo\n"
    assert (repo / "src/auth/login.py").read_text() == LOGIN


def test_apply_patch_renaming_out_of_a_forbidden_path_is_refused(ctx: ToolContext) -> None:
    patch = _diff_of(ctx.workspace, {}, rename=("src/auth/login.py", "src/login.py"))
    result = call(ctx, "apply_patch", patch=patch)
    assert not result.ok
    assert "src/auth/login.py matches the forbidden pattern" in result.content
    assert (ctx.workspace / "src/auth/login.py").read_text() == LOGIN


def test_the_helper_refuses_a_patch_whose_paths_git_reads_otherwise(ctx: ToolContext) -> None:
    patch = _diff_of(ctx.workspace, {"src/app.py": APP + "# end\n"})
    with pytest.raises(BadRequest, match=r"git reads this patch's paths as src/app\.py"):
        call_inside(ctx, {"op": "patch", "patch": patch, "strip": 1, "paths": ["README.md"]})
    assert (ctx.workspace / "src/app.py").read_text() == APP


def test_writing_through_a_symlink_into_a_forbidden_directory_is_refused(ctx: ToolContext) -> None:
    (ctx.workspace / "alias").symlink_to("src/auth")
    result = call(ctx, "write_file", path="alias/login.py", content="pass\n")
    assert not result.ok
    assert "symbolic link" in result.content
    assert (ctx.workspace / "src/auth/login.py").read_text() == LOGIN


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "/etc/shadow", "/workspace/../etc/passwd", "src/../../x"]
)
def test_paths_out_of_the_workspace_are_refused(ctx: ToolContext, path: str) -> None:
    for tool, arguments in [
        ("read_file", {"path": path}),
        ("list_files", {"path": path}),
        ("search", {"pattern": "root", "path": path}),
        ("write_file", {"path": path, "content": "x"}),
    ]:
        result = call(ctx, tool, **arguments)
        assert not result.ok, (tool, result.content)
        assert result.content.startswith("refused:"), result.content


def test_a_symlink_to_a_host_file_reads_nothing(ctx: ToolContext, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("TOP-SECRET\n")
    (ctx.workspace / "leak.txt").symlink_to(secret)
    (ctx.workspace / "etc").symlink_to("/etc")
    for path in ("leak.txt", "etc/passwd"):
        result = call(ctx, "read_file", path=path)
        assert not result.ok
        assert "outside the workspace" in result.content
    assert "TOP-SECRET" not in call(ctx, "search", pattern="TOP-SECRET").content
    shell = call(ctx, "run_command", command="cat leak.txt")
    assert not shell.ok
    assert "TOP-SECRET" not in shell.content


def test_git_dir_is_not_writable(ctx: ToolContext) -> None:
    before = (ctx.workspace / ".git/config").read_text()
    result = call(ctx, "write_file", path=".git/config", content="[core]\n")
    assert not result.ok
    assert "inside .git" in result.content
    shell = call(ctx, "run_command", command="echo '[alias]' >> .git/config")
    assert not shell.ok
    assert "Read-only file system" in shell.content
    assert (ctx.workspace / ".git/config").read_text() == before


def test_git_inside_cannot_commit_push_or_delete_branches(ctx: ToolContext, remote: Path) -> None:
    repo = ctx.workspace
    git("branch", "keep", cwd=repo)
    local, upstream = refs(repo), refs(remote)
    call(ctx, "write_file", path="README.md", content="# changed\n")
    for command in (
        "git -c user.name=a -c user.email=a@b commit -qam sneaky",
        "git push origin HEAD:main",
        "git push --force origin :main",
        "git branch -D keep",
        "git tag v9",
        "git update-ref refs/heads/main HEAD~0",
    ):
        result = call(ctx, "run_command", command=command)
        assert not result.ok, (command, result.content)
    assert refs(repo) == local
    assert refs(remote) == upstream


def test_run_command_has_no_network(ctx: ToolContext) -> None:
    python = BwrapSandbox().interpreter()
    code = "import socket; socket.create_connection(('1.1.1.1', 53), 2)"
    result = call(ctx, "run_command", command=f'{python} -c "{code}"')
    assert not result.ok
    assert result.data["exit_code"] != 0
    assert "Network is unreachable" in result.content or "OSError" in result.content


def test_run_command_sees_neither_host_home_nor_host_environment(
    ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_TOKEN", "tok-123")
    marker = Path.home() / f".shipyard-test-{uuid.uuid4().hex}"
    marker.write_text("host home\n")
    try:
        result = call(ctx, "run_command", command=f"env; cat {marker}; echo HOME=$HOME")
    finally:
        marker.unlink()
    assert "No such file or directory" in result.content
    assert "host home" not in result.content
    assert "tok-123" not in result.content
    assert "HOME=/tmp" in result.content


def test_run_command_reports_exit_code_and_workspace_changes(ctx: ToolContext) -> None:
    result = call(ctx, "run_command", command="echo out; echo err >&2; touch made.txt; exit 3")
    assert not result.ok
    assert result.content.splitlines()[0] == "exit code 3"
    assert "out" in result.content
    assert "[stderr]\nerr" in result.content
    assert result.data["exit_code"] == 3
    assert (ctx.workspace / "made.txt").exists()


def test_run_command_past_its_timeout_is_killed(ctx: ToolContext) -> None:
    result = call(ctx, "run_command", command="sleep 30", timeout_seconds=1)
    assert not result.ok
    assert result.data["timed_out"]
    assert result.content.startswith("killed after 1s (timeout)")


def test_run_command_timeout_cannot_exceed_the_runs_limit(repo: Path) -> None:
    tight = ToolContext(
        run_id="t", workspace=repo, sandbox=BwrapSandbox(), limits=Limits(wall_seconds=1)
    )
    result = call(tight, "run_command", command="sleep 30", timeout_seconds=600)
    assert result.data["timed_out"]
    assert "killed after 1s" in result.content


def test_run_command_keeps_the_end_of_long_output(ctx: ToolContext) -> None:
    result = call(ctx, "run_command", command="seq 1 100000")
    assert result.ok
    assert "characters cut" in result.content
    assert result.content.rstrip().endswith("\n100000")
    assert len(result.content) < 13_000


# --- tests, finish, the toolshed ---------------------------------------------------------------


def test_run_tests_without_a_harness_says_so(ctx: ToolContext) -> None:
    result = call(ctx, "run_tests")
    assert not result.ok
    assert "not available in this blueprint" in result.content


def test_run_tests_hands_normalised_paths_to_the_harness(ctx: ToolContext) -> None:
    asked: list[Sequence[str]] = []

    def run_tests(paths: Sequence[str]) -> str:
        asked.append(paths)
        return "3 passed, 1 failed: tests/test_app.py::test_greet"

    ctx.run_tests = run_tests
    result = call(ctx, "run_tests", paths=["./tests/test_app.py", "/workspace/tests"])
    assert result.content == "3 passed, 1 failed: tests/test_app.py::test_greet"
    assert asked == [["tests/test_app.py", "tests"]]
    assert not call(ctx, "run_tests", paths=["../elsewhere"]).ok
    assert len(asked) == 1


def test_finish_ends_the_loop(ctx: ToolContext) -> None:
    result = call(ctx, "finish", summary="bumped requests to 2.32.3")
    assert result.finished
    assert result.data == {"summary": "bumped requests to 2.32.3"}


def test_bad_arguments_are_explained(ctx: ToolContext) -> None:
    missing = call(ctx, "read_file")
    assert missing.content == "error: read_file needs path as a string"
    extra = call(ctx, "read_file", path="README.md", encoding="latin-1")
    assert "takes no argument encoding" in extra.content
    wrong = call(ctx, "read_file", path="README.md", start_line="two")
    assert "whole number" in wrong.content


def test_toolshed_grants_only_known_names_and_calls_only_granted_tools(ctx: ToolContext) -> None:
    shed = default_toolshed()
    with pytest.raises(KeyError, match="no tool named git_push"):
        shed.grant(["read_file", "git_push"])
    granted = shed.grant(["read_file", "finish"])
    refused = granted.call(
        ToolCall(id="c", name="write_file", arguments={"path": "x", "content": "y"}), ctx
    )
    assert not refused.ok
    assert "there is no tool 'write_file' here" in refused.content
    assert not (ctx.workspace / "x").exists()
    assert granted.capabilities == frozenset({Capability.READ})


def test_builtin_tools_declare_their_capabilities() -> None:
    declared = {t.spec.name: t.capabilities for t in builtin_tools()}
    read, write = frozenset({Capability.READ}), frozenset({Capability.READ, Capability.WRITE})
    execute = frozenset({Capability.EXECUTE})
    assert declared == {
        "read_file": read,
        "list_files": read,
        "search": read,
        "edit_file": write,
        "write_file": write,
        "apply_patch": write,
        "run_command": execute,
        "run_tests": execute,
        "finish": frozenset(),
    }
    assert all(t.egress == () for t in builtin_tools())
    for tool in builtin_tools():
        assert tool.spec.parameters["additionalProperties"] is False


class PlainSandbox:
    """A sandbox that offers no interpreter of its own (the Sandbox protocol does not require one)."""

    name = "plain"

    def __init__(self) -> None:
        self.inner = BwrapSandbox()

    def run(
        self,
        argv: Sequence[str],
        *,
        workspace: Path,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
        limits: Limits | None = None,
        cwd: str = WORKSPACE,
        network: bool = False,
    ) -> CommandResult:
        return self.inner.run(
            argv, workspace=workspace, env=env, mounts=mounts, limits=limits, cwd=cwd,
            network=network,
        )  # fmt: skip


def test_file_tools_use_shipyards_environment_when_the_sandbox_names_no_python(repo: Path) -> None:
    ctx = ToolContext(run_id="t", workspace=repo, sandbox=PlainSandbox())
    assert call(ctx, "read_file", path="README.md").ok
    assert call(ctx, "write_file", path="docs/a.md", content="a\n").ok
    assert (repo / "docs/a.md").read_text() == "a\n"
