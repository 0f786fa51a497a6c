"""A real Prometheus scraping a tiny service whose error rate the test sets.

``prometheus_server`` (session fixture) starts ``/usr/bin/prometheus`` on a free loopback port,
scraping a :class:`TestService` every second; that takes about 6 s, as Prometheus 2.x applies its
scrape targets only after 5 s. ``prometheus`` (per test) hands the same server over with the error
rate reset to 0 %. Earlier tests' rates stay in its history: windows in the past should start at
``prometheus.quiet_since``. Tests that use it are slow and share the "prometheus" xdist group:
``pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("prometheus")]``.
"""

from __future__ import annotations

import contextlib
import math
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

PROMETHEUS = Path("/usr/bin/prometheus")
HOST = "127.0.0.1"
ERROR_RATE_QUERY = "sum(rate(app_errors_total[5s])) / sum(rate(app_requests_total[5s])) * 100"
"""The service's error rate in percent; follows ``set_error_percent`` within about 6 s."""

REQUESTS_PER_SCRAPE = 1000
START_TIMEOUT = 30.0


class TestService:
    """Serves ``/metrics`` whose counters advance per scrape, at the error rate the test sets."""

    __test__ = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._percent = 0.0
        self.changed_at = 0.0
        """Unix time of the last change of the error percentage."""
        self.requests = 0.0
        self.errors = 0.0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/set?error_percent="):
                    # For deploy hooks in end-to-end tests: a release that changes the error rate.
                    service.set_error_percent(float(self.path.split("=", 1)[1]))
                    self.send_response(204)
                    self.end_headers()
                    return
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = service._scrape().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)  # Prometheus may give up on a scrape at shutdown

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{HOST}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def set_error_percent(self, p: float) -> None:
        """From the next scrape on, ``p`` % of the requests counted are errors."""
        if not 0 <= p <= 100:
            raise ValueError(f"an error percentage is between 0 and 100, not {p}")
        with self._lock:
            if p != self._percent:
                self._percent = p
                self.changed_at = time.time()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _scrape(self) -> str:
        with self._lock:
            self.requests += REQUESTS_PER_SCRAPE
            self.errors += self._percent * REQUESTS_PER_SCRAPE / 100
            return (
                "# HELP app_requests_total Requests served.\n"
                "# TYPE app_requests_total counter\n"
                f"app_requests_total {self.requests!r}\n"
                "# HELP app_errors_total Requests that failed.\n"
                "# TYPE app_errors_total counter\n"
                f"app_errors_total {self.errors!r}\n"
            )


class PrometheusServer:
    """A Prometheus process of our own, scraping ``service`` every second."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, service: TestService, log: Path):
        self.proc = proc
        self.url = url
        self.service = service
        self.log = log
        self.startup_seconds = 0.0
        """From starting the process to ERROR_RATE_QUERY having a value."""
        self.quiet_since = 0.0
        """Unix time from which ERROR_RATE_QUERY has read 0 (kept up to date by :meth:`reset`)."""

    @classmethod
    def start(cls, workdir: Path, service: TestService) -> PrometheusServer:
        """Start Prometheus and wait until ERROR_RATE_QUERY has a value."""
        started = time.monotonic()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: app\n    static_configs:\n"
            f"      - targets: ['{service.url.removeprefix('http://')}']\n"
        )
        for attempt in range(3):
            server = cls._spawn(workdir, config, service)
            try:
                server._wait_ready()
                break
            except AssertionError:
                server.stop()
                # The free port was taken before Prometheus bound it: try another one.
                if attempt == 2 or "address already in use" not in server._log_tail():
                    raise
        try:
            server.wait_for_value("up", lambda v: v == 1)
            server.wait_for_value(ERROR_RATE_QUERY, math.isfinite)
        except BaseException:
            server.stop()
            raise
        server.startup_seconds = time.monotonic() - started
        server.quiet_since = time.time()
        return server

    @classmethod
    def _spawn(cls, workdir: Path, config: Path, service: TestService) -> PrometheusServer:
        port = _free_port()
        argv = [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            "--log.level=warn",
        ]
        log = workdir / "prometheus.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        return cls(proc, f"http://{HOST}:{port}", service, log)

    def reset(self) -> None:
        """Error rate 0 %, waiting (about 6 s) only if it was changed since it last read 0."""
        if self.service.changed_at < self.quiet_since:
            return
        self.service.set_error_percent(0)
        self.wait_for_value(ERROR_RATE_QUERY, lambda v: v == 0)
        self.quiet_since = time.time()

    def value(self, query: str) -> float | None:
        """The query's one value now, or None when it has no (single) value yet."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=5)
        body = response.json()
        if body["status"] != "success":
            raise AssertionError(f"Prometheus refused {query!r}: {body}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return float(data["result"][1])
        if len(data["result"]) != 1:
            return None
        return float(data["result"][0]["value"][1])

    def wait_for_value(
        self, query: str, predicate: Callable[[float], bool], timeout: float = START_TIMEOUT
    ) -> float:
        """Poll until ``query`` has one value satisfying ``predicate``; return it."""
        deadline = time.monotonic() + timeout
        last: float | None = None
        while True:
            self._check_alive()
            with contextlib.suppress(httpx.TransportError):
                last = self.value(query)
                if last is not None and predicate(last):
                    return last
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{query!r} did not reach the expected value within {timeout} s "
                    f"(last: {last}); Prometheus log:\n{self._log_tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop Prometheus and wait for it, so no process outlives the test."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self._check_alive()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/-/ready").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus was not ready within {START_TIMEOUT} s")
            time.sleep(0.05)

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"Prometheus exited with status {self.proc.returncode}:\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One real Prometheus per test session (per xdist worker), scraping one TestService."""
    if not PROMETHEUS.exists():
        pytest.skip("prometheus is not installed (make setup installs the Debian package)")
    service = TestService()
    try:
        server = PrometheusServer.start(tmp_path_factory.mktemp("prometheus"), service)
        try:
            yield server
        finally:
            server.stop()
    finally:
        service.close()


@pytest.fixture
def prometheus(prometheus_server: PrometheusServer) -> PrometheusServer:
    """The session's Prometheus with the service's error rate back at 0 %."""
    prometheus_server.reset()
    return prometheus_server
