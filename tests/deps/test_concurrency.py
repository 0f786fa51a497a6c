"""Looking projects up concurrently: lookups overlap, stay within their bound, keep their order, and
the disk cache stays whole when threads write the same entries at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from packaging.version import Version

from shipyard.deps.httpcache import HttpCache
from shipyard.deps.index import PackageIndex
from shipyard.deps.jsonapi import gather
from shipyard.deps.manifests.model import Dependency
from shipyard.errors import PackageIndexError
from tests.deps.conftest import serving, static_server

NAMES = [f"pkg{i:02d}" for i in range(10)]
JSON = "application/vnd.pypi.simple.v1+json"


class _Gate(BaseHTTPRequestHandler):
    """Answers a project page only once ``parties`` requests are in flight together (else 500)."""

    barrier: threading.Barrier
    lock: threading.Lock
    state: dict[str, int]

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        with self.lock:
            self.state["now"] += 1
            self.state["max"] = max(self.state["max"], self.state["now"])
        try:
            self.barrier.wait(timeout=20)
            status = 200
        except threading.BrokenBarrierError:
            status = 500  # the requests did not overlap
        finally:
            with self.lock:
                self.state["now"] -= 1
        name = self.path.strip("/").split("/")[-1]
        files = [{"filename": f"{name}-1.0.0-py3-none-any.whl", "url": f"{name}.whl", "hashes": {}}]
        body = json.dumps({"meta": {"api-version": "1.0"}, "name": name, "files": files}).encode()
        self.send_response(status)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def gated() -> Iterator[tuple[str, dict[str, int]]]:
    """An index whose answers need 4 requests at once; yields its URL and the in-flight counts."""
    state = {"now": 0, "max": 0}
    handler = type(
        "Handler",
        (_Gate,),
        {"barrier": threading.Barrier(4), "lock": threading.Lock(), "state": state},
    )
    with serving(handler) as url:
        yield f"{url}/simple/", state


def dep(name: str) -> Dependency:
    return Dependency(name=name, specifier="==1.0.0", pinned=Version("1.0.0"),
                      manifest="requirements.txt", section="requirements")  # fmt: skip


def test_lookups_overlap_within_their_bound_and_keep_the_dependencies_order(
    gated: tuple[str, dict[str, int]],
) -> None:
    url, state = gated
    # Reversed, to show the result follows the dependencies and not the order answers came in.
    names = [*reversed(NAMES[:8])]
    with PackageIndex(url) as index:
        data = gather([dep(n) for n in names], index, None, at_once=4)
    assert list(data) == names
    assert all(str(d.releases[0].version) == "1.0.0" for d in data.values())
    # Every answer needed 4 requests in flight; never more than the bound were.
    assert state["max"] == 4


def test_one_failing_lookup_fails_the_whole_lookup_and_a_missing_one_is_left_out() -> None:
    page = json.dumps({"meta": {"api-version": "1.0"}, "files": []}).encode()
    routes = {f"/simple/{n}/": (200, JSON, page) for n in NAMES}
    routes["/simple/pkg03/"] = (500, "text/plain", b"boom")
    with static_server(routes) as (url, _), PackageIndex(url + "/simple/") as index:
        found = gather([dep(n) for n in [*NAMES[:3], "absent"]], index, None, at_once=4)
        assert list(found) == NAMES[:3]
        with pytest.raises(PackageIndexError, match="HTTP 500 for pkg03"):
            gather([dep(n) for n in NAMES], index, None, at_once=4)


class _Cacheable(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "pad": "x" * 200_000}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("ETag", f'"{self.path}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_the_cache_stays_whole_when_threads_write_the_same_entries(tmp_path: Path) -> None:
    cache = HttpCache(tmp_path / "c")
    with serving(_Cacheable) as base, httpx.Client() as http, ThreadPoolExecutor(12) as pool:
        urls = [f"{base}/p{i % 3}" for i in range(48)]

        def fetch(url: str) -> tuple[str, str]:
            response = cache.get(http, url, {"Accept": "application/json"})
            return url, str(response.json()["path"])

        seen = list(pool.map(fetch, urls))
    assert all(url.endswith(path) for url, path in seen)
    entries = sorted((tmp_path / "c").iterdir())
    assert [p.suffix for p in entries] == [".entry"] * 3  # no temporary file left behind
    for entry in entries:
        head, _, body = entry.read_bytes().partition(b"\n")
        meta = json.loads(head)
        assert json.loads(body)["path"] == meta["headers"]["etag"].strip('"')


def test_a_torn_cache_entry_is_a_miss(tmp_path: Path) -> None:
    cache = HttpCache(tmp_path / "c")
    with serving(_Cacheable) as base, httpx.Client() as http:
        cache.get(http, f"{base}/p", {"Accept": "application/json"})
        [entry] = (tmp_path / "c").iterdir()
        entry.write_bytes(entry.read_bytes()[:40])
        again = cache.get(http, f"{base}/p", {"Accept": "application/json"})
    assert again.extensions["cache"] == "miss"
    assert again.json()["path"] == "/p"
