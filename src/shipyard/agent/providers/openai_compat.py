"""Any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, Ollama, llama.cpp, OpenRouter...).

The ``openai`` SDK does the HTTP work and the retrying: 408, 409, 429 and 5xx answers, timeouts and
dropped connections are retried ``max_retries`` times with exponential backoff (honouring
``retry-after``); other 4xx answers fail at once and become a ``ProviderError``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageFunctionToolCall

from shipyard.agent.messages import Completion, Message, ToolCall, ToolSpec, Usage
from shipyard.agent.pricing import cost
from shipyard.agent.providers.base import (
    Endpoint,
    ProviderError,
    safe_message,
    sdk_errors,
)

log = logging.getLogger(__name__)


class OpenAIProvider:
    """Chat Completions through the official ``openai`` client."""

    name = "openai"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._client = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=endpoint.timeout_seconds,
            max_retries=endpoint.max_retries,
        )
        self._limit_field = output_limit_field(endpoint.base_url)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec],
        model: str,
        max_output_tokens: int,
        temperature: float | None = None,
    ) -> Completion:
        request: dict[str, Any] = {
            "model": model,
            "messages": [to_wire(m) for m in messages],
            self._limit_field: max_output_tokens,
        }
        if tools:
            request["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in tools
            ]
        if temperature is not None:
            request["temperature"] = temperature
        started = time.monotonic()
        response = self._call(request, model)
        seconds = time.monotonic() - started
        if not response.choices:
            raise ProviderError(
                safe_message(
                    f"The openai endpoint {self.endpoint.base_url} answered without any choice "
                    f"for model {model!r}. Check that it implements Chat Completions.",
                    self.endpoint,
                )
            )
        choice = response.choices[0]
        message = from_wire(choice.message.content, choice.message.tool_calls or [])
        usage = _usage(response)
        return Completion(
            message=message,
            usage=usage,
            model=response.model or model,
            finish_reason=choice.finish_reason or "",
            cost_usd=cost(usage, model, self.endpoint.prices),
            seconds=seconds,
        )

    def close(self) -> None:
        self._client.close()

    def _call(self, request: dict[str, Any], model: str) -> ChatCompletion:
        with sdk_errors(openai, openai.OpenAIError, self.name, self.endpoint, model):
            # ``**request`` hides the overloads (stream or not) from mypy; this is the non-streaming one.
            return cast(ChatCompletion, self._client.chat.completions.create(**request))
        raise AssertionError("unreachable")  # pragma: no cover


def output_limit_field(base_url: str) -> str:
    """OpenAI's own API wants ``max_completion_tokens`` (its reasoning models refuse
    ``max_tokens``); most compatible servers only know the older ``max_tokens``."""
    if urlsplit(base_url).hostname == "api.openai.com":
        return "max_completion_tokens"
    return "max_tokens"


def to_wire(message: Message) -> dict[str, Any]:
    """One message in Chat Completions form."""
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content,
        }
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": _arguments_text(call)},
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def from_wire(content: str | None, calls: Sequence[Any]) -> Message:
    """The assistant message from a Chat Completions answer, tool call arguments decoded."""
    tool_calls = []
    for number, call in enumerate(calls, start=1):
        if not isinstance(call, ChatCompletionMessageFunctionToolCall):
            log.warning("ignoring a %s tool call: only function tools are offered", call.type)
            continue
        raw = call.function.arguments or ""
        tool_calls.append(
            ToolCall(
                id=call.id or f"call_{number}",
                name=call.function.name,
                arguments=decode_arguments(raw),
                raw_arguments=raw,
            )
        )
    return Message(role="assistant", content=content or "", tool_calls=tuple(tool_calls))


def decode_arguments(raw: str) -> dict[str, Any]:
    """The arguments object; ``{}`` when the model wrote something else (the raw text is kept and
    the tool reports the problem to the model)."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _arguments_text(call: ToolCall) -> str:
    # The model's own text when it is valid JSON; servers may refuse a history holding invalid JSON.
    if call.raw_arguments:
        try:
            json.loads(call.raw_arguments)
        except json.JSONDecodeError:
            pass
        else:
            return call.raw_arguments
    return json.dumps(call.arguments)


def _usage(response: ChatCompletion) -> Usage:
    reported = response.usage
    if reported is None:
        # Spend is what the provider reports (the budget relies on it); say when there is none.
        log.warning("the endpoint reported no token usage; this call counts as 0 tokens")
        return Usage()
    details = reported.prompt_tokens_details
    return Usage(
        input_tokens=reported.prompt_tokens,
        output_tokens=reported.completion_tokens,
        cached_input_tokens=(details.cached_tokens or 0) if details else 0,
    )
