"""A local package index: a folder of wheels and sdists served on loopback as a PEP 503 HTML and
PEP 691 JSON simple API, with sha256 hashes and PEP 700 upload times, plus PyPI's JSON API.

An optional ``shipyard-index.json`` in the folder adds what files alone cannot say::

    {"projects": {"alpha": {
        "project_urls": {"Changelog": "/pages/alpha-changelog.md"},
        "yanked": {"1.0.1": "broke the API"},
        "vulnerabilities": [{"id": "PYSEC-2026-1", "aliases": ["CVE-2026-0001"],
                             "summary": "...", "affected": "<1.1.0", "fixed_in": ["1.1.0"]}]}}}

Links starting with ``/`` are made absolute on this server; ``/pages/NAME`` serves ``pages/NAME``
from the folder. Pages carry an ETag and answer a conditional request with 304.
``serve(..., auth=("user", "password"))`` requires HTTP basic authentication, like a private index.

For air-gapped use, the demo and the tests: ``python -m shipyard.deps.localindex DIR --port N``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import logging
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from shipyard.errors import PackageIndexError

log = logging.getLogger(__name__)

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
_API_VERSION = "1.1"


def parse_filename(filename: str) -> tuple[str, str] | None:
    """(canonical project name, version) of a wheel or sdist file name; None for anything else."""
    try:
        if filename.endswith(".whl"):
            name, version, *_ = parse_wheel_filename(filename)
            return str(name), str(version)
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return str(name), str(version)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


@lru_cache(maxsize=4096)
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    # mtime and size are part of the cache key so a replaced file is hashed again.
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _projects(directory: Path) -> dict[str, list[Path]]:
    projects: dict[str, list[Path]] = {}
    for path in sorted(directory.iterdir()):
        parsed = parse_filename(path.name) if path.is_file() else None
        if parsed is not None:
            projects.setdefault(parsed[0], []).append(path)
    return projects


def wants_json(accept: str) -> bool:
    """Content negotiation (PEP 691): JSON when the client rates it at least as high as HTML."""
    quality: dict[str, float] = {}
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[kind.lower()] = q
    best_html = max(quality.get(k, 0.0) for k in (HTML_TYPE, "text/html", "*/*"))
    return quality.get(JSON_TYPE, 0.0) > 0 and quality.get(JSON_TYPE, 0.0) >= best_html


SIDECAR = "shipyard-index.json"


def _sidecar(directory: Path) -> dict[str, Any]:
    """The folder's ``shipyard-index.json`` projects table (canonical names), or nothing."""
    path = directory / SIDECAR
    if not path.is_file():
        return {}
    try:
        projects = json.loads(path.read_text(encoding="utf-8")).get("projects", {})
    except (OSError, ValueError, AttributeError):
        log.warning("%s is not valid JSON with a projects table; ignoring it", path)
        return {}
    return {canonicalize_name(k): v for k, v in projects.items() if isinstance(v, dict)}


def _affects(vulnerability: dict[str, Any], version: str) -> bool:
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    affected = vulnerability.get("affected")
    if isinstance(affected, list):
        return version in affected
    try:
        return SpecifierSet(str(affected or "")).contains(parsed, prereleases=True)
    except InvalidSpecifier:
        return False


_NOT_FOUND_JSON = b'{"message": "Not Found"}'
_REVALIDATE = "max-age=0, must-revalidate"


