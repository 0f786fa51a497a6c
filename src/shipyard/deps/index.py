"""A package index client for the simple API: PEP 691 JSON first, PEP 503 HTML as the fallback."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from shipyard.deps import network
from shipyard.deps.credentials import IndexAuth, index_auth
from shipyard.deps.httpcache import HttpCache
from shipyard.errors import PackageIndexError

log = logging.getLogger(__name__)

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPES = ("text/html", "application/vnd.pypi.simple.v1+html")
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
_HINT = "Is the index running, and is --index-url right?"


@dataclass(frozen=True)
class DistFile:
    """One downloadable file of a release."""

    filename: str
    url: str
    wheel: bool
    yanked: bool = False
    upload_time: datetime | None = None
    sha256: str | None = None
    """The file's sha256 digest (hex) as the index states it, for ``--hash`` lines."""


@dataclass(frozen=True)
class Release:
    """One version of a project and its files. Yanked when every one of its files is."""

    version: Version
    files: tuple[DistFile, ...]
    yanked: bool
    upload_time: datetime | None

    @property
    def has_wheel(self) -> bool:
        """At least one wheel that is not yanked: installable without running a build backend."""
        return any(f.wheel and not f.yanked for f in self.files)


def redact(url: str) -> str:
    """``url`` without its user:password part, for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


class PackageIndex:
    """Reads a project's releases from one simple-API index (e.g. ``https://pypi.org/simple/``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        cache_dir: Path | None = None,
        auth: IndexAuth | None = None,
    ) -> None:
        # Credentials (from the URL, the environment or netrc) travel in a header, never in a URL:
        # httpx logs request URLs. They go to the index's own origin only, and httpx drops the
        # header itself when a redirect leaves it.
        self.auth = auth or index_auth(url if url.endswith("/") else url + "/")
        self.url = self.auth.url
        self._headers = {"Accept": ACCEPT}
        # The system CA store plus SSL_CERT_FILE/SSL_CERT_DIR, and the standard proxy variables
        # (see shipyard.deps.network).
        self._client = client or network.client(timeout=timeout)
        self._own_client = client is None
        self._cache = HttpCache(cache_dir) if cache_dir is not None else None

    def __enter__(self) -> PackageIndex:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if this index created it."""
        if self._own_client:
            self._client.close()

    def get(self, url: str, *, accept: str) -> httpx.Response:
        """GET ``url`` through the cache, with the index's credentials when it is on its origin.

        Raises PackageIndexError when the server cannot be reached; any HTTP status is returned.
        """
        headers = {"Accept": accept}
        identity = ""
        if self.auth.same_origin(url) and self.auth.header is not None:
            headers["Authorization"] = self.auth.header
            identity = hashlib.sha256(self.auth.header.encode()).hexdigest()
        log.debug("fetching %s", url)
        try:
            if self._cache is None:
                return self._client.get(url, headers=headers)
            return self._cache.get(self._client, url, headers, identity=identity)
        except httpx.HTTPError as exc:
            if network.is_certificate_error(exc):
                raise PackageIndexError(
                    f"cannot reach the package index at {redact(self.url)}: "
                    f"{network.CERTIFICATE_HINT}."
                ) from exc
            raise PackageIndexError(
                f"cannot reach the package index at {redact(self.url)} "
                f"({type(exc).__name__}). {_HINT}"
            ) from exc

    def releases(self, name: str) -> list[Release]:
        """Every version of ``name`` with a parseable file, oldest first, yanked ones included."""
        return self._fetch(name)

    def hashes(self, name: str, version: Version) -> list[str]:
        """``sha256:<hex>`` of every file of ``name`` ``version`` the index states a digest for."""
        for release in self.releases(name):
            if release.version == version:
                return [f"sha256:{f.sha256}" for f in release.files if f.sha256]
        return []

    def _fetch(self, name: str) -> list[Release]:
        page = urljoin(self.url, f"{canonicalize_name(name)}/")
        response = self.get(page, accept=ACCEPT)
        if response.status_code == 404:
            raise PackageIndexError(
                f"{name} was not found on the package index {redact(self.url)} (HTTP 404). {_HINT}"
            )
        if response.status_code >= 400:
            raise PackageIndexError(
                f"the package index {redact(self.url)} answered HTTP {response.status_code} "
                f"for {name}. {_HINT}"
            )
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == JSON_TYPE:
            files = _from_json(response, page)
        elif kind in HTML_TYPES:
            files = _from_html(response.text, page)
        else:
            raise PackageIndexError(
                f"{redact(page)} answered {kind or 'no content type'}, not a simple-API page; "
                "check that --index-url points at the index's /simple/ URL."
            )
        return _group(name, files)


def _from_json(response: httpx.Response, base: str) -> list[DistFile]:
    try:
        data: dict[str, Any] = response.json()
        items = data["files"]
        return [_json_file(item, base) for item in items if isinstance(item, dict)]
    except (ValueError, KeyError, TypeError) as exc:
        raise PackageIndexError(
            f"{redact(base)} answered JSON that is not a PEP 691 project page ({exc}). {_HINT}"
        ) from exc


def _json_file(item: dict[str, Any], base: str) -> DistFile:
    filename = str(item["filename"])
    uploaded = item.get("upload-time")
    digests = item.get("hashes")
    sha256 = digests.get("sha256") if isinstance(digests, dict) else None
    return DistFile(
        filename=filename,
        url=urljoin(base, str(item["url"])),
        wheel=filename.endswith(".whl"),
        # PEP 691: false, true, or a non-empty string giving the reason.
        yanked=bool(item.get("yanked")),
        upload_time=_timestamp(uploaded) if isinstance(uploaded, str) else None,
        sha256=str(sha256) if sha256 else None,
    )


def _timestamp(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class _Links(HTMLParser):
    """Collects each anchor's attributes and text from a PEP 503 page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[dict[str, str | None], list[str]]] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append((dict(attrs), []))
            self._inside = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.links[-1][1].append(data)


def _from_html(text: str, base: str) -> list[DistFile]:
    parser = _Links()
    parser.feed(text)
    parser.close()
    files = []
    for attrs, texts in parser.links:
        href = attrs.get("href")
        if not href:
            continue
        filename = "".join(texts).strip() or href.split("#")[0].rsplit("/", 1)[-1]
        fragment = href.partition("#")[2]
        files.append(
            DistFile(
                filename=filename,
                url=urljoin(base, href),
                wheel=filename.endswith(".whl"),
                yanked="data-yanked" in attrs,
                sha256=fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None,
            )
        )
    return files


_SDIST = re.compile(r"\.(tar\.gz|zip)$")


def _group(name: str, files: list[DistFile]) -> list[Release]:
    wanted = canonicalize_name(name)
    by_version: dict[Version, list[DistFile]] = {}
    for f in files:
        try:
            if f.wheel:
                project, version, *_ = parse_wheel_filename(f.filename)
            elif _SDIST.search(f.filename):
                project, version = parse_sdist_filename(f.filename)
            else:
                continue
        except (InvalidWheelFilename, InvalidSdistFilename):
            log.debug("skipping unparseable file name %s", f.filename)
            continue
        if project == wanted:
            by_version.setdefault(version, []).append(f)
    releases = []
    for version, dist_files in sorted(by_version.items()):
        times = [f.upload_time for f in dist_files if f.upload_time is not None]
        releases.append(
            Release(
                version=version,
                files=tuple(dist_files),
                yanked=all(f.yanked for f in dist_files),
                upload_time=min(times) if times else None,
            )
        )
    return releases
