"""Health sources against a real Prometheus and real commands."""

from __future__ import annotations

import base64
import math
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shipyard.config import HealthConfig
from shipyard.errors import HealthSourceError
from shipyard.rollout.health import CommandSource, PrometheusSource, health_source
from tests.rollout.conftest import ERROR_RATE_QUERY, HOST, PrometheusServer

slow_prometheus = [pytest.mark.slow, pytest.mark.xdist_group("prometheus")]
TWO_SERIES = '{__name__=~"app_.*_total"}'
DAY = 86400


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Redirector:
    """Answers every request with a redirect to ``target`` + path, and remembers what it got."""

    def __init__(self, target: str) -> None:
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.headers.append(dict(self.headers))
                self.send_response(307)
                self.send_header("Location", target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def redirect_to() -> Iterator[Any]:
    started: list[Redirector] = []

    def start(target: str) -> Redirector:
        started.append(Redirector(target))
        return started[-1]

    yield start
    for redirector in started:
        redirector.close()


# --- Prometheus --------------------------------------------------------------------------------


class TestPrometheusReadings:
    pytestmark = slow_prometheus

    def test_read_follows_the_error_rate_and_honours_now(
        self, prometheus: PrometheusServer
    ) -> None:
        source = PrometheusSource(prometheus.url, ERROR_RATE_QUERY, timeout=5)
        assert source.read(now=time.time()) == pytest.approx(0, abs=0.01)
        before = time.time()
        time.sleep(0.2)  # a scrape already under way at `before` still counts 0 %
        prometheus.service.set_error_percent(7)
        prometheus.wait_for_value(ERROR_RATE_QUERY, lambda v: abs(v - 7) < 0.01)

        assert source.read(now=time.time()) == pytest.approx(7, abs=0.1)
        assert source.read(now=before) == pytest.approx(0, abs=0.01)

    def test_baseline_averages_every_point_of_a_past_window(
        self, prometheus: PrometheusServer
    ) -> None:
        source = PrometheusSource(prometheus.url, ERROR_RATE_QUERY, timeout=5)
        quiet_from = time.time()
        time.sleep(2)
        quiet_to = time.time()
        time.sleep(0.2)
        prometheus.service.set_error_percent(10)
        prometheus.wait_for_value(ERROR_RATE_QUERY, lambda v: abs(v - 10) < 0.01)
        high_from = time.time()
        time.sleep(2)
        high_to = float(math.floor(time.time()))

        assert source.baseline(start=quiet_from, end=quiet_to) == pytest.approx(0, abs=0.01)
        assert source.baseline(start=high_from, end=high_to) == pytest.approx(10, abs=0.1)
        # Neither end's value: the points in between are averaged.
        assert 1 < source.baseline(start=quiet_from, end=high_to) < 9
        # 30 days at one point a second would exceed Prometheus's 11,000 points per series; the
        # step grows instead, and the last point falls on `end`.
        month = source.baseline(start=high_to - 30 * DAY, end=high_to)
        assert month == pytest.approx(10, abs=0.1)

    def test_a_baseline_skips_points_without_a_usable_value(
        self, prometheus_server: PrometheusServer
    ) -> None:
        # 0/0 (NaN) at even seconds, 5 at odd ones: a window with no traffic half the time.
        query = "(vector(time() % 2) * 5) / vector(time() % 2)"
        source = PrometheusSource(prometheus_server.url, query, timeout=5)
        end = float(math.floor(time.time()))
        assert source.baseline(start=end - 20, end=end) == 5

    def test_scalar_results_are_read(self, prometheus_server: PrometheusServer) -> None:
        source = PrometheusSource(prometheus_server.url, "2.5", timeout=5)
        assert source.read(now=time.time()) == 2.5

    def test_credentials_go_in_a_header_and_same_host_redirects_are_followed(
        self, prometheus_server: PrometheusServer, redirect_to: Any
    ) -> None:
        redirector = redirect_to(prometheus_server.url)
        source = PrometheusSource(
            f"http://alice:s3cret@{HOST}:{redirector.port}", "vector(3)", timeout=5
        )
        assert source.read(now=time.time()) == 3
        assert "s3cret" not in source.description
        assert source.description == f"Prometheus http://{HOST}:{redirector.port}: vector(3)"
        auth = redirector.headers[0]["Authorization"]
        assert base64.b64decode(auth.removeprefix("Basic ")) == b"alice:s3cret"


class TestPrometheusErrors:
    pytestmark = slow_prometheus

    def test_a_promql_syntax_error_names_the_error_and_the_query(
        self, prometheus_server: PrometheusServer
    ) -> None:
        source = PrometheusSource(
            prometheus_server.url, "sum(rate(app_errors_total[5s])", timeout=5
        )
        with pytest.raises(HealthSourceError, match="check the query") as exc:
            source.read(now=time.time())
        assert "bad_data: " in str(exc.value)
        assert "parse error" in str(exc.value)
        assert "sum(rate(app_errors_total[5s])" in str(exc.value)
        with pytest.raises(HealthSourceError, match="bad_data"):
            source.baseline(start=time.time() - 60, end=time.time())

    def test_a_query_without_series_says_there_is_no_data(
        self, prometheus_server: PrometheusServer
    ) -> None:
        source = PrometheusSource(
            prometheus_server.url, 'app_requests_total{job="other"}', timeout=5
        )
        for call in (
            lambda: source.read(now=time.time()),
            lambda: source.baseline(start=time.time() - 60, end=time.time()),
        ):
            with pytest.raises(HealthSourceError, match="returned no data") as exc:
                call()
            assert "check the metric names" in str(exc.value)
            assert "scrapes the service" in str(exc.value)

    def test_a_query_with_two_series_says_to_aggregate(
        self, prometheus_server: PrometheusServer
    ) -> None:
        source = PrometheusSource(prometheus_server.url, TWO_SERIES, timeout=5)
        for call in (
            lambda: source.read(now=time.time()),
            lambda: source.baseline(start=time.time() - 60, end=time.time()),
        ):
            with pytest.raises(HealthSourceError, match="returns 2 series") as exc:
                call()
            assert "sum() or avg()" in str(exc.value)
            assert "app_errors_total{" in str(exc.value)
            assert "app_requests_total{" in str(exc.value)

    @pytest.mark.parametrize(("query", "shown"), [("0/0", "NaN"), ("1/0", "+Inf")])
    def test_nan_and_infinity_are_no_usable_value(
        self, prometheus_server: PrometheusServer, query: str, shown: str
    ) -> None:
        source = PrometheusSource(prometheus_server.url, query, timeout=5)
        with pytest.raises(HealthSourceError, match=re.escape(f"no usable value ({shown})")):
            source.read(now=time.time())

    def test_a_baseline_without_one_usable_point_is_no_usable_value(
        self, prometheus_server: PrometheusServer
    ) -> None:
        source = PrometheusSource(prometheus_server.url, "vector(0) / vector(0)", timeout=5)
        with pytest.raises(HealthSourceError, match=r"no usable value \(NaN\) anywhere in"):
            source.baseline(start=time.time() - 10, end=time.time())

    def test_a_string_result_is_not_a_number(self, prometheus_server: PrometheusServer) -> None:
        source = PrometheusSource(prometheus_server.url, '"hello"', timeout=5)
        with pytest.raises(HealthSourceError, match="returns a string, not a number"):
            source.read(now=time.time())

    def test_a_url_that_is_not_the_api_root_says_so(
        self, prometheus_server: PrometheusServer
    ) -> None:
        source = PrometheusSource(prometheus_server.url + "/api/v1", "up", timeout=5)
        with pytest.raises(HealthSourceError, match="answered HTTP 404") as exc:
            source.read(now=time.time())
        assert "(without /api/v1)" in str(exc.value)


def test_an_unreachable_prometheus_names_the_url_without_credentials() -> None:
    port = _free_port()
    source = PrometheusSource(f"http://alice:s3cret@{HOST}:{port}/", "up", timeout=2)
    started = time.monotonic()
    with pytest.raises(HealthSourceError) as exc:
        source.read(now=time.time())
    assert time.monotonic() - started < 2
    message = str(exc.value)
    assert message.startswith(f"cannot reach Prometheus at http://{HOST}:{port} (ConnectError")
    assert "check [rollout.health] prometheus_url" in message
    assert "s3cret" not in message
    assert "s3cret" not in source.description


def test_a_prometheus_that_does_not_answer_times_out() -> None:
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen()  # accepted by the kernel, never answered
        source = PrometheusSource(f"http://{HOST}:{listener.getsockname()[1]}", "up", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(HealthSourceError, match=r"cannot reach Prometheus .*ReadTimeout"):
            source.read(now=time.time())
        assert time.monotonic() - started < 2


def test_a_redirect_to_another_host_is_not_followed(redirect_to: Any) -> None:
    elsewhere = redirect_to(f"http://{HOST}:1")  # records anything that reaches it
    redirector = redirect_to(f"http://localhost:{elsewhere.port}")
    source = PrometheusSource(f"http://u:pw@{HOST}:{redirector.port}", "up", timeout=5)
    with pytest.raises(HealthSourceError, match=r"redirected to another host \(localhost\)"):
        source.read(now=time.time())
    assert len(redirector.headers) == 1
    assert elsewhere.headers == []


def test_a_url_without_http_scheme_is_refused() -> None:
    with pytest.raises(HealthSourceError, match=r"not an http\(s\) URL"):
        PrometheusSource("127.0.0.1:9090", "up", timeout=5)


# --- commands ----------------------------------------------------------------------------------


def _command(script: str, tmp_path: Path, timeout: float = 10) -> CommandSource:
    return CommandSource(["sh", "-c", script], cwd=tmp_path, timeout=timeout)


def test_a_command_reading_is_its_last_line_and_gets_the_time(tmp_path: Path) -> None:
    source = _command('echo "checking"; echo; echo "  $SHIPYARD_HEALTH_AT  "; echo', tmp_path)
    assert source.read(now=1_700_000_000.9) == 1_700_000_000


def test_a_command_baseline_gets_the_window(tmp_path: Path) -> None:
    source = _command('echo "$SHIPYARD_HEALTH_FROM"; echo "$SHIPYARD_HEALTH_TO" >&2', tmp_path)
    assert source.baseline(start=1_700_000_000, end=1_700_003_600) == 1_700_000_000
    source = _command('echo "$((SHIPYARD_HEALTH_TO - SHIPYARD_HEALTH_FROM))"', tmp_path)
    assert source.baseline(start=1_700_000_000, end=1_700_003_600) == 3600


def test_a_command_runs_from_cwd_with_a_minimal_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_DEPLOY_SECRET", "hunter2")
    script = tmp_path / "health.sh"
    script.write_text("#!/bin/sh\nenv > seen-env\necho 0.5\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    source = health_source(HealthConfig(command=["./health.sh"]), repo=tmp_path)

    assert source.read(now=time.time()) == 0.5
    seen = dict(line.split("=", 1) for line in (tmp_path / "seen-env").read_text().splitlines())
    assert "hunter2" not in (tmp_path / "seen-env").read_text()
    assert seen["PATH"] == os.environ["PATH"]
    assert "SHIPYARD_HEALTH_AT" in seen
    shell_own = {"PWD", "OLDPWD", "SHLVL", "_"}
    assert set(seen) - shell_own <= {"PATH", "HOME", "LANG", "SHIPYARD_HEALTH_AT"}


def test_a_failing_command_shows_its_status_and_stderr(tmp_path: Path) -> None:
    source = _command("echo 1.0; echo starting >&2; echo 'boom:   db down  ' >&2; exit 3", tmp_path)
    with pytest.raises(HealthSourceError, match="exited with status 3") as exc:
        source.read(now=time.time())
    assert "starting | boom: db down)" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_command_that_hangs_is_stopped_with_everything_it_started(tmp_path: Path) -> None:
    source = _command("sleep 5 & echo $! > sleeper; wait; echo 1", tmp_path, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(HealthSourceError, match=r"did not finish within 0\.5 s") as exc:
        source.read(now=time.time())
    assert time.monotonic() - started < 2
    assert "timeout_seconds" in str(exc.value)
    sleeper = int((tmp_path / "sleeper").read_text())
    assert _gone(sleeper), f"the command's child {sleeper} outlived it"


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):  # killed, waiting for init to reap it
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("echo 'error rate:   high'", r"printed 'error rate: high', not a number"),
        ("echo nan", r"no usable value \(nan\)"),
        ("echo -inf", r"no usable value \(-inf\)"),
        ("echo; echo '  '", "printed nothing"),
    ],
)
def test_a_command_without_a_finite_number_is_refused(
    tmp_path: Path, script: str, message: str
) -> None:
    with pytest.raises(HealthSourceError, match=message):
        _command(script, tmp_path).read(now=time.time())


def test_a_missing_or_unrunnable_command_says_so(tmp_path: Path) -> None:
    with pytest.raises(HealthSourceError, match=r"could not start \(No such file") as exc:
        CommandSource(["./missing.sh"], cwd=tmp_path, timeout=5).read(now=time.time())
    assert "./missing.sh" in str(exc.value)
    (tmp_path / "plain.sh").write_text("#!/bin/sh\necho 1\n")
    with pytest.raises(HealthSourceError, match=r"could not start \(Permission denied"):
        CommandSource(["./plain.sh"], cwd=tmp_path, timeout=5).read(now=time.time())


def test_command_descriptions_mask_credentials(tmp_path: Path) -> None:
    source = CommandSource(
        ["./check", "https://bob:pw123@metrics.example"], cwd=tmp_path, timeout=1
    )
    assert source.description.startswith("command ./check https://")
    assert "pw123" not in source.description


# --- choosing a source -------------------------------------------------------------------------


def test_health_source_builds_what_the_config_describes(tmp_path: Path) -> None:
    prometheus = health_source(
        HealthConfig(prometheus_url="http://127.0.0.1:9090", query="up", timeout_seconds=7),
        repo=tmp_path,
    )
    assert isinstance(prometheus, PrometheusSource)
    assert prometheus.timeout == 7
    assert prometheus.description == "Prometheus http://127.0.0.1:9090: up"
    command = health_source(HealthConfig(command=["./err.sh", "-v"]), repo=tmp_path)
    assert isinstance(command, CommandSource)
    assert command.cwd == tmp_path
    assert command.timeout == 30
    assert command.description == "command ./err.sh -v"


def test_health_source_without_configuration_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(HealthSourceError, match=r"set \[rollout.health\] prometheus_url and query"):
        health_source(HealthConfig(), repo=tmp_path)
