"""The agent blueprints end to end: a budget stop, compaction and recall, a refused write, lint-fix
without a model, fix-tests and ci-fix (fix cycles are in test_agent_fix_cycles.py). The real CLI, git,
bubblewrap and gates; the real openai client against the replay server playing a scripted model.

The helpers here run a blueprint through the CLI and collect what it left: its events (``runs show
--json``), its transcript, and the requests the replay server received."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipyard.agent.replay import ReplayServer
from tests.conftest import EXAMPLES, needs_bwrap, shipyard_cli

sys.path.insert(0, str(EXAMPLES))
from scenario import GIT_ENV, branches, head, make_repo, show

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.xdist_group("test_agent_runs")]

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = ("--model", "replay-model")


# -- the repository ---------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    return done.stdout.strip()


def commit(repo: Path, message: str, files: dict[str, str]) -> str:
    """Write ``files`` (path → content) into ``repo`` and commit them on main."""
    for path, content in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(content, encoding="utf-8")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)
    return str(head(repo))


def replaced(repo: Path, path: str, old: str, new: str) -> str:
    """The text of ``path`` with ``old`` (which must be there once) replaced by ``new``."""
    text = (repo / path).read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    return text.replace(old, new)


def configured(repo: Path, **tables: str) -> dict[str, str]:
    """The repository's shipyard.toml with settings added to tables (``gates__flaky`` is
    ``[gates.flaky]``), in the table when the file has it, else in a new one."""
    text = (repo / "shipyard.toml").read_text(encoding="utf-8")
    for name, settings in tables.items():
        header = f"\n[{name.replace('__', '.')}]\n"
        if header in text:
            text = text.replace(header, f"{header}{settings}\n", 1)
        else:
            text += f"{header}{settings}\n"
    return {"shipyard.toml": text}


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Run:
    """What a finished run left: the CLI's answer, its events and its transcript."""

    out: dict[str, Any]
    events: list[dict[str, Any]]
    transcript: list[dict[str, Any]]

    @property
    def state(self) -> dict[str, Any]:
        return dict(self.out["run"])

    @property
    def id(self) -> str:
        return str(self.state["run_id"])

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The data of every event of type ``kind``, in order."""
        return [e["data"] for e in self.events if e["type"] == kind]

    def verdicts(self, gate: str) -> list[dict[str, Any]]:
        """Each verification's verdict of ``gate``, in order (a fix cycle verifies again)."""
        return [
            g for g in self.of("gate.finished") if g["gate"] == gate and g["phase"] == "verdict"
        ]

    def logs(self) -> list[str]:
        return [str(d.get("message", "")) for d in self.of("log")]

    def rules(self) -> list[str]:
        return [r["rule"] for r in self.state["decision"]["reasons"]]

    def messages(self, role: str, name: str | None = None) -> list[dict[str, Any]]:
        return [
            r for r in self.transcript
            if r["type"] == "message" and r["role"] == role and (name is None or r["name"] == name)
        ]  # fmt: skip


def shipyard(home: Path, *args: str, model_url: str | None) -> subprocess.CompletedProcess[str]:
    """The CLI with no model variables but ``OPENAI_BASE_URL`` when a replay server is given."""
    env = {"OPENAI_BASE_URL": model_url} if model_url is not None else {}
    return shipyard_cli(home, *args, env=env, ok=False)


