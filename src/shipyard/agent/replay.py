"""A local model endpoint replaying scripted answers, so tests, the demo and benchmarks need no model.

It speaks the OpenAI Chat Completions API (``POST /v1/chat/completions``, ``GET /v1/models``) and,
for the Anthropic provider, the Messages API (``POST /v1/messages``; point that client at ``.base``).
Answers come from a fixture, in order, whichever API asks::

    {"model": "replay-model",                    # optional: other model names get a 404
     "responses": [
       {"content": "text", "tool_calls": [{"name": "edit_file", "arguments": {"path": "a.py"}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "cached_tokens": 0},
        "expect": {"last_message_contains": "...", "messages_contain": "...",
                   "tools_include": ["edit_file"], "last_role": "tool"},
        "finish_reason": "stop", "delay_seconds": 0},
       {"status": 429, "error": "slow down", "retry_after_ms": 10}]}

Each request takes the next response, a client's retries included (so ``[429, answer]`` tests a
retry). Everything but ``content``/``tool_calls`` or ``status`` is optional. A tool call may carry
an ``id`` (else ``call_N``, numbered through the script) and string ``arguments`` (sent verbatim,
to script invalid JSON). ``delay_seconds`` holds an answer back (to test timeouts). Without
``usage`` the tokens are estimated from the request's size; ``"usage": false`` leaves it out, as
some local servers do; ``prompt_tokens`` counts cached tokens too. A failed ``expect`` is answered
with a 400 naming the mismatch, as is a request after the last response. ``ReplayServer.record``
forwards to a real endpoint instead and writes what it answers as a fixture.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from shipyard.agent.messages import estimate_tokens
from shipyard.errors import ConfigError, format_validation_error

log = logging.getLogger(__name__)
Kind = Literal["openai", "anthropic"]
_ROUTES: dict[str, Kind] = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_Strict):
    """Checks on the request a response answers; a mismatch is a 400 saying which check failed."""

    last_message_contains: str | None = None
    messages_contain: str | None = None
    tools_include: list[str] = Field(default_factory=list)
    last_role: Literal["system", "user", "assistant", "tool"] | None = None


class ScriptedCall(_Strict):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str | None = None


class ScriptedUsage(_Strict):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cached_tokens: int = Field(default=0, ge=0)


class Turn(_Strict):
    content: str = ""
    tool_calls: list[ScriptedCall] = Field(default_factory=list)
    usage: ScriptedUsage | Literal[False] | None = None
    """None: estimated from the request; False: left out, as some local servers do."""
    finish_reason: str | None = None
    expect: Expect | None = None
    delay_seconds: float = Field(default=0, ge=0)


class Failure(_Strict):
    status: int = Field(ge=400, le=599)
    error: str
    retry_after_ms: int | None = Field(default=None, ge=0)
    expect: Expect | None = None
    delay_seconds: float = Field(default=0, ge=0)


def _kind_of(value: Any) -> str:
    return "failure" if isinstance(value, Mapping) and "status" in value else "turn"


class Script(_Strict):
    model: str | None = None
    responses: list[
        Annotated[
            Annotated[Turn, Tag("turn")] | Annotated[Failure, Tag("failure")],
            Discriminator(_kind_of),
        ]
    ]


def load_script(source: Path | str | Mapping[str, Any]) -> Script:
    """A fixture file (or an already-parsed fixture) as a validated ``Script``."""
    name = "<script>" if isinstance(source, Mapping) else str(source)
    try:
        data = source if isinstance(source, Mapping) else json.loads(Path(source).read_text())
        return Script.model_validate(data)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read the replay fixture: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, name)) from exc


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, for test assertions."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]


def _text(content: Any) -> str:
    """The text in an OpenAI or Anthropic content value (string, parts or blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict)]
        return "\n".join(_text(p.get("text") or p.get("content") or p.get("input")) for p in parts)
    return json.dumps(content) if isinstance(content, dict) else ""


def _mismatch(expect: Expect, kind: Kind, body: Mapping[str, Any]) -> str | None:
    messages = list(body.get("messages") or [])
    texts = [_text(m.get("content")) for m in messages] + [_text(body.get("system"))]
    last = messages[-1] if messages else {}
    last_role = last.get("role")
    if kind == "anthropic" and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last.get("content") or []
    ):
        last_role = "tool"
    tools = {t.get("name") or t.get("function", {}).get("name") for t in body.get("tools") or []}
    if expect.last_message_contains and expect.last_message_contains not in _text(
        last.get("content")
    ):
        return f"the last message does not contain {expect.last_message_contains!r}"
    if expect.messages_contain and not any(expect.messages_contain in t for t in texts):
        return f"no message contains {expect.messages_contain!r}"
    if missing := [t for t in expect.tools_include if t not in tools]:
        return f"tools {missing} were not offered (offered: {sorted(str(t) for t in tools)})"
    if expect.last_role and expect.last_role != last_role:
        return f"the last message's role is {last_role!r}, expected {expect.last_role!r}"
    return None


