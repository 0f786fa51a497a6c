"""Providers through the real SDKs against the local replay server: wire shapes, usage, errors."""

from __future__ import annotations

import json
import socket

import pytest

from shipyard.agent.messages import Message, ToolCall, ToolSpec, Usage
from shipyard.agent.pricing import cost
from shipyard.agent.providers import (
    PROVIDERS,
    Endpoint,
    ProviderError,
    get_provider,
    provider_class,
    resolve_endpoint,
)
from shipyard.agent.providers.anthropic import AnthropicProvider
from shipyard.agent.providers.openai_compat import OpenAIProvider, output_limit_field
from shipyard.config import AgentConfig, PriceConfig

TOOLS = [
    ToolSpec(
        name="edit_file",
        description="Replace text in a file.",
        parameters={"type": "object", "properties": {"path": {"type": "string"}}},
    ),
    ToolSpec(name="finish", description="Stop."),
    ToolSpec(name="read_file", description="Read a file."),
]
SYSTEM = Message(role="system", content="You fix bugs.")
USER = Message(role="user", content="add() subtracts; fix it")
SECRET = "sk-test-0123456789abcdefghijklmnop"


def ask(provider, messages=(SYSTEM, USER), **kwargs):
    kwargs = {"tools": TOOLS, "model": "replay-model", "max_output_tokens": 256} | kwargs
    return provider.complete(list(messages), **kwargs)


# -- choosing and connecting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"), [("openai", OpenAIProvider), ("anthropic", AnthropicProvider)]
)
def test_every_provider_name_resolves_to_its_class(name, cls):
    assert provider_class(name) is cls
    assert cls.name == name
    provider = get_provider(AgentConfig(provider=name, base_url="http://127.0.0.1:9"), environ={})
    assert isinstance(provider, cls)
    provider.close()


def test_an_unknown_provider_lists_the_known_ones():
    with pytest.raises(ProviderError, match="'ollama'") as caught:
        provider_class("ollama")
    for name in PROVIDERS:
        assert name in str(caught.value)
    assert caught.value.exit_code == 11


@pytest.mark.parametrize(
    ("provider", "variable", "url"),
    [
        ("openai", "OPENAI_API_KEY", "https://api.openai.com/v1"),
        ("anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com"),
    ],
)
def test_a_missing_key_names_the_variable(provider, variable, url):
    config = AgentConfig(provider=provider)
    with pytest.raises(ProviderError, match=variable):
        get_provider(config, environ={"UNRELATED": "x"})
    endpoint = resolve_endpoint(config, {variable: SECRET})
    assert (endpoint.base_url, endpoint.key_env, endpoint.api_key) == (url, variable, SECRET)


def test_a_custom_key_variable_is_used_and_named():
    config = AgentConfig(api_key_env="TEAM_LLM_KEY")
    with pytest.raises(ProviderError, match="TEAM_LLM_KEY"):
        get_provider(config, environ={"OPENAI_API_KEY": SECRET})
    assert resolve_endpoint(config, {"TEAM_LLM_KEY": SECRET}).api_key == SECRET


def test_the_key_never_shows_in_the_endpoint_repr():
    endpoint = resolve_endpoint(AgentConfig(), {"OPENAI_API_KEY": SECRET})
    assert SECRET not in repr(endpoint)
    assert "OPENAI_API_KEY" in repr(endpoint)


def test_base_url_comes_from_config_then_environment(replay_server, replay_config):
    server = replay_server({"model": "replay-model", "responses": [{"content": "via env"}]})
    from_env = AgentConfig(model="replay-model")
    environ = {"OPENAI_BASE_URL": server.url}
    assert ask(get_provider(from_env, environ=environ)).message.content == "via env"
    assert len(server.requests) == 1

    explicit = AgentConfig(base_url="http://127.0.0.1:9/v1")
    assert resolve_endpoint(explicit, environ).base_url == "http://127.0.0.1:9/v1"


def test_the_key_is_sent_and_a_local_endpoint_needs_none(replay_server, replay_config):
    server = replay_server(
        {"model": "replay-model", "responses": [{"content": "a"}, {"content": "b"}]}
    )
    config = replay_config(server, api_key_env="LOCAL_KEY")
    ask(get_provider(config, environ={"LOCAL_KEY": SECRET}))
    ask(get_provider(config, environ={}))

    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    placeholder = server.requests[1].headers["authorization"]
    assert placeholder.startswith("Bearer ")
    assert SECRET not in placeholder


