"""A small HTTP cache on disk for index pages and JSON API answers (under $SHIPYARD_HOME/cache/http).

It honours ``Cache-Control`` (``max-age``, ``no-cache``, ``no-store``) and revalidates stale entries
with ``If-None-Match`` / ``If-Modified-Since``, so an unchanged page costs a 304 and no body. Only
200 answers are kept. Entries are keyed by URL, ``Accept`` and the credential identity, so two
users of one private index never share an entry.

Safe for concurrent lookups (threads or processes sharing one cache folder): an entry (its headers
and body together) is one file, written under a unique temporary name and renamed into place, so a
reader sees a whole old entry or a whole new one, never a mix; when two writers race, the last
complete one wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*(\d+)", re.IGNORECASE)
_KEPT = ("content-type", "etag", "last-modified", "cache-control", "date")
HIT, REVALIDATED, MISS = "hit", "revalidated", "miss"


class HttpCache:
    """Cached GETs through an httpx client; ``response.extensions["cache"]`` says how it was served."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._now = time.time

    def get(
        self, client: httpx.Client, url: str, headers: dict[str, str], *, identity: str = ""
    ) -> httpx.Response:
        key = hashlib.sha256(
            "\n".join((url, headers.get("Accept", ""), identity)).encode()
        ).hexdigest()
        path = self.directory / f"{key}.entry"
        stored = _read(path)
        request_headers = dict(headers)
        if stored is not None:
            meta, body = stored
            control = meta["headers"].get("cache-control", "")
            if "no-cache" not in control and self._now() - meta["stored_at"] < _max_age(control):
                return _response(url, 200, meta["headers"], body, HIT)
            if meta["headers"].get("etag"):
                request_headers["If-None-Match"] = meta["headers"]["etag"]
            if meta["headers"].get("last-modified"):
                request_headers["If-Modified-Since"] = meta["headers"]["last-modified"]
        response = client.get(url, headers=request_headers)
        if response.status_code == 304 and stored is not None:
            meta, body = stored
            meta["headers"].update(
                {
                    k: response.headers[k]
                    for k in _KEPT
                    if k in response.headers and k != "content-type"
                }
            )
            meta["stored_at"] = self._now()
            self._write(path, meta, body)
            return _response(url, 200, meta["headers"], body, REVALIDATED)
        response.extensions = {**response.extensions, "cache": MISS}
        control = response.headers.get("cache-control", "")
        if response.status_code == 200 and "no-store" not in control:
            kept = {k: response.headers[k] for k in _KEPT if k in response.headers}
            if kept.get("etag") or kept.get("last-modified") or _max_age(control) > 0:
                meta = {"url": url, "stored_at": self._now(), "headers": kept}
                self._write(path, meta, response.content)
        return response

    def _write(self, path: Path, meta: dict[str, Any], body: bytes) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            _atomic(path, json.dumps(meta).encode() + b"\n" + body)
        except OSError as exc:  # a cache that cannot be written is only slower
            log.debug("cannot write the HTTP cache in %s: %s", self.directory, exc)


def _atomic(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:  # mkstemp creates it 0600
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read(path: Path) -> tuple[dict[str, Any], bytes] | None:
    """An entry's headers and body; None when absent or torn (read as a miss)."""
    try:
        head, _, body = path.read_bytes().partition(b"\n")
        meta: dict[str, Any] = json.loads(head)
        return meta, body
    except (OSError, ValueError):
        return None


def _max_age(control: str) -> float:
    if "no-store" in control or "no-cache" in control:
        return 0.0
    found = _MAX_AGE.search(control)
    return float(found.group(1)) if found else 0.0


def _response(
    url: str, status: int, headers: dict[str, str], body: bytes, how: str
) -> httpx.Response:
    return httpx.Response(
        status,
        headers=headers,
        content=body,
        request=httpx.Request("GET", url),
        extensions={"cache": how},
    )