def _error_body(kind: Kind, status: int, message: str, code: str) -> dict[str, Any]:
    if kind == "anthropic":
        return {"type": "error", "error": {"type": code, "message": message}}
    return {"error": {"message": message, "type": code, "code": code, "status": status}}


def _arguments(call: ScriptedCall) -> tuple[str, dict[str, Any]]:
    if isinstance(call.arguments, dict):
        return json.dumps(call.arguments), call.arguments
    try:
        decoded = json.loads(call.arguments)
    except json.JSONDecodeError:
        decoded = {}
    return call.arguments, decoded if isinstance(decoded, dict) else {}


def _render(
    turn: Turn, kind: Kind, body: Mapping[str, Any], ids: list[str], number: int
) -> dict[str, Any]:
    """Response ``number`` in the asking API's shape; ``ids`` are its tool calls' ids."""
    calls = [(c, i, *_arguments(c)) for c, i in zip(turn.tool_calls, ids, strict=True)]
    estimate = ScriptedUsage(
        prompt_tokens=estimate_tokens(json.dumps([body.get("messages"), body.get("tools")])),
        completion_tokens=estimate_tokens(turn.content + "".join(raw for *_, raw, _ in calls)),
    )
    usage = (
        estimate
        if turn.usage is None
        else turn.usage or ScriptedUsage(prompt_tokens=0, completion_tokens=0)
    )
    model = body.get("model", "replay")
    if kind == "anthropic":
        blocks: list[dict[str, Any]] = (
            [{"type": "text", "text": turn.content}] if turn.content else []
        )
        blocks += [
            {"type": "tool_use", "id": i, "name": c.name, "input": a} for c, i, _, a in calls
        ]
        return {
            "id": f"msg_replay_{number}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_sequence": None,
            "stop_reason": turn.finish_reason or ("tool_use" if calls else "end_turn"),
            "usage": {
                "input_tokens": usage.prompt_tokens - usage.cached_tokens,
                "output_tokens": usage.completion_tokens,
                "cache_read_input_tokens": usage.cached_tokens,
            },
        }
    message: dict[str, Any] = {"role": "assistant", "content": turn.content or None}
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": c.name, "arguments": raw}}
            for c, i, raw, _ in calls
        ]
    answer: dict[str, Any] = {
        "id": f"chatcmpl-replay-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": turn.finish_reason or ("tool_calls" if calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        },
    }
    if turn.usage is False:  # Anthropic's API always reports usage; only this shape omits it
        del answer["usage"]
    return answer


def _as_fixture(kind: Kind, status: int, body: Any) -> dict[str, Any]:
    """An upstream answer written back in the fixture format (the inverse of ``_render``)."""
    if status >= 400:
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        return {"status": status, "error": message}
    if kind == "anthropic":
        blocks, u = body["content"], body.get("usage") or {}
        cached = u.get("cache_read_input_tokens") or 0
        calls = [
            {"id": b["id"], "name": b["name"], "arguments": b["input"]}
            for b in blocks
            if b["type"] == "tool_use"
        ]
        usage = {
            "prompt_tokens": u.get("input_tokens", 0) + cached,
            "completion_tokens": u.get("output_tokens", 0),
            "cached_tokens": cached,
        }
        text = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
        return {"content": text, "tool_calls": calls, "usage": usage}
    message, u = body["choices"][0]["message"], body.get("usage") or {}
    calls = []
    for call in message.get("tool_calls") or []:
        raw = call["function"]["arguments"]
        try:
            arguments = json.loads(raw)
        except json.JSONDecodeError:
            arguments = raw
        calls.append({"id": call["id"], "name": call["function"]["name"], "arguments": arguments})
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    usage = {
        "prompt_tokens": u.get("prompt_tokens", 0),
        "completion_tokens": u.get("completion_tokens", 0),
        "cached_tokens": cached,
    }
    return {"content": message.get("content") or "", "tool_calls": calls, "usage": usage}