class _Handler(BaseHTTPRequestHandler):
    directory: Path
    credentials: str | None = None
    server_version = "shipyard-index"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        if self.credentials is not None and self.headers.get("Authorization") != self.credentials:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="shipyard-index"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        path = unquote(self.path.split("?", 1)[0].split("#", 1)[0])
        as_json = wants_json(self.headers.get("Accept", ""))
        if path in ("/simple", "/simple/"):
            return self._root(as_json)
        if path.startswith("/simple/"):
            name = path.removeprefix("/simple/").strip("/")
            return self._project(canonicalize_name(name), as_json)
        if path.startswith("/files/"):
            return self._file(path.removeprefix("/files/"))
        if path.startswith("/pypi/") and path.endswith("/json"):
            return self._json_api(path.removeprefix("/pypi/").removesuffix("/json").strip("/"))
        if path.startswith("/pages/"):
            return self._text(path.removeprefix("/pages/"))
        self._send(404, "text/plain", b"not found; the index is at /simple/\n")

    def do_HEAD(self) -> None:
        # uv asks with HEAD whether a file supports range requests before reading its metadata.
        path = unquote(self.path.split("?", 1)[0].split("#", 1)[0])
        authorized = (
            self.credentials is None or self.headers.get("Authorization") == self.credentials
        )
        if authorized and path.startswith("/files/"):
            return self._file(path.removeprefix("/files/"), body=False)
        self.send_response(404 if authorized else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _cacheable(self, kind: str, body: bytes) -> None:
        """A page with a validator; a matching conditional request gets 304 and no body."""
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        # Always revalidated: a folder can change at any time, and a 304 is cheap on loopback.
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", _REVALIDATE)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", _REVALIDATE)
        self.end_headers()
        self.wfile.write(body)

    def _page(self, as_json: bool, data: dict[str, Any], links: str) -> None:
        if as_json:
            return self._cacheable(JSON_TYPE, json.dumps(data, indent=1).encode())
        meta = f'<meta name="pypi:repository-version" content="{_API_VERSION}">'
        body = f"<!DOCTYPE html>\n<html><head>{meta}</head><body>\n{links}</body></html>\n"
        self._cacheable(f"{HTML_TYPE}; charset=utf-8", body.encode())

    def _absolute(self, url: str) -> str:
        if url.startswith("/"):
            return f"http://{self.headers.get('Host', 'localhost')}{url}"
        return url

    def _json_api(self, rest: str) -> None:
        """PyPI's JSON API: the project (or one version), its links, and the advisories
        affecting that version (the latest one when none is named)."""
        raw_name, _, version = rest.partition("/")
        name = canonicalize_name(raw_name)
        paths = _projects(self.directory).get(name)
        versions = sorted(
            {(parse_filename(p.name) or ("", "0"))[1] for p in paths or ()}, key=Version
        )
        if not versions or (version and version not in versions):
            return self._send(404, "application/json", _NOT_FOUND_JSON)
        extra = _sidecar(self.directory).get(name, {})
        shown = version or versions[-1]
        urls = {k: self._absolute(str(v)) for k, v in (extra.get("project_urls") or {}).items()}
        vulnerabilities = [
            {
                "id": v.get("id"),
                "aliases": v.get("aliases", []),
                "summary": v.get("summary"),
                "details": v.get("details", v.get("summary", "")),
                "fixed_in": v.get("fixed_in", []),
                "link": v.get("link", f"https://osv.dev/vulnerability/{v.get('id')}"),
                "source": "osv",
                "withdrawn": v.get("withdrawn"),
            }
            for v in extra.get("vulnerabilities", [])
            if isinstance(v, dict) and _affects(v, shown)
        ]
        data: dict[str, Any] = {
            "info": {
                "name": name,
                "version": shown,
                "summary": extra.get("summary", ""),
                "project_urls": urls or None,
                "home_page": self._absolute(str(extra.get("home_page", ""))) or None,
                "yanked": shown in (extra.get("yanked") or {}),
            },
            "releases": None if version else {v: [] for v in versions},
            "vulnerabilities": vulnerabilities,
        }
        self._cacheable("application/json", json.dumps(data, indent=1).encode())

    def _text(self, name: str) -> None:
        path = self.directory / "pages" / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return self._send(404, "text/plain", b"no such page\n")
        kind = "text/html; charset=utf-8" if name.endswith(".html") else "text/plain; charset=utf-8"
        self._cacheable(kind, path.read_bytes())

    def _root(self, as_json: bool) -> None:
        names = sorted(_projects(self.directory))
        data = {"meta": {"api-version": _API_VERSION}, "projects": [{"name": n} for n in names]}
        links = "".join(f'<a href="{quote(n)}/">{html.escape(n)}</a>\n' for n in names)
        self._page(as_json, data, links)

    def _project(self, name: str, as_json: bool) -> None:
        paths = _projects(self.directory).get(name)
        if not paths:
            return self._send(404, "text/plain", f"no project {name} here\n".encode())
        files: list[dict[str, Any]] = []
        versions: set[str] = set()
        links = ""
        yanked: dict[str, Any] = _sidecar(self.directory).get(name, {}).get("yanked") or {}
        for p in paths:
            stat = p.stat()
            sha256 = _sha256(p, stat.st_mtime_ns, stat.st_size)
            url = f"../../files/{quote(p.name)}"
            uploaded = datetime.fromtimestamp(stat.st_mtime, UTC)
            version = (parse_filename(p.name) or ("", ""))[1]
            reason = yanked.get(version)
            entry: dict[str, Any] = {
                "filename": p.name,
                "url": url,
                "hashes": {"sha256": sha256},
                "size": stat.st_size,
                "upload-time": uploaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
            if reason is not None:
                entry["yanked"] = str(reason) or True
            files.append(entry)
            versions.add(version)
            mark = f' data-yanked="{html.escape(str(reason))}"' if reason is not None else ""
            links += f'<a href="{url}#sha256={sha256}"{mark}>{html.escape(p.name)}</a><br>\n'
        data = {
            "meta": {"api-version": _API_VERSION},
            "name": name,
            "versions": sorted(versions),
            "files": files,
        }
        self._page(as_json, data, links)

    def _file(self, name: str, *, body: bool = True) -> None:
        path = self.directory / name
        served = "/" not in name and not name.startswith(".") and parse_filename(name) is not None
        if not served or not path.is_file():
            return self._send(404, "text/plain", b"no such file\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(path.stat().st_size))
        # A distribution file never changes under its name, so clients (pip's cache) may keep it.
        self.send_header("Cache-Control", "public, max-age=31536000, immutable")
        self.end_headers()
        if body:
            with path.open("rb") as fh:
                shutil.copyfileobj(fh, self.wfile)


@dataclass(frozen=True)
class LocalIndex:
    """A running local index; ``url`` is what pip's ``--index-url`` takes."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/simple/"


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _server(directory: Path, host: str, port: int, auth: tuple[str, str] | None = None) -> _Server:
    if not directory.is_dir():
        raise PackageIndexError(f"{directory}: no such folder of distributions to serve.")
    expected = None
    if auth is not None:
        expected = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    handler = type(
        "Handler", (_Handler,), {"directory": directory.resolve(), "credentials": expected}
    )
    try:
        return _Server((host, port), handler)
    except OSError as exc:
        raise PackageIndexError(
            f"cannot listen on {host}:{port} ({exc.strerror}); "
            "pick another --port, or 0 for any free one."
        ) from exc


@contextmanager
def serve(
    directory: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    auth: tuple[str, str] | None = None,
) -> Iterator[LocalIndex]:
    """Serve ``directory`` in a background thread for the duration of the ``with`` block;
    with ``auth`` (user, password) every request must carry those basic credentials."""
    server = _server(directory, host, port, auth)
    # A short poll interval makes leaving the ``with`` block quick; tests start many indexes.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-index", daemon=True
    )
    thread.start()
    try:
        yield LocalIndex(host=host, port=int(server.server_address[1]))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def serve_forever(directory: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve in the foreground until interrupted, printing the index URL first."""
    server = _server(directory, host, port)
    url = LocalIndex(host=host, port=int(server.server_address[1])).url
    # The one line a user (or a script waiting for the index) needs; flushed for pipes.
    print(f"serving {directory} at {url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m shipyard.deps.localindex DIR [--port N] [--host H]``."""
    parser = argparse.ArgumentParser(
        prog="python -m shipyard.deps.localindex",
        description="Serve a folder of wheels and sdists as a package index until interrupted.",
    )
    parser.add_argument("directory", type=Path, help="folder of wheels and sdists")
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    args = parser.parse_args(argv)
    try:
        serve_forever(args.directory, host=args.host, port=args.port)
    except PackageIndexError as exc:
        parser.exit(2, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
