"""Deploy hooks: how each rollout stage (and a rollback) reaches the repository owner's deployment.

The hook is the owner's, configured in ``[rollout.deploy]``: a command run on the host, or a
webhook. Without one, stages only watch the health signal. Every call describes one step, as
environment variables for a command and as fields of a JSON object for a webhook:

- ``SHIPYARD_RUN_ID`` / ``run_id``: the run whose change is rolled out
- ``SHIPYARD_REPO`` / ``repo``: absolute path of the repository
- ``SHIPYARD_TARGET`` / ``target``: the branch the change was merged into
- ``SHIPYARD_COMMIT`` / ``commit``: the merge commit being rolled out (full sha)
- ``SHIPYARD_PREVIOUS_COMMIT`` / ``previous_commit``: the target's commit before the merge, which
  is what a rollback returns to
- ``SHIPYARD_STAGE`` / ``stage``: 1, 2, ... for the stages; 0 for a rollback (JSON: integer)
- ``SHIPYARD_PERCENT`` / ``percent``: the stage's share of traffic; 0 for a rollback (variable:
  ``5``, ``12.5``, ``100``; JSON: number)
- ``SHIPYARD_ACTION`` / ``action``: ``deploy`` or ``rollback``

**Command.** The argv runs on the host (not in a sandbox: it is the owner's own program) with the
repository as working directory, stdin at end-of-file, and an environment holding only ``PATH``,
``HOME`` and ``LANG`` from shipyard's environment plus the variables above. Exit status 0 is a
successful step; anything else fails it, and the last lines of its output (stderr and stdout,
interleaved) are kept as the reason. After ``timeout_seconds`` the command's whole process group
gets SIGTERM, and SIGKILL five seconds later (a program that calls ``setsid`` to leave the group
escapes this). Background processes it leaves behind after exiting on its own are not touched:
they may be what it deployed.

**Webhook.** One ``POST`` per step with the JSON object above (UTF-8, compact) and the headers

- ``Content-Type: application/json``
- ``X-Shipyard-Event: rollout.deploy`` or ``rollout.rollback``
- ``X-Shipyard-Signature: sha256=<hex>``: HMAC-SHA256 of the exact body bytes, keyed with the
  secret in the host variable named by ``secret_env`` (``SHIPYARD_DEPLOY_SECRET``). Verify it over
  the raw body before parsing, with a constant-time comparison.
- ``Idempotency-Key: <run_id>:<action>:<stage>``: after a crash shipyard calls the same step
  again; a receiver that has seen the key must treat the call as the one it already handled.

A 2xx status is success; any other status (redirects are not followed), a timeout or a connection
error fails the step, with the status and the start of the response body as the reason. The
timeout bounds connecting, sending and each wait for the answer, and reading the body.

**Notifications.** ``notify`` sends a rollback notice to ``[rollout] notify_webhook`` the same way:
signed with the same scheme when a secret is given, ``X-Shipyard-Event`` naming the event, and an
``Idempotency-Key`` of ``<run_id>:<event>`` when the payload has a ``run_id``.

A failed step is a result (``HookResult.ok`` false, with the reason), never an exception: the
runner decides what a failed deploy means. Only a misconfiguration raises DeployError.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from shipyard.config import DeployConfig
from shipyard.errors import DeployError
from shipyard.redaction import MASK, redact_text

logger = logging.getLogger(__name__)

_HOST_VARIABLES = ("PATH", "HOME", "LANG")
_TAIL_BYTES = 8192
_TAIL_LINES = 3
_DETAIL_CHARS = 400
_BODY_BYTES = 4096
_GRACE_SECONDS = 5.0


@dataclass(frozen=True, kw_only=True)
class StageCall:
    """One step of a rollout, as the deploy hook is told it."""

    run_id: str
    repo: Path
    target: str
    """The branch the change was merged into."""
    commit: str
    """The merge commit being rolled out."""
    previous_commit: str
    """The target's commit before the merge: what a rollback returns to."""
    stage: int
    """1-based stage number; 0 for a rollback."""
    percent: float
    """Share of traffic for this stage; 0 for a rollback."""
    action: Literal["deploy", "rollback"]

    def fields(self) -> dict[str, object]:
        """The step as the webhook's JSON object."""
        return {
            "run_id": self.run_id,
            "repo": str(self.repo),
            "target": self.target,
            "commit": self.commit,
            "previous_commit": self.previous_commit,
            "stage": self.stage,
            "percent": self.percent,
            "action": self.action,
        }

    def environment(self) -> dict[str, str]:
        """The step as the command's ``SHIPYARD_*`` variables."""
        return {
            "SHIPYARD_RUN_ID": self.run_id,
            "SHIPYARD_REPO": str(self.repo),
            "SHIPYARD_TARGET": self.target,
            "SHIPYARD_COMMIT": self.commit,
            "SHIPYARD_PREVIOUS_COMMIT": self.previous_commit,
            "SHIPYARD_STAGE": str(self.stage),
            "SHIPYARD_PERCENT": f"{self.percent:g}",
            "SHIPYARD_ACTION": self.action,
            "SHIPYARD_IDEMPOTENCY_KEY": self.idempotency_key,
        }

    @property
    def idempotency_key(self) -> str:
        """The same for a step called again after a crash: a receiver treats it as one call."""
        return f"{self.run_id}:{self.action}:{self.stage}"