# -- OpenAI-compatible ---------------------------------------------------------------------


def test_text_answer(replay_server, replay_config):
    server = replay_server(
        {"model": "replay-model", "responses": [{"content": "The fix is one character."}]}
    )
    completion = ask(get_provider(replay_config(server), environ={}), temperature=0.2)

    assert completion.message == Message(role="assistant", content="The fix is one character.")
    assert completion.finish_reason == "stop"
    assert completion.model == "replay-model"
    assert completion.seconds > 0
    sent = server.requests[0].body
    assert sent["messages"] == [
        {"role": "system", "content": "You fix bugs."},
        {"role": "user", "content": "add() subtracts; fix it"},
    ]
    assert sent["max_tokens"] == 256
    assert sent["temperature"] == 0.2
    assert sent["tools"][0] == {
        "type": "function",
        "function": {
            "name": "edit_file",
            "description": "Replace text in a file.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }


def test_no_temperature_and_no_tools_are_left_out(replay_server, replay_config):
    server = replay_server({"model": "replay-model", "responses": [{"content": "ok"}]})
    ask(get_provider(replay_config(server), environ={}), tools=[])
    assert "temperature" not in server.requests[0].body
    assert "tools" not in server.requests[0].body


def test_tool_calls_are_decoded_and_broken_arguments_kept_raw(replay_server, replay_config):
    server = replay_server(
        {
            "model": "replay-model",
            "responses": [
                {
                    "content": "Editing.",
                    "tool_calls": [
                        {"name": "edit_file", "arguments": {"path": "src/calc.py"}},
                        {"name": "finish", "arguments": '{"summary": "done"'},
                        {"name": "finish", "arguments": "[1, 2]"},
                    ],
                }
            ],
        }
    )
    completion = ask(get_provider(replay_config(server), environ={}))

    assert completion.finish_reason == "tool_calls"
    first, broken, not_object = completion.message.tool_calls
    assert first == ToolCall(
        id="call_1",
        name="edit_file",
        arguments={"path": "src/calc.py"},
        raw_arguments='{"path": "src/calc.py"}',
    )
    assert (broken.arguments, broken.raw_arguments) == ({}, '{"summary": "done"')
    assert (not_object.arguments, not_object.raw_arguments) == ({}, "[1, 2]")


def test_tool_results_go_back_in_the_wire_shape(replay_server, replay_config):
    server = replay_server(
        {
            "model": "replay-model",
            "responses": [{"content": "Done.", "expect": {"last_role": "tool"}}],
        }
    )
    calls = (
        ToolCall(
            id="call_7",
            name="edit_file",
            arguments={"path": "a.py"},
            raw_arguments='{"path":"a.py"}',
        ),
        ToolCall(id="call_8", name="finish", arguments={}, raw_arguments="{oops"),
    )
    history = [
        SYSTEM,
        USER,
        Message(role="assistant", content="", tool_calls=calls),
        Message(role="tool", content="edited a.py", tool_call_id="call_7", name="edit_file"),
        Message(role="tool", content="bad arguments", tool_call_id="call_8", name="finish"),
    ]
    ask(get_provider(replay_config(server), environ={}), messages=history)

    sent = server.requests[0].body["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_7",
                "type": "function",
                "function": {"name": "edit_file", "arguments": '{"path":"a.py"}'},
            },
            # Invalid JSON is not sent back: servers may refuse such a history.
            {"id": "call_8", "type": "function", "function": {"name": "finish", "arguments": "{}"}},
        ],
    }
    assert sent[3] == {"role": "tool", "tool_call_id": "call_7", "content": "edited a.py"}
    assert sent[4] == {"role": "tool", "tool_call_id": "call_8", "content": "bad arguments"}
    assert all(
        isinstance(json.loads(c["function"]["arguments"]), dict) for c in sent[2]["tool_calls"]
    )


def test_usage_and_cost(replay_server, replay_config):
    server = replay_server("edit_and_finish.json")
    prices = {
        "replay-model": PriceConfig(
            input_per_million=2.0, output_per_million=8.0, cached_input_per_million=0.5
        )
    }
    provider = get_provider(replay_config(server, prices=prices), environ={})
    ask(provider)
    second = ask(
        provider, messages=[SYSTEM, USER, Message(role="tool", content="x", tool_call_id="call_1")]
    )

    assert second.usage == Usage(input_tokens=1500, output_tokens=60, cached_input_tokens=1000)
    assert second.cost_usd == pytest.approx((500 * 2.0 + 1000 * 0.5 + 60 * 8.0) / 1e6)


