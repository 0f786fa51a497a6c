"""Index data beyond versions, against the real local index over HTTP: file hashes, yanked releases,
the JSON API's links and advisories, the disk cache, and credentials for a private index."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from packaging.version import Version

from shipyard.deps.credentials import index_auth
from shipyard.deps.httpcache import HttpCache
from shipyard.deps.index import PackageIndex
from shipyard.deps.jsonapi import JsonApi, gather, json_api_base
from shipyard.deps.localindex import SIDECAR, LocalIndex, serve
from shipyard.deps.manifests.model import Dependency
from shipyard.deps.wheelhouse import download
from shipyard.errors import DependencyError, PackageIndexError
from tests.deps.conftest import make_wheel, serving, static_server

ADVISORY = {
    "id": "PYSEC-2026-7",
    "aliases": ["CVE-2026-1234"],
    "summary": "alpha evaluates untrusted input",
    "affected": "<1.1.0",
    "fixed_in": ["1.1.0"],
}


def write_sidecar(folder: Path) -> None:
    (folder / "pages").mkdir(exist_ok=True)
    (folder / "pages" / "alpha.md").write_text("# 1.1.0\n- new API\n")
    (folder / SIDECAR).write_text(
        json.dumps(
            {
                "projects": {
                    "Alpha": {
                        "project_urls": {"Changelog": "/pages/alpha.md"},
                        "yanked": {"1.0.1": "broken build"},
                        "vulnerabilities": [ADVISORY],
                    }
                }
            }
        )
    )


@pytest.fixture
def rich_index(dists: Path) -> Iterator[LocalIndex]:
    write_sidecar(dists)
    with serve(dists) as running:
        yield running


def test_hashes_are_the_sha256_of_each_file(dists: Path, rich_index: LocalIndex) -> None:
    wheel = dists / "alpha-1.1.0-py3-none-any.whl"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with PackageIndex(rich_index.url) as client:
        assert client.hashes("alpha", Version("1.1.0")) == [f"sha256:{digest}"]
        assert client.hashes("alpha", Version("9.9")) == []


def test_yanked_releases_from_the_sidecar_are_marked_in_json_and_html(
    rich_index: LocalIndex,
) -> None:
    with PackageIndex(rich_index.url) as client:
        releases = {str(r.version): r for r in client.releases("alpha")}
    assert releases["1.0.1"].yanked
    assert not releases["1.1.0"].yanked
    page = httpx.get(rich_index.url + "alpha/", headers={"Accept": "text/html"}).text
    assert 'data-yanked="broken build"' in page


def test_json_api_gives_links_and_the_advisories_of_a_version(rich_index: LocalIndex) -> None:
    base = json_api_base(rich_index.url)
    assert base == rich_index.url.replace("/simple/", "/pypi/")
    with PackageIndex(rich_index.url) as client:
        api = JsonApi(client, base)
        old = api.project("alpha", Version("1.0.0"))
        new = api.project("alpha", Version("1.1.0"))
        assert api.project("no-such-project") is None
        assert api.project("alpha", Version("7.0")) is None
    assert old is not None
    assert new is not None
    (advisory,) = old.vulnerabilities
    assert advisory.id == "PYSEC-2026-7"
    assert advisory.aliases == ("CVE-2026-1234",)
    assert advisory.fixed_in == (Version("1.1.0"),)
    assert new.vulnerabilities == ()
    changelog = old.links["Changelog"]
    assert changelog.endswith("/pages/alpha.md")
    assert httpx.get(changelog).text.startswith("# 1.1.0")


def test_gather_reads_releases_and_advisories_of_the_versions_in_use(
    rich_index: LocalIndex,
) -> None:
    deps = [
        Dependency(name="alpha", specifier="==1.0.0", pinned=Version("1.0.0"),
                   manifest="requirements.txt", section="requirements"),
        Dependency(name="beta", specifier=">=0.1", pinned=None, manifest="pyproject.toml",
                   section="project.dependencies"),
        Dependency(name="not-on-index", specifier="==1", pinned=Version("1"),
                   manifest="requirements.txt", section="requirements"),
    ]  # fmt: skip
    with PackageIndex(rich_index.url) as client:
        data = gather(deps, client, JsonApi(client, str(json_api_base(rich_index.url))))
    assert sorted(data) == ["alpha", "beta"]
    assert [v.id for v in data["alpha"].vulnerabilities[Version("1.0.0")]] == ["PYSEC-2026-7"]
    assert data["beta"].vulnerabilities == {Version("0.3.0"): ()}
    assert "Changelog" in data["alpha"].links


def test_json_api_base_is_configurable_or_off() -> None:
    assert json_api_base("https://pypi.org/simple/") == "https://pypi.org/pypi/"
    assert json_api_base("https://host/artifactory/api/pypi/x/simple") == (
        "https://host/artifactory/api/pypi/x/pypi/"
    )
    assert json_api_base("https://host/other/") is None
    assert json_api_base("https://pypi.org/simple/", "") is None
    assert (
        json_api_base("https://pypi.org/simple/", "https://mirror/pypi") == "https://mirror/pypi/"
    )


def test_the_cache_revalidates_with_etags_and_sees_changes(tmp_path: Path, dists: Path) -> None:
    cache = tmp_path / "cache"
    with serve(dists) as index, PackageIndex(index.url, cache_dir=cache) as client:
        first = client.get(index.url + "alpha/", accept="application/vnd.pypi.simple.v1+json")
        again = client.get(index.url + "alpha/", accept="application/vnd.pypi.simple.v1+json")
        assert first.extensions["cache"] == "miss"
        assert again.extensions["cache"] == "revalidated"  # a 304, body from disk
        assert again.json() == first.json()
        make_wheel(dists, "alpha", "3.0.0")
        assert "3.0.0" in [str(r.version) for r in client.releases("alpha")]


class _Fresh(BaseHTTPRequestHandler):
    hits: list[str] = []

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b'{"files": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.path == "/fresh":
            self.send_header("Cache-Control", "max-age=600")
        elif self.path == "/private":
            self.send_header("Cache-Control", "no-store")
            self.send_header("ETag", '"x"')
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize(("path", "requests", "how"), [("/fresh", 1, "hit"), ("/private", 2, "miss"),
                                                       ("/plain", 2, "miss")])  # fmt: skip
def test_max_age_is_served_from_disk_and_no_store_or_no_validator_is_not_kept(
    tmp_path: Path, path: str, requests: int, how: str
) -> None:
    handler = type("Handler", (_Fresh,), {"hits": []})
    with serving(handler) as base, httpx.Client() as http:
        cache = HttpCache(tmp_path / "c")
        cache.get(http, f"{base}{path}", {"Accept": "application/json"})
        second = cache.get(http, f"{base}{path}", {"Accept": "application/json"})
    assert len(handler.hits) == requests
    assert second.extensions["cache"] == how
    assert second.json() == {"files": []}


def test_credentials_from_env_and_netrc_reach_only_the_private_index(
    tmp_path: Path, dists: Path
) -> None:
    with serve(dists, auth=("ci", "pa55word")) as index:
        # without credentials the private index refuses
        with PackageIndex(index.url) as client, pytest.raises(PackageIndexError, match="HTTP 401"):
            client.releases("alpha")
        env = {"SHIPYARD_INDEX_USERNAME": "ci", "SHIPYARD_INDEX_PASSWORD": "pa55word"}
        auth = index_auth(index.url, environ=env)
        assert auth.source == "environment"
        assert "pa55word" not in repr(auth)
        with PackageIndex(index.url, auth=auth, cache_dir=tmp_path / "cache") as client:
            assert client.releases("alpha")
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine {index.host} login ci password pa55word\n")
        auth = index_auth(index.url, environ={"NETRC": str(netrc)})
        assert auth.source == "netrc"
        with PackageIndex(index.url, auth=auth) as client:
            assert client.releases("alpha")
    # nothing in the cache holds the password
    for path in (tmp_path / "cache").iterdir():
        assert b"pa55word" not in path.read_bytes()


def test_credentials_are_never_sent_to_another_origin(tmp_path: Path) -> None:
    with static_server({"/x": (200, "text/plain", b"ok")}) as (other, seen):
        auth = index_auth("https://user:secret@private.example/simple/")
        with PackageIndex(auth.url, auth=auth) as client:
            client.get(other + "/x", accept="text/plain")
    assert "Authorization" not in seen[0]
    assert auth.same_origin("https://private.example:443/simple/x/")
    assert not auth.same_origin("http://private.example/simple/")


def test_pip_downloads_from_a_private_index_with_credentials_from_the_environment(
    tmp_path: Path, dists: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha==1.1.0\n")
    with serve(dists, auth=("ci", "pa55word")) as index:
        with pytest.raises(DependencyError) as refused:
            download([requirements], index_url=index.url, dest=tmp_path / "none")
        assert "pa55word" not in str(refused.value)
        monkeypatch.setenv("SHIPYARD_INDEX_USERNAME", "ci")
        monkeypatch.setenv("SHIPYARD_INDEX_PASSWORD", "pa55word")
        wheels = download([requirements], index_url=index.url, dest=tmp_path / "wheels")
    assert [w.name for w in wheels] == ["alpha-1.1.0-py3-none-any.whl"]
