"""Lossless compaction: older turns give way to a summary that cites the originals it replaced.

The originals stay in the transcript, so the agent can read any of them again with ``recall``
(DESIGN invariant 9). The task, the system message and the latest turns are never summarised, and a
tool call is never separated from its results, which every provider would reject.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from shipyard.agent.messages import Completion, Message, Usage, message_tokens
from shipyard.agent.transcript import CompactionMarker, Context, Transcript, covered, render, span
from shipyard.redaction import redact_text

if TYPE_CHECKING:
    from shipyard.agent.providers.base import Provider
    from shipyard.config import AgentConfig

log = logging.getLogger(__name__)

KEEP_RECENT = 6
"""Messages at the end of the context left as they are (moved earlier to keep tool pairs whole)."""

_GIST_CHARS = 100

_INSTRUCTIONS = """\
You compress the working history of a coding agent so that it can continue its task with a \
smaller context. Each message below starts with its id in square brackets, e.g. [m7].

Write a concise summary in plain text: what the agent learnt about the code, what it changed \
(files, functions), which commands and tests it ran with their outcomes and errors, decisions \
taken, and what is still open. Cite the ids of the messages each point comes from, like [m7] or \
[m9-m12]: the agent can read the originals again by those ids, so leave out long details rather \
than copying them. Do not invent anything; do not add advice."""


@dataclass(frozen=True, kw_only=True)
class Compaction:
    """One compaction, for the ``agent.compacted`` event and the budget (the summary's call)."""

    replaced: tuple[str, ...]
    tokens_before: int
    tokens_after: int
    summary: str
    """The summary message's content as the model now sees it."""
    fallback: bool = False
    """The summarising call failed and a deterministic list of gists stands in for it."""
    error: str = ""
    """Why the summarising call failed, when ``fallback``."""
    completion: Completion | None = None
    """The summarising call, to charge to the budget; None when no answer came."""

    @property
    def usage(self) -> Usage:
        return self.completion.usage if self.completion else Usage()

    @property
    def cost_usd(self) -> float:
        return self.completion.cost_usd if self.completion else 0.0

    def as_event(self) -> dict[str, Any]:
        return {
            "replaced": span(self.replaced),
            "messages": len(self.replaced),
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "fallback": self.fallback,
            "error": self.error,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": self.cost_usd,
        }


def needs_compaction(context: Context, config: AgentConfig) -> bool:
    """True once the context fills ``compact_at`` of the model's window."""
    return context.tokens() >= config.compact_at * config.context_tokens


def plan(messages: Sequence[Message], keep_recent: int = KEEP_RECENT) -> tuple[int, int] | None:
    """The slice ``[start, stop)`` of ``messages`` to summarise, or None when nothing would shrink.

    Keeps everything up to the first user message (system and task) and the last ``keep_recent``
    messages; the cut moves earlier past tool results so their assistant call stays with them.
    """
    head = next((i + 1 for i, m in enumerate(messages) if m.role == "user"), None)
    if head is None:
        head = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
    start = head
    stop = max(start, len(messages) - max(keep_recent, 0))
    while start < stop < len(messages) and messages[stop].role == "tool":
        stop -= 1
    middle = messages[start:stop]
    # Only a previous summary (or nothing) in between: summarising it again gains nothing.
    if all("-" in m.id for m in middle):
        return None
    return start, stop


def compact(
    context: Context,
    *,
    transcript: Transcript,
    provider: Provider,
    model: str,
    config: AgentConfig,
    keep_recent: int = KEEP_RECENT,
) -> Compaction | None:
    """Replace the older turns of ``context`` by a summary and note it in ``transcript``.

    Returns None when there is nothing to compact (the context is all task and recent turns).
    """
    cut = plan(context.messages, keep_recent)
    if cut is None:
        return None
    start, stop = cut
    middle = context.messages[start:stop]
    unrecorded = [m.role for m in middle if not m.id]
    if unrecorded:
        raise ValueError(
            f"{len(unrecorded)} context message(s) have no transcript id; append every message "
            "to the transcript before adding it to the context, or compaction would lose it"
        )
    replaced = tuple(i for m in middle for i in covered(m))
    before = context.tokens()
    completion: Completion | None = None
    error = ""
    try:
        completion = provider.complete(
            _request(middle, config),
            tools=[],
            model=model,
            max_output_tokens=min(config.max_output_tokens, max(512, config.context_tokens // 16)),
            temperature=config.temperature,
        )
        text = completion.message.content.strip()
        if not text:
            raise ValueError("the model answered with an empty summary")
    except Exception as exc:  # any failure: the gists below are still lossless via recall
        error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "summarising %s failed (%s); using a list of gists instead", span(replaced), error
        )
        text = gists(middle)
    content = redact_text(f"{header(replaced)}\n{text}")
    summary = Message(role="user", content=content, id=span(replaced))
    after = Context([*context.messages[:start], summary, *context.messages[stop:]])
    record = Compaction(
        replaced=replaced,
        tokens_before=before,
        tokens_after=after.tokens(),
        summary=content,
        fallback=bool(error),
        error=redact_text(error),
        completion=completion,
    )
    transcript.record_compaction(
        CompactionMarker(
            replaced=record.replaced,
            summary=record.summary,
            tokens_before=record.tokens_before,
            tokens_after=record.tokens_after,
            fallback=record.fallback,
        )
    )
    # Only once the history says so does the context change, so a resume rebuilds the same one.
    context.messages[:] = after.messages
    return record


def header(replaced: Sequence[str]) -> str:
    """The first line of every summary: what it replaced and how to read the originals."""
    ref = span(replaced)
    example = replaced[len(replaced) // 2]
    return (
        f'[summary of {ref}; the originals are kept: use recall("{example}") to read one, '
        f'or recall("{ref}") for all]'
    )


def gists(messages: Sequence[Message]) -> str:
    """The deterministic stand-in: one line per message with its id, role, tools and opening words."""
    lines = ["(no summary could be made; one line per message instead)"]
    for m in messages:
        tools = ", ".join(c.name for c in m.tool_calls)
        who = m.role + (f" ({m.name})" if m.name else "") + (f" called {tools}" if tools else "")
        opening = " ".join(m.content.split())
        if len(opening) > _GIST_CHARS:
            opening = opening[:_GIST_CHARS] + "…"
        lines.append(f"- {m.id} {who}: {opening}".rstrip(": "))
    return "\n".join(lines)


def _request(middle: Sequence[Message], config: AgentConfig) -> list[Message]:
    """The summarising conversation; long messages are cut (recall still has every word)."""
    total_chars = config.context_tokens * 2  # half the window, at about four characters a token
    per_message = max(400, total_chars // max(len(middle), 1))
    shown = []
    for m in middle:
        if len(m.content) > per_message:
            cut = m.content[:per_message] + f'\n[… cut; recall("{m.id}") has all of it]'
            m = replace(m, content=cut)
        shown.append(m)
    history = render(shown)
    log.debug("summarising %d messages (%d tokens)", len(middle), sum(map(message_tokens, middle)))
    return [
        Message(role="system", content=_INSTRUCTIONS),
        Message(role="user", content=f"The history to summarise:\n\n{history}"),
    ]
