"""The wheelhouse: real pip against a real local index, isolated from the host's pip settings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipyard.deps.localindex import LocalIndex
from shipyard.deps.wheelhouse import download, download_argv, pip_env
from shipyard.errors import DependencyError
from tests.deps.conftest import make_wheel, static_server


def _names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_downloads_the_requirements_and_their_dependencies(
    tmp_path: Path, index: LocalIndex
) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("beta==0.3.0\n")
    cache = tmp_path / "cache"
    got = download([reqs], index_url=index.url, dest=tmp_path / "wh", cache_dir=cache)
    # alpha 2.0.0 is sdist only and 2.0.0rc1 a pre-release: 1.1.0 is the newest wheel.
    assert _names(got) == ["alpha-1.1.0-py3-none-any.whl", "beta-0.3.0-py3-none-any.whl"]
    assert all(p.parent == tmp_path / "wh" for p in got)
    assert any(p.is_file() for p in cache.rglob("*")), "pip's cache was not used"


def test_extra_requirements_are_added(tmp_path: Path, index: LocalIndex) -> None:
    got = download([], index_url=index.url, dest=tmp_path / "wh", extra_requirements=["alpha<1.1"])
    assert _names(got) == ["alpha-1.0.1-py3-none-any.whl"]


def test_nothing_to_download_runs_nothing(tmp_path: Path) -> None:
    assert download([], index_url="http://127.0.0.1:9/simple/", dest=tmp_path / "wh") == []
    assert not (tmp_path / "wh").exists()


def test_a_missing_requirements_file_is_named(tmp_path: Path, index: LocalIndex) -> None:
    with pytest.raises(DependencyError, match=r"nope\.txt: requirements file not found"):
        download([tmp_path / "nope.txt"], index_url=index.url, dest=tmp_path / "wh")


def test_host_find_links_and_pip_config_are_ignored(
    tmp_path: Path, index: LocalIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    # delta exists only in a find-links folder that both PIP_FIND_LINKS and a pip.conf point at.
    links = tmp_path / "links"
    make_wheel(links, "delta", "1.0")
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nfind-links = {links}\nextra-index-url = file://{links}\n")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("delta==1.0\n")

    # Control: plain pip with this environment does find delta, so the settings are live...
    plain = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--index-url", index.url,
         "--dest", str(tmp_path / "plain"), "-r", str(reqs)],
        env=dict(os.environ), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "plain" / "delta-1.0-py3-none-any.whl").is_file()

    # ...and the wheelhouse does not use them.
    with pytest.raises(DependencyError) as err:
        download([reqs], index_url=index.url, dest=tmp_path / "wh")
    assert "delta==1.0 has no binary wheel on" in str(err.value)
    assert index.url in str(err.value)
    assert not (tmp_path / "wh" / "delta-1.0-py3-none-any.whl").exists()


def test_pip_environment_carries_no_host_pip_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "https://elsewhere.invalid/simple/")
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    env = pip_env()
    assert {k for k in env if k.startswith("PIP_")} == {"PIP_CONFIG_FILE"}
    assert env["PIP_CONFIG_FILE"] == os.devnull
    assert "SECRET_TOKEN" not in env
    assert env["HOME"] == "/nonexistent"


def test_failure_names_the_package_and_hides_credentials(tmp_path: Path, index: LocalIndex) -> None:
    url = index.url.replace("http://", "http://ada:s3cret@")
    with pytest.raises(DependencyError) as err:
        download([], index_url=url, dest=tmp_path / "wh", extra_requirements=["alpha==9.9"])
    message = str(err.value)
    assert message.startswith("alpha==9.9 has no binary wheel on http://***@127.0.0.1:")
    assert "pip said:" in message
    assert "s3cret" not in message
    assert "ada:" not in message


def test_an_index_that_never_answers_times_out(tmp_path: Path) -> None:
    class Slow(dict[str, tuple[int, str, bytes]]):
        def get(self, key: str, default: object = None) -> tuple[int, str, bytes]:
            time.sleep(10)
            return (404, "text/plain", b"")

    with static_server(Slow()) as (base, _):
        started = time.monotonic()
        with pytest.raises(DependencyError, match="took longer than 2 s"):
            download([], index_url=base + "/simple/", dest=tmp_path / "wh",
                     extra_requirements=["alpha"], timeout=2)  # fmt: skip
        assert time.monotonic() - started < 9


def test_only_plain_http_hosts_are_trusted_so_tls_checks_stay_on(tmp_path: Path) -> None:
    http = download_argv([], index_url="http://u:p@10.0.0.5:8080/simple/", dest=tmp_path)
    https = download_argv([], index_url="https://pypi.org/simple/", dest=tmp_path)
    assert http[http.index("--trusted-host") + 1] == "10.0.0.5:8080"
    assert "--trusted-host" not in https
    for argv in (http, https):
        assert {"--isolated", "--only-binary=:all:", "--no-cache-dir"} <= set(argv)
