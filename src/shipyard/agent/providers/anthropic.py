"""Anthropic's Messages API through the official ``anthropic`` client.

The wire format differs from Chat Completions: the system prompt is a separate field, tool calls
are ``tool_use`` content blocks of the assistant, and tool results are ``tool_result`` blocks of a
*user* message (consecutive results are merged into one, as roles must alternate). The SDK retries
429, 5xx and timeouts with exponential backoff, like the OpenAI one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, cast

import anthropic
from anthropic.types import Message as WireMessage
from anthropic.types import TextBlock, ToolUseBlock

from shipyard.agent.messages import Completion, Message, ToolCall, ToolSpec, Usage
from shipyard.agent.pricing import cost
from shipyard.agent.providers.base import (
    Endpoint,
    sdk_errors,
)

_EMPTY = "(empty)"
"""Stands in for an empty message: the API refuses empty text blocks."""


class AnthropicProvider:
    """Claude models through ``client.messages.create``."""

    name = "anthropic"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._client = anthropic.Anthropic(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=endpoint.timeout_seconds,
            max_retries=endpoint.max_retries,
        )

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec],
        model: str,
        max_output_tokens: int,
        temperature: float | None = None,
    ) -> Completion:
        system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": max_output_tokens,
            "messages": to_wire([m for m in messages if m.role != "system"]),
        }
        if system:
            request["system"] = system
        if tools:
            request["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in tools
            ]
        if temperature is not None:
            # anthropic 2.x dropped ``temperature`` from ``create``; the API decides whether it
            # still accepts one (an error names the problem).
            request["extra_body"] = {"temperature": temperature}
        started = time.monotonic()
        response = self._call(request, model)
        seconds = time.monotonic() - started
        message = from_wire(response)
        reported = response.usage
        cached = reported.cache_read_input_tokens or 0
        usage = Usage(
            # Anthropic counts cache reads and writes apart from ``input_tokens``; ours include them.
            input_tokens=reported.input_tokens
            + cached
            + (reported.cache_creation_input_tokens or 0),
            output_tokens=reported.output_tokens,
            cached_input_tokens=cached,
        )
        return Completion(
            message=message,
            usage=usage,
            model=str(response.model or model),
            finish_reason=response.stop_reason or "",
            cost_usd=cost(usage, model, self.endpoint.prices),
            seconds=seconds,
        )

    def close(self) -> None:
        self._client.close()

    def _call(self, request: dict[str, Any], model: str) -> WireMessage:
        with sdk_errors(anthropic, anthropic.AnthropicError, self.name, self.endpoint, model):
            # ``**request`` hides the overloads (stream or not) from mypy; this is the non-streaming one.
            return cast(WireMessage, self._client.messages.create(**request))
        raise AssertionError("unreachable")  # pragma: no cover


def to_wire(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """User and assistant turns of content blocks; tool results become the user's blocks."""
    wire: list[dict[str, Any]] = []
    for message in messages:
        blocks: list[dict[str, Any]] = []
        if message.role == "tool":
            role = "user"
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id or "",
                    "content": message.content or _EMPTY,
                }
            )
        else:
            role = "assistant" if message.role == "assistant" else "user"
            if message.content or not message.tool_calls:
                blocks.append({"type": "text", "text": message.content or _EMPTY})
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in message.tool_calls
            ]
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})
    return wire


def from_wire(response: WireMessage) -> Message:
    """The assistant message: text blocks joined, ``tool_use`` blocks as tool calls."""
    text: list[str] = []
    calls: list[ToolCall] = []
    for block in response.content:
        if isinstance(block, TextBlock):
            text.append(block.text)
        elif isinstance(block, ToolUseBlock):
            arguments = dict(block.input)
            calls.append(
                ToolCall(
                    id=block.id,
                    name=block.name,
                    arguments=arguments,
                    raw_arguments=json.dumps(arguments),
                )
            )
    return Message(role="assistant", content="".join(text), tool_calls=tuple(calls))
