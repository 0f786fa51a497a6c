"""Egress through the host proxy: what gets through, what is refused, and that every attempt is recorded.

The first half talks to the proxy's unix socket directly from the host (parsing edge cases); the second
half runs real clients (python urllib, curl) inside bubblewrap through the forwarder.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shipyard.errors import ConfigError
from shipyard.sandbox import BwrapSandbox, Limits
from shipyard.sandbox.egress import FORWARDER, EgressProxy, Grant, _non_public, run_with_egress
from tests.conftest import needs_bwrap

BODY = b"hello from the host\n"
BIG = bytes(range(256)) * 20_000  # 5 MB


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer(BIG if self.path == "/big" else BODY)

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer(b"got " + body)

    def _answer(self, body: bytes) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers.items())))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[tuple[str, str, dict[str, str]]]


@pytest.fixture
def web() -> Iterator[_Server]:
    """A real HTTP server on the host's loopback; ``seen`` lists the requests that reached it."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def echo() -> Iterator[int]:
    """A raw TCP echo server on the host's loopback; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conns.append(conn)
            threads.append(threading.Thread(target=serve, args=(conn,), daemon=True))
            threads[-1].start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    yield listener.getsockname()[1]
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    acceptor.join(timeout=5)
    for conn in conns:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()
    for thread in threads:
        thread.join(timeout=5)


def port_of(server: _Server) -> int:
    return int(server.server_address[1])


def ask(proxy: EgressProxy, raw: bytes, *, then: bytes = b"") -> bytes:
    """Send ``raw`` to the proxy's unix socket (and ``then`` after the reply head); read to EOF."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(proxy.socket_path))
        if raw:
            sock.sendall(raw)
        reply = bytearray()
        if then:
            while b"\r\n\r\n" not in reply:
                reply += sock.recv(4096)
            sock.sendall(then)
            sock.shutdown(socket.SHUT_WR)
        while data := sock.recv(4096):
            reply += data
        return bytes(reply)