class ReplayServer:
    """The server; a context manager. ``.url`` is the OpenAI base URL (ending ``/v1``), ``.base``
    the Anthropic one, ``.requests`` every request received, ``.remaining`` unused responses."""

    def __init__(
        self, script: Path | str | Mapping[str, Any] | None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.script = load_script(script) if script is not None else Script(responses=[])
        self.requests: list[RecordedRequest] = []
        self._used = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._upstream: tuple[str, str, Path] | None = None
        self._recorded: dict[str, Any] = {"model": None, "responses": []}
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._httpd.replay = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @classmethod
    def record(
        cls,
        upstream_base_url: str,
        api_key: str,
        out_path: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> ReplayServer:
        """A server forwarding every request to ``upstream_base_url`` (ending ``/v1``) with
        ``api_key`` and writing each answer to ``out_path`` as it comes; the key is never written."""
        server = cls(None, host=host, port=port)
        server._upstream = (upstream_base_url.rstrip("/"), api_key, Path(out_path))
        return server

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return self.base + "/v1"

    @property
    def remaining(self) -> int:
        return len(self.script.responses) - self._used

    def start(self) -> ReplayServer:
        # A short poll keeps ``close`` quick: tests start and stop many servers.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _answer(
        self, kind: Kind, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        """Status, JSON body and extra headers for one request."""
        if self._upstream is not None:
            return self._forward(kind, body, headers)
        model = body.get("model")
        if self.script.model is not None and model != self.script.model:
            text = f"The model {model!r} does not exist (this replay server serves {self.script.model!r})."
            return 404, _error_body(kind, 404, text, "model_not_found"), {}
        with self._lock:
            if self._used >= len(self.script.responses):
                text = (
                    f"Replay script exhausted: all {len(self.script.responses)} scripted responses were used "
                    f"and request {len(self.requests)} was not expected."
                )
                return 400, _error_body(kind, 400, text, "replay_exhausted"), {}
            self._used += 1
            number, entry = self._used, self.script.responses[self._used - 1]
            first = sum(
                len(r.tool_calls)
                for r in self.script.responses[: number - 1]
                if isinstance(r, Turn)
            )
        self._stop.wait(entry.delay_seconds)
        if entry.expect is not None and (reason := _mismatch(entry.expect, kind, body)):
            text = f"Replay expectation of response {number} failed: {reason}."
            return 400, _error_body(kind, 400, text, "replay_expectation_failed"), {}
        if isinstance(entry, Failure):
            wait = entry.retry_after_ms
            extra = {} if wait is None else {"retry-after-ms": str(wait)}
            return entry.status, _error_body(kind, entry.status, entry.error, "replay_error"), extra
        ids = [c.id or f"call_{first + n}" for n, c in enumerate(entry.tool_calls, start=1)]
        return 200, _render(entry, kind, body, ids, number), {}

    def _forward(
        self, kind: Kind, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        upstream, key, out = self._upstream  # type: ignore[misc]
        send = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        if kind == "anthropic":
            send |= {"x-api-key": key, "anthropic-version": headers.get("anthropic-version", "")}
        path = "/chat/completions" if kind == "openai" else "/messages"
        try:
            reply = httpx.post(upstream + path, json=body, headers=send, timeout=600)
            answer = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            return 502, _error_body(kind, 502, f"Upstream {upstream} failed: {exc}", "upstream"), {}
        with self._lock:
            self._recorded["model"] = self._recorded["model"] or body.get("model")
            self._recorded["responses"].append(_as_fixture(kind, reply.status_code, answer))
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._recorded, indent=2) + "\n")
            tmp.replace(out)
        passed = {
            h: reply.headers[h]
            for h in ("retry-after", "retry-after-ms", "x-should-retry")
            if h in reply.headers
        }
        return reply.status_code, answer, passed


class _Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            for name, value in {"content-type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (a timeout test): nobody is listening any more
            pass

    def do_GET(self) -> None:
        replay: ReplayServer = self.server.replay  # type: ignore[attr-defined]
        if self.path.rstrip("/") != "/v1/models":
            self._send(404, _error_body("openai", 404, f"No route {self.path}", "not_found"))
            return
        model = {"id": replay.script.model or "replay", "object": "model", "owned_by": "replay"}
        self._send(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:
        replay: ReplayServer = self.server.replay  # type: ignore[attr-defined]
        kind = _ROUTES.get(self.path.split("?")[0].rstrip("/"))
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        replay.requests.append(
            RecordedRequest(self.path, body if isinstance(body, dict) else {}, headers)
        )
        if kind is None or not isinstance(body, dict):
            status = 404 if kind is None else 400
            problem = "The request body is not a JSON object." if kind else f"No route {self.path}"
            self._send(status, _error_body(kind or "openai", status, problem, "invalid_request"))
            return
        try:
            answer = replay._answer(kind, body, headers)
        except Exception as exc:  # a request shape the server does not understand: say so
            log.exception("replay: cannot answer %s", self.path)
            text = f"The replay server could not answer this request: {exc!r}"
            answer = (400, _error_body(kind, 400, text, "replay_failed"), {})
        self._send(*answer)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("replay: " + format, *args)


def main(argv: list[str] | None = None) -> int:
    """``python -m shipyard.agent.replay FIXTURE [--port N]`` or ``--record UPSTREAM --out FILE``."""
    parser = argparse.ArgumentParser(
        prog="python -m shipyard.agent.replay", description=__doc__.splitlines()[0]
    )
    parser.add_argument("fixture", nargs="?", help="fixture to replay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--record", metavar="UPSTREAM", help="forward to this base URL (ending /v1)"
    )
    parser.add_argument("--out", help="fixture file to record to")
    parser.add_argument(
        "--key-env", default="OPENAI_API_KEY", help="host variable with the upstream key"
    )
    args = parser.parse_args(argv)
    if args.record:
        if not args.out:
            parser.error("--record needs --out FILE")
        server = ReplayServer.record(
            args.record, os.environ.get(args.key_env, ""), args.out, host=args.host, port=args.port
        )
    elif args.fixture:
        server = ReplayServer(args.fixture, host=args.host, port=args.port)
    else:
        parser.error("give a FIXTURE to replay, or --record UPSTREAM --out FILE")
    with server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
