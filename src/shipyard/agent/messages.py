"""The conversation's value types, independent of any provider's wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """The model asking for one tool call. ``arguments`` is the decoded JSON object."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""
    """The arguments as the model wrote them (kept when they were not valid JSON)."""


@dataclass(frozen=True, kw_only=True)
class Message:
    """One message of a conversation.

    ``id`` is the transcript's reference (``m12``) once recorded; compaction summaries cite these
    ids and the ``recall`` tool brings the originals back.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    """For a ``tool`` message: the call it answers."""
    name: str | None = None
    """For a ``tool`` message: the tool's name."""
    id: str = ""


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Tokens a model call consumed, as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, kw_only=True)
class Completion:
    """A model's answer: the assistant message, what it cost and why it stopped."""

    message: Message
    usage: Usage
    model: str
    finish_reason: str = ""
    cost_usd: float = 0.0
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """What the model is told about a tool: its name, purpose and JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}, "additionalProperties": False}
    )


def estimate_tokens(text: str) -> int:
    """A provider-independent estimate (about four characters a token) for sizing the context.

    Spend is always counted from the provider's reported usage; this only decides when to compact.
    """
    return (len(text) + 3) // 4


def message_tokens(message: Message) -> int:
    """The estimated tokens a message takes in the context, tool calls included."""
    size = estimate_tokens(message.content) + 4
    for call in message.tool_calls:
        size += estimate_tokens(call.name) + estimate_tokens(
            call.raw_arguments or str(call.arguments)
        )
    return size
