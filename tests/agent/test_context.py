"""The agent's first context comes only from the committed tree: rules, named files, past runs and
a ranked repo map, within its budget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import shipyard.agent.context
from shipyard.agent.context import (
    RULES_PATHS,
    CommitTree,
    build_repo_map,
    gather_context,
    named_files,
    read_rules,
)
from shipyard.agent.context.repomap import MAX_FILE_BYTES, extract
from shipyard.agent.messages import estimate_tokens
from shipyard.errors import RepositoryError
from shipyard.events import EventType
from shipyard.gitcmd import git
from shipyard.model import Task
from shipyard.store import Store

CORE = '''"""The engine everything else drives."""


class Engine:
    """Runs things."""

    def start(self, *, speed: int = 1) -> None:
        self.speed = speed

    async def stop(
        self,
        reason: str,
    ) -> bool:
        return True


def make_engine(size: int = 1) -> Engine:
    return Engine()
'''
USER = """from app.core import Engine, make_engine


def {name}() -> Engine:
    engine = make_engine(2)
    engine.start(speed=3)
    return engine
"""
PROJECT = {
    "src/app/core.py": CORE,
    "src/app/util.py": "from app.core import Engine\n\n\ndef tidy(engine: Engine) -> str:\n    return 'ok'\n",
    "src/app/a.py": USER.format(name="run_a"),
    "src/app/b.py": USER.format(name="run_b"),
    "src/app/leaf.py": "def lonely(x: int) -> int:\n    return x + 1\n",
    "README.md": "# app\n",
}


def commit_all(repo: Path, message: str = "change") -> str:
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "--allow-empty", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo).stdout.strip()


def make_repo(path: Path, files: dict[str, str | bytes]) -> str:
    path.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", str(path), cwd=path)
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return commit_all(path, "initial")


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    return repo, make_repo(repo, dict(PROJECT))


# --- rules ------------------------------------------------------------------------------------


def test_rules_files_are_found_in_order_and_capped(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    long = "Use tabs.\n" + "x" * 9000 + "\nTHE END\n"
    commit = make_repo(
        repo,
        {
            "CONTRIBUTING.md": "Contributors sign off.\n",
            ".github/copilot-instructions.md": "Copilot: small diffs.\n",
            "CLAUDE.md": long,
            "AGENTS.md": "Agents run `make test`.\n",
            "docs/AGENTS.md": "not a rules path\n",
        },
    )
    rules = read_rules(CommitTree.at(repo, commit))

    assert [r.path for r in rules] == list(RULES_PATHS)
    assert rules[0].text == "Agents run `make test`."
    assert not rules[0].truncated
    claude = rules[1]
    assert claude.truncated
    assert claude.text.startswith("Use tabs.")
    assert "THE END" not in claude.text
    assert "cut: CLAUDE.md has 9019 characters, the first 8000 are shown" in claude.text
    assert len(claude.text) < 8200


def test_a_symlinked_rules_file_pointing_outside_the_repo_is_not_followed(tmp_path: Path) -> None:
    host = tmp_path / "host-notes.md"
    host.write_text("HOST-ONLY-CONTENT: never in a prompt\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    os.symlink(host, repo / "AGENTS.md")
    os.symlink("../host-notes.md", repo / "CLAUDE.md")
    (repo / ".github").mkdir()
    os.symlink(tmp_path, repo / ".github" / "copilot-instructions.md")
    commit = make_repo(
        repo, {"CONTRIBUTING.md": "Be kind.\n", "src/m.py": "def f() -> None: ...\n"}
    )

    assert [r.path for r in read_rules(CommitTree.at(repo, commit))] == ["CONTRIBUTING.md"]
    context = gather_context(
        repo, commit, "Read AGENTS.md and CLAUDE.md", store=None, repo=None, budget_tokens=4000
    )
    text = context.render()
    assert "HOST-ONLY-CONTENT" not in text
    assert "Be kind." in text


def test_a_rules_symlink_inside_the_repo_is_followed_and_shown_once(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    os.symlink("docs/agents.md", repo / "AGENTS.md")
    os.symlink("AGENTS.md", repo / "CLAUDE.md")
    commit = make_repo(repo, {"docs/agents.md": "Shared rules.\n"})

    rules = read_rules(CommitTree.at(repo, commit))

    assert [(r.path, r.text) for r in rules] == [("AGENTS.md", "Shared rules.")]


# --- untracked and uncommitted content ----------------------------------------------------------


def test_untracked_and_uncommitted_files_are_never_included(project: tuple[Path, str]) -> None:
    repo, _first = project
    (repo / "CONTRIBUTING.md").write_text("COMMITTED-RULES\n")
    commit = commit_all(repo)
    (repo / "CONTRIBUTING.md").write_text("WORKTREE-RULES\n")
    (repo / "AGENTS.md").write_text("UNTRACKED-RULES\n")
    (repo / "src/app/secret.py").write_text("def untracked_symbol() -> None: ...\n")
    (repo / "src/app/leaf.py").write_text("def worktree_only_edit() -> None: ...\n")

    context = gather_context(
        repo,
        commit,
        "Look at src/app/secret.py and src/app/leaf.py",
        store=None,
        repo=None,
        budget_tokens=8000,
    )
    text = context.render()

    for unwanted in ("UNTRACKED", "WORKTREE", "untracked_symbol", "secret.py", "worktree_only"):
        assert unwanted not in text
    assert "COMMITTED-RULES" in text
    assert "def lonely(x: int) -> int:" in text  # the committed leaf.py
    assert [s.name for s in context.sections] == ["rules", "files", "repo_map"]


def test_an_unknown_commit_is_a_repository_error(project: tuple[Path, str]) -> None:
    repo, _commit = project
    with pytest.raises(RepositoryError, match="not a commit"):
        CommitTree.at(repo, "--output=/tmp/x")
    with pytest.raises(RepositoryError, match="not a commit"):
        CommitTree.at(repo, "0" * 40)


def test_the_tree_reads_exact_text_across_batches_and_skips_binary(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    files: dict[str, str | bytes] = {f"many/f{i:03}.txt": f"file {i}\n" for i in range(520)}
    files |= {
        "crlf.txt": "one\r\ntwo\r\n",
        "empty.txt": "",
        "unicode.txt": "prix: 12 €, naïve — ok\n",
        "nul.bin": b"abc\x00def",
        "latin1.txt": b"caf\xe9\n",
        # Looks like a `git cat-file --batch` header for the next file, which it is not.
        "decoy.txt": "0123456789012345678901234567890123456789 blob 3\nabc\n",
    }
    commit = make_repo(repo, files)
    tree = CommitTree.at(repo, commit)

    texts = tree.read(tree.files())

    expected = {k: v for k, v in files.items() if isinstance(v, str)}
    assert texts == expected
    assert tree.read(["crlf.txt"], max_bytes=5) == {}
    assert tree.read(["missing.txt"]) == {}


def test_recently_changed_files_come_newest_first(project: tuple[Path, str]) -> None:
    repo, _first = project
    (repo / "src/app/util.py").write_text("def tidy() -> str:\n    return 'tidier'\n")
    commit_all(repo)
    (repo / "src/app/leaf.py").write_text("def lonely(x: int) -> int:\n    return x + 2\n")
    (repo / "README.md").unlink()
    commit = commit_all(repo)

    recent = CommitTree.at(repo, commit).recently_changed(commits=2)

    assert recent == ["src/app/leaf.py", "src/app/util.py"]  # the deleted README is gone


# --- the repo map -------------------------------------------------------------------------------


def test_the_map_lists_definitions_with_their_signatures(project: tuple[Path, str]) -> None:
    repo, commit = project
    repo_map = build_repo_map(CommitTree.at(repo, commit), budget_tokens=10_000)
    lines = repo_map.text.splitlines()

    core = lines.index("src/app/core.py")
    assert lines[core + 1 : core + 5] == [
        "  4: class Engine:",
        "  7:     def start(self, *, speed: int = 1) -> None:",
        "  10:     async def stop(self, reason: str) -> bool:",
        "  17: def make_engine(size: int = 1) -> Engine:",
    ]
    assert "README.md" in lines  # listed without symbols
    assert repo_map.total_files == len(PROJECT)


def test_the_most_referenced_file_ranks_first(project: tuple[Path, str]) -> None:
    repo, commit = project
    repo_map = build_repo_map(CommitTree.at(repo, commit), budget_tokens=10_000)

    assert repo_map.files[0] == "src/app/core.py"
    assert repo_map.text.startswith("src/app/core.py\n")


def test_the_map_keeps_to_its_budget(project: tuple[Path, str]) -> None:
    repo, commit = project
    tree = CommitTree.at(repo, commit)
    full = build_repo_map(tree, budget_tokens=10_000)
    sizes = []
    for budget in (0, 5, 12, 30, 60, full.tokens - 1):
        cut = build_repo_map(tree, budget_tokens=budget)
        assert cut.tokens == estimate_tokens(cut.text) <= budget
        sizes.append(len(cut.text.splitlines()))
    assert sizes[0] == 0
    assert sizes == sorted(sizes)
    assert "[… not shown: " in cut.text
    assert "[… not shown: " not in full.text
    tiny = build_repo_map(tree, budget_tokens=30).text
    assert tiny.startswith("src/app/core.py\n")  # the best ranked definitions come first


def test_the_map_is_deterministic(project: tuple[Path, str], tmp_path: Path) -> None:
    repo, commit = project
    clone = tmp_path / "clone"
    git("clone", "--quiet", str(repo), str(clone), cwd=tmp_path)
    maps = {
        build_repo_map(CommitTree.at(where, commit), budget_tokens=budget).text
        for where in (repo, clone, repo)
        for budget in (60,)
    }
    assert len(maps) == 1


def test_binary_oversized_and_undecodable_files_are_left_out(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    commit = make_repo(
        repo,
        {
            "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00",
            "src/big.py": "def huge() -> None: ...\n" + "#" * MAX_FILE_BYTES,
            "src/latin.py": b"def latin() -> str:\n    return '\xe9'\n",
            "src/ok.py": "def fine() -> None: ...\n",
            "notes.txt": "plain text\n",
        },
    )
    repo_map = build_repo_map(CommitTree.at(repo, commit), budget_tokens=10_000)

    assert set(repo_map.files) == {"src/ok.py", "notes.txt", "src/latin.py"}
    assert "def fine() -> None:" in repo_map.text
    assert "latin()" not in repo_map.text  # not UTF-8: listed, not parsed
    assert "huge" not in repo_map.text


def test_extract_skips_what_functions_define_inside_and_finds_guarded_definitions() -> None:
    source = (
        "import typing\n"
        "if typing.TYPE_CHECKING:\n"
        "    class Hint: ...\n"
        "@decorator\n"
        "def outer(a,\n"
        "          b):\n"
        "    def inner(): ...\n"
        "    return helper(a)\n"
    )
    symbols = extract("m.py", source)

    assert [(d.name, d.signature, d.line) for d in symbols.definitions] == [
        ("Hint", "class Hint:", 3),
        ("outer", "def outer(a, b):", 5),
    ]
    assert symbols.references["helper"] == 1
    assert "outer" not in symbols.references


# --- named files --------------------------------------------------------------------------------


def test_mentions_in_a_task_are_matched_to_files_of_the_tree() -> None:
    paths = [
        "src/app/core.py",
        "src/app/util.py",
        "src/app/pkg/__init__.py",
        "tests/test_core.py",
        "Makefile",
        *(f"src/m{i}/conf.py" for i in range(4)),
    ]
    text = (
        "Fix ./src/app/util.py:12, see core.py and `Makefile`; the module app.pkg too. "
        "Compare tests/test_core.py, e.g. conf.py (too many) or missing.py. Also util.py again."
    )
    assert named_files(text, paths) == [
        "src/app/util.py",
        "src/app/core.py",
        "Makefile",
        "src/app/pkg/__init__.py",
        "tests/test_core.py",
    ]
    assert named_files("Makefile and core", paths) == []  # bare words are not paths


def test_a_file_the_task_names_is_shown_and_boosted_in_the_map(project: tuple[Path, str]) -> None:
    repo, commit = project
    plain = gather_context(repo, commit, "Tidy up.", store=None, repo=None, budget_tokens=8000)
    named = gather_context(
        repo,
        commit,
        "Make `lonely` in src/app/leaf.py add two.",
        store=None,
        repo=None,
        budget_tokens=8000,
    )

    files = {s.name: s for s in named.sections}["files"]
    assert files.sources == ("src/app/leaf.py",)
    assert "```\ndef lonely(x: int) -> int:\n    return x + 1\n```" in files.body
    assert "## Files the task names" in named.render()

    def position(context: shipyard.agent.context.AgentContext) -> int:
        repo_map = {s.name: s for s in context.sections}["repo_map"]
        return repo_map.sources.index("src/app/leaf.py")

    assert position(named) < position(plain)


def test_named_files_are_cut_to_the_budget(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    body = "".join(f"value_{i} = {i}\n" for i in range(3000))
    commit = make_repo(repo, {"src/data.py": body, "AGENTS.md": "Rules.\n"})

    context = gather_context(
        repo, commit, "Change src/data.py", store=None, repo=None, budget_tokens=1000
    )
    files = {s.name: s for s in context.sections}["files"]

    assert "[… cut: " in files.body
    assert files.body.count("```") == 2  # the fence is closed despite the cut
    assert context.tokens <= 1000


def test_the_whole_context_keeps_to_its_budget(project: tuple[Path, str]) -> None:
    repo, commit = project
    for budget in (0, 50, 150, 400, 2000):
        context = gather_context(
            repo, commit, "Fix src/app/core.py", store=None, repo=None, budget_tokens=budget
        )
        assert context.tokens <= budget
        assert sum(s.tokens for s in context.sections) <= budget
        assert [r["name"] for r in context.record()] == [s.name for s in context.sections]


# --- past runs ----------------------------------------------------------------------------------


def record_run(
    store: Store, repo: str, run_id: str, title: str, files: list[str], *, halt: str | None
) -> None:
    store.create_run(Task(blueprint="issue", repo=repo, title=title), run_id=run_id)
    store.append(run_id, EventType.NODE_STARTED, {"node": "change"})
    store.append(
        run_id,
        EventType.CHANGE_COMMITTED,
        {"branch": f"shipyard/{run_id}", "commit": "c" * 40, "base": "b" * 40, "files": files},
    )
    action, message = ("HALT", halt) if halt else ("REVIEW", "feature changes need a review")
    store.append(
        run_id,
        EventType.DECISION_MADE,
        {"action": action, "reasons": [{"rule": "r", "action": action, "message": message}]},
    )
    if halt:
        store.append(run_id, EventType.RUN_HALTED, {"reason": halt})
    else:
        store.append(run_id, EventType.REVIEW_REQUESTED, {"branch": f"shipyard/{run_id}"})


def test_past_runs_that_touched_the_same_files_are_listed(
    project: tuple[Path, str], tmp_path: Path
) -> None:
    repo, commit = project
    with Store.open(home=tmp_path / "home") as store:
        here, elsewhere = str(repo), "/srv/other"
        record_run(store, here, "r01", "Old leaf fix", ["src/app/leaf.py"], halt="pass rate 50 %")
        record_run(store, here, "r02", "Core only", ["src/app/core.py"], halt=None)
        record_run(store, elsewhere, "r03", "Other repo", ["src/app/leaf.py"], halt=None)
        for n in range(4, 10):
            record_run(store, here, f"r{n:02}", f"Leaf {n}", ["src/app/leaf.py", "x"], halt=None)
        store.create_run(Task(blueprint="issue", repo=here, title="No commit yet"), run_id="r10")

        context = gather_context(
            repo,
            commit,
            "Fix src/app/leaf.py",
            store=store,
            repo=here,
            budget_tokens=8000,
            run_id="r09",
        )

    past = {s.name: s for s in context.sections}["past_runs"]
    assert past.sources == ("r08", "r07", "r06", "r05", "r04")  # newest first, at most five
    assert past.body.splitlines()[0] == (
        "- r08 [awaiting_review] Leaf 8: REVIEW: feature changes need a review "
        "(changed src/app/leaf.py)"
    )
    assert "## Past runs that changed these files" in context.render()

    with Store.open(home=tmp_path / "home") as store:
        only_old = gather_context(
            repo,
            commit,
            "Fix leaf.py",
            store=store,
            repo=here,
            budget_tokens=8000,
        )
        old = {s.name: s for s in only_old.sections}["past_runs"]
        assert old.sources[0] == "r09"
    with Store.open(home=tmp_path / "home2") as empty:
        nothing = gather_context(
            repo, commit, "Fix leaf.py", store=empty, repo=here, budget_tokens=8000
        )
    assert "past_runs" not in [s.name for s in nothing.sections]


def test_a_halted_run_shows_its_reason(project: tuple[Path, str], tmp_path: Path) -> None:
    repo, commit = project
    with Store.open(home=tmp_path) as store:
        record_run(store, str(repo), "r1", "Leaf", ["src/app/leaf.py"], halt="pass rate 50 %")
        context = gather_context(
            repo, commit, "src/app/leaf.py", store=store, repo=str(repo), budget_tokens=8000
        )
    past = {s.name: s for s in context.sections}["past_runs"]
    assert past.body == ("- r1 [halted] Leaf: HALT: pass rate 50 % (changed src/app/leaf.py)")


# --- public surface -----------------------------------------------------------------------------


def test_public_names() -> None:
    assert sorted(shipyard.agent.context.__all__) == [
        "AgentContext",
        "CommitTree",
        "Inputs",
        "RULES_PATHS",
        "RepoMap",
        "RetrievalUnavailable",
        "Retriever",
        "RulesFile",
        "SECTIONS",
        "Section",
        "build_repo_map",
        "gather_context",
        "named_files",
        "open_retriever",
        "read_rules",
    ]
    for name in shipyard.agent.context.__all__:
        assert getattr(shipyard.agent.context, name) is not None