@dataclass(frozen=True, kw_only=True)
class HookResult:
    """What one call of a hook came to."""

    ok: bool
    detail: str
    """One line: what happened (exit code or HTTP status, the tail of the output)."""
    seconds: float


class DeployHook(Protocol):
    """Tells the deployment about a rollout step; a failed deploy is a result, never an exception."""

    description: str
    """How the hook is shown: ``command ./deploy.sh``, ``webhook https://host/path``, ``none``."""

    def call(self, stage: StageCall) -> HookResult: ...


class NoHook:
    """No deploy configured: every stage only watches the health signal."""

    description = "none"

    def call(self, stage: StageCall) -> HookResult:
        return HookResult(ok=True, detail="no deploy hook configured", seconds=0.0)


class CommandHook:
    """The owner's command, run on the host from the repository root; exit 0 is success."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        repo: Path,
        timeout: float,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not argv:
            raise DeployError("the deploy command is empty; give the program and its arguments.")
        self.argv = list(argv)
        self.repo = repo
        self.timeout = timeout
        host = os.environ if environ is None else environ
        self.base_env = {name: host[name] for name in _HOST_VARIABLES if name in host}
        self.base_env.setdefault("PATH", os.defpath)
        self.description = redact_text(f"command {shlex.join(self.argv)}")

    def call(self, stage: StageCall) -> HookResult:
        started = time.monotonic()
        env = {**self.base_env, **stage.environment()}
        # Output goes to a file, not a pipe: a background process the command leaves running would
        # hold a pipe open and make a finished deploy look hung.
        with tempfile.TemporaryFile() as output:
            try:
                process = subprocess.Popen(
                    self.argv,
                    cwd=self.repo,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, killed whole on timeout
                )
            except OSError as exc:
                reason = exc.strerror or str(exc)
                return HookResult(
                    ok=False,
                    detail=f"cannot run {self.argv[0]!r} in {self.repo}: {reason}; check "
                    "[rollout.deploy] command (a relative path starts from the repository root)",
                    seconds=time.monotonic() - started,
                )
            try:
                code = process.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                tail = _tail(output)
                return HookResult(
                    ok=False,
                    detail=_one_line(
                        f"timed out after {self.timeout:g} s; killed its process group", tail
                    ),
                    seconds=time.monotonic() - started,
                )
            tail = _tail(output)
        status = f"exit {code}" if code >= 0 else f"killed by signal {-code}"
        return HookResult(
            ok=code == 0, detail=_one_line(status, tail), seconds=time.monotonic() - started
        )


class WebhookHook:
    """A URL that receives each step as a signed JSON POST; a 2xx answer is success."""

    def __init__(self, url: str, *, secret: str, timeout: float) -> None:
        _check_url(url, "[rollout.deploy] webhook")
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.description = f"webhook {masked_url(url)}"

    def call(self, stage: StageCall) -> HookResult:
        return _post(
            self.url,
            payload=stage.fields(),
            event=f"rollout.{stage.action}",
            secret=self.secret,
            idempotency_key=f"{stage.run_id}:{stage.action}:{stage.stage}",
            timeout=self.timeout,
        )


def deploy_hook(
    config: DeployConfig, *, repo: Path, environ: Mapping[str, str] | None = None
) -> DeployHook:
    """The hook ``config`` describes; DeployError if the webhook's secret variable is unset."""
    host = os.environ if environ is None else environ
    if config.command:
        return CommandHook(config.command, repo=repo, timeout=config.timeout_seconds, environ=host)
    if config.webhook:
        secret = host.get(config.secret_env, "")
        if not secret:
            raise DeployError(
                f"the deploy webhook needs its signing key in the environment variable "
                f"{config.secret_env}, which is unset or empty; export it where shipyard runs, "
                "or name another variable in [rollout.deploy] secret_env."
            )
        return WebhookHook(config.webhook, secret=secret, timeout=config.timeout_seconds)
    return NoHook()


