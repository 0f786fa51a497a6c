"""Runs inside the sandbox: relays loopback TCP connections to the host egress proxy's unix socket.

Usage: python3 forwarder.py --socket PATH --listen HOST:PORT -- COMMAND [ARG...]

It listens first, then runs COMMAND as a child, forwards signals to it and exits with its exit code.
It is deliberately dumb (stdlib only, no policy): every decision is made by the proxy on the host.
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
USAGE = "usage: forwarder.py --socket PATH --listen HOST:PORT -- COMMAND [ARG...]"


def parse_args(argv: Sequence[str]) -> tuple[str, tuple[str, int], list[str]]:
    """(socket path, listen address, command); ValueError with the usage on bad input."""
    if "--" not in argv:
        raise ValueError(USAGE)
    split = list(argv).index("--")
    options, command = list(argv[:split]), list(argv[split + 1 :])
    values = dict(zip(options[::2], options[1::2], strict=False))
    if len(options) != 4 or set(values) != {"--socket", "--listen"} or not command:
        raise ValueError(USAGE)
    host, _, port = values["--listen"].rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, not {values['--listen']!r}")
    return values["--socket"], (host, int(port)), command


def relay(a: socket.socket, b: socket.socket, idle: float | None = None) -> None:
    """Copy bytes both ways until both sides have finished sending, or nothing has moved for
    ``idle`` seconds. The host proxy relays its tunnels with this too (this file stays stdlib-only:
    it runs inside the sandbox)."""
    peer = {a: b, b: a}
    with selectors.DefaultSelector() as sel:
        for sock in (a, b):
            sel.register(sock, selectors.EVENT_READ)
        while sel.get_map():
            ready = sel.select(timeout=idle)
            if not ready:
                return
            for key, _ in ready:
                src = key.fileobj
                assert isinstance(src, socket.socket)
                try:
                    data = src.recv(65536)
                    if data:
                        peer[src].sendall(data)
                        continue
                except OSError:
                    return
                sel.unregister(src)
                with contextlib.suppress(OSError):
                    peer[src].shutdown(socket.SHUT_WR)


def handle(client: socket.socket, socket_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
        relay(client, upstream)
    except OSError as exc:
        print(f"shipyard forwarder: egress proxy unreachable: {exc}", file=sys.stderr)
    finally:
        upstream.close()
        client.close()


def serve(listener: socket.socket, socket_path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(client, socket_path), daemon=True).start()


def main(argv: Sequence[str]) -> int:
    try:
        socket_path, listen, command = parse_args(argv)
    except ValueError as exc:
        print(f"shipyard forwarder: {exc}", file=sys.stderr)
        return 2
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(listen)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        print(f"shipyard forwarder: cannot listen on {listen}: {exc}", file=sys.stderr)
        return 125
    threading.Thread(target=serve, args=(listener, socket_path), daemon=True).start()
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"shipyard forwarder: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, lambda sig, _frame: child.send_signal(sig))
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
