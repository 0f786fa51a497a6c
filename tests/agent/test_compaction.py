"""Compaction shrinks the context without losing anything: summaries cite originals, recall reads them.

The summarising model is the real ``openai`` client (the provider ``get_provider`` builds) against
the local replay server, so what is sent and what comes back crosses real HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.agent.budget import Budget
from shipyard.agent.compaction import (
    KEEP_RECENT,
    Compaction,
    compact,
    gists,
    needs_compaction,
    plan,
)
from shipyard.agent.messages import Message, Role, ToolCall, message_tokens
from shipyard.agent.providers import Provider, get_provider
from shipyard.agent.providers.openai_compat import OpenAIProvider
from shipyard.agent.replay import ReplayServer
from shipyard.agent.tools.base import Capability, ToolContext
from shipyard.agent.tools.recall import Recall
from shipyard.agent.transcript import TRANSCRIPT_FILE, Context, Transcript, covered
from shipyard.config import AgentConfig, PriceConfig
from shipyard.sandbox.bwrap import BwrapSandbox

MODEL = "replay-model"
CONFIG = AgentConfig(
    model=MODEL,
    context_tokens=4000,
    compact_at=0.5,
    max_output_tokens=512,
    prices={MODEL: PriceConfig(input_per_million=1.0, output_per_million=2.0)},
)
SUMMARY = "Read src/mod_1.py and src/mod_2.py [m3-m6]; ran the tests, 2 failed [m7-m8]."


def summary_turn(content: str = SUMMARY, **expect: Any) -> dict[str, Any]:
    return {
        "content": content,
        "usage": {"prompt_tokens": 900, "completion_tokens": 40},
        "expect": expect or None,
    }


@dataclass
class Summariser:
    """A replay server scripted with the summaries to give, and a provider built on it."""

    server: ReplayServer
    provider: Provider
    config: AgentConfig

    def compact(self, run: Run) -> Compaction | None:
        return compact(
            run.context,
            transcript=run.transcript,
            provider=self.provider,
            model=self.config.model,
            config=self.config,
        )


@pytest.fixture
def summariser(
    replay_server: Callable[..., ReplayServer], replay_config: Callable[..., AgentConfig]
) -> Iterator[Callable[..., Summariser]]:
    providers: list[Provider] = []

    def start(*responses: dict[str, Any]) -> Summariser:
        server = replay_server({"model": MODEL, "responses": list(responses)})
        config = replay_config(
            server,
            context_tokens=CONFIG.context_tokens,
            compact_at=CONFIG.compact_at,
            max_output_tokens=CONFIG.max_output_tokens,
            prices=CONFIG.prices,
            max_retries=0,
        )
        provider = get_provider(config, environ={})
        providers.append(provider)
        return Summariser(server, provider, config)

    yield start
    for provider in providers:
        if isinstance(provider, OpenAIProvider):
            provider.close()


class Run:
    """A transcript and the context built from it, as the loop keeps them."""

    def __init__(self, run_dir: Path) -> None:
        self.transcript = Transcript.for_run(run_dir)
        self.context = Context()
        self.calls = 0
        self.add(Message(role="system", content="You fix bugs."))
        self.add(Message(role="user", content="Make tests/test_mod.py pass."))

    def add(self, message: Message) -> Message:
        recorded = self.transcript.append(message)
        self.context.add(recorded)
        return recorded

    def round(self, size: int = 1200) -> None:
        """One tool round: the assistant reads a file and the file comes back."""
        self.calls += 1
        call = ToolCall(
            id=f"call_{self.calls}",
            name="read_file",
            arguments={"path": f"src/mod_{self.calls}.py"},
        )
        self.add(
            Message(role="assistant", content=f"Reading mod_{self.calls}.", tool_calls=(call,))
        )
        body = f"# module {self.calls}\n" + "".join(
            f"x{self.calls}_{i} = {i}\n" for i in range(size // 9)
        )
        self.add(Message(role="tool", content=body[:size], tool_call_id=call.id, name="read_file"))


def test_compaction_is_needed_only_past_the_threshold(tmp_path: Path) -> None:
    run = Run(tmp_path)
    while run.context.tokens() + 320 < CONFIG.compact_at * CONFIG.context_tokens:
        run.round()
        assert not needs_compaction(run.context, CONFIG)
    run.round()
    run.round()
    assert needs_compaction(run.context, CONFIG)


def test_compaction_keeps_system_task_and_recent_turns_and_cites_what_it_replaced(
    tmp_path: Path, summariser: Callable[..., Summariser]
) -> None:
    model = summariser(summary_turn(messages_contain="[m3] assistant:\n  calls read_file"))
    run = Run(tmp_path)
    for _ in range(6):
        run.round()
    run.add(Message(role="assistant", content="Now the fix."))  # the cut falls on a tool result
    before = list(run.context.messages)

    done = model.compact(run)

    assert done is not None
    ids = [m.id for m in run.context.messages]
    # The last 6 would start at a tool result (m10); its assistant call m9 stays with it.
    assert ids == ["m1", "m2", "m3-m8", "m9", "m10", "m11", "m12", "m13", "m14", "m15"]
    assert run.context.messages[3:] == before[8:]
    assert done.replaced == ("m3", "m4", "m5", "m6", "m7", "m8")
    summary = run.context.messages[2]
    assert summary.role == "user"
    assert summary.content.startswith('[summary of m3-m8; the originals are kept: use recall("m6")')
    assert summary.content.endswith(SUMMARY)
    assert done.tokens_before == sum(message_tokens(m) for m in before)
    replaced_tokens = sum(message_tokens(m) for m in before[2:8])
    assert done.tokens_after == done.tokens_before - replaced_tokens + message_tokens(summary)
    assert done.tokens_after == run.context.tokens() < done.tokens_before
    assert not done.fallback
    assert done.usage.input_tokens == 900
    assert done.cost_usd == pytest.approx((900 * 1.0 + 40 * 2.0) / 1e6)
    sent = model.server.requests[0].body
    assert "tools" not in sent
    assert sent["model"] == MODEL
    event = done.as_event()
    assert event["replaced"] == "m3-m8"
    assert event["tokens_before"] == done.tokens_before
    assert event["tokens_after"] == done.tokens_after
    # The summarising call is charged like any other.
    budget = Budget(CONFIG)
    assert done.completion is not None
    assert budget.charge(done.completion).tokens == 940


def test_recall_returns_the_exact_original_of_a_compacted_message(
    tmp_path: Path, summariser: Callable[..., Summariser]
) -> None:
    model = summariser(summary_turn())
    run = Run(tmp_path)
    for _ in range(6):
        run.round()
    original = run.transcript.get("m4")[0]
    model.compact(run)
    assert all(original.content not in m.content for m in run.context.messages)

    ctx = ToolContext(
        run_id="r1", workspace=tmp_path, sandbox=BwrapSandbox(), recall=run.transcript.recall
    )
    result = Recall().call({"ref": "m4"}, ctx)
    assert result.ok
    assert result.content == f"[m4] tool (read_file):\n{original.content}".rstrip()

    # The transcript read afresh (as after a crash) recalls the same words.
    reopened = Transcript.open(tmp_path / TRANSCRIPT_FILE)
    assert reopened.get("m4")[0].content == original.content
    assert reopened.context().messages == run.context.messages


def test_a_second_compaction_folds_the_first_summary_in(
    tmp_path: Path, summariser: Callable[..., Summariser]
) -> None:
    model = summariser(
        summary_turn(), summary_turn("Everything so far [m3-m14].", messages_contain=SUMMARY)
    )
    run = Run(tmp_path)
    for _ in range(6):
        run.round()
    model.compact(run)
    for _ in range(6):
        run.round()

    second = model.compact(run)

    assert second is not None
    assert second.replaced == tuple(f"m{n}" for n in range(3, 21))
    assert [m.id for m in run.context.messages][:3] == ["m1", "m2", "m3-m20"]
    assert covered(run.context.messages[2]) == list(second.replaced)
    assert len(Transcript.open(tmp_path / TRANSCRIPT_FILE).compactions()) == 2
    assert Transcript.open(tmp_path / TRANSCRIPT_FILE).context().messages == run.context.messages


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ({"status": 500, "error": "the model is overloaded"}, "ProviderError"),
        ({"content": "   "}, "empty summary"),
    ],
)
def test_a_failing_summariser_falls_back_to_a_deterministic_list(
    tmp_path: Path,
    summariser: Callable[..., Summariser],
    response: dict[str, Any],
    reason: str,
) -> None:
    runs = [Run(tmp_path / "first"), Run(tmp_path / "again")]
    for run in runs:
        for _ in range(5):
            run.round()
    middle = list(runs[0].context.messages[2:6])

    done = summariser(response).compact(runs[0])

    assert done is not None
    assert done.fallback
    assert reason in done.error
    assert done.replaced == ("m3", "m4", "m5", "m6")
    lines = done.summary.splitlines()
    assert lines[0].startswith("[summary of m3-m6;")
    assert lines[2].startswith("- m3 assistant called read_file: Reading mod_1.")
    assert lines[3].startswith("- m4 tool (read_file): # module 1 x1_0 = 0 x1_1 = 1")
    assert done.summary.endswith(gists(middle))
    again = summariser(response).compact(runs[1])
    assert again is not None
    assert again.summary == done.summary  # deterministic: the same history, the same list
    marker = Transcript.open(tmp_path / "first" / TRANSCRIPT_FILE).compactions()[0]
    assert marker.fallback
    assert marker.summary == done.summary


def test_nothing_to_compact_makes_no_call(
    tmp_path: Path, summariser: Callable[..., Summariser]
) -> None:
    model = summariser()
    run = Run(tmp_path)
    run.round()
    run.round()
    assert model.compact(run) is None
    assert model.server.requests == []
    assert run.transcript.compactions() == []


def test_a_message_missing_from_the_transcript_is_never_compacted_away(
    tmp_path: Path, summariser: Callable[..., Summariser]
) -> None:
    model = summariser(summary_turn())
    run = Run(tmp_path)
    run.context.add(Message(role="assistant", content="never recorded"))
    for _ in range(4):
        run.round()
    with pytest.raises(ValueError, match="no transcript id"):
        model.compact(run)


# A conversation: system, task, then turns that are plain messages or a call with its results.
turns = st.lists(
    st.one_of(st.sampled_from(["user", "assistant"]), st.integers(min_value=1, max_value=3)),
    max_size=15,
)


def build(shape: list[str | int]) -> list[Message]:
    messages = [
        Message(role="system", content="s", id="m1"),
        Message(role="user", content="t", id="m2"),
    ]
    for turn in shape:
        if isinstance(turn, str):
            role: Role = "user" if turn == "user" else "assistant"
            messages.append(Message(role=role, content="x", id=f"m{len(messages) + 1}"))
            continue
        calls = tuple(
            ToolCall(id=f"c{len(messages)}_{i}", name="read_file", arguments={})
            for i in range(turn)
        )
        messages.append(Message(role="assistant", tool_calls=calls, id=f"m{len(messages) + 1}"))
        for call in calls:
            messages.append(Message(role="tool", tool_call_id=call.id, id=f"m{len(messages) + 1}"))
    return messages


@given(shape=turns, keep=st.integers(min_value=0, max_value=10))
def test_the_cut_never_separates_a_tool_call_from_its_results(
    shape: list[str | int], keep: int
) -> None:
    messages = build(shape)
    cut = plan(messages, keep)
    if cut is None:
        return
    start, stop = cut
    assert start == 2  # system and task stay
    assert stop > start
    assert len(messages) - stop >= min(keep, len(messages) - start)
    kept = messages[:start] + messages[stop:]
    answered = {c.id for m in kept for c in m.tool_calls}
    assert all(m.tool_call_id in answered for m in kept if m.role == "tool")
    summarised = messages[start:stop]
    asked = {c.id for m in summarised for c in m.tool_calls}
    assert all(m.tool_call_id in asked for m in summarised if m.role == "tool")


def test_the_default_keeps_the_last_six_messages() -> None:
    messages = build(["user", "assistant"] * 6)
    assert plan(messages) == (2, len(messages) - KEEP_RECENT)


def recall_context(tmp_path: Path, transcript: Transcript | None) -> ToolContext:
    return ToolContext(
        run_id="r1",
        workspace=tmp_path,
        sandbox=BwrapSandbox(),
        recall=transcript.recall if transcript else None,
    )


def test_recall_only_reads_and_reaches_no_host() -> None:
    tool = Recall()
    assert tool.spec.name == "recall"
    assert tool.capabilities == frozenset({Capability.READ})
    assert tool.egress == ()
    assert tool.spec.parameters["required"] == ["ref"]


@pytest.mark.parametrize("ref", ["m9", "m0-m2", "seven", "m4-m2"])
def test_recall_of_an_unknown_reference_names_the_valid_range(tmp_path: Path, ref: str) -> None:
    run = Run(tmp_path)
    run.round()
    result = Recall().call({"ref": ref}, recall_context(tmp_path, run.transcript))
    assert not result.ok
    assert result.content.startswith("error: ")
    assert "the transcript holds m1-m4" in result.content


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({}, 'needs "ref"'),
        ({"ref": "m1", "offset": -5}, '"offset" must be'),
        ({"ref": 7}, 'needs "ref"'),
    ],
)
def test_recall_explains_a_bad_request(
    tmp_path: Path, arguments: dict[str, Any], complaint: str
) -> None:
    run = Run(tmp_path)
    result = Recall().call(arguments, recall_context(tmp_path, run.transcript))
    assert not result.ok
    assert complaint in result.content


def test_recall_without_a_transcript_says_so(tmp_path: Path) -> None:
    result = Recall().call({"ref": "m1"}, recall_context(tmp_path, None))
    assert not result.ok
    assert "not available" in result.content


def test_a_long_recall_comes_in_pages_that_add_up_to_the_original(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.round(size=5000)
    whole = run.transcript.recall("m3-m4")
    tool, ctx = Recall(max_chars=1000), recall_context(tmp_path, run.transcript)
    pages, offset = [], 0
    while True:
        result = tool.call({"ref": "m3-m4", "offset": offset}, ctx)
        assert result.ok
        text, _, note = result.content.rpartition("\n\n[recall m3-m4: ")
        pages.append(text)
        if "offset" not in note:
            break
        offset = int(note.rsplit("offset ", 1)[1].split()[0])
    assert "".join(pages) == whole
    assert len(pages) == len(whole) // 1000 + 1
    past = tool.call({"ref": "m3-m4", "offset": len(whole) + 1}, ctx)
    assert not past.ok
    assert "past the end" in past.content
