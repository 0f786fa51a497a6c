"""Egress for sandboxes: a host-side allowlisting HTTP proxy reached over a unix socket.

The sandbox keeps its private network namespace (loopback only). ``forwarder.py`` runs inside, listens
on loopback and relays bytes to the proxy's unix socket; every policy decision is made here, on the
host: only granted ``host:port`` pairs, names resolved here and refused when they point at loopback,
link-local or private addresses (unless the grant is a declared local endpoint, which still covers
only loopback and private ones), strict request parsing. See docs/network.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import re
import selectors
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shipyard.errors import ConfigError, SandboxError
from shipyard.sandbox.base import WORKSPACE, CommandResult, Limits, Mount, Sandbox
from shipyard.sandbox.forwarder import relay

log = logging.getLogger(__name__)

SOCKET_NAME = "proxy.sock"
SOCKET_DIR_INSIDE = "/run/shipyard-egress"
FORWARDER_INSIDE = "/opt/shipyard/forwarder.py"
LISTEN_INSIDE = "127.0.0.1:3128"
PROXY_URL = f"http://{LISTEN_INSIDE}"
FORWARDER = Path(__file__).with_name("forwarder.py")

MAX_HEAD_BYTES = 32 * 1024
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REQUEST_LINE = re.compile(rb"([A-Z]+) ([\x21-\x7e]+) (HTTP/1\.[01])")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e]*")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")

EventSink = Callable[[dict[str, object]], None]
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class _Rejected(Exception):
    """A request the proxy refuses; ``status`` is the HTTP status sent back."""

    def __init__(self, reason: str, status: int = 403, kind: str = "egress.denied") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.kind = kind


def _normalize_host(host: str) -> str:
    """The canonical spelling of a host: lower-case name, dotted quad, or compressed IPv6 (no brackets).

    Raises ValueError naming the problem. Numeric forms other than the dotted quad (2130706433,
    0x7f.1, 0177.0.0.1) are refused outright: resolvers disagree on what they mean.
    """
    if not host:
        raise ValueError("the host is empty")
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        if "%" in inner:
            raise ValueError(f"IPv6 zone identifiers are not allowed ({host!r})")
        try:
            return ipaddress.IPv6Address(inner).compressed
        except ValueError:
            raise ValueError(f"{host!r} is not a valid IPv6 address") from None
    if ":" in host:
        raise ValueError(f"IPv6 addresses must be in brackets, e.g. [{host}]")
    if not host.isascii():
        raise ValueError(f"{host!r} is not ASCII; write internationalised names in punycode (xn--)")
    name = host.lower().removesuffix(".")
    if _DOTTED_QUAD.fullmatch(name):
        return name
    labels = name.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise ValueError(
            f"{host!r} is a non-canonical numeric address; write IPv4 addresses as a dotted quad "
            "(e.g. 127.0.0.1)"
        )
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} is not a valid host name")
    return name


def _split_authority(text: str, default_port: int | None) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) into its canonical host and port; ValueError if malformed."""
    if "@" in text:
        raise ValueError("userinfo (user@ or user:password@) is not allowed")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"unterminated IPv6 literal in {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after the IPv6 literal")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError(f"IPv6 addresses must be in brackets, e.g. [{text}]:PORT")
    else:
        host, port_text = text, None
    if port_text is None:
        if default_port is None:
            raise ValueError("a port is required (HOST:PORT)")
        return _normalize_host(host), default_port
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")
    return _normalize_host(host), port


def _is_ip_literal(host: str) -> bool:
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return True
    return False


