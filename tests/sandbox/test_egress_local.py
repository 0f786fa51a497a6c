"""A local endpoint grant (``Grant(..., local=True)``): exactly one loopback or private ``host:port``
for one sandbox's proxy, nothing more. These tests try to use it to reach anything else."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.sandbox import BwrapSandbox, Limits
from shipyard.sandbox.egress import (
    LOCAL_KINDS,
    EgressProxy,
    Grant,
    _non_public,
    address_refusal,
    run_with_egress,
)
from tests.conftest import needs_bwrap


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        server.hits.append(self.path)
        if server.redirect_to and self.path == "/go":
            self.send_response(302)
            self.send_header("Location", server.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"model endpoint\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hits: list[str]
    redirect_to: str = ""

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def _serve() -> _Server:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.hits = []
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


@pytest.fixture
def endpoint() -> Iterator[_Server]:
    server = _serve()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def other() -> Iterator[_Server]:
    """Another local service the sandbox must never reach."""
    server = _serve()
    yield server
    server.shutdown()
    server.server_close()


def ask(proxy: EgressProxy, raw: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(proxy.socket_path))
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)  # a tunnel then ends when the far side has answered
        reply = bytearray()
        while data := sock.recv(4096):
            reply += data
        return bytes(reply)


def get(host: str, port: int, hostname: str | None = None) -> bytes:
    authority = f"{hostname or host}:{port}"
    return f"GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()


# --- the pure decision --------------------------------------------------------------------------

ALLOWED_WHEN_LOCAL = ["127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.5", "192.168.1.20", "::1",
                      "fd00::5", "100.64.0.7", "::ffff:127.0.0.1", "::ffff:192.168.1.20"]  # fmt: skip
NEVER = ["169.254.169.254", "fe80::1", "224.0.0.1", "ff02::1", "0.0.0.0", "::", "240.0.0.1",
         "::ffff:169.254.169.254"]  # fmt: skip


@pytest.mark.parametrize("address", ALLOWED_WHEN_LOCAL)
def test_a_local_grant_covers_loopback_and_private_addresses_a_plain_one_refuses(
    address: str,
) -> None:
    ip = [ipaddress.ip_address(address)]
    assert address_refusal("model.lan", 8080, ip, local=True) is None
    refusal = address_refusal("model.lan", 8080, ip, local=False)
    assert refusal is not None
    assert "granted names must resolve to public addresses" in refusal


@pytest.mark.parametrize("address", NEVER)
def test_link_local_multicast_reserved_and_unspecified_are_refused_even_when_local(
    address: str,
) -> None:
    ip = [ipaddress.ip_address(address)]
    refusal = address_refusal("model.lan", 8080, ip, local=True)
    assert refusal is not None
    assert "covers loopback and private addresses only" in refusal


def test_one_bad_address_among_good_ones_refuses_the_name() -> None:
    mixed = [ipaddress.ip_address("192.168.1.20"), ipaddress.ip_address("169.254.169.254")]
    assert address_refusal("model.lan", 80, mixed, local=True) is not None


@given(st.ip_addresses())
def test_a_local_grant_widens_exactly_the_local_kinds(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    plain = address_refusal("h.example", 443, [address], local=False)
    local = address_refusal("h.example", 443, [address], local=True)
    if plain is None:  # public: both allow
        assert local is None
    elif local is None:  # what the local grant adds is only ever a local kind
        assert _non_public(address) in LOCAL_KINDS


# --- the proxy ----------------------------------------------------------------------------------


def test_a_local_ip_grant_reaches_that_port_only(endpoint: _Server, other: _Server) -> None:
    port = endpoint.port
    with EgressProxy([Grant("127.0.0.1", port, local=True)]) as proxy:
        assert ask(proxy, get("127.0.0.1", port)).startswith(b"HTTP/1.0 200")
        refused = {
            "another loopback port": get("127.0.0.1", other.port),
            "the next port": get("127.0.0.1", port + 1),
            "another loopback address": get("127.0.0.2", port),
            "a name for the same address": get("127.0.0.1", port, hostname="localhost"),
            "a numeric spelling": get("127.0.0.1", port, hostname="2130706433"),
            "the IPv6 loopback": get("127.0.0.1", port, hostname="[::1]"),
            "a private host": get("10.0.0.1", port),
            "CONNECT to another port": f"CONNECT 127.0.0.1:{other.port} HTTP/1.1\r\n\r\n".encode(),
            "a Host header naming another port": (
                f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{other.port}\r\n\r\n"
            ).encode(),
        }
        for what, raw in refused.items():
            reply = ask(proxy, raw)
            assert reply.split(b"\r\n", 1)[0] in (b"HTTP/1.1 403 Forbidden",
                                                  b"HTTP/1.1 400 Bad Request"), what  # fmt: skip
        tunnel = ask(proxy, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
        assert tunnel.startswith(b"HTTP/1.1 200 Connection established")
    assert other.hits == []
    allowed = [e for e in proxy.events if e["type"] == "egress.allowed"]
    assert [(e["port"], e["local"]) for e in allowed] == [(port, True), (port, True)]


def test_a_name_resolving_to_loopback_needs_a_local_grant(endpoint: _Server) -> None:
    port = endpoint.port
    with EgressProxy([Grant("localhost", port)]) as proxy:  # the default, unchanged
        reply = ask(proxy, get("localhost", port))
        assert reply.startswith(b"HTTP/1.1 403")
        assert b"loopback address" in reply
    with EgressProxy([Grant.parse(f"localhost:{port}", local=True)]) as proxy:
        assert ask(proxy, get("localhost", port)).startswith(b"HTTP/1.0 200")
        assert ask(proxy, get("localhost", port + 1)).startswith(b"HTTP/1.1 403")
        assert ask(proxy, get("127.0.0.1", port)).startswith(
            b"HTTP/1.1 403"
        )  # not the name granted
    [allowed] = [e for e in proxy.events if e["type"] == "egress.allowed"]
    assert allowed["local"] is True
    assert allowed["host"] == "localhost"


def test_a_local_ip_grant_to_link_local_is_refused_without_connecting() -> None:
    with EgressProxy([Grant("169.254.169.254", 80, local=True)]) as proxy:
        reply = ask(proxy, get("169.254.169.254", 80))
    assert reply.startswith(b"HTTP/1.1 403")
    assert b"link-local" in reply
    assert [e["type"] for e in proxy.events] == ["egress.denied"]


# --- from inside a sandbox ----------------------------------------------------------------------

FOLLOW = """
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode().strip())
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode().strip())
"""


@needs_bwrap
def test_a_redirect_from_the_endpoint_does_not_lead_elsewhere(
    sandbox: BwrapSandbox, ws: Path, endpoint: _Server, other: _Server
) -> None:
    endpoint.redirect_to = f"http://127.0.0.1:{other.port}/secret"
    events: list[dict[str, object]] = []
    result = run_with_egress(
        sandbox, [sandbox.interpreter(), "-c", FOLLOW, f"http://127.0.0.1:{endpoint.port}/go"],
        workspace=ws, grants=[Grant("127.0.0.1", endpoint.port, local=True)],
        on_event=events.append, limits=Limits(wall_seconds=60),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("403 shipyard egress proxy:")
    assert endpoint.hits == ["/go"]
    assert other.hits == []
    assert [e["type"] for e in events] == ["egress.allowed", "egress.denied"]


@needs_bwrap
def test_the_allowance_belongs_to_one_sandbox_only(
    sandbox: BwrapSandbox, ws: Path, endpoint: _Server
) -> None:
    """While one run's proxy grants the endpoint, another sandbox (with its own proxy, or none)
    still cannot reach it: the grant lives in the first proxy, bound into the first sandbox."""
    url = f"http://127.0.0.1:{endpoint.port}/"
    with EgressProxy([Grant("127.0.0.1", endpoint.port, local=True)]) as granted:
        other_run = run_with_egress(
            sandbox, [sandbox.interpreter(), "-c", FOLLOW, url], workspace=ws, grants=[],
            limits=Limits(wall_seconds=60),
        )  # fmt: skip
        no_egress = sandbox.run([sandbox.interpreter(), "-c", FOLLOW, url], workspace=ws,
                                limits=Limits(wall_seconds=60))  # fmt: skip
        assert granted.socket_path.exists()
    assert other_run.stdout.startswith("403 shipyard egress proxy:")
    assert no_egress.exit_code != 0  # no network at all: the connection is refused
    assert endpoint.hits == []
    assert granted.events == []
