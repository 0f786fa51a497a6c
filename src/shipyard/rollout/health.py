"""Health sources: where a rollout reads its one number (an error rate in percent, by default).

Two kinds, both behind :class:`HealthSource`: a Prometheus query, or a command the repository owner
configured that prints the number. Every failure is a :class:`HealthSourceError` saying what to fix.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import subprocess
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from shipyard.config import HealthConfig
from shipyard.errors import HealthSourceError
from shipyard.redaction import redact_text

MAX_POINTS = 250
"""A baseline asks Prometheus for at most this many points (and at most one a second)."""

_HOST_ENV = ("PATH", "HOME", "LANG")
_STDERR_LINES = 3
_QUOTE_CHARS = 200
_DRAIN_SECONDS = 2.0


class HealthSource(Protocol):
    """One number describing the service's health, now or averaged over a past window."""

    description: str
    """What is read, for messages and events; never carries credentials."""

    def read(self, *, now: float) -> float:
        """The value at unix time ``now``; raises :class:`HealthSourceError`."""
        ...

    def baseline(self, *, start: float, end: float) -> float:
        """The average over ``[start, end]`` (unix times); raises :class:`HealthSourceError`."""
        ...


def health_source(config: HealthConfig, *, repo: Path) -> HealthSource:
    """The source ``[rollout.health]`` describes; commands run from the repository root ``repo``."""
    if config.command:
        return CommandSource(config.command, cwd=repo, timeout=config.timeout_seconds)
    if config.prometheus_url and config.query:
        return PrometheusSource(config.prometheus_url, config.query, timeout=config.timeout_seconds)
    raise HealthSourceError(
        "no health source is configured: set [rollout.health] prometheus_url and query, "
        "or command, in shipyard.toml"
    )


