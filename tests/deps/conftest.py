"""Fixtures for the dependency tests: tiny real wheels and a real local index serving them."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shipyard.deps.localindex import LocalIndex, serve

WHEEL_FILE = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def with_record(files: dict[str, bytes], dist_info: str) -> dict[str, bytes]:
    """A wheel's files with the RECORD listing each one's sha256 and size added."""
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    return {**files, f"{dist_info}/RECORD": (record + f"{dist_info}/RECORD,,\n").encode()}


def make_wheel(directory: Path, name: str, version: str, *, requires: tuple[str, ...] = ()) -> Path:
    """A minimal valid pure-Python wheel with one module named after the project."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = with_record(
        {
            f"{module}.py": f"VERSION = {version!r}\n".encode(),
            f"{dist_info}/METADATA": metadata.encode(),
            f"{dist_info}/WHEEL": WHEEL_FILE,
        },
        dist_info,
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{module}-{version}-py3-none-any.whl"
    target.write_bytes(buffer.getvalue())
    return target


def make_sdist(directory: Path, name: str, version: str) -> Path:
    """An sdist-named file; its content does not matter to an index."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name.replace('-', '_')}-{version}.tar.gz"
    target.write_bytes(b"not really a tarball")
    return target


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    """Distributions: alpha 1.0.0, 1.0.1, 1.1.0, 2.0.0rc1, 2.0.0 (sdist only); beta 0.3.0."""
    folder = tmp_path / "dists"
    for version in ("1.0.0", "1.0.1", "1.1.0", "2.0.0rc1"):
        make_wheel(folder, "alpha", version)
    make_sdist(folder, "alpha", "2.0.0")
    make_wheel(folder, "beta", "0.3.0", requires=("alpha>=1.0",))
    (folder / "README.txt").write_text("not a distribution\n")
    (folder / "broken-name.whl").write_bytes(b"")
    return folder


@pytest.fixture
def index(dists: Path) -> Iterator[LocalIndex]:
    with serve(dists) as running:
        yield running


class _Static(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, bytes]]
    seen: list[dict[str, str]]

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **dict(self.headers.items())})
        status, kind, body = self.routes.get(self.path, (404, "text/plain", b"no"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served by a real threaded HTTP server on 127.0.0.1; yields its base URL and
    stops it (and its thread) afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def static_server(
    routes: dict[str, tuple[int, str, bytes]],
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A tiny real HTTP server answering fixed (status, content type, body) per path.

    Yields its base URL and the list of requests it saw (path and headers).
    """
    seen: list[dict[str, str]] = []
    with serving(type("Handler", (_Static,), {"routes": routes, "seen": seen})) as url:
        yield url, seen