@dataclass(frozen=True)
class Grant:
    """One allowed destination. ``host`` is a DNS name or an IP literal; a name is resolved by the
    proxy and refused if it points at a non-public address, an IP literal is taken as meant.

    ``local`` declares the pair a local endpoint (a model server on this host or the LAN): its name
    may then resolve to loopback or private addresses, never link-local, multicast, reserved or
    unspecified ones. It widens nothing else: the pair is still the only one it grants.
    """

    host: str
    port: int
    local: bool = False

    def __post_init__(self) -> None:
        try:
            bare_v6 = ":" in self.host and not self.host.startswith("[")
            host = _normalize_host(f"[{self.host}]" if bare_v6 else self.host)
        except ValueError as exc:
            raise ConfigError(f"invalid egress grant host {self.host!r}: {exc}") from None
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"invalid egress grant port {self.port}: use 1-65535")
        object.__setattr__(self, "host", host)

    @classmethod
    def parse(cls, text: str, *, local: bool = False) -> Grant:
        """``HOST:PORT`` as written on a command line or in a blueprint (IPv6 as ``[::1]:8080``)."""
        hint = "write it as HOST:PORT, e.g. pypi.org:443, 127.0.0.1:8080 or [::1]:8080"
        raw = text.strip()
        if "://" in raw or "/" in raw:
            raise ConfigError(f"invalid egress grant {text!r}: no scheme or path; {hint}")
        if raw.startswith("*") or "*" in raw:
            raise ConfigError(f"invalid egress grant {text!r}: wildcards are not supported; {hint}")
        try:
            host, port = _split_authority(raw, default_port=None)
        except ValueError as exc:
            raise ConfigError(f"invalid egress grant {text!r}: {exc}; {hint}") from None
        return cls(host, port, local)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _non_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` must not be reached through a name, or None if it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for label, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),  # before private: 240.0.0.0/4 is both
        ("private", address.is_private),
    ):
        if flag:
            return label
    return None if address.is_global else "non-public"


LOCAL_KINDS = frozenset({"loopback", "private", "non-public"})
"""What a local endpoint grant may resolve to: this host, RFC 1918 / ULA and shared (CGNAT) space.
Link-local (cloud metadata at 169.254.169.254), multicast, reserved and unspecified stay refused."""


def address_refusal(
    host: str, port: int, addresses: Sequence[_Address], *, local: bool
) -> str | None:
    """Why a granted name's resolved ``addresses`` must not be reached, or None if they may."""
    for address in addresses:
        why = _non_public(address)
        if why is None or (local and why in LOCAL_KINDS):
            continue
        if local:
            return (
                f"{host} resolves to {address}, a {why} address; a local endpoint grant covers "
                "loopback and private addresses only"
            )
        return (
            f"{host} resolves to {address}, a {why} address; granted names must resolve to "
            f"public addresses (grant {Grant(str(address), port)} instead if this is intended)"
        )
    return None


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    host: str = ""
    port: int = 0
    path: str = ""

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


def _parse_head(head: bytes) -> _Request:
    """Strictly parse a request head (without the final blank line); _Rejected on anything odd."""
    lines = head.split(b"\r\n")
    if any(b"\r" in line or b"\n" in line for line in lines):
        raise _Rejected("bare CR or LF in the request head", 400)
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise _Rejected("malformed request line", 400)
    method, target, version = (part.decode("ascii") for part in match.groups())
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise _Rejected("obsolete header line folding", 400)
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise _Rejected("malformed header line", 400)
        headers.append((name.decode("ascii"), value.strip(b" \t").decode("ascii")))
    request = _Request(method, target, version, headers)
    _check_framing(request)
    return request


def _parse_target(request: _Request) -> None:
    """Set the request's host, port and path from its target; check the Host header agrees."""
    method, target = request.method, request.target
    if method == "CONNECT":
        request.host, request.port = _authority(target, None, "CONNECT target")
    else:
        request.host, request.port, request.path = _absolute_uri(target)
    hosts = request.header("host")
    if len(hosts) > 1:
        raise _Rejected("multiple Host headers", 400)
    if not hosts and method != "CONNECT":
        raise _Rejected("missing Host header", 400)
    if hosts:
        claimed = _authority(hosts[0], 443 if method == "CONNECT" else 80, "Host header")
        if claimed != (request.host, request.port):
            raise _Rejected(
                f"Host header {hosts[0]!r} does not match the request target {target!r}", 400
            )


def _check_framing(request: _Request) -> None:
    lengths = request.header("content-length")
    codings = request.header("transfer-encoding")
    if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
        raise _Rejected("ambiguous or invalid Content-Length", 400)
    if codings and (lengths or len(codings) > 1 or codings[0].lower() != "chunked"):
        raise _Rejected("unsupported or ambiguous Transfer-Encoding", 400)
    if request.method == "CONNECT" and (lengths or codings):
        raise _Rejected("CONNECT must not carry a body", 400)


def _authority(text: str, default_port: int | None, what: str) -> tuple[str, int]:
    try:
        return _split_authority(text, default_port)
    except ValueError as exc:
        raise _Rejected(f"bad {what}: {exc}", 400) from None


def _absolute_uri(target: str) -> tuple[str, int, str]:
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() != "http":
        raise _Rejected(
            "only absolute http:// URIs are proxied (use CONNECT for https and other protocols)",
            400,
        )
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if "#" in path:
        raise _Rejected("fragments are not sent to servers", 400)
    host, port = _authority(authority, 80, "URI authority")
    return host, port, path if path.startswith("/") else "/" + path


class _Reader:
    """Buffered reads from a socket: the head, lines and exact byte counts."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise _Rejected("connection closed mid-request", 400)
        self.buf += data

    def until(self, marker: bytes, limit: int) -> bytes:
        while (end := self.buf.find(marker)) < 0:
            if len(self.buf) > limit:
                raise _Rejected(f"request head larger than {limit} bytes", 431)
            self._fill()
        if end > limit:
            raise _Rejected(f"request head larger than {limit} bytes", 431)
        found, self.buf = self.buf[:end], self.buf[end + len(marker) :]
        return found

    def copy(self, count: int, dst: socket.socket) -> bytes:
        """Send exactly ``count`` bytes to ``dst``; returns the last (at most 2) bytes sent."""
        tail = b""
        while count > 0:
            if not self.buf:
                self._fill()
            chunk, self.buf = self.buf[:count], self.buf[count:]
            dst.sendall(chunk)
            count -= len(chunk)
            tail = (tail + chunk)[-2:]
        return tail

    def copy_chunked(self, dst: socket.socket) -> None:
        while True:
            line = self.until(b"\r\n", 4096)
            size = line.split(b";", 1)[0].strip(b" \t")
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size):
                raise _Rejected("malformed chunk size", 400)
            dst.sendall(line + b"\r\n")
            if int(size, 16) == 0:
                break
            if self.copy(int(size, 16) + 2, dst) != b"\r\n":
                raise _Rejected("chunk not terminated by CRLF", 400)
        while trailer := self.until(b"\r\n", 4096):
            dst.sendall(trailer + b"\r\n")
        dst.sendall(b"\r\n")


def _reply(sock: socket.socket, status: int, reason: str) -> None:
    phrases = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large"}
    phrases |= {502: "Bad Gateway", 503: "Service Unavailable"}
    body = f"shipyard egress proxy: {reason}\n".encode("ascii", "replace")
    head = (
        f"HTTP/1.1 {status} {phrases.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nX-Shipyard-Egress: denied\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        sock.sendall(head.encode("ascii") + body)


class EgressProxy:
    """The host side: a threaded HTTP proxy on a unix socket that only reaches granted destinations.

    Use it as a context manager; ``socket_dir`` (holding ``proxy.sock``) is what gets bound into the
    sandbox. Every connection is recorded in ``events`` and passed to ``on_event`` (called from the
    proxy's threads). Leaving the context closes every connection and removes the socket.
    """

    def __init__(
        self,
        grants: Sequence[Grant],
        on_event: EventSink | None = None,
        *,
        max_connections: int = 32,
        idle_timeout: float = 60.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.grants = tuple(grants)
        self.on_event = on_event
        self.events: list[dict[str, object]] = []
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self._allowed: dict[tuple[str, int], bool] = {}
        for g in self.grants:  # the pair -> whether it is a declared local endpoint
            self._allowed[(g.host, g.port)] = self._allowed.get((g.host, g.port), False) or g.local
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._active: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._closing = False
        self._dir: Path | None = None
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._acceptor: threading.Thread | None = None

    @property
    def socket_dir(self) -> Path:
        """The host directory holding ``proxy.sock``; exists while the proxy runs."""
        if self._dir is None:
            raise SandboxError("the egress proxy is not running; use it as a context manager")
        return self._dir

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / SOCKET_NAME

    def __enter__(self) -> EgressProxy:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Bind the unix socket (owner-only) and start accepting."""
        if self._dir is not None:
            raise SandboxError("the egress proxy is already running")
        directory = Path(tempfile.mkdtemp(prefix="shipyard-egress-"))
        path = directory / SOCKET_NAME
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if len(str(path).encode()) >= 100:
                raise OSError(
                    f"socket path {path} is too long for a unix socket; set TMPDIR shorter"
                )
            listener.bind(str(path))
            path.chmod(0o600)
            listener.listen(64)
        except OSError as exc:
            listener.close()
            shutil.rmtree(directory, ignore_errors=True)
            raise SandboxError(f"could not start the egress proxy: {exc}") from exc
        self._dir, self._listener = directory, listener
        self._wake = socket.socketpair()
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="egress-accept", daemon=True
        )
        self._acceptor.start()

    def close(self) -> None:
        """Stop accepting, cut every open connection, wait for handlers, remove the socket."""
        if self._dir is None or self._closing:
            return
        self._closing = True
        assert self._wake is not None
        assert self._listener is not None
        with contextlib.suppress(OSError):
            self._wake[1].send(b"x")
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        for sock in (self._listener, *self._wake):
            sock.close()
        with self._lock:
            for sock in self._active:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=self.connect_timeout + 5)
            if thread.is_alive():
                log.warning("egress handler %s did not stop in time", thread.name)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        assert self._wake is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake[0], selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._wake[0]:
                        return
                    try:
                        conn, _ = self._listener.accept()
                    except OSError:
                        continue
                    self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        if not self._slots.acquire(blocking=False):
            reason = f"too many connections (limit {self.max_connections})"
            self._record("egress.denied", reason=reason)
            _reply(conn, 503, reason)
            conn.close()
            return
        thread = threading.Thread(target=self._serve, args=(conn,), name="egress-conn", daemon=True)
        with self._lock:
            self._active.add(conn)
            self._threads.add(thread)
        thread.start()

    def _serve(self, client: socket.socket) -> None:
        opened = [client]
        try:
            client.settimeout(self.idle_timeout)
            self._handle(client, opened)
        except (OSError, _Rejected) as exc:
            log.debug("egress connection ended: %s", exc)
        finally:
            for sock in opened:
                with self._lock:
                    self._active.discard(sock)
                sock.close()
            self._slots.release()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _handle(self, client: socket.socket, opened: list[socket.socket]) -> None:
        reader = _Reader(client)
        fields: dict[str, object] = {}
        try:
            head = reader.until(b"\r\n\r\n", MAX_HEAD_BYTES)
            fields["request"] = head.split(b"\r\n", 1)[0][:200].decode("ascii", "backslashreplace")
            request = _parse_head(head)
            fields["method"] = request.method
            try:
                _parse_target(request)
            finally:
                if request.port:
                    fields |= {"host": request.host, "port": request.port}
            addresses = self._check(request)
            upstream = self._connect(addresses, request.port, opened)
        except _Rejected as exc:
            self._record(exc.kind, reason=exc.reason, **fields)
            _reply(client, exc.status, exc.reason)
            return
        except OSError as exc:
            self._record("egress.denied", reason=f"client error before a request: {exc}", **fields)
            return
        address = upstream.getpeername()[0]
        local = _non_public(ipaddress.ip_address(address.split("%")[0])) is not None
        self._record("egress.allowed", reason="granted", address=address, local=local, **fields)
        if request.method == "CONNECT":
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if reader.buf:
                upstream.sendall(reader.buf)
            relay(client, upstream, self.idle_timeout)
        else:
            _forward(request, reader, client, upstream)

    def _check(self, request: _Request) -> list[_Address]:
        """The addresses to connect to, or _Rejected saying why not."""
        host, port = request.host, request.port
        if (host, port) not in self._allowed:
            granted = ", ".join(str(g) for g in self.grants) or "nothing"
            raise _Rejected(f"{Grant(host, port)} is not granted (granted: {granted})")
        local = self._allowed[(host, port)]
        if _is_ip_literal(host):
            literal = [ipaddress.ip_address(host)]  # an IP literal grant is an explicit choice,
            if local and (refusal := address_refusal(host, port, literal, local=True)):
                raise _Rejected(refusal)  # but one declared local is held to what that covers
            return literal
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise _Rejected(f"cannot resolve {host}: {exc}", 502, "egress.failed") from None
        addresses = list(
            dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos)
        )
        refusal = address_refusal(host, port, addresses, local=local)
        if refusal is not None:
            raise _Rejected(refusal)
        return addresses

    def _connect(
        self, addresses: list[_Address], port: int, opened: list[socket.socket]
    ) -> socket.socket:
        errors = []
        for address in addresses:
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            opened.append(sock)
            with self._lock:
                if self._closing:
                    raise _Rejected("the egress proxy is shutting down", 503, "egress.failed")
                self._active.add(sock)
            try:
                sock.settimeout(self.connect_timeout)
                sock.connect((str(address), port))
            except OSError as exc:
                errors.append(f"{address}: {exc}")
                continue
            sock.settimeout(self.idle_timeout)
            return sock
        raise _Rejected(f"cannot connect: {'; '.join(errors)}", 502, "egress.failed")

    def _record(self, kind: str, **fields: object) -> None:
        event: dict[str, object] = {"type": kind, "host": None, "port": None, "method": None}
        event |= fields
        with self._lock:
            self.events.append(event)
        log.info(
            "%s %s %s:%s %s", kind, event["method"], event["host"], event["port"], event["reason"]
        )
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("egress on_event callback failed")


def _forward(
    request: _Request, reader: _Reader, client: socket.socket, upstream: socket.socket
) -> None:
    """Send one request upstream in origin form, minus hop-by-hop headers; relay the response."""
    named = {t.strip().lower() for v in request.header("connection") for t in v.split(",")}
    lines = [f"{request.method} {request.path} {request.version}"]
    for name, value in request.headers:
        if name.lower() not in HOP_BY_HOP and name.lower() not in named:
            lines.append(f"{name}: {value}")
    lines.append("Connection: close")
    upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    length = request.header("content-length")
    chunked = bool(request.header("transfer-encoding"))
    expects = any(v.lower() == "100-continue" for v in request.header("expect"))
    if expects and (chunked or (length and int(length[0]) > 0)):
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if length:
        reader.copy(int(length[0]), upstream)
    elif chunked:
        reader.copy_chunked(upstream)
    while data := upstream.recv(65536):
        client.sendall(data)


class EgressSandbox(Sandbox, Protocol):
    """A sandbox that can also name a python3 usable inside it (for the forwarder)."""

    def interpreter(self) -> str: ...


def proxy_env() -> dict[str, str]:
    """The variables that point ordinary HTTP clients at the in-sandbox forwarder."""
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    env = {n: PROXY_URL for name in names for n in (name, name.lower())}
    return env | {"NO_PROXY": "", "no_proxy": ""}


def run_with_egress(
    sandbox: EgressSandbox,
    argv: Sequence[str],
    *,
    workspace: Path,
    grants: Sequence[Grant],
    on_event: EventSink | None = None,
    env: Mapping[str, str] | None = None,
    mounts: Sequence[Mount] = (),
    limits: Limits | None = None,
    cwd: str = WORKSPACE,
) -> CommandResult:
    """Run ``argv`` in ``sandbox`` (still without a network) with egress to ``grants`` via the proxy."""
    with EgressProxy(grants, on_event) as proxy:
        command = [
            sandbox.interpreter(), "-I", FORWARDER_INSIDE,
            "--socket", f"{SOCKET_DIR_INSIDE}/{SOCKET_NAME}", "--listen", LISTEN_INSIDE,
            "--", *argv,
        ]  # fmt: skip
        result = sandbox.run(
            command,
            workspace=workspace,
            env={**(env or {}), **proxy_env()},
            mounts=[
                *mounts,
                Mount(source=proxy.socket_dir, target=SOCKET_DIR_INSIDE),
                Mount(source=FORWARDER, target=FORWARDER_INSIDE),
            ],
            limits=limits,
            cwd=cwd,
            network=False,
        )
    return dataclasses.replace(result, argv=tuple(argv))


__all__ = [
    "LOCAL_KINDS",
    "EgressProxy",
    "EgressSandbox",
    "Grant",
    "address_refusal",
    "proxy_env",
    "run_with_egress",
]
