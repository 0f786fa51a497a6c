"""Bad input gets one clear line, a non-zero exit, no traceback, and the repository exactly as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, needs_bwrap

sys.path.insert(0, str(EXAMPLES))
from scenario import PATCHES, branches, make_repo

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(SHIPYARD_HOME=str(home), COLUMNS="200")
    return subprocess.run(
        [SHIPYARD, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def assert_user_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    message = done.stderr.strip()
    assert message.startswith("error:"), message
    for needle in needles:
        assert needle in message, message


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_not_a_git_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    done = cli(
        tmp_path / "home", "run", "deps", "--repo", str(plain), "--index-url", "http://127.0.0.1:9/"
    )
    assert_user_error(done, "not a git repository", "git init")


def test_missing_directory(tmp_path: Path) -> None:
    done = cli(
        tmp_path / "home",
        "submit",
        "--repo",
        str(tmp_path / "nope"),
        "--patch",
        "x.patch",
        "--type",
        "feature",
    )
    assert_user_error(done, "no such directory")


def test_uncommitted_changes_are_in_the_way(tmp_path: Path, repo: Path) -> None:
    (repo / "requirements.txt").write_text("slugkit==9.9.9\n")
    before = branches(repo)
    done = cli(
        tmp_path / "home", "run", "deps", "--repo", str(repo), "--index-url", "http://127.0.0.1:9/"
    )
    assert_user_error(done, "uncommitted changes", "requirements.txt", "commit or stash")
    assert branches(repo) == before
    assert (repo / "requirements.txt").read_text() == "slugkit==9.9.9\n"


def test_unreachable_index(tmp_path: Path, repo: Path) -> None:
    before = branches(repo)
    done = cli(
        tmp_path / "home",
        "run",
        "deps",
        "--repo",
        str(repo),
        "--index-url",
        "http://127.0.0.1:9/simple/",
    )
    assert_user_error(done, "127.0.0.1:9")
    assert branches(repo) == before


def test_broken_shipyard_toml_names_file_and_field(tmp_path: Path, repo: Path) -> None:
    (repo / "shipyard.toml").write_text("[deps]\nfiles = 'requirements.txt'\n")
    subprocess.run(["git", "commit", "-qam", "broken config"], cwd=repo, check=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})  # fmt: skip
    before = branches(repo)
    done = cli(
        tmp_path / "home", "run", "deps", "--repo", str(repo), "--index-url", "http://127.0.0.1:9/"
    )
    assert_user_error(done, "shipyard.toml", "deps.files")
    assert branches(repo) == before


def test_patch_file_missing_or_not_a_diff(tmp_path: Path, repo: Path) -> None:
    done = cli(
        tmp_path / "home",
        "submit",
        "--repo",
        str(repo),
        "--patch",
        str(tmp_path / "no.patch"),
        "--type",
        "feature",
    )
    assert_user_error(done, "no such patch file")
    junk = tmp_path / "junk.patch"
    junk.write_text("this is not a diff\n")
    done = cli(
        tmp_path / "home", "submit", "--repo", str(repo), "--patch", str(junk), "--type", "feature"
    )
    assert_user_error(done, "no file changes")


@needs_bwrap
def test_patch_that_does_not_apply_fails_the_run_and_changes_nothing(
    tmp_path: Path, repo: Path
) -> None:
    patch = tmp_path / "stale.patch"
    text = (PATCHES / "feature-low-stock.patch").read_text()
    patch.write_text(text.replace("return [(self._items[sku]", "return [(self.__gone__[sku]"))
    before = branches(repo)
    done = cli(
        tmp_path / "home", "submit", "--repo", str(repo), "--patch", str(patch), "--type", "feature"
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert "does not apply" in done.stdout
    assert branches(repo) == before


def test_unknown_change_type_lists_the_valid_ones(tmp_path: Path, repo: Path) -> None:
    done = cli(tmp_path / "home", "submit", "--repo", str(repo), "--patch", "x", "--type", "featur")
    assert done.returncode == 2
    assert "feature" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_run_id(tmp_path: Path) -> None:
    assert_user_error(cli(tmp_path / "home", "runs", "show", "nope"), "shipyard runs list")
    assert_user_error(cli(tmp_path / "home", "review", "approve", "nope"), "shipyard runs list")


def test_error_messages_keep_bracketed_config_tables(capsys: pytest.CaptureFixture[str]) -> None:
    """Messages name tables like ``[agent.external]``; rich must print them, not eat them as markup."""
    import typer

    from shipyard.console import guard
    from shipyard.errors import ConfigError

    def body() -> None:
        raise ConfigError("shipyard.toml: [agent.external] adapter is missing; set it.")

    with pytest.raises(typer.Exit):
        guard(body)
    assert "[agent.external] adapter is missing" in capsys.readouterr().err