class PrometheusSource:
    """A PromQL expression that evaluates to exactly one series, read over the HTTP API."""

    def __init__(self, url: str, query: str, *, timeout: float) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HealthSourceError(
                f"prometheus_url {redact_text(url)!r} is not an http(s) URL; set [rollout.health] "
                "prometheus_url to the server's base URL, e.g. http://127.0.0.1:9090"
            )
        # Credentials go in an auth header, never in the URL: httpx logs request URLs.
        self._auth = None
        if parts.username is not None or parts.password is not None:
            self._auth = httpx.BasicAuth(
                unquote(parts.username or ""), unquote(parts.password or "")
            )
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self.url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        self._host = parts.hostname
        self.query = query
        self.timeout = timeout
        self.description = f"Prometheus {self.url}: {query}"

    def read(self, *, now: float) -> float:
        data = self._get("query", {"query": self.query, "time": _num(now)})
        kind, when = data.get("resultType"), f"at {_iso(now)}"
        with self._unexpected():
            if kind == "scalar":
                return self._finite(data["result"][1], when)
            if kind == "vector":
                return self._finite(self._one(data["result"])["value"][1], when)
        raise self._error(f"returns a {kind}, not a number; make it an instant vector or scalar")

    def baseline(self, *, start: float, end: float) -> float:
        if end <= start:
            raise ValueError(f"a baseline window must end after it starts ({start} .. {end})")
        step = max(1.0, (end - start) / MAX_POINTS)
        params = {"query": self.query, "start": _num(start), "end": _num(end), "step": _num(step)}
        data = self._get("query_range", params)
        with self._unexpected():
            points = [float(value) for _, value in self._one(data["result"])["values"]]
        # Points without traffic (0/0) say nothing about the error rate; average the others.
        usable = [p for p in points if math.isfinite(p)]
        if not usable:
            raise self._unusable("NaN", f"anywhere in {_iso(start)} .. {_iso(end)}")
        return sum(usable) / len(usable)

    def _get(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        api = f"{self.url}/api/v1/{endpoint}"
        try:
            # trust_env=False: talk to the Prometheus named in the config, not via proxy variables.
            with httpx.Client(
                timeout=self.timeout,
                auth=self._auth,
                follow_redirects=True,
                trust_env=False,
                event_hooks={"request": [self._same_host]},
            ) as client:
                response = client.get(api, params=params)
        except httpx.HTTPError as exc:
            raise HealthSourceError(
                f"cannot reach Prometheus at {self.url} ({type(exc).__name__}: {_clip(str(exc))}); "
                "check [rollout.health] prometheus_url and that Prometheus is running"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "error":
            raise self._error(
                f"was rejected ({body.get('errorType')}: {_clip(str(body.get('error')))}); "
                "check the query"
            )
        if response.status_code >= 400 or not isinstance(body, dict) or "data" not in body:
            raise HealthSourceError(
                f"Prometheus at {self.url} answered HTTP {response.status_code} to /api/v1/"
                f"{endpoint} without an API response; check that [rollout.health] prometheus_url "
                "is the Prometheus server's base URL (without /api/v1)"
            )
        data: dict[str, Any] = body["data"]
        return data

    def _same_host(self, request: httpx.Request) -> None:
        # A redirect elsewhere would take the query (and credentials) to a server nobody configured.
        if request.url.host != self._host:
            raise HealthSourceError(
                f"Prometheus at {self.url} redirected to another host ({request.url.host}); "
                "set [rollout.health] prometheus_url to the server's own address"
            )

    def _one(self, series: list[dict[str, Any]]) -> dict[str, Any]:
        if not series:
            raise self._error(
                "returned no data; check the metric names and that Prometheus scrapes the service"
            )
        if len(series) > 1:
            labels = ", ".join(_labels(s.get("metric", {})) for s in series[:3])
            more = ", ..." if len(series) > 3 else ""
            raise self._error(
                f"returns {len(series)} series ({labels}{more}), not one; "
                "aggregate them with sum() or avg()"
            )
        return series[0]

    def _finite(self, raw: str, when: str) -> float:
        value = float(raw)
        if not math.isfinite(value):
            raise self._unusable(raw, when)
        return value

    def _unusable(self, raw: str, when: str) -> HealthSourceError:
        return self._error(
            f"gave no usable value ({raw}) {when}; a ratio is NaN or infinite when its "
            "denominator is 0 (no traffic?): make the query return a number then"
        )

    @contextlib.contextmanager
    def _unexpected(self) -> Iterator[None]:
        try:
            yield
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise HealthSourceError(
                f"Prometheus at {self.url} answered with data of an unexpected shape "
                f"({type(exc).__name__}: {_clip(str(exc))}); check that prometheus_url names a "
                "Prometheus server (or a compatible API)"
            ) from exc

    def _error(self, what: str) -> HealthSourceError:
        return HealthSourceError(f"the Prometheus query {self.query!r} at {self.url} {what}")


class CommandSource:
    """A command run on the host that prints the value as its last line of output."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, timeout: float) -> None:
        if not argv:
            raise ValueError("a health command needs at least the program to run")
        self.argv = list(argv)
        self.cwd = cwd
        self.timeout = timeout
        self.description = redact_text(f"command {shlex.join(self.argv)}")

    def read(self, *, now: float) -> float:
        return self._run({"SHIPYARD_HEALTH_AT": str(int(now))})

    def baseline(self, *, start: float, end: float) -> float:
        if end <= start:
            raise ValueError(f"a baseline window must end after it starts ({start} .. {end})")
        return self._run(
            {"SHIPYARD_HEALTH_FROM": str(int(start)), "SHIPYARD_HEALTH_TO": str(int(end))}
        )

    def _run(self, extra: dict[str, str]) -> float:
        env = {k: os.environ[k] for k in _HOST_ENV if k in os.environ} | extra
        where = f"the health {self.description} (run from {self.cwd})"
        try:
            proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:  # missing, not executable, no #! line, no such cwd
            raise HealthSourceError(
                f"{where} could not start ({exc.strerror}: {exc.filename}); check [rollout.health] "
                "command: the program must exist and be executable (or name its interpreter first)"
            ) from exc
        with proc:
            try:
                out, err = proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _stop(proc)
                raise HealthSourceError(
                    f"{where} did not finish within {self.timeout:g} s and was stopped; make it "
                    "faster or raise [rollout.health] timeout_seconds"
                ) from None
        if proc.returncode != 0:
            tail = " | ".join(_clip(line) for line in _lines(err)[-_STDERR_LINES:]) or "no stderr"
            status = (
                f"was killed by {signal.Signals(-proc.returncode).name}"
                if proc.returncode < 0
                else f"exited with status {proc.returncode}"
            )
            raise HealthSourceError(f"{where} {status} ({tail}); run it by hand to see why")
        lines = _lines(out)
        if not lines:
            raise HealthSourceError(f"{where} printed nothing; it must print one number, e.g. 0.42")
        try:
            value = float(lines[-1])
        except ValueError:
            raise HealthSourceError(
                f"{where} printed {_clip(lines[-1])!r}, not a number; its last line of output "
                "must be one number, e.g. 0.42"
            ) from None
        if not math.isfinite(value):
            raise HealthSourceError(
                f"{where} gave no usable value ({lines[-1]}); it must print a finite number, "
                "e.g. 0 when there was no traffic"
            )
        return value


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # The command leads its own session: killing the group takes down what it started too, which
    # frees the pipes. Not yet reaped, so its pid cannot have been reused.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    # Something that left the group may still hold a pipe: stop waiting on it after a moment.
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=_DRAIN_SECONDS)


def _lines(output: bytes) -> list[str]:
    return [s for line in output.decode(errors="replace").splitlines() if (s := line.strip())]


def _clip(text: str) -> str:
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 3] + "..."


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _labels(metric: dict[str, str]) -> str:
    name = metric.get("__name__", "")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{inner}}}"