def run(home: Path, *args: str, model_url: str | None) -> Run:
    done = shipyard(home, "run", *args, "--json", model_url=model_url)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    shown = shipyard(home, "runs", "show", out["run"]["run_id"], "--json", model_url=None)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    events = json.loads(shown.stdout)["events"]
    path = home / "runs" / out["run"]["run_id"] / "transcript.jsonl"
    transcript = (
        [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    )
    return Run(out=out, events=events, transcript=transcript)


def last_message(body: dict[str, Any]) -> str:
    return str(body["messages"][-1].get("content") or "")


def every_call_answered(model: ReplayServer) -> None:
    """Each request the model got answers every tool call before it, as providers require."""
    for number, request in enumerate(model.requests, 1):
        messages = request.body["messages"]
        asked = [c["id"] for m in messages for c in m.get("tool_calls") or []]
        answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
        assert sorted(asked) == sorted(answered), f"request {number}: {asked} vs {answered}"


def published_nothing(repo: Path, main_before: str) -> None:
    """The user's repository is as it was: main where it was and no run branch."""
    assert branches(repo) == {"main": main_before}


# -- scenarios ---------------------------------------------------------------------------------


def test_a_run_out_of_steps_halts_with_the_budget_named_and_publishes_nothing(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    before = commit(repo, "Agents get two steps", configured(repo, agent="max_steps = 2"))
    with ReplayServer(FIXTURES / "agent_budget.json") as model:
        done = run(
            tmp_path / "home", "task", "--repo", str(repo), *MODEL, "--index-url", index_url,
            "--task", "Explain the stock rules in a docstring.", model_url=model.url,
        )  # fmt: skip
        # The third answer was never asked for: the budget stopped the agent before that call.
        assert model.remaining == 1
        assert len(model.requests) == 2
        every_call_answered(model)
    assert done.state["status"] == "halted"
    reason = done.state["reason"]
    assert reason.startswith("the agent stopped before finishing: budget:")
    assert "steps budget is used up: 2 of 2" in reason
    assert "agent.max_steps" in reason
    [finished] = done.of("agent.finished")
    assert finished["finished"] is False
    assert finished["spend"]["steps"] == 2
    assert finished["spend"]["tokens"] == (1500 + 30) + (2100 + 25)
    assert done.out["spend"] == finished["spend"]
    assert [s["step"] for s in done.of("agent.step")] == [1, 2]
    assert [t["tool"] for t in done.of("agent.tool")] == ["read_file", "read_file"]
    # Nothing after the agent ran: no commit, no gates, no decision, nothing delivered.
    for kind in ("change.committed", "gate.finished", "decision.made", "delivery.intent"):
        assert done.of(kind) == [], kind
    published_nothing(repo, before)
    # The transcript holds both reads and nothing after them.
    tools = done.messages("tool")
    assert [m["name"] for m in tools] == ["read_file", "read_file"]
    assert "class Stock:" in tools[0]["content"]


LEDGER_RULE = (
    "Ledger rule {:03d}: a receipt or a sale of stock is written as one line and kept for "
    "seven years.\n"
)


def big_docs() -> dict[str, str]:
    """Three documents whose reads fill the context: about 2.6k, 17k and 15k characters.

    With 16,000 context tokens compacted at half, the ledger, the history and two small calls stay
    under the 8,000 (about 6,100 with the prompt); the glossary, read fifth, takes it past them
    (about 10,100); summarising the first two reads brings it down to about 5,200, and the ledger
    recalled on top of that still fits, so exactly one compaction happens.
    """
    ledger = "# Ledger rules\n\n" + "".join(LEDGER_RULE.format(i) for i in range(1, 27))
    history = "# History\n\n" + "".join(
        f"Year {1800 + i}: the shop counted its stock by hand and wrote the count in book {i}.\n"
        for i in range(1, 200)
    )
    glossary = "# Glossary\n\n" + "".join(
        f"Term {i:03d}: a word the stock keepers use, defined here once for everybody.\n"
        for i in range(1, 200)
    )
    return {"docs/ledger.md": ledger, "docs/history.md": history, "docs/glossary.md": glossary}


def test_compaction_summarises_old_turns_and_recall_brings_back_the_exact_original(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    config = configured(repo, agent="context_tokens = 16000\ncompact_at = 0.5")
    commit(repo, "Ledger documents; a small context", {**config, **big_docs()})
    with ReplayServer(FIXTURES / "agent_compaction.json") as model:
        done = run(
            tmp_path / "home", "task", "--repo", str(repo), *MODEL, "--index-url", index_url,
            "--type", "documentation",
            "--task", "Returns must be kept for ten years: amend the ledger rule on them.",
            model_url=model.url,
        )  # fmt: skip
        assert model.remaining == 0
        every_call_answered(model)
        requests = [r.body for r in model.requests]
    # One compaction, before the sixth agent call, of the first two turns (m3-m6), which shrank it.
    [compacted] = done.of("agent.compacted")
    assert compacted["replaced"] == "m3-m6"
    assert compacted["messages"] == 4
    assert compacted["tokens_before"] > compacted["tokens_after"]
    assert compacted["fallback"] is False
    assert (compacted["input_tokens"], compacted["output_tokens"]) == (5200, 60)
    # The summarising call was the sixth request, with no tools, and it saw the originals.
    summarising = requests[5]
    assert summarising["messages"][0]["content"].startswith("You compress the working history")
    assert not summarising.get("tools")
    assert "Ledger rule 012:" in json.dumps(summarising)
    # The ledger as the model first read it, from the transcript.
    ledger_read = next(m for m in done.transcript if m.get("id") == "m4")
    assert ledger_read["role"] == "tool"
    assert ledger_read["name"] == "read_file"
    original = ledger_read["content"]
    assert "Ledger rule 012: a receipt or a sale" in original
    # After the compaction the model no longer has the ledger in its context ...
    after = requests[6]
    assert "[summary of m3-m6" in json.dumps(after)
    assert "Ledger rule 012" not in json.dumps(after["messages"])
    # ... until recall hands it back word for word, as the next request shows.
    recalled = last_message(requests[7])
    assert recalled.startswith("[m4] tool (read_file):")
    assert original in recalled
    [recall_record] = done.messages("tool", "recall")
    assert recall_record["content"] == recalled
    # The transcript keeps every original and notes the compaction.
    [marker] = [r for r in done.transcript if r["type"] == "compaction"]
    assert marker["replaced"] == ["m3", "m4", "m5", "m6"]
    assert marker["summary"].startswith('[summary of m3-m6; the originals are kept: use recall("')
    ids = [r["id"] for r in done.transcript if r["type"] == "message"]
    assert ids == [f"m{n}" for n in range(1, len(ids) + 1)]
    # The summary's call counts in the spend: nine model calls, eight of them agent steps.
    assert len(done.of("agent.step")) == 8
    assert done.out["spend"]["steps"] == 9
    # The change the model made from the recalled text landed: a documentation change merges.
    assert done.state["status"] == "merged", done.state
    ledger = show(repo, "main", "docs/ledger.md")
    assert (
        "Ledger rule 012: a return of stock is written as one line and kept for ten years."
        in ledger
    )


def test_a_write_to_a_forbidden_path_is_refused_and_the_allowed_change_lands(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    tokens_before = show(repo, "main", "src/auth/tokens.py")
    with ReplayServer(FIXTURES / "agent_refused_write.json") as model:
        done = run(
            tmp_path / "home", "task", "--repo", str(repo), *MODEL, "--index-url", index_url,
            "--type", "documentation", "--task", "Tokens should last two hours.",
            model_url=model.url,
        )  # fmt: skip
        assert model.remaining == 0
        every_call_answered(model)
        answered = last_message(model.requests[1].body)
    # The refusal, with the pattern, is what the model read next.
    assert answered.startswith("refused: src/auth/tokens.py matches the forbidden pattern")
    assert "'src/auth/**'" in answered
    refused, edited, finished = done.of("agent.tool")
    assert (refused["tool"], refused["ok"]) == ("edit_file", False)
    assert refused["summary"].startswith("refused: src/auth/tokens.py")
    assert (edited["ok"], finished["tool"]) == (True, "finish")
    # Only the README changed; under the seed policy a documentation change merges.
    [committed] = done.of("change.committed")
    assert committed["files"] == ["README.md"]
    assert done.state["status"] == "merged", done.state
    assert done.state["decision"]["action"] == "MERGE"
    assert "a token is valid for one hour" in show(repo, "main", "README.md")
    assert show(repo, "main", "src/auth/tokens.py") == tokens_before
    # The model's finish summary is the change's commit message and the agent's recorded summary.
    summary = "Documented in the README that a token is valid for one hour; src/auth is off limits."
    assert done.of("agent.finished")[0]["summary"] == summary
    assert summary in git(repo, "log", "--format=%B", "main")


def test_lint_fix_applies_ruffs_fixes_without_a_model_and_delivers_by_policy(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    # Nothing to fix on the example: noop, and no model was needed to find that out.
    clean = run(home, "lint-fix", "--repo", str(repo), "--index-url", index_url, model_url=None)
    assert clean.state["status"] == "noop"
    assert clean.state["reason"] == "ruff reports nothing to fix"
    assert clean.of("agent.started") == []
    # A finding ruff cannot fix safely (an unused local) needs a model, and there is none.
    items = "src/inventory/items.py"
    unfixable = replaced(
        repo, items, "    if unit_price < 0:\n", "    unused = 1\n    if unit_price < 0:\n"
    )
    commit(repo, "An unused local", {items: unfixable})
    stuck = run(home, "lint-fix", "--repo", str(repo), "--index-url", index_url, model_url=None)
    assert stuck.state["status"] == "noop"
    assert stuck.state["reason"] == "no automatic fix, and no model"
    assert any(m.startswith("1 finding(s) need a model, and none is usable") for m in stuck.logs())
    assert stuck.of("agent.started") == []
    assert stuck.of("change.committed") == []
    path = "src/inventory/report.py"
    unused = replaced(
        repo, path, "from __future__ import annotations\n",
        "from __future__ import annotations\n\nimport os\n",
    )  # fmt: skip
    main = commit(repo, "An unused import", {path: unused})
    done = run(home, "lint-fix", "--repo", str(repo), "--index-url", index_url, model_url=None)
    assert done.of("agent.started") == []
    assert done.transcript == []
    [committed] = done.of("change.committed")
    assert committed["files"] == [path]
    assert (committed["lines_added"], committed["lines_deleted"]) == (0, 2)
    branch = f"shipyard/{done.id}"
    assert show(repo, branch, path) == show(repo, "main~1", path)
    assert "Apply ruff's automatic fixes" in git(repo, "log", "--format=%s", branch)
    assert done.state["gates"]["verdict"]["tests"]["status"] == "passed"
    # A change to src/ is outside the seed policy's auto-merge allowlist: it waits for review.
    assert done.state["status"] == "awaiting_review", done.state
    assert done.state["decision"]["action"] == "REVIEW"
    assert "paths.outside_allowlist" in done.rules()
    assert head(repo) == main


def test_fix_tests_fixes_the_code_and_leaves_the_tests_alone(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    path = "src/inventory/stock.py"
    bug = replaced(repo, path, '{on_hand} in stock")', '{on_hand} on hand")')
    main = commit(repo, "Say on hand", {path: bug})
    tests_before = show(repo, "main", "tests/test_stock.py")
    with ReplayServer(FIXTURES / "agent_fix_tests.json") as model:
        done = run(
            tmp_path / "home", "fix-tests", "--repo", str(repo), *MODEL, "--index-url", index_url,
            model_url=model.url,
        )  # fmt: skip
        assert model.remaining == 0
        every_call_answered(model)
    # The task named the failing test; the agent's own run of the tests passed.
    task = done.messages("user")[0]
    assert "FAILED tests.test_stock::test_cannot_remove_more_than_in_stock" in task["content"]
    assert "24 passed, 0 failed" in done.messages("tool", "run_tests")[0]["content"]
    verdict = done.state["gates"]["verdict"]
    assert verdict["tests"]["status"] == "passed"
    assert verdict["tests"]["facts"]["pass_rate"] == 1.0
    assert verdict["integrity"]["status"] == "passed"
    [committed] = done.of("change.committed")
    assert committed["files"] == [path]
    branch = f"shipyard/{done.id}"
    assert show(repo, branch, "tests/test_stock.py") == tests_before
    assert '{on_hand} in stock")' in show(repo, branch, path)
    # A bug fix in src/ is outside the auto-merge allowlist: it waits for review.
    assert done.state["status"] == "awaiting_review", done.state
    assert head(repo) == main


CI_LOG = """\
============================= test session starts ==============================
collected 24 items

tests/test_pricing.py .F..                                                 [ 16%]

=================================== FAILURES ===================================
__________________ test_price_label_in_dollars_with_thousands __________________
>       assert price_label(new_item("Sofa", 123456, currency="USD")) == "$1,234.56"
E       AssertionError: assert '€1,234.56' == '$1,234.56'
=========================== short test summary info ============================
FAILED tests/test_pricing.py::test_price_label_in_dollars_with_thousands - AssertionError
========================= 1 failed, 23 passed in 0.31s =========================
"""


def euro_only(repo: Path) -> str:
    """Commit a bug on main: every price label in euros."""
    path = "src/inventory/pricing.py"
    bug = replaced(
        repo, path, "format_money(item.unit_price, item.currency)",
        'format_money(item.unit_price, "EUR")',
    )  # fmt: skip
    return commit(repo, "Euros everywhere", {path: bug})


def test_ci_fix_fixes_the_cause_named_in_the_log(tmp_path: Path, index_url: str) -> None:
    repo = make_repo(tmp_path / "repo")
    main = euro_only(repo)
    log = tmp_path / "ci.log"
    log.write_text(CI_LOG)
    with ReplayServer(FIXTURES / "agent_ci_fix.json") as model:
        done = run(
            tmp_path / "home", "ci-fix", "--repo", str(repo), "--log", str(log), *MODEL,
            "--index-url", index_url, model_url=model.url,
        )  # fmt: skip
        assert model.remaining == 0
        every_call_answered(model)
    assert (
        "E       AssertionError: assert '€1,234.56' == '$1,234.56'"
        in (done.messages("user")[0]["content"])
    )
    # Right the first time: one verification, no fix cycle.
    tests = done.verdicts("tests")
    assert [t["status"] for t in tests] == ["passed"]
    assert not any(m.startswith("fix cycle") for m in done.logs())
    assert done.state["status"] == "awaiting_review", done.state
    fixed = show(repo, f"shipyard/{done.id}", "src/inventory/pricing.py")
    assert "format_money(item.unit_price, item.currency)" in fixed
    assert head(repo) == main