# --- Grant -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("pypi.org:443", "pypi.org", 443),
        ("Files.PythonHosted.org.:443", "files.pythonhosted.org", 443),
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("[::1]:8080", "::1", 8080),
        ("[0:0:0:0:0:0:0:1]:80", "::1", 80),
    ],
)
def test_grant_parse_normalises(text: str, host: str, port: int) -> None:
    assert Grant.parse(text) == Grant(host, port)
    assert Grant.parse(str(Grant.parse(text))) == Grant.parse(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pypi.org", "a port is required"),
        ("pypi.org:", "is not a number"),
        ("pypi.org:https", "is not a number"),
        ("pypi.org:70000", "outside 1-65535"),
        ("pypi.org:0", "outside 1-65535"),
        ("https://pypi.org:443", "no scheme or path"),
        ("pypi.org:443/simple", "no scheme or path"),
        ("user:pw@pypi.org:443", "userinfo"),
        ("*.pypi.org:443", "wildcards"),
        ("::1:8080", "must be in brackets"),
        ("[::1:8080", "unterminated"),
        ("[fe80::1%eth0]:80", "zone"),
        ("2130706433:80", "non-canonical numeric"),
        ("0x7f.0.0.1:80", "non-canonical numeric"),
        ("127.1:80", "non-canonical numeric"),
        ("0177.0.0.1:80", "non-canonical numeric"),
        ("bücher.de:443", "punycode"),
        ("exa mple.com:80", "not a valid host name"),
        (":80", "host is empty"),
    ],
)
def test_grant_parse_rejects_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT") as info:
        Grant.parse(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_grant_constructed_directly_is_validated() -> None:
    assert Grant("Example.COM", 443).host == "example.com"
    with pytest.raises(ConfigError, match="port"):
        Grant("example.com", 0)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.53", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata endpoints live here
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-public"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_which_resolved_addresses_a_granted_name_may_use(address: str, kind: str | None) -> None:
    assert _non_public(ipaddress.ip_address(address)) == kind


# --- the proxy, from the host ------------------------------------------------------------------


def test_granted_request_is_relayed_in_origin_form_without_proxy_headers(web: _Server) -> None:
    port = port_of(web)
    with EgressProxy([Grant("127.0.0.1", port)]) as proxy:
        reply = ask(
            proxy,
            f"GET http://127.0.0.1:{port}/simple/?q=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\n"
            "Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nX-Keep: 2\r\n\r\n".encode(),
        )
    assert reply.startswith(b"HTTP/1.0 200")
    assert reply.endswith(BODY)
    [(method, path, headers)] = web.seen
    assert (method, path) == ("GET", "/simple/?q=1")
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["connection"] == "close"
    assert lowered["x-keep"] == "2"
    assert not {"proxy-authorization", "proxy-connection", "x-drop"} & set(lowered)
    [event] = proxy.events
    assert event == {
        "type": "egress.allowed",
        "host": "127.0.0.1",
        "port": port,
        "method": "GET",
        "reason": "granted",
        "address": "127.0.0.1",
        "local": True,
        "request": f"GET http://127.0.0.1:{port}/simple/?q=1 HTTP/1.1",
    }


def test_large_responses_arrive_intact(web: _Server) -> None:
    port = port_of(web)
    with EgressProxy([Grant("127.0.0.1", port)]) as proxy:
        reply = ask(
            proxy,
            f"GET http://127.0.0.1:{port}/big HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode(),
        )
    assert reply.split(b"\r\n\r\n", 1)[1] == BIG


@pytest.mark.parametrize("chunked", [False, True])
def test_request_bodies_are_relayed(web: _Server, chunked: bool) -> None:
    port = port_of(web)
    framing = (
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        if chunked
        else "Content-Length: 11\r\nExpect: 100-continue\r\n\r\nhello world"
    )
    with EgressProxy([Grant("127.0.0.1", port)]) as proxy:
        reply = ask(
            proxy,
            f"POST http://127.0.0.1:{port}/up HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{framing}".encode(),
        )
    assert reply.endswith(b"got hello world")
    assert [e["type"] for e in proxy.events] == ["egress.allowed"]


DENIALS = [
    # (request, status, reason), {P} is the granted port, {Q} an ungranted one
    ("GET http://127.0.0.1:{Q}/ HTTP/1.1\r\nHost: 127.0.0.1:{Q}", 403, "is not granted"),
    ("GET http://127.0.0.1:{P}/ HTTP/1.1\r\nHost: evil.example", 400, "does not match"),
    ("GET http://127.0.0.1:{P}/ HTTP/1.1\r\nHost: 127.0.0.1:{Q}", 400, "does not match"),
    ("GET http://127.0.0.1:{P}/ HTTP/1.1", 400, "missing Host"),
    (
        "GET http://127.0.0.1:{P}/ HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\nHost: evil.example",
        400,
        "multiple Host",
    ),
    ("GET http://u:p@127.0.0.1:{P}/ HTTP/1.1\r\nHost: 127.0.0.1:{P}", 400, "userinfo"),
    ("GET http://127.0.0.1:{P}/\nX HTTP/1.1\r\nHost: 127.0.0.1:{P}", 400, "bare CR or LF"),
    ("GET http://127.0.0.1:{P}/ HTTP/1.1\r\nHost: 127.0.0.1:{P}\rX: y", 400, "bare CR or LF"),
    ("GET http://127.0.0.1:{P}/%0d%0a HTTP/1.1 x\r\nHost: 127.0.0.1:{P}", 400, "request line"),
    ("GET http://[::1]:{P}/ HTTP/1.1\r\nHost: [::1]:{P}", 403, "is not granted"),
    (
        "GET http://[::ffff:127.0.0.1]:{P}/ HTTP/1.1\r\nHost: [::ffff:127.0.0.1]:{P}",
        403,
        "is not granted",
    ),
    ("GET http://127.0.0.1:{P}@evil.example/ HTTP/1.1\r\nHost: evil.example", 400, "userinfo"),
    ("GET http://evil.example#@127.0.0.1:{P}/ HTTP/1.1\r\nHost: evil.example", 400, "fragments"),
    ("GET http://::1:{P}/ HTTP/1.1\r\nHost: x", 400, "brackets"),
    ("GET http://[fe80::1%25lo]:{P}/ HTTP/1.1\r\nHost: x", 400, "zone"),
    ("GET http://2130706433:{P}/ HTTP/1.1\r\nHost: 2130706433:{P}", 400, "non-canonical"),
    ("GET http://0x7f000001:{P}/ HTTP/1.1\r\nHost: 0x7f000001:{P}", 400, "non-canonical"),
    ("GET http://0177.0.0.1:{P}/ HTTP/1.1\r\nHost: 0177.0.0.1:{P}", 400, "non-canonical"),
    ("GET http://127.1:{P}/ HTTP/1.1\r\nHost: 127.1:{P}", 400, "non-canonical"),
    ("GET http://127.0.0.%31:{P}/ HTTP/1.1\r\nHost: x", 400, "not a valid host name"),
    ("GET / HTTP/1.1\r\nHost: 127.0.0.1:{P}", 400, "absolute http://"),
    ("GET https://127.0.0.1:{P}/ HTTP/1.1\r\nHost: 127.0.0.1:{P}", 400, "use CONNECT"),
    ("get http://127.0.0.1:{P}/ HTTP/1.1\r\nHost: 127.0.0.1:{P}", 400, "request line"),
    ("GET http://127.0.0.1:{P}/ HTTP/2.0\r\nHost: 127.0.0.1:{P}", 400, "request line"),
    ("GET http://127.0.0.1:{P}/ HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\n X: folded", 400, "folding"),
    ("GET http://127.0.0.1:{P}/ HTTP/1.1\r\nHost : 127.0.0.1:{P}", 400, "malformed header"),
    (
        "POST http://127.0.0.1:{P}/ HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\nContent-Length: 1\r\n"
        "Transfer-Encoding: chunked",
        400,
        "Transfer-Encoding",
    ),
    (
        "POST http://127.0.0.1:{P}/ HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\nContent-Length: 1\r\n"
        "Content-Length: 2",
        400,
        "Content-Length",
    ),
    ("CONNECT 127.0.0.1:{Q} HTTP/1.1\r\nHost: 127.0.0.1:{Q}", 403, "is not granted"),
    ("CONNECT 127.0.0.1 HTTP/1.1", 400, "port is required"),
    ("CONNECT u@127.0.0.1:{P} HTTP/1.1", 400, "userinfo"),
    ("CONNECT 127.0.0.1:{P} HTTP/1.1\r\nHost: 127.0.0.1:{Q}", 400, "does not match"),
    ("CONNECT 2130706433:{P} HTTP/1.1", 400, "non-canonical"),
]


@pytest.mark.parametrize(("template", "status", "reason"), DENIALS)
def test_tricks_are_refused_and_recorded(
    web: _Server, template: str, status: int, reason: str
) -> None:
    port = port_of(web)
    raw = template.replace("{P}", str(port)).replace("{Q}", str(port + 1)) + "\r\n\r\n"
    with EgressProxy([Grant("127.0.0.1", port)]) as proxy:
        reply = ask(proxy, raw.encode())
    assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply
    assert reason in reply.decode()
    assert web.seen == []
    [event] = proxy.events
    assert event["type"] == "egress.denied"
    assert reason in str(event["reason"])


def test_oversized_head_is_refused(web: _Server) -> None:
    port = port_of(web)
    with EgressProxy([Grant("127.0.0.1", port)]) as proxy:
        reply = ask(proxy, b"GET http://127.0.0.1/ HTTP/1.1\r\nX: " + b"a" * 40_000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert web.seen == []


def test_a_granted_name_that_resolves_to_loopback_is_refused(web: _Server) -> None:
    port = port_of(web)
    with EgressProxy([Grant.parse(f"localhost:{port}")]) as proxy:
        reply = ask(
            proxy,
            f"GET http://localhost:{port}/ HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode(),
        )
    assert reply.startswith(b"HTTP/1.1 403 ")
    assert web.seen == []
    [event] = proxy.events
    assert event["type"] == "egress.denied"
    assert "loopback address" in str(event["reason"])
    assert "grant 127.0.0.1:" in str(event["reason"]) or "grant [::1]:" in str(event["reason"])


def test_decimal_form_is_refused_even_when_the_address_is_granted(web: _Server) -> None:
    port = port_of(web)
    with EgressProxy([Grant("127.0.0.1", port)]) as proxy:
        reply = ask(
            proxy,
            f"GET http://2130706433:{port}/ HTTP/1.1\r\nHost: 2130706433:{port}\r\n\r\n".encode(),
        )
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert web.seen == []


def test_connect_tunnel_to_a_granted_port_relays_bytes(echo: int) -> None:
    with EgressProxy([Grant("127.0.0.1", echo)]) as proxy:
        head = f"CONNECT 127.0.0.1:{echo} HTTP/1.1\r\nHost: 127.0.0.1:{echo}\r\n\r\n".encode()
        # bytes pipelined right after the head belong to the tunnel too
        reply = ask(proxy, head + b"early ", then=b"ping")
    assert reply == b"HTTP/1.1 200 Connection established\r\n\r\nearly ping"
    [event] = proxy.events
    assert (event["type"], event["method"], event["port"]) == ("egress.allowed", "CONNECT", echo)


def test_an_unreachable_granted_destination_is_a_recorded_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        with EgressProxy([Grant("127.0.0.1", port)]) as proxy:
            reply = ask(proxy, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 502 ")
    assert [e["type"] for e in proxy.events] == ["egress.failed"]


def test_connection_count_is_bounded_and_idle_connections_are_closed() -> None:
    proxy = EgressProxy([], max_connections=1, idle_timeout=1.0)
    with proxy, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(str(proxy.socket_path))
        time.sleep(0.2)
        assert ask(proxy, b"").startswith(b"HTTP/1.1 503 ")
        idle.settimeout(10)
        started = time.monotonic()
        assert idle.recv(100) == b""  # closed by the proxy after the idle timeout
        assert 0.5 < time.monotonic() - started < 5
    reasons = [str(e["reason"]) for e in proxy.events]
    assert any("too many connections (limit 1)" in r for r in reasons)
    assert len(reasons) == 2
    assert all(e["type"] == "egress.denied" for e in proxy.events)


def test_leaving_the_context_cuts_open_tunnels_and_removes_the_socket(echo: int) -> None:
    with EgressProxy([Grant("127.0.0.1", echo)], idle_timeout=60) as proxy:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(str(proxy.socket_path))
        sock.sendall(f"CONNECT 127.0.0.1:{echo} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        directory = proxy.socket_dir
    started = time.monotonic()
    with sock:
        assert sock.recv(100) == b""
    assert time.monotonic() - started < 2
    assert not directory.exists()


def test_event_callback_sees_every_event_and_its_errors_do_not_stop_the_proxy(web: _Server) -> None:
    port = port_of(web)
    seen: list[dict[str, object]] = []

    def callback(event: dict[str, object]) -> None:
        seen.append(event)
        raise RuntimeError("a broken subscriber")

    with EgressProxy([Grant("127.0.0.1", port)], on_event=callback) as proxy:
        good = f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        assert ask(proxy, good.encode()).endswith(BODY)
        assert ask(proxy, b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 403")
    assert seen == proxy.events
    assert [e["type"] for e in seen] == ["egress.allowed", "egress.denied"]


def test_forwarder_runs_the_command_and_forwards_signals(tmp_path: Path) -> None:
    script = "import signal,sys,time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\nprint('ready', flush=True)\ntime.sleep(30)\n"
    proc = subprocess.Popen(
        [sys.executable, str(FORWARDER), "--socket", str(tmp_path / "none.sock"),
         "--listen", "127.0.0.1:0", "--", sys.executable, "-c", script],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    with proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 7
    bad = subprocess.run(
        [sys.executable, str(FORWARDER), "--listen", "x"], capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "usage" in bad.stderr


# --- real clients inside bubblewrap ------------------------------------------------------------

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def inside(
    sandbox: BwrapSandbox, ws: Path, argv: list[str], grants: list[Grant]
) -> tuple[int, str, list[dict[str, object]]]:
    """Run ``argv`` with egress to ``grants``; (exit code, stdout + stderr, events seen by the callback)."""
    events: list[dict[str, object]] = []
    result = run_with_egress(
        sandbox, argv, workspace=ws, grants=grants, on_event=events.append,
        limits=Limits(wall_seconds=60),
    )  # fmt: skip
    assert result.argv == tuple(argv)
    return result.exit_code, result.stdout + result.stderr, events


def python(
    sandbox: BwrapSandbox, ws: Path, script: str, grants: list[Grant]
) -> tuple[int, str, list[dict[str, object]]]:
    return inside(sandbox, ws, [sandbox.interpreter(), "-c", script], grants)


URLOPEN = """
import sys, urllib.request, urllib.error
for url in sys.argv[1:]:
    try:
        print(urllib.request.urlopen(url, timeout=20).read().decode().strip())
    except urllib.error.HTTPError as exc:
        print(exc.code, exc.read().decode().strip())
"""


def urlopen(
    sandbox: BwrapSandbox, ws: Path, urls: list[str], grants: list[Grant]
) -> tuple[int, str, list[dict[str, object]]]:
    return inside(sandbox, ws, [sandbox.interpreter(), "-c", URLOPEN, *urls], grants)


@needs_bwrap
def test_urllib_reaches_a_granted_ip_literal_and_nothing_else(
    sandbox: BwrapSandbox, ws: Path, web: _Server
) -> None:
    port = port_of(web)
    urls = [
        f"http://127.0.0.1:{port}/a",
        f"http://127.0.0.1:{port + 1}/b",
        f"http://[::1]:{port}/c",
    ]
    code, out, events = urlopen(sandbox, ws, urls, [Grant("127.0.0.1", port)])
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == BODY.decode().strip()
    assert lines[1].startswith("403 ")
    assert "is not granted" in lines[1]
    assert lines[2].startswith("403 ")
    assert "is not granted" in lines[2]
    assert [path for _, path, _ in web.seen] == ["/a"]
    assert [(e["type"], e["port"]) for e in events] == [
        ("egress.allowed", port),
        ("egress.denied", port + 1),
        ("egress.denied", port),
    ]


@needs_bwrap
def test_a_granted_name_resolving_to_loopback_is_refused_inside(
    sandbox: BwrapSandbox, ws: Path, web: _Server
) -> None:
    port = port_of(web)
    code, out, events = urlopen(
        sandbox, ws, [f"http://localhost:{port}/"], [Grant("localhost", port)]
    )
    assert code == 0, out
    assert out.startswith("403 ")
    assert "loopback address" in out
    assert web.seen == []
    assert [e["type"] for e in events] == ["egress.denied"]


@needs_bwrap
def test_decimal_ip_form_is_refused_inside_even_with_the_address_granted(
    sandbox: BwrapSandbox, ws: Path, web: _Server
) -> None:
    port = port_of(web)
    code, out, events = urlopen(
        sandbox, ws, [f"http://2130706433:{port}/"], [Grant("127.0.0.1", port)]
    )
    assert code == 0, out
    assert out.startswith("400 ")
    assert "non-canonical numeric address" in out
    assert web.seen == []
    assert [e["type"] for e in events] == ["egress.denied"]


@needs_bwrap
@needs_curl
def test_curl_plain_and_tunnelled_and_host_header_tricks(
    sandbox: BwrapSandbox, ws: Path, web: _Server
) -> None:
    port = port_of(web)
    url = f"http://127.0.0.1:{port}/"
    fmt = "-w %{http_code}\\n"
    script = (
        f"curl -sS -o /dev/null '{fmt}' {url}; "  # plain, absolute-form
        f"curl -sS -o /dev/null '{fmt}' -p {url}; "  # over a CONNECT tunnel
        f"curl -sS -o /dev/null '{fmt}' -H 'Host: evil.example' {url}; "
        f"curl -sS -o /dev/null '{fmt}' http://127.0.0.1:{port + 1}/; "
        f"curl -sS -o /dev/null '{fmt}' -p http://127.0.0.1:{port + 1}/"
    )
    code, out, events = inside(sandbox, ws, ["/bin/sh", "-c", script], [Grant("127.0.0.1", port)])
    assert out.split()[:4] == ["200", "200", "400", "403"], out
    assert "CONNECT tunnel failed, response 403" in out
    assert code != 0  # the last curl failed
    assert len(web.seen) == 2
    assert [(e["type"], e["method"]) for e in events] == [
        ("egress.allowed", "GET"),
        ("egress.allowed", "CONNECT"),
        ("egress.denied", "GET"),
        ("egress.denied", "GET"),
        ("egress.denied", "CONNECT"),
    ]


TUNNEL = """
import socket, sys
port = int(sys.argv[1])
with socket.create_connection(("127.0.0.1", 3128), timeout=20) as sock:
    sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\n\\r\\n".encode())
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        head += sock.recv(1)
    print(head.split(b"\\r\\n")[0].decode())
    if b" 200 " in head:
        sock.sendall(b"ping")
        print(sock.recv(4).decode())
"""


@needs_bwrap
def test_raw_connect_tunnel_to_a_granted_port_and_refusal_of_another(
    sandbox: BwrapSandbox, ws: Path, echo: int
) -> None:
    argv = [sandbox.interpreter(), "-c", TUNNEL]
    code, out, events = inside(sandbox, ws, [*argv, str(echo)], [Grant("127.0.0.1", echo)])
    assert code == 0, out
    assert out.splitlines() == ["HTTP/1.1 200 Connection established", "ping"]
    code, out, events2 = inside(sandbox, ws, [*argv, str(echo)], [Grant("127.0.0.1", echo + 1)])
    assert out.splitlines() == ["HTTP/1.1 403 Forbidden"]
    assert [e["type"] for e in events + events2] == ["egress.allowed", "egress.denied"]


BYPASS = """
import socket, sys
port = int(sys.argv[1])
try:
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    print("direct: connected")
except OSError as exc:
    print("direct: blocked", type(exc).__name__)
try:
    socket.getaddrinfo("example.com", 80)
    print("dns: resolved")
except OSError as exc:
    print("dns: failed", type(exc).__name__)
"""


@needs_bwrap
def test_the_proxy_is_the_only_way_out_no_direct_connection_no_dns(
    sandbox: BwrapSandbox, ws: Path, web: _Server
) -> None:
    port = port_of(web)
    for grants in ([], [Grant("127.0.0.1", port)]):
        code, out, events = python(sandbox, ws, BYPASS.replace("sys.argv[1]", str(port)), grants)
        assert code == 0, out
        assert out.splitlines() == [
            "direct: blocked ConnectionRefusedError",
            "dns: failed gaierror",
        ]
        assert events == []
    code, out, events = urlopen(sandbox, ws, [f"http://127.0.0.1:{port}/"], [])
    assert out.startswith("403 ")
    assert "granted: nothing" in out
    assert web.seen == []
    assert [e["type"] for e in events] == ["egress.denied"]


@needs_bwrap
def test_exit_code_and_environment_of_the_command(sandbox: BwrapSandbox, ws: Path) -> None:
    code, out, _ = inside(
        sandbox,
        ws,
        ["/bin/sh", "-c", "echo $HTTP_PROXY $https_proxy $ALL_PROXY [$NO_PROXY]; exit 7"],
        [],
    )
    assert code == 7
    assert out.split() == ["http://127.0.0.1:3128"] * 3 + ["[]"]


@needs_bwrap
def test_a_command_that_times_out_is_killed_and_the_proxy_closed(
    sandbox: BwrapSandbox, ws: Path
) -> None:
    events: list[dict[str, object]] = []
    started = time.monotonic()
    result = run_with_egress(
        sandbox, ["/bin/sleep", "30"], workspace=ws, grants=[], on_event=events.append,
        limits=Limits(wall_seconds=1),
    )  # fmt: skip
    assert result.timed_out
    assert time.monotonic() - started < 15
    assert events == []
