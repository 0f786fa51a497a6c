"""Deploy hooks against real processes and a real HTTP server on the loopback interface."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shipyard.config import DeployConfig
from shipyard.errors import DeployError
from shipyard.rollout import deploy
from shipyard.rollout.deploy import (
    CommandHook,
    NoHook,
    StageCall,
    WebhookHook,
    deploy_hook,
    masked_url,
    notify,
)

SECRET = "s3cret-key"
SHA_A, SHA_B = "a" * 40, "b" * 40


def stage_call(repo: Path, *, stage: int = 2, action: str = "deploy") -> StageCall:
    return StageCall(
        run_id="run-7",
        repo=repo,
        target="main",
        commit=SHA_B,
        previous_commit=SHA_A,
        stage=stage,
        percent=12.5 if action == "deploy" else 0,
        action="deploy" if action == "deploy" else "rollback",
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie nobody has reaped yet is dead."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- command --------------------------------------------------------------------------------------

# /proc/self/environ is the environment exactly as exec received it, before Python adds anything.
PROBE = """\
import json, os, sys
raw = open("/proc/self/environ", "rb").read().split(b"\\0")
env = dict(item.decode().split("=", 1) for item in raw if item)
json.dump({"env": env, "cwd": os.getcwd(), "stdin": sys.stdin.read()}, open(sys.argv[1], "w"))
"""


def test_the_command_gets_the_stage_and_nothing_else_of_the_hosts_environment(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_CANARY", "must not leak")
    monkeypatch.setenv("SHIPYARD_DEPLOY_SECRET", "the webhook key, not for commands")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LANG", "C.UTF-8")
    (tmp_path / "probe.py").write_text(PROBE)
    seen = tmp_path / "seen.json"
    hook = deploy_hook(
        DeployConfig(command=[sys.executable, str(tmp_path / "probe.py"), str(seen)]), repo=repo
    )
    result = hook.call(stage_call(repo))
    assert result.ok, result.detail
    assert result.detail == "exit 0"
    got = json.loads(seen.read_text())
    assert got["env"] == {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "SHIPYARD_RUN_ID": "run-7",
        "SHIPYARD_REPO": str(repo),
        "SHIPYARD_TARGET": "main",
        "SHIPYARD_COMMIT": SHA_B,
        "SHIPYARD_PREVIOUS_COMMIT": SHA_A,
        "SHIPYARD_STAGE": "2",
        "SHIPYARD_PERCENT": "12.5",
        "SHIPYARD_ACTION": "deploy",
        "SHIPYARD_IDEMPOTENCY_KEY": "run-7:deploy:2",
    }
    assert got["cwd"] == str(repo)
    assert got["stdin"] == ""  # stdin is at end-of-file: a prompt cannot hang the rollout


def test_a_rollback_is_stage_zero_at_zero_percent(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    seen = tmp_path / "seen.json"
    hook = CommandHook(
        [sys.executable, str(tmp_path / "probe.py"), str(seen)], repo=repo, timeout=30, environ={}
    )
    assert hook.call(stage_call(repo, stage=0, action="rollback")).ok
    env = json.loads(seen.read_text())["env"]
    assert (env["SHIPYARD_STAGE"], env["SHIPYARD_PERCENT"], env["SHIPYARD_ACTION"]) == (
        "0",
        "0",
        "rollback",
    )
    assert set(env) - {"PATH"} == {name for name in env if name.startswith("SHIPYARD_")}


def test_a_relative_program_runs_from_the_repository_root(repo: Path) -> None:
    script = repo / "deploy.sh"
    script.write_text('#!/bin/sh\necho "deploying $SHIPYARD_COMMIT at $SHIPYARD_PERCENT%"\n')
    script.chmod(0o755)
    result = CommandHook(["./deploy.sh"], repo=repo, timeout=30).call(stage_call(repo))
    assert result.ok
    assert result.detail == f"exit 0: deploying {SHA_B} at 12.5%"


def test_a_failing_command_reports_its_exit_code_and_last_lines(repo: Path) -> None:
    script = "echo starting; echo 'step 2 of 3'; echo 'error: disk full' >&2; exit 3"
    result = CommandHook(["sh", "-c", script], repo=repo, timeout=30).call(stage_call(repo))
    assert not result.ok
    assert result.detail == "exit 3: starting | step 2 of 3 | error: disk full"


def test_long_output_is_trimmed_to_one_bounded_line(repo: Path) -> None:
    result = CommandHook(["seq", "1", "200000"], repo=repo, timeout=30).call(stage_call(repo))
    assert result.ok
    assert result.detail == "exit 0: 199998 | 199999 | 200000"
    long_lines = "python3 -c 'print(\"x\" * 5000)'; exit 1"
    failed = CommandHook(["sh", "-c", long_lines], repo=repo, timeout=30).call(stage_call(repo))
    assert "\n" not in failed.detail
    assert len(failed.detail) <= 400
    assert failed.detail.startswith("exit 1: xxx")


def test_a_command_killed_by_a_signal_says_so(repo: Path) -> None:
    result = CommandHook(["sh", "-c", "kill -9 $$"], repo=repo, timeout=30).call(stage_call(repo))
    assert not result.ok
    assert result.detail == "killed by signal 9"


def test_a_timeout_kills_the_whole_process_tree(repo: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pidfile}; echo waiting; sleep 300"
    started = time.monotonic()
    result = CommandHook(["sh", "-c", script], repo=repo, timeout=0.5).call(stage_call(repo))
    assert not result.ok
    assert result.detail == "timed out after 0.5 s; killed its process group: waiting"
    assert time.monotonic() - started < 5
    assert 0.5 <= result.seconds < 5
    child = int(pidfile.read_text())
    assert wait_gone(child), "the background child outlived the timed-out command"


def test_a_command_that_ignores_sigterm_is_killed(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deploy, "_GRACE_SECONDS", 0.3)
    pidfile = tmp_path / "child.pid"
    # An ignored signal stays ignored in the children: neither shell nor sleep reacts to SIGTERM.
    script = f"trap '' TERM; sleep 300 & echo $! > {pidfile}; sleep 300"
    result = CommandHook(["sh", "-c", script], repo=repo, timeout=0.5).call(stage_call(repo))
    assert not result.ok
    assert "timed out" in result.detail
    assert result.seconds < 5
    assert wait_gone(int(pidfile.read_text()))


def test_a_finished_command_is_not_held_up_by_what_it_left_running(
    repo: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "server.pid"
    script = f"sleep 30 & echo $! > {pidfile}; echo deployed"
    result = CommandHook(["sh", "-c", script], repo=repo, timeout=20).call(stage_call(repo))
    server = int(pidfile.read_text())
    try:
        assert result.ok
        assert result.detail == "exit 0: deployed"
        assert result.seconds < 5  # the background process holds no pipe shipyard waits on
        assert alive(server)  # it may be what was deployed: shipyard leaves it alone
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGKILL)


def test_a_missing_or_unrunnable_program_is_a_failed_deploy(repo: Path) -> None:
    missing = CommandHook(["./no-such-deploy.sh"], repo=repo, timeout=30).call(stage_call(repo))
    assert not missing.ok
    assert "cannot run './no-such-deploy.sh'" in missing.detail
    assert "No such file or directory" in missing.detail
    assert "[rollout.deploy] command" in missing.detail
    (repo / "deploy.sh").write_text("#!/bin/sh\necho hi\n")  # not executable
    denied = CommandHook(["./deploy.sh"], repo=repo, timeout=30).call(stage_call(repo))
    assert not denied.ok
    assert "Permission denied" in denied.detail
    on_path = CommandHook(["shipyard-no-such-program"], repo=repo, timeout=30, environ={})
    assert not on_path.call(stage_call(repo)).ok


# --- webhook ---------------------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A deploy endpoint on 127.0.0.1 that records every request and answers as told."""

    status: int = 200
    reply: bytes = b'{"accepted": true}'
    location: str | None = None
    hold: bool = False
    """Answer only when the test ends: a server that never answers in time."""
    trickle: bool = False
    """Answer at once, then send the body one byte every 0.1 s."""
    requests: list[Request] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {key.lower(): value for key, value in self.headers.items()}
            state.requests.append(Request(self.path, headers, body))
            if state.hold:
                state.released.wait(30)
            with contextlib.suppress(OSError):  # the client may have given up by now
                self.send_response(state.status)
                if state.location:
                    self.send_header("Location", state.location)
                self.send_header(
                    "Content-Length", str(len(state.reply) * (100 if state.trickle else 1))
                )
                self.end_headers()
                if state.trickle:
                    for _ in range(100):
                        if state.released.wait(0.1):
                            return
                        self.wfile.write(b"x")
                        self.wfile.flush()
                else:
                    self.wfile.write(state.reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/deploy"
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_webhook_gets_the_documented_body_and_headers(receiver: Receiver, repo: Path) -> None:
    hook = deploy_hook(
        DeployConfig(webhook=receiver.url), repo=repo, environ={"SHIPYARD_DEPLOY_SECRET": SECRET}
    )
    assert isinstance(hook, WebhookHook)
    assert hook.description == f"webhook {receiver.url}"
    result = hook.call(stage_call(repo))
    assert result.ok, result.detail
    assert result.detail == 'HTTP 200: {"accepted": true}'
    [request] = receiver.requests
    assert request.path == "/hooks/deploy"
    assert json.loads(request.body) == {
        "run_id": "run-7",
        "repo": str(repo),
        "target": "main",
        "commit": SHA_B,
        "previous_commit": SHA_A,
        "stage": 2,
        "percent": 12.5,
        "action": "deploy",
    }
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-shipyard-event"] == "rollout.deploy"
    assert request.headers["idempotency-key"] == "run-7:deploy:2"
    # The receiver's check: HMAC-SHA256 over the raw body bytes, compared in constant time.
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-shipyard-signature"], expected)
    wrong = "sha256=" + hmac.new(b"another key", request.body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(request.headers["x-shipyard-signature"], wrong)


def test_a_rollback_call_has_its_own_event_and_key(receiver: Receiver, repo: Path) -> None:
    hook = WebhookHook(receiver.url, secret=SECRET, timeout=10)
    assert hook.call(stage_call(repo, stage=0, action="rollback")).ok
    [request] = receiver.requests
    assert request.headers["x-shipyard-event"] == "rollout.rollback"
    assert request.headers["idempotency-key"] == "run-7:rollback:0"
    assert json.loads(request.body)["action"] == "rollback"


def test_a_server_error_is_a_failed_deploy_with_status_and_body(
    receiver: Receiver, repo: Path
) -> None:
    receiver.status = 500
    receiver.reply = b"deploy failed: cluster unreachable\n" + b"trace line\n" * 1000
    result = WebhookHook(receiver.url, secret=SECRET, timeout=10).call(stage_call(repo))
    assert not result.ok
    assert result.detail.startswith("HTTP 500: deploy failed: cluster unreachable | trace line")
    assert len(result.detail) <= 400


def test_a_slow_server_is_a_timeout(receiver: Receiver, repo: Path) -> None:
    receiver.hold = True
    started = time.monotonic()
    result = WebhookHook(receiver.url, secret=SECRET, timeout=0.3).call(stage_call(repo))
    assert not result.ok
    assert result.detail == f"no answer within 0.3 s from {receiver.url}"
    assert time.monotonic() - started < 5


def test_a_body_that_trickles_in_is_cut_off_at_the_deadline(receiver: Receiver, repo: Path) -> None:
    receiver.trickle = True  # every read waits less than the timeout; the whole takes 10 s
    started = time.monotonic()
    result = WebhookHook(receiver.url, secret=SECRET, timeout=0.5).call(stage_call(repo))
    assert not result.ok
    assert "no answer within 0.5 s" in result.detail
    assert time.monotonic() - started < 3


def test_a_redirect_is_not_followed(receiver: Receiver, repo: Path) -> None:
    receiver.status = 302
    receiver.location = receiver.url.replace("/hooks/deploy", "/elsewhere")
    result = WebhookHook(receiver.url, secret=SECRET, timeout=10).call(stage_call(repo))
    assert not result.ok
    assert result.detail.startswith("HTTP 302: redirect to ")
    assert "/elsewhere not followed" in result.detail
    assert [r.path for r in receiver.requests] == ["/hooks/deploy"]


def test_an_unreachable_server_is_a_failed_deploy(repo: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/hook"
    result = WebhookHook(url, secret=SECRET, timeout=5).call(stage_call(repo))
    assert not result.ok
    assert result.detail.startswith(f"cannot reach {url}: ")


def test_credentials_in_the_url_are_never_shown(receiver: Receiver, repo: Path) -> None:
    receiver.status = 500
    receiver.reply = b"no"
    url = receiver.url.replace("http://", "http://deployer:hunter2@") + "?token=abc123&env=prod"
    hook = WebhookHook(url, secret=SECRET, timeout=10)
    result = hook.call(stage_call(repo))
    shown = hook.description + " " + result.detail
    for secret in ("deployer", "hunter2", "abc123", "prod"):
        assert secret not in shown
    assert hook.description.startswith("webhook http://***@127.0.0.1:")
    assert hook.description.endswith("/hooks/deploy?token=***&env=***")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = f"https://deployer:hunter2@127.0.0.1:{port}/hook?token=abc123"
    failed = WebhookHook(unreachable, secret=SECRET, timeout=5).call(stage_call(repo))
    assert not failed.ok
    assert "hunter2" not in failed.detail
    assert "abc123" not in failed.detail


def test_masked_url_keeps_what_identifies_the_endpoint() -> None:
    assert masked_url("https://host.example/path") == "https://host.example/path"
    assert masked_url("https://tok@host.example:8443/p?a=1&flag") == (
        "https://***@host.example:8443/p?a=***&flag"
    )


@pytest.mark.parametrize("value", [None, ""])
def test_a_webhook_without_its_secret_is_refused(repo: Path, value: str | None) -> None:
    environ = {} if value is None else {"DEPLOY_KEY": value}
    config = DeployConfig(webhook="https://deploy.example/hook", secret_env="DEPLOY_KEY")
    with pytest.raises(DeployError, match="environment variable DEPLOY_KEY, which is unset"):
        deploy_hook(config, repo=repo, environ=environ)


def test_a_webhook_that_is_not_http_is_refused(repo: Path) -> None:
    config = DeployConfig(webhook="ftp://user:pw@deploy.example/hook")
    with pytest.raises(DeployError, match="is not an http") as caught:
        deploy_hook(config, repo=repo, environ={"SHIPYARD_DEPLOY_SECRET": SECRET})
    assert "pw" not in str(caught.value)


def test_the_hook_follows_the_configuration(repo: Path) -> None:
    none = deploy_hook(DeployConfig(), repo=repo, environ={})
    assert isinstance(none, NoHook)
    assert none.description == "none"
    result = none.call(stage_call(repo))
    assert (result.ok, result.detail) == (True, "no deploy hook configured")
    command = deploy_hook(DeployConfig(command=["./deploy.sh", "--env", "prod"]), repo=repo)
    assert isinstance(command, CommandHook)
    assert command.description == "command ./deploy.sh --env prod"


# --- notify ------------------------------------------------------------------------------------------


def test_notify_posts_a_signed_event(receiver: Receiver) -> None:
    payload: dict[str, object] = {
        "run_id": "run-7",
        "reason": "error rate 4.2 %",
        "repo": Path("/r"),
    }
    result = notify(receiver.url, secret=SECRET, event="rollout.rolled_back", payload=payload)
    assert result.ok, result.detail
    [request] = receiver.requests
    assert json.loads(request.body) == {
        "run_id": "run-7",
        "reason": "error rate 4.2 %",
        "repo": "/r",
    }
    assert request.headers["x-shipyard-event"] == "rollout.rolled_back"
    assert request.headers["idempotency-key"] == "run-7:rollout.rolled_back"
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-shipyard-signature"], expected)


def test_notify_without_a_secret_is_unsigned(receiver: Receiver) -> None:
    assert notify(receiver.url, secret=None, event="rollout.rolled_back", payload={}).ok
    [request] = receiver.requests
    assert "x-shipyard-signature" not in request.headers
    assert "idempotency-key" not in request.headers


def test_notify_never_raises(receiver: Receiver) -> None:
    bad = notify("not a url", secret=None, event="e", payload={})
    assert not bad.ok
    assert "is not an http(s) URL" in bad.detail
    receiver.status = 503
    down = notify(receiver.url, secret=SECRET, event="e", payload={"run_id": "r"}, timeout=5)
    assert not down.ok
    assert down.detail.startswith("HTTP 503")
    odd = notify(receiver.url, secret=SECRET, event="e", payload={"run_id": "rün"}, timeout=5)
    assert not odd.ok
