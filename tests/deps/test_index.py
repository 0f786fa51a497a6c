"""The package index client against real HTTP servers: the local index and tiny fixed handlers."""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from packaging.version import Version

from shipyard.deps.index import PackageIndex, redact
from shipyard.deps.localindex import LocalIndex
from shipyard.errors import PackageIndexError
from tests.deps.conftest import static_server

JSON = "application/vnd.pypi.simple.v1+json"


def test_json_api_lists_every_version_with_its_files(dists: Path, index: LocalIndex) -> None:
    os.utime(dists / "alpha-1.0.0-py3-none-any.whl", (1_700_000_000, 1_700_000_000))
    with PackageIndex(index.url) as client:
        releases = client.releases("Alpha")
    assert [str(r.version) for r in releases] == ["1.0.0", "1.0.1", "1.1.0", "2.0.0rc1", "2.0.0"]
    first, last = releases[0], releases[-1]
    assert first.files[0].filename == "alpha-1.0.0-py3-none-any.whl"
    assert first.files[0].url == index.url.replace("/simple/", "/files/") + first.files[0].filename
    assert first.upload_time == datetime.fromtimestamp(1_700_000_000, UTC)
    assert first.has_wheel
    assert not first.yanked
    assert not last.has_wheel
    assert last.files[0].filename == "alpha-2.0.0.tar.gz"


def test_html_fallback_reads_the_same_releases(index: LocalIndex) -> None:
    page = httpx.get(index.url + "alpha/", headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("application/vnd.pypi.simple.v1+html")
    routes = {"/simple/alpha/": (200, "text/html; charset=utf-8", page.content)}
    with static_server(routes) as (base, seen), PackageIndex(base + "/simple") as client:
        releases = client.releases("alpha")
    assert [str(r.version) for r in releases] == ["1.0.0", "1.0.1", "1.1.0", "2.0.0rc1", "2.0.0"]
    assert releases[0].files[0].url.startswith(base + "/files/alpha-1.0.0-py3-none-any.whl#sha256=")
    assert seen[0]["Accept"].startswith(JSON)  # JSON asked for first, HTML accepted


def test_yanked_files_and_foreign_or_unparseable_names_in_json() -> None:
    page = {
        "meta": {"api-version": "1.1"},
        "name": "gamma",
        "files": [
            {"filename": "gamma-1.0-py3-none-any.whl", "url": "/f/a", "hashes": {}},
            {"filename": "gamma-1.1-py3-none-any.whl", "url": "/f/b", "hashes": {},
             "yanked": "broke the API"},
            {"filename": "gamma-1.2.tar.gz", "url": "/f/c", "hashes": {}, "yanked": True},
            {"filename": "gamma-1.2-py3-none-any.whl", "url": "/f/d", "hashes": {}},
            {"filename": "other-9.0-py3-none-any.whl", "url": "/f/e", "hashes": {}},
            {"filename": "gamma-notaversion.whl", "url": "/f/f", "hashes": {}},
            {"filename": "gamma-1.3.exe", "url": "/f/g", "hashes": {}},
        ],
    }  # fmt: skip
    routes = {"/simple/gamma/": (200, JSON, json.dumps(page).encode())}
    with static_server(routes) as (base, _), PackageIndex(base + "/simple/") as client:
        releases = {str(r.version): r for r in client.releases("gamma")}
    assert sorted(releases) == ["1.0", "1.1", "1.2"]
    assert releases["1.1"].yanked
    # 1.2's sdist is yanked but its wheel is not: the release stands.
    assert not releases["1.2"].yanked
    assert releases["1.2"].has_wheel
    assert releases["1.2"].files[0].yanked
    assert releases["1.0"].files[0].url == base + "/f/a"


def test_yanked_links_in_html() -> None:
    html = (
        '<a href="/f/g-1.0-py3-none-any.whl">g-1.0-py3-none-any.whl</a>'
        '<a href="/f/g-1.1-py3-none-any.whl" data-yanked="">g-1.1-py3-none-any.whl</a>'
        '<a href="/f/g-1.2-py3-none-any.whl#sha256=00"></a>'
    )
    routes = {"/simple/g/": (200, "text/html", html.encode())}
    with static_server(routes) as (base, _), PackageIndex(base + "/simple/") as client:
        releases = client.releases("g")
    assert [(str(r.version), r.yanked) for r in releases] == [
        ("1.0", False),
        ("1.1", True),
        ("1.2", False),  # the file name comes from the URL when the link has no text
    ]


def test_a_missing_project_is_a_package_index_error(index: LocalIndex) -> None:
    with PackageIndex(index.url) as client, pytest.raises(PackageIndexError) as err:
        client.releases("no-such-project")
    assert "no-such-project" in str(err.value)
    assert index.url in str(err.value)
    assert "--index-url" in str(err.value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_index_is_a_package_index_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/simple/"
    with PackageIndex(url, timeout=5) as client, pytest.raises(PackageIndexError) as err:
        client.releases("alpha")
    assert "cannot reach the package index" in str(err.value)
    assert "Is the index running" in str(err.value)
    assert isinstance(err.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(
    ("status", "kind", "body", "message"),
    [
        (200, "application/octet-stream", b"\x00", "not a simple-API page"),
        (200, "text/plain", b"hello", "text/plain, not a simple-API page"),
        (200, JSON, b"{not json", "not a PEP 691 project page"),
        (200, JSON, b'{"meta": {}}', "not a PEP 691 project page"),
        (500, "text/plain", b"boom", "answered HTTP 500"),
    ],
)
def test_answers_that_are_not_simple_api_pages(
    status: int, kind: str, body: bytes, message: str
) -> None:
    routes = {"/simple/alpha/": (status, kind, body)}
    with (
        static_server(routes) as (base, _),
        PackageIndex(base + "/simple/") as client,
        pytest.raises(PackageIndexError, match=message),
    ):
        client.releases("alpha")


def test_credentials_never_appear_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    routes = {"/simple/alpha/": (404, "text/plain", b"")}
    with static_server(routes) as (base, seen):
        url = base.replace("http://", "http://ada:s3cret@") + "/simple/"
        with PackageIndex(url) as client, pytest.raises(PackageIndexError) as err:
            client.releases("alpha")
    assert seen[0]["Authorization"].startswith("Basic ")  # the credentials were used...
    assert "s3cret" not in str(err.value)
    assert "ada" not in str(err.value)
    assert f"{base}/simple/" in str(err.value)
    assert "s3cret" not in caplog.text
    assert f"GET {base}/simple/alpha/" in caplog.text


def test_redact_keeps_everything_but_the_credentials() -> None:
    assert redact("https://u:p@host:8443/simple/?x=1") == "https://***@host:8443/simple/?x=1"
    assert redact("https://token@host/simple/") == "https://***@host/simple/"
    assert redact("http://127.0.0.1:8080/simple/") == "http://127.0.0.1:8080/simple/"


def test_an_injected_client_is_used_and_left_open(index: LocalIndex) -> None:
    with httpx.Client() as shared:
        with PackageIndex(index.url, client=shared) as client:
            assert [str(r.version) for r in client.releases("beta")] == ["0.3.0"]
        assert not shared.is_closed
        assert shared.get(index.url).status_code == 200


def test_versions_compare_as_versions(index: LocalIndex) -> None:
    with PackageIndex(index.url) as client:
        versions = [r.version for r in client.releases("alpha")]
    assert versions == sorted(versions)
    assert Version("2.0.0rc1") in versions
