"""The local index speaks PEP 503 HTML and PEP 691 JSON with hashes and PEP 700 upload times."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from shipyard.deps.localindex import LocalIndex, serve, wants_json
from shipyard.errors import PackageIndexError

JSON = "application/vnd.pypi.simple.v1+json"


def _get(url: str, accept: str | None = None) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return httpx.get(url, headers=headers, timeout=10, follow_redirects=False)


def test_url_is_on_loopback_and_ends_in_simple(index: LocalIndex) -> None:
    assert index.host == "127.0.0.1"
    assert index.port > 0
    assert index.url == f"http://127.0.0.1:{index.port}/simple/"


def test_root_lists_projects_in_json_and_html(index: LocalIndex) -> None:
    as_json = _get(index.url, JSON)
    assert as_json.headers["content-type"] == JSON
    assert as_json.json() == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "alpha"}, {"name": "beta"}],
    }
    as_html = _get(index.url, "text/html")
    assert as_html.headers["content-type"].startswith("application/vnd.pypi.simple.v1+html")
    assert re.findall(r'<a href="([^"]+)">', as_html.text) == ["alpha/", "beta/"]


def test_project_json_has_hashes_sizes_upload_times_and_versions(
    dists: Path, index: LocalIndex
) -> None:
    wheel = dists / "beta-0.3.0-py3-none-any.whl"
    os.utime(wheel, (1_700_000_000.25, 1_700_000_000.25))
    page = _get(index.url + "beta/", JSON).json()
    assert page["meta"] == {"api-version": "1.1"}
    assert page["name"] == "beta"
    assert page["versions"] == ["0.3.0"]
    [entry] = page["files"]
    assert entry["filename"] == wheel.name
    assert entry["hashes"] == {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}
    assert entry["size"] == wheel.stat().st_size
    assert entry["upload-time"] == "2023-11-14T22:13:20.250000Z"
    assert datetime.fromisoformat(entry["upload-time"]) == datetime.fromtimestamp(
        1_700_000_000.25, UTC
    )
    download = _get(str(httpx.URL(index.url + "beta/").join(entry["url"])))
    assert download.status_code == 200
    assert download.content == wheel.read_bytes()
    assert "immutable" in download.headers["cache-control"]


def test_project_html_links_carry_sha256_fragments(dists: Path, index: LocalIndex) -> None:
    page = _get(index.url + "alpha/", "text/html").text
    links = dict(re.findall(r'<a href="([^"#]+)#sha256=([0-9a-f]{64})">', page))
    assert len(links) == 5  # four wheels and the sdist
    target = "../../files/alpha-1.1.0-py3-none-any.whl"
    digest = hashlib.sha256((dists / "alpha-1.1.0-py3-none-any.whl").read_bytes()).hexdigest()
    assert links[target] == digest
    assert 'content="1.1"' in page  # pypi:repository-version


def test_names_are_normalised_and_json_is_negotiated(index: LocalIndex) -> None:
    assert _get(index.url + "ALPHA/", JSON).json()["name"] == "alpha"
    assert _get(index.url + "alpha", JSON).status_code == 200
    preferring_html = f"text/html, {JSON};q=0.5"
    assert _get(index.url + "alpha/", preferring_html).headers["content-type"].endswith("utf-8")
    assert _get(index.url + "alpha/").headers["content-type"].startswith("application/vnd.pypi")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (JSON, True),
        (f"{JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01", True),
        (f"text/html, {JSON};q=0.9", False),
        (f"{JSON};q=0", False),
        ("*/*", False),
        ("", False),
        (f"{JSON};q=abc, text/html", False),
    ],
)
def test_wants_json(accept: str, expected: bool) -> None:
    assert wants_json(accept) is expected


@pytest.mark.parametrize(
    "path",
    [
        "simple/no-such-project/",
        "files/no-such-1.0-py3-none-any.whl",
        "files/README.txt",
        "files/..%2F..%2Fetc%2Fpasswd",
        "files/.hidden-1.0-py3-none-any.whl",
        "elsewhere",
    ],
)
def test_anything_else_is_not_found(index: LocalIndex, path: str) -> None:
    base = index.url.removesuffix("simple/")
    assert _get(base + path).status_code == 404


def test_serving_a_missing_folder_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(PackageIndexError, match="no such folder"), serve(tmp_path / "nope"):
        pass


def test_a_port_in_use_fails_clearly(dists: Path, index: LocalIndex) -> None:
    with (
        pytest.raises(PackageIndexError, match="pick another --port"),
        serve(dists, port=index.port),
    ):
        pass


def test_the_server_stops_with_the_block(dists: Path) -> None:
    with serve(dists) as running:
        assert _get(running.url).status_code == 200
    with pytest.raises(httpx.ConnectError):
        _get(running.url)


def test_module_main_serves_until_stopped_and_prints_the_url(dists: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "shipyard.deps.localindex", str(dists), "--port", "0"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"at (http://127\.0\.0\.1:\d+/simple/)$", line.strip())
            assert match, line
            assert _get(match[1], JSON).json()["projects"][0] == {"name": "alpha"}
        finally:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C does
            assert proc.wait(timeout=10) == 0


def test_module_main_reports_a_missing_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shipyard.deps.localindex", str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")},
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no such folder" in done.stderr