def notify(
    url: str,
    *,
    secret: str | None,
    event: str,
    payload: dict[str, object],
    timeout: float = 10,
) -> HookResult:
    """POST ``payload`` to ``url`` as ``event``, signed when ``secret`` is given; never raises."""
    try:
        _check_url(url, "[rollout] notify_webhook")
    except DeployError as exc:
        return HookResult(ok=False, detail=str(exc), seconds=0.0)
    run_id = payload.get("run_id")
    return _post(
        url,
        payload=payload,
        event=event,
        secret=secret,
        idempotency_key=f"{run_id}:{event}" if run_id is not None else None,
        timeout=timeout,
    )


def sign(body: bytes, secret: str) -> str:
    """The ``X-Shipyard-Signature`` value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def masked_url(url: str) -> str:
    """``url`` with its user, password and query values replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = "&".join(
        f"{key}={MASK}" if sep else key
        for key, sep, _ in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# --- internals -----------------------------------------------------------------------------------


def _post(
    url: str,
    *,
    payload: Mapping[str, object],
    event: str,
    secret: str | None,
    idempotency_key: str | None,
    timeout: float,
) -> HookResult:
    started = time.monotonic()
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    headers = {"Content-Type": "application/json", "X-Shipyard-Event": event}
    if secret:
        headers["X-Shipyard-Signature"] = sign(body, secret)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key

    def result(ok: bool, detail: str) -> HookResult:
        clean = redact_text(detail.replace(url, masked_url(url)))
        return HookResult(ok=ok, detail=clean, seconds=time.monotonic() - started)

    try:
        # trust_env=False: the URL named in the config is called, not one via proxy variables.
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            answer = _read_some(response, deadline=started + timeout)
    except httpx.TimeoutException:
        return result(False, f"no answer within {timeout:g} s from {masked_url(url)}")
    except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:  # UnicodeError: a header
        return result(False, f"cannot reach {masked_url(url)}: {exc or type(exc).__name__}")
    status = response.status_code
    if response.is_redirect:
        location = masked_url(response.headers.get("location", "?"))
        return result(
            False, f"HTTP {status}: redirect to {location} not followed; configure the final URL"
        )
    return result(response.is_success, _one_line(f"HTTP {status}", answer, first=True))


def _read_some(response: httpx.Response, *, deadline: float) -> str:
    """The start of the body; a body that trickles past the deadline is a timeout."""
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= _BODY_BYTES:
            break
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the body took too long", request=response.request)
    return data[:_BODY_BYTES].decode("utf-8", "replace")


def _check_url(url: str, setting: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeployError(
            f"{setting} {masked_url(url)!r} is not an http(s) URL; give a full address such as "
            "https://deploy.example.com/hooks/shipyard."
        )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the command's process group, SIGKILL to whatever is left after a grace period."""
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_SECONDS
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, so only the rest of the group keeps it alive
        if not _signal_group(process.pid, 0):
            break
        time.sleep(0.05)
    _signal_group(process.pid, signal.SIGKILL)
    process.kill()  # in case it left its group: the wait below must not outlast the deploy
    process.wait()


def _signal_group(group: int, signum: int) -> bool:
    """Send ``signum`` to process group ``group``; False when no process is left in it."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


def _tail(output: IO[bytes]) -> str:
    output.seek(0, os.SEEK_END)
    size = output.tell()
    output.seek(max(0, size - _TAIL_BYTES))
    return output.read().decode("utf-8", "replace")


def _one_line(status: str, text: str, *, first: bool = False) -> str:
    """``status`` and the last (or first) non-empty lines of ``text``, on one bounded line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = lines[:_TAIL_LINES] if first else lines[-_TAIL_LINES:]
    detail = f"{status}: {' | '.join(lines)}" if lines else status
    detail = redact_text(detail)
    return detail if len(detail) <= _DETAIL_CHARS else detail[: _DETAIL_CHARS - 1] + "…"


__all__ = [
    "CommandHook",
    "DeployHook",
    "HookResult",
    "NoHook",
    "StageCall",
    "WebhookHook",
    "deploy_hook",
    "masked_url",
    "notify",
    "sign",
]
