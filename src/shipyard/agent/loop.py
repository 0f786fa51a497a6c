"""The agent loop: ask the model, run the tools it calls in the sandbox, until it finishes or must stop.

Runs on the host; every tool call runs in the run's sandbox through the granted tools. Before each
model call the budget is checked (steps, tokens, money, wall time) and the context compacted when it
nears its limit; after each step the transcript holds every message and tool result, and an event
shows the live spend. ``continue_with`` hands the same conversation more work (lint errors left
after formatting, failing tests after the gates), so every pass shares one budget and transcript.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.agent.budget import Budget, BudgetExceeded, Spend
from shipyard.agent.compaction import compact, needs_compaction
from shipyard.agent.messages import Message, ToolCall
from shipyard.agent.providers import Provider, ProviderError
from shipyard.agent.tools.base import Granted, ToolContext, ToolResult
from shipyard.agent.transcript import Context, Transcript
from shipyard.config import AgentConfig
from shipyard.events import EventType
from shipyard.redaction import redact

log = logging.getLogger(__name__)

Emit = Callable[[EventType, dict[str, Any]], None]

MAX_IDLE_REPLIES = 2
"""Answers without a tool call in a row after which the model is taken to have stopped working."""
NUDGE = (
    "Continue with the tools. When the task is done, call `finish` with a short summary of the "
    "change; if it cannot be done, call `finish` and say why."
)

SKIPPED_AFTER_FINISH = "not run: `finish` came before this call in the same answer."


@dataclass(frozen=True, kw_only=True)
class AgentOutcome:
    """How a pass of the loop ended."""

    finished: bool
    """The model called ``finish``."""
    reason: str
    """``finished``, or why it stopped: the budget, the model stopped calling tools, an error."""
    summary: str
    spend: Spend
    budget_exceeded: bool = False


class AgentLoop:
    """One agent's conversation: provider, granted tools, budget, transcript and working context."""

    def __init__(
        self,
        *,
        provider: Provider,
        model: str,
        tools: Granted,
        ctx: ToolContext,
        config: AgentConfig,
        transcript: Transcript,
        budget: Budget,
        emit: Emit,
    ) -> None:
        self.provider = provider
        self.model = model
        self.tools = tools
        self.ctx = ctx
        self.config = config
        self.transcript = transcript
        self.budget = budget
        self.emit = emit
        self.context = Context()
        self.steps = 0
        ctx.recall = transcript.recall

    def start(self, system: str, task: str) -> AgentOutcome:
        """Begin the conversation with the system prompt and the task, and work until it ends."""
        self._add(Message(role="system", content=system))
        return self.continue_with(task)

    def continue_with(self, text: str) -> AgentOutcome:
        """Give the model more to do (a task, lint errors, failing tests) and work until it ends."""
        self._add(Message(role="user", content=text))
        idle = 0
        while True:
            try:
                self.budget.check()
                self._compact_if_needed()
                self.budget.check()
            except BudgetExceeded as exc:
                return self._end(False, f"budget: {exc}", budget_exceeded=True)
            try:
                completion = self.provider.complete(
                    self.context.messages,
                    tools=self.tools.specs,
                    model=self.model,
                    max_output_tokens=self.config.max_output_tokens,
                    temperature=self.config.temperature,
                )
            except ProviderError as exc:
                return self._end(False, f"the model could not be reached: {exc}")
            self.steps += 1
            spend = self.budget.charge(completion)
            reply = self._add(completion.message)
            self.emit(
                EventType.AGENT_STEP,
                {
                    "step": self.steps,
                    "model": completion.model or self.model,
                    "input_tokens": completion.usage.input_tokens,
                    "output_tokens": completion.usage.output_tokens,
                    "cost_usd": round(completion.cost_usd, 6),
                    "seconds": round(completion.seconds, 3),
                    "tool_calls": [c.name for c in reply.tool_calls],
                    "spend": spend.as_event(),
                    "message": reply.id,
                },
            )
            if not reply.tool_calls:
                idle += 1
                if idle >= MAX_IDLE_REPLIES:
                    return self._end(
                        False, "the model stopped calling tools", summary=reply.content
                    )
                self._add(Message(role="user", content=NUDGE))
                continue
            idle = 0
            # The recorded reply is redacted; the tools run with what the model actually wrote (a
            # test fixture's fake key must reach the file as written), matched by call id.
            for n, call in enumerate(_originals(reply.tool_calls, completion.message.tool_calls)):
                result = self._call(call)
                if result.finished:
                    # Every call needs its answer, or the next pass (lint, fix cycle) sends a
                    # conversation providers reject; the calls after finish do not run.
                    for skipped in reply.tool_calls[n + 1 :]:
                        self._add(Message(role="tool", content=SKIPPED_AFTER_FINISH,
                                          tool_call_id=skipped.id, name=skipped.name))  # fmt: skip
                    # The model's own words, not the tool's acknowledgement: they become the
                    # commit message and the run's record.
                    summary = str(result.data.get("summary") or result.content)
                    return self._end(True, "finished", summary=summary)

    # -- steps ----------------------------------------------------------------------------------

    def _call(self, call: ToolCall) -> ToolResult:
        try:
            result = self.tools.call(call, self.ctx)
        except Exception as exc:  # a tool's bug must not end the run without a record
            log.exception("tool %s failed", call.name)
            result = ToolResult(content=f"error: the tool {call.name} failed: {exc}", ok=False)
        self._add(
            Message(role="tool", content=result.content, tool_call_id=call.id, name=call.name)
        )
        self.emit(
            EventType.AGENT_TOOL,
            {
                "step": self.steps,
                "tool": call.name,
                "ok": result.ok,
                "arguments": _brief(call.arguments),
                "summary": result.content.splitlines()[0][:200] if result.content else "",
                **({"data": redact(result.data)} if result.data else {}),
            },
        )
        return result

    def _compact_if_needed(self) -> None:
        if not needs_compaction(self.context, self.config):
            return
        done = compact(
            self.context,
            transcript=self.transcript,
            provider=self.provider,
            model=self.model,
            config=self.config,
        )
        if done is None:
            return
        if done.completion is not None:
            self.budget.charge(done.completion)
        self.emit(EventType.AGENT_COMPACTED, done.as_event())

    def _add(self, message: Message) -> Message:
        """Record ``message`` in the transcript first (redacted), then show that to the model."""
        recorded = self.transcript.append(message)
        self.context.add(recorded)
        return recorded

    def _end(
        self, finished: bool, reason: str, *, summary: str = "", budget_exceeded: bool = False
    ) -> AgentOutcome:
        spend = self.budget.spent()
        outcome = AgentOutcome(
            finished=finished, reason=reason, summary=summary, spend=spend,
            budget_exceeded=budget_exceeded,
        )  # fmt: skip
        self.emit(
            EventType.AGENT_FINISHED,
            {"finished": finished, "reason": reason, "summary": summary[:2000],
             "spend": spend.as_event()},
        )  # fmt: skip
        return outcome


def _originals(recorded: Sequence[ToolCall], sent: Sequence[ToolCall]) -> list[ToolCall]:
    by_id = {c.id: c for c in sent}
    return [by_id.get(c.id, c) for c in recorded]


def _brief(arguments: dict[str, Any], limit: int = 300) -> str:
    """The call's arguments for the record, cut short (a whole file's content is in the transcript)."""
    text = json.dumps(redact(arguments), ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