def test_a_rate_limit_is_retried(replay_server, replay_config):
    server = replay_server("rate_limited_once.json")
    completion = ask(get_provider(replay_config(server, max_retries=2), environ={}))

    assert completion.message.content == "Answered after a retry."
    assert len(server.requests) == 2


def test_a_bad_request_is_not_retried(replay_server, replay_config):
    server = replay_server(
        {
            "model": "replay-model",
            "responses": [
                {"status": 400, "error": "max_tokens is too large: 999999"},
                {"content": "never reached"},
            ],
        }
    )
    with pytest.raises(ProviderError, match="max_tokens is too large: 999999") as caught:
        ask(get_provider(replay_config(server, max_retries=3), environ={}))

    assert len(server.requests) == 1
    assert "HTTP 400" in str(caught.value)
    assert "agent.max_output_tokens" in str(caught.value)


def test_server_errors_give_up_after_the_configured_retries(replay_server, replay_config):
    failure = {"status": 503, "error": "overloaded", "retry_after_ms": 1}
    server = replay_server({"model": "replay-model", "responses": [failure] * 3})
    with pytest.raises(ProviderError, match="after 2 retries") as caught:
        ask(get_provider(replay_config(server, max_retries=2), environ={}))

    assert len(server.requests) == 3
    assert "overloaded" in str(caught.value)


def test_a_timeout_says_so(replay_server, replay_config):
    server = replay_server(
        {"model": "replay-model", "responses": [{"content": "too late", "delay_seconds": 30}]}
    )
    config = replay_config(server, timeout_seconds=0.2, max_retries=0)
    with pytest.raises(ProviderError, match=r"timeout of 0\.2 seconds") as caught:
        ask(get_provider(config, environ={}))
    assert "agent.timeout_seconds" in str(caught.value)


def test_an_unknown_model_reports_the_servers_message(replay_server, replay_config):
    server = replay_server({"model": "replay-model", "responses": [{"content": "ok"}]})
    provider = get_provider(replay_config(server, max_retries=3), environ={})
    with pytest.raises(ProviderError, match="'gpt-9' does not exist") as caught:
        ask(provider, model="gpt-9")

    assert "agent.model" in str(caught.value)
    assert len(server.requests) == 1


def test_a_rejected_key_never_appears_in_the_error(replay_server, replay_config):
    # Real services echo (part of) a wrong key back; the message must not carry it on.
    server = replay_server(
        {
            "model": "replay-model",
            "responses": [{"status": 401, "error": f"Incorrect API key provided: {SECRET}."}],
        }
    )
    config = replay_config(server, api_key_env="MY_KEY")
    with pytest.raises(ProviderError) as caught:
        ask(get_provider(config, environ={"MY_KEY": SECRET}))

    message = str(caught.value)
    assert SECRET not in message
    assert "Incorrect API key provided" in message
    assert "MY_KEY" in message


