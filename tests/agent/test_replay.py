"""The replay server: scripted answers in both APIs' shapes, loud failures, and record mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from shipyard.agent.messages import Message, ToolSpec
from shipyard.agent.providers import get_provider
from shipyard.agent.replay import ReplayServer, load_script
from shipyard.config import AgentConfig
from shipyard.errors import ConfigError

SRC = Path(__file__).resolve().parents[2] / "src"
FIXTURES = Path(__file__).parent / "fixtures"
USER = [{"role": "user", "content": "fix the bug"}]


def chat(server: ReplayServer, **body: Any) -> httpx.Response:
    request = {"model": server.script.model or "replay", "messages": USER} | body
    return httpx.post(server.url + "/chat/completions", json=request, timeout=10)


def test_answers_in_order_with_stable_tool_call_ids(replay_server):
    server = replay_server(
        {
            "responses": [
                {
                    "content": "reading",
                    "tool_calls": [{"name": "read_file", "arguments": {"path": "a"}}],
                },
                {"tool_calls": [{"name": "a", "arguments": {}}, {"name": "b", "id": "mine"}]},
                {"tool_calls": [{"name": "c", "arguments": "{not json"}]},
            ]
        }
    )
    first = chat(server).json()["choices"][0]
    second = chat(server).json()["choices"][0]
    third = chat(server).json()["choices"][0]

    assert first["message"]["content"] == "reading"
    assert first["finish_reason"] == "tool_calls"
    call = first["message"]["tool_calls"][0]
    assert call["id"] == "call_1"
    assert call["type"] == "function"
    assert call["function"] == {"name": "read_file", "arguments": '{"path": "a"}'}
    assert [c["id"] for c in second["message"]["tool_calls"]] == ["call_2", "mine"]
    # String arguments go out verbatim, so a fixture can script a model writing broken JSON.
    assert third["message"]["tool_calls"][0]["function"]["arguments"] == "{not json"
    assert server.remaining == 0


def test_openai_client_reads_the_answer(replay_server):
    server = replay_server("edit_and_finish.json")
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("read_file", "edit_file", "finish")
    ]
    answer = client.chat.completions.create(model="replay-model", messages=USER, tools=tools)
    client.close()

    assert answer.choices[0].message.content == "I will read the file first."
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (1200, 40)
    assert server.requests[0].body["tools"] == tools


def test_usage_is_estimated_from_the_request_when_not_scripted(replay_server):
    server = replay_server({"responses": [{"content": "ok"}, {"content": "ok"}]})
    small = chat(server).json()["usage"]
    large = chat(server, messages=[{"role": "user", "content": "x" * 4000}]).json()["usage"]

    assert 0 < small["prompt_tokens"] < large["prompt_tokens"]
    assert large["prompt_tokens"] >= 1000
    assert small["completion_tokens"] >= 1


def test_usage_can_be_left_out(replay_server):
    server = replay_server({"responses": [{"content": "ok", "usage": False}]})
    assert "usage" not in chat(server).json()


def test_a_request_it_cannot_read_is_a_400_not_a_hang(replay_server):
    server = replay_server({"responses": [{"content": "ok", "expect": {"last_role": "user"}}]})
    reply = chat(server, messages=[1, 2])

    assert reply.status_code == 400
    assert "could not answer this request" in reply.json()["error"]["message"]


def test_lists_its_model(replay_server):
    server = replay_server({"model": "replay-model", "responses": []})
    listed = httpx.get(server.url + "/models", timeout=10).json()
    assert [m["id"] for m in listed["data"]] == ["replay-model"]


def test_an_unknown_model_is_a_404_and_uses_no_response(replay_server):
    server = replay_server({"model": "replay-model", "responses": [{"content": "ok"}]})
    reply = chat(server, model="gpt-nonexistent")

    assert reply.status_code == 404
    assert "'gpt-nonexistent' does not exist" in reply.json()["error"]["message"]
    assert server.remaining == 1


def test_an_exhausted_script_is_a_400_saying_so(replay_server):
    server = replay_server({"responses": [{"content": "only one"}]})
    assert chat(server).status_code == 200
    reply = chat(server)

    assert reply.status_code == 400
    message = reply.json()["error"]["message"]
    assert "exhausted" in message
    assert "all 1 scripted responses were used" in message


@pytest.mark.parametrize(
    ("expect", "messages", "reason"),
    [
        ({"last_message_contains": "tests pass"}, USER, "does not contain 'tests pass'"),
        ({"messages_contain": "SYSTEM RULES"}, USER, "no message contains 'SYSTEM RULES'"),
        ({"tools_include": ["edit_file"]}, USER, "tools ['edit_file'] were not offered"),
        ({"last_role": "tool"}, USER, "role is 'user', expected 'tool'"),
    ],
)
def test_a_failed_expectation_is_a_400_with_the_reason(replay_server, expect, messages, reason):
    server = replay_server({"responses": [{"content": "ok", "expect": expect}]})
    reply = chat(server, messages=messages)

    assert reply.status_code == 400
    assert reason in reply.json()["error"]["message"]
    assert "expectation of response 1 failed" in reply.json()["error"]["message"]


def test_met_expectations_pass(replay_server):
    expect = {
        "last_message_contains": "passed",
        "messages_contain": "RULES",
        "tools_include": ["finish"],
        "last_role": "tool",
    }
    server = replay_server({"responses": [{"content": "ok", "expect": expect}]})
    messages = [
        {"role": "system", "content": "RULES"},
        {"role": "tool", "tool_call_id": "call_1", "content": "3 passed"},
    ]
    tools = [{"type": "function", "function": {"name": "finish", "parameters": {}}}]
    assert chat(server, messages=messages, tools=tools).status_code == 200


def test_scripted_errors_carry_status_and_retry_hint(replay_server):
    server = replay_server(FIXTURES / "rate_limited_once.json")
    reply = chat(server)

    assert reply.status_code == 429
    assert reply.headers["retry-after-ms"] == "10"
    assert reply.json()["error"]["message"].startswith("Rate limit reached")
    assert chat(server).status_code == 200


def test_serves_the_anthropic_messages_api(replay_server):
    server = replay_server(
        {
            "responses": [
                {
                    "content": "editing",
                    "tool_calls": [{"name": "edit_file", "arguments": {"path": "a"}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 10, "cached_tokens": 60},
                },
                {"status": 529, "error": "Overloaded"},
            ]
        }
    )
    body = {"model": "claude", "max_tokens": 100, "messages": USER}
    answer = httpx.post(server.base + "/v1/messages", json=body, timeout=10).json()
    failed = httpx.post(server.base + "/v1/messages", json=body, timeout=10)

    assert answer["stop_reason"] == "tool_use"
    assert answer["content"] == [
        {"type": "text", "text": "editing"},
        {"type": "tool_use", "id": "call_1", "name": "edit_file", "input": {"path": "a"}},
    ]
    # Anthropic counts cache reads apart from input_tokens.
    assert answer["usage"] == {
        "input_tokens": 40,
        "output_tokens": 10,
        "cache_read_input_tokens": 60,
    }
    assert failed.status_code == 529
    assert failed.json() == {
        "type": "error",
        "error": {"type": "replay_error", "message": "Overloaded"},
    }


def test_unknown_routes_and_bodies_are_refused(replay_server):
    server = replay_server({"responses": [{"content": "ok"}]})
    assert httpx.post(server.url + "/completions", json={}, timeout=10).status_code == 404
    bad = httpx.post(server.url + "/chat/completions", content=b"[1, 2]", timeout=10)
    assert bad.status_code == 400
    assert server.remaining == 1


@pytest.mark.parametrize(
    ("script", "field"),
    [
        ({"responses": [{"content": "ok", "tool_call": []}]}, "tool_call"),
        ({"responses": [{"status": 200, "error": "x"}]}, "status"),
        (
            {"responses": [{"content": "ok", "expect": {"last_message_has": "x"}}]},
            "last_message_has",
        ),
        ({"replies": []}, "responses"),
    ],
)
def test_a_malformed_fixture_is_refused_naming_the_field(script, field):
    with pytest.raises(ConfigError, match=field):
        load_script(script)


def test_an_unreadable_fixture_names_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match=r"broken\.json"):
        load_script(broken)


def test_record_then_replay_round_trip(replay_server, tmp_path):
    """A session recorded through the proxy replays to the same answers, and the key stays out."""
    key = "sk-recordingsecret0123456789abcdef"
    upstream = replay_server(
        {
            "model": "real-model",
            "responses": [
                {"status": 500, "error": "upstream hiccup", "retry_after_ms": 1},
                {
                    "content": "let me look",
                    "tool_calls": [{"name": "read_file", "arguments": {"path": "a.py"}}],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 7, "cached_tokens": 20},
                },
                {
                    "tool_calls": [{"name": "finish", "arguments": "{broken"}],
                    "usage": {"prompt_tokens": 80, "completion_tokens": 3},
                },
            ],
        }
    )
    out = tmp_path / "recorded.json"
    tools = [
        ToolSpec(name="read_file", description="read"),
        ToolSpec(name="finish", description="stop"),
    ]
    conversation = [Message(role="user", content="fix it")]

    def session(url: str) -> list[Any]:
        config = AgentConfig(model="real-model", base_url=url, max_retries=2)
        provider = get_provider(config, environ={})
        first = provider.complete(
            conversation, tools=tools, model="real-model", max_output_tokens=64
        )
        result = Message(
            role="tool", content="print(1)", tool_call_id=first.message.tool_calls[0].id
        )
        second = provider.complete(
            [*conversation, first.message, result],
            tools=tools,
            model="real-model",
            max_output_tokens=64,
        )
        return [(c.message, c.usage, c.finish_reason) for c in (first, second)]

    with ReplayServer.record(upstream.url, key, out) as recorder:
        recorded = session(recorder.url)

    assert upstream.requests[0].headers["authorization"] == f"Bearer {key}"
    assert key not in out.read_text()
    fixture = json.loads(out.read_text())
    assert fixture["model"] == "real-model"
    assert fixture["responses"][0] == {"status": 500, "error": "upstream hiccup"}
    assert fixture["responses"][2]["tool_calls"][0]["arguments"] == "{broken"

    replayed = session(replay_server(out).url)
    assert replayed == recorded
    assert recorded[0][0].tool_calls[0].arguments == {"path": "a.py"}


def test_the_command_line_serves_a_fixture(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SRC)}
    process = subprocess.Popen(
        [sys.executable, "-m", "shipyard.agent.replay", str(FIXTURES / "edit_and_finish.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        listed = httpx.get(url + "/models", timeout=10).json()
        assert listed["data"][0]["id"] == "replay-model"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


def test_the_command_line_needs_a_fixture_or_a_recording():
    result = subprocess.run(
        [sys.executable, "-m", "shipyard.agent.replay", "--record", "http://127.0.0.1:9/v1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SRC)},
    )
    assert result.returncode == 2
    assert "--record needs --out FILE" in result.stderr
