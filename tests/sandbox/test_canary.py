"""Canaries: secrets planted on the host are unreadable inside the sandbox and masked in what is recorded.

Each secret sits where a careless sandbox would expose it: the host environment, a host file outside
the workspace, a shipyard configuration value and the store. The sandbox then looks everywhere it can.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipyard.config import load_config
from shipyard.delivery.report import render_report
from shipyard.model import Task
from shipyard.redaction import MASK
from shipyard.sandbox import BwrapSandbox, Limits
from shipyard.store import Store
from tests.conftest import needs_bwrap

pytestmark = needs_bwrap


@dataclass(frozen=True)
class Canaries:
    env: str
    file: str
    config: str
    store: str
    workspace: Path
    places: tuple[Path, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return (self.env, self.file, self.config, self.store)

    def grep_args(self) -> str:
        return " ".join(f"-e {secret}" for secret in self.all)


@pytest.fixture
def canaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Canaries:
    tag = secrets.token_hex(8)
    found = Canaries(
        env=f"canary-env-{tag}",
        file=f"canary-file-{tag}",
        config=f"canary-config-{tag}",
        store=f"canary-store-{tag}",
        workspace=tmp_path / "ws",
        places=(tmp_path / "host" / "credentials", tmp_path / "repo", tmp_path / "home"),
    )
    monkeypatch.setenv("SHIPYARD_CANARY_TOKEN", found.env)
    found.places[0].parent.mkdir()
    found.places[0].write_text(f"aws_secret_access_key = {found.file}\n")
    repo = found.places[1]
    repo.mkdir()
    (repo / "shipyard.toml").write_text(
        f'[deps]\nindex_url = "https://bot:{found.config}@index.example/simple/"\n'
    )
    assert found.config in str(load_config(repo).config.deps.index_url)
    store = Store.open(home=found.places[2])
    store.create_run(Task(blueprint="submit", repo=str(repo), title=f"plain {found.store}"))
    store.close()
    found.workspace.mkdir()
    (found.workspace / "README").write_text("an ordinary workspace\n")
    return found


def test_secrets_are_not_in_the_environment_or_any_visible_file(canaries: Canaries) -> None:
    sandbox = BwrapSandbox()
    system = " ".join(f"--exclude-dir={d}" for d in ("proc", "sys", "dev", "usr"))
    python = Path(sandbox.interpreter()).parents[1]
    script = (
        "tr '\\000' '\\n' < /proc/self/environ; env;"
        "for f in /proc/[0-9]*/environ; do tr '\\000' '\\n' < $f; done;"
        f"grep -r -l -F -s -D skip {canaries.grep_args()} /etc /tmp /workspace /dev/shm;"
        # everything else but the kernel's trees and the read-only system (grepped in the slow test)
        f"grep -r -l -F -s -D skip {system} --exclude-dir={python.name} {canaries.grep_args()} /;"
        f"ls {' '.join(str(p) for p in canaries.places)}; echo done"
    )
    result = sandbox.run(["/bin/sh", "-c", script], workspace=canaries.workspace)
    assert result.stdout.rstrip().endswith("done")
    for secret in canaries.all:
        assert secret not in result.stdout
    assert "SHIPYARD_CANARY_TOKEN" not in result.stdout
    assert result.stderr.count("No such file or directory") == len(canaries.places)


@pytest.mark.slow
def test_a_search_of_the_whole_visible_filesystem_finds_no_secret(canaries: Canaries) -> None:
    """Every file the sandbox can see, binaries included, read to the end: ripgrep
    (the agent's own search tool) gets through the system's gigabytes where grep would not."""
    sandbox = BwrapSandbox()
    patterns = " ".join(f"-e {secret}" for secret in canaries.all)
    script = (
        "cd / && rg --files-with-matches --fixed-strings --no-ignore --hidden --binary --no-messages "
        f"{patterns} /dev/shm $(ls -A / | grep -v -x -e proc -e sys -e dev); echo exit=$?"
    )
    result = sandbox.run(
        ["/bin/sh", "-c", script], workspace=canaries.workspace, limits=Limits(wall_seconds=240)
    )
    assert not result.timed_out, result.violations
    assert result.exit_code == 0, result.stdout + result.stderr
    *matches, status = result.stdout.splitlines()
    assert matches == []  # every file holding a secret would be named
    # 1: read everything and found nothing; 2: something was unreadable (and skipped) on the way
    assert status in ("exit=1", "exit=2"), result.stdout + result.stderr


def test_a_credential_printed_inside_is_masked_when_recorded(
    canaries: Canaries, tmp_path: Path
) -> None:
    github = "ghp_" + secrets.token_hex(18)
    aws = "AKIA" + secrets.token_hex(8).upper()
    sandbox = BwrapSandbox()
    result = sandbox.run(
        ["/bin/sh", "-c", f"echo 'leaked {github}'; echo 'AWS_ACCESS_KEY_ID={aws}' >&2"],
        workspace=canaries.workspace,
    )
    assert github in result.stdout  # the sandbox printed it: it is the recording that must mask it
    store = Store.open(home=tmp_path / "records")
    index_url = load_config(canaries.places[1]).config.deps.index_url
    run_id = store.create_run(
        Task(blueprint="submit", repo="/r", title="canary", params={"index_url": index_url})
    )
    facts = {"output_tail": result.stdout + result.stderr, "password": canaries.env}
    store.append(run_id, "gate.finished", {"gate": "tests", "facts": facts})
    events = store.events(run_id)
    everything = (
        str([e.data for e in events])
        + str(store.state(run_id).task)
        + render_report(run_id, events)
    )
    store.close()
    for secret in (github, aws, canaries.config, canaries.env):
        assert secret not in everything
    assert f"leaked {MASK}" in everything