def test_an_unreachable_endpoint_names_it_without_credentials():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = AgentConfig(base_url=f"http://user:hunter2pw@127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(ProviderError, match="Could not reach") as caught:
        ask(get_provider(config, environ={"OPENAI_API_KEY": SECRET}))

    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "hunter2pw" not in str(caught.value)
    assert SECRET not in str(caught.value)


def test_the_script_running_out_is_a_clear_provider_error(replay_server, replay_config):
    server = replay_server({"model": "replay-model", "responses": [{"content": "one"}]})
    provider = get_provider(replay_config(server), environ={})
    ask(provider)
    with pytest.raises(ProviderError, match="Replay script exhausted"):
        ask(provider)


# -- Anthropic -----------------------------------------------------------------------------


def test_anthropic_text_tool_use_and_usage(replay_server, replay_config):
    server = replay_server(
        {
            "model": "claude-test",
            "responses": [
                {
                    "content": "I'll edit it.",
                    "tool_calls": [{"name": "edit_file", "arguments": {"path": "src/calc.py"}}],
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 50, "cached_tokens": 800},
                }
            ],
        }
    )
    prices = {
        "claude-test": PriceConfig(
            input_per_million=3, output_per_million=15, cached_input_per_million=0.3
        )
    }
    provider = get_provider(replay_config(server, provider="anthropic", prices=prices), environ={})
    completion = ask(provider, model="claude-test")

    assert completion.message.content == "I'll edit it."
    assert completion.message.tool_calls == (
        ToolCall(
            id="call_1",
            name="edit_file",
            arguments={"path": "src/calc.py"},
            raw_arguments='{"path": "src/calc.py"}',
        ),
    )
    assert completion.finish_reason == "tool_use"
    # Cache reads count as input here, as they do for OpenAI.
    assert completion.usage == Usage(input_tokens=1000, output_tokens=50, cached_input_tokens=800)
    assert completion.cost_usd == pytest.approx((200 * 3 + 800 * 0.3 + 50 * 15) / 1e6)
    sent = server.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.body["system"] == "You fix bugs."
    assert sent.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "add() subtracts; fix it"}]}
    ]
    assert sent.body["tools"][0] == {
        "name": "edit_file",
        "description": "Replace text in a file.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
    assert sent.body["max_tokens"] == 256


def test_anthropic_tool_results_are_user_blocks(replay_server, replay_config):
    server = replay_server(
        {
            "model": "claude-test",
            "responses": [{"content": "Done.", "expect": {"last_role": "tool"}}],
        }
    )
    calls = (
        ToolCall(id="toolu_1", name="edit_file", arguments={"path": "a.py"}),
        ToolCall(id="toolu_2", name="finish", arguments={}),
    )
    history = [
        SYSTEM,
        USER,
        Message(role="assistant", content="", tool_calls=calls),
        Message(role="tool", content="edited", tool_call_id="toolu_1"),
        Message(role="tool", content="", tool_call_id="toolu_2"),
    ]
    provider = get_provider(replay_config(server, provider="anthropic"), environ={})
    completion = ask(provider, messages=history, model="claude-test", temperature=0.5)

    assert completion.message.content == "Done."
    sent = server.requests[0].body
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "edit_file",
                    "input": {"path": "a.py"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "finish", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "edited"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "(empty)"},
            ],
        },
    ]
    assert sent["temperature"] == 0.5


def test_anthropic_retries_then_reports_an_unknown_model(replay_server, replay_config):
    server = replay_server(
        {
            "model": "claude-test",
            "responses": [
                {"status": 529, "error": "Overloaded", "retry_after_ms": 1},
                {"content": "ok"},
            ],
        }
    )
    provider = get_provider(replay_config(server, provider="anthropic", max_retries=2), environ={})
    assert ask(provider, model="claude-test").message.content == "ok"
    assert len(server.requests) == 2

    with pytest.raises(ProviderError, match="'claude-nope' does not exist"):
        ask(provider, model="claude-nope")
    assert len(server.requests) == 3


# -- pricing -------------------------------------------------------------------------------


def test_an_unpriced_model_costs_nothing():
    assert cost(Usage(input_tokens=10**6, output_tokens=10**6), "local-llama", {}) == 0.0


def test_cached_input_falls_back_to_the_input_price():
    price = {"m": PriceConfig(input_per_million=1.0, output_per_million=4.0)}
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000, cached_input_tokens=400_000)
    assert cost(usage, "m", price) == pytest.approx(1.0 + 2.0)


def test_endpoint_is_frozen():
    endpoint = Endpoint(base_url="http://127.0.0.1", api_key=SECRET, key_env="K")
    with pytest.raises(AttributeError):
        endpoint.api_key = "other"  # type: ignore[misc]


def test_missing_usage_counts_as_nothing_and_says_so(replay_server, replay_config, caplog):
    server = replay_server(
        {"model": "replay-model", "responses": [{"content": "ok", "usage": False}]}
    )
    prices = {"replay-model": PriceConfig(input_per_million=1, output_per_million=1)}
    with caplog.at_level("WARNING", logger="shipyard.agent.providers.openai_compat"):
        completion = ask(get_provider(replay_config(server, prices=prices), environ={}))

    assert (completion.usage, completion.cost_usd) == (Usage(), 0.0)
    assert "reported no token usage" in caplog.text


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("https://api.openai.com/v1", "max_completion_tokens"),
        ("http://127.0.0.1:8000/v1", "max_tokens"),
        ("https://openrouter.ai/api/v1", "max_tokens"),
    ],
)
def test_the_output_limit_uses_the_field_the_server_knows(url, field):
    assert output_limit_field(url) == field
