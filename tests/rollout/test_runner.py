"""The rollout runner over a real store and a real git repository, with a command health source.

The health command prints what the test wrote into a file (or fails when the file is gone); the
deploy command records each call. Time is a clock the test moves, so stages and windows are exact.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shipyard.config import RolloutConfig
from shipyard.events import EventType
from shipyard.forge.local import LocalForge
from shipyard.gitcmd import git
from shipyard.model import RunStatus, Task
from shipyard.rollout.runner import RolloutRunner
from shipyard.rollout.start import begin_if_configured, config_at
from shipyard.store import Store
from tests.forge.conftest import commit_file, rev

HEALTH = "import pathlib, sys\np = pathlib.Path({path!r})\nprint(p.read_text()) if p.exists() else sys.exit('no data')\n"
DEPLOY = "import os\nopen({path!r}, 'a').write(os.environ['SHIPYARD_ACTION'] + ' ' + os.environ['SHIPYARD_PERCENT'] + '\\n')\nfail = {path!r} + '.fail'\nraise SystemExit(int(open(fail).read()) if os.path.exists(fail) else 0)\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.signal = tmp_path / "signal"
        self.calls = tmp_path / "calls"
        (tmp_path / "health.py").write_text(HEALTH.format(path=str(self.signal)))
        (tmp_path / "deploy.py").write_text(DEPLOY.format(path=str(self.calls)))
        self.repo = tmp_path / "repo"
        self.repo.mkdir()
        git("init", "-q", "--initial-branch=main", cwd=self.repo)
        commit_file(self.repo, "app.py", "VERSION = 1\n")
        self.config = RolloutConfig.model_validate(
            {
                "enabled": True,
                "stages": [10, 100],
                "stage_seconds": 30,
                "watch_seconds": 120,
                "baseline_seconds": 60,
                "check_interval_seconds": 10,
                "health": {"command": [sys.executable, str(tmp_path / "health.py")]},
                "deploy": {"command": [sys.executable, str(tmp_path / "deploy.py")]},
            }
        )
        self.store = Store.open(home=tmp_path / "home")
        self.clock = Clock()
        self.runner = RolloutRunner(
            self.store, home=tmp_path / "home", clock=self.clock, sleep=self.clock.sleep,
            environ={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip

    def merged_run(self) -> str:
        """A run whose change was merged into main with a merge commit, as the queue does."""
        git("checkout", "-q", "-b", "change", cwd=self.repo)
        commit_file(self.repo, "app.py", "VERSION = 2\n")
        git("checkout", "-q", "main", cwd=self.repo)
        git("merge", "-q", "--no-ff", "-m", "merge change", "change", cwd=self.repo)
        run_id = self.store.create_run(Task(blueprint="submit", repo=str(self.repo)))
        merge = rev(self.repo, "main")
        self.store.append(run_id, EventType.DELIVERY_MERGED, {"target": "main", "commit": merge})
        self.store.append(run_id, EventType.ROLLOUT_STARTED, {
            "target": "main", "commit": merge, "previous_commit": rev(self.repo, "main^1"),
            "merged_at": self.clock.now, "config": self.config.model_dump(mode="json"),
        })  # fmt: skip
        return run_id

    def health(self, value: float | None) -> None:
        if value is None:
            self.signal.unlink(missing_ok=True)
        else:
            self.signal.write_text(f"{value}\n")

    def status(self, run_id: str) -> RunStatus:
        return self.store.state(run_id).status


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_a_breach_reverts_once_even_when_advanced_again(setup: Setup) -> None:
    run_id = setup.merged_run()
    merged = rev(setup.repo, "main")
    setup.health(0.5)
    setup.runner.advance(run_id)  # baseline, stage 1, first reading
    assert setup.calls.read_text() == "deploy 10\n"
    setup.health(4.0)
    setup.clock.now += 10
    result = setup.runner.advance(run_id)
    assert result.status is RunStatus.ROLLED_BACK
    assert setup.calls.read_text() == "deploy 10\nrollback 0\n"
    revert = rev(setup.repo, "main")
    assert rev(setup.repo, "main^1") == merged
    assert (setup.repo / "app.py").read_text() == "VERSION = 1\n"
    # Nothing is due any more: advancing again reverts nothing twice.
    assert setup.runner.advance(run_id).due is None
    assert rev(setup.repo, "main") == revert


def test_a_revert_made_before_a_crash_is_found_not_made_again(setup: Setup) -> None:
    run_id = setup.merged_run()
    setup.health(0.5)
    setup.runner.advance(run_id)
    setup.health(9.0)
    setup.clock.now += 10
    # The breach is recorded and the revert landed, then the runner died before recording it.
    setup.store.append(run_id, EventType.ROLLOUT_CHECK,
                       {"value": 9.0, "at": setup.clock.now, "breach": True})  # fmt: skip
    setup.store.append(run_id, EventType.ROLLOUT_BREACHED, {"at": setup.clock.now, "reason": "x"})
    forge = LocalForge(setup.repo)
    merge = setup.store.state(run_id).rollout["commit"]  # type: ignore[index]
    landed = forge.revert("main", merge, message="Revert", run_id=run_id)
    setup.runner.advance(run_id)
    assert setup.status(run_id) is RunStatus.ROLLED_BACK
    assert rev(setup.repo, "main") == landed
    reverted = [e for e in setup.store.events(run_id) if e.type == "rollout.reverted"]
    assert [e.data["revert_commit"] for e in reverted] == [landed]


def test_a_failing_health_source_stops_the_rollout_and_resume_goes_on(setup: Setup) -> None:
    run_id = setup.merged_run()
    setup.health(0.5)
    setup.runner.advance(run_id)
    setup.health(None)
    setup.clock.now += 10
    setup.runner.advance(run_id)
    state = setup.store.state(run_id)
    assert state.status is RunStatus.ROLLOUT_STOPPED
    assert "could not be read at stage 1 (10 %)" in state.rollout["reason"]  # type: ignore[index]
    assert "no data" in state.rollout["reason"]  # type: ignore[index]
    # A stopped rollout waits: watching it does nothing.
    setup.clock.now += 100
    assert setup.runner.watch() == []
    assert setup.calls.read_text() == "deploy 10\n"
    setup.health(0.6)
    setup.runner.resume(run_id, by="ana")
    final = setup.runner.watch([run_id])
    assert [r.status for r in final] == [RunStatus.MERGED]
    assert setup.calls.read_text() == "deploy 10\ndeploy 100\n"


def test_a_stage_is_held_and_the_watch_window_runs_to_its_end(setup: Setup) -> None:
    run_id = setup.merged_run()
    setup.health(0.5)
    started = setup.clock.now
    [result] = setup.runner.watch([run_id])
    assert result.status is RunStatus.MERGED
    # 120 s of watching from the merge, read every 10 s, stage 2 after stage 1's 30 s.
    assert setup.clock.now - started == pytest.approx(120, abs=10)
    checks = [e for e in setup.store.events(run_id) if e.type == "rollout.check"]
    assert len(checks) >= 12
    stages = [e.data for e in setup.store.events(run_id) if e.type == "rollout.stage"]
    assert [s["stage"] for s in stages] == [1, 2]
    assert stages[1]["at"] - stages[0]["at"] == pytest.approx(30, abs=10)


def test_a_failed_deploy_stops_without_reverting(setup: Setup) -> None:
    run_id = setup.merged_run()
    merged = rev(setup.repo, "main")
    setup.health(0.5)
    (setup.tmp / "calls.fail").write_text("3")
    setup.runner.advance(run_id)
    state = setup.store.state(run_id)
    assert state.status is RunStatus.ROLLOUT_STOPPED
    assert "deploying stage 1 (10 %) failed: exit 3" in state.rollout["reason"]  # type: ignore[index]
    assert rev(setup.repo, "main") == merged


def test_a_person_can_roll_back_by_hand(setup: Setup) -> None:
    run_id = setup.merged_run()
    setup.health(0.5)
    setup.runner.advance(run_id)
    state = setup.runner.revert_now(run_id, by="ana", reason="customers report errors")
    assert state.status is RunStatus.ROLLED_BACK
    assert "customers report errors (by ana)" in state.rollout["reason"]  # type: ignore[index]
    message = git("log", "-1", "--format=%B", "main", cwd=setup.repo).stdout
    assert f"Shipyard-Rollback: {run_id}" in message


def test_one_runner_at_a_time_advances_a_run(setup: Setup) -> None:
    run_id = setup.merged_run()
    setup.health(0.5)
    with setup.runner._lock(run_id) as held:
        assert held
        busy = setup.runner.advance(run_id)
    assert busy.summary == "another runner is advancing it"
    assert not setup.calls.exists()


def test_the_rollout_configuration_comes_from_before_the_merge(setup: Setup) -> None:
    """A change cannot bring its own deploy hook: the config at the merge's first parent counts."""
    evil = setup.tmp / "evil"
    (setup.repo / "shipyard.toml").write_text(
        '[rollout]\nenabled = true\n[rollout.health]\ncommand = ["true"]\n'
        f'[rollout.deploy]\ncommand = ["touch", "{evil}"]\n'
    )
    git("checkout", "-q", "-b", "sneaky", cwd=setup.repo)
    git("add", "-A", cwd=setup.repo)
    git("commit", "-qm", "bring a deploy hook", cwd=setup.repo)
    git("checkout", "-q", "main", cwd=setup.repo)
    git("merge", "-q", "--no-ff", "-m", "merge", "sneaky", cwd=setup.repo)
    merge = rev(setup.repo, "main")
    assert config_at(setup.repo, merge).enabled  # the change's own configuration would roll out
    recorded: list[object] = []
    started = begin_if_configured(lambda kind, data: recorded.append(kind), repo=setup.repo,
                                  target="main", commit=merge)  # fmt: skip
    assert not started  # the configuration before the merge has no rollout
    assert recorded == []
    assert not evil.exists()


def test_an_unset_threshold_comes_from_the_policy_before_the_merge(setup: Setup) -> None:
    (setup.repo / "shipyard.toml").write_text(
        '[policy]\npreset = "seed"\n[policy.post_merge]\nrollback_error_rate_points = 2.5\n'
        '[rollout]\nenabled = true\n[rollout.health]\ncommand = ["true"]\n'
    )
    git("add", "-A", cwd=setup.repo)
    git("commit", "-qm", "roll out", cwd=setup.repo)
    assert config_at(setup.repo, "HEAD").threshold_points == 2.5
    (setup.repo / "shipyard.toml").write_text(
        '[rollout]\nenabled = true\nthreshold_points = 0.5\n[rollout.health]\ncommand = ["true"]\n'
    )
    git("commit", "-qam", "stricter", cwd=setup.repo)
    assert config_at(setup.repo, "HEAD").threshold_points == 0.5


def test_the_hooks_run_as_committed_before_the_merge_not_as_the_change_left_them(
    setup: Setup,
) -> None:
    """A change that rewrites the health script it is judged by still gets the old script."""
    (setup.repo / "health.sh").write_text("#!/bin/sh\necho 0.5\n")
    (setup.repo / "health.sh").chmod(0o755)
    git("add", "-A", cwd=setup.repo)
    git("commit", "-qm", "a health script", cwd=setup.repo)
    config = setup.config.model_copy(
        update={"health": setup.config.health.model_copy(update={"command": ["./health.sh"]})}
    )
    setup.config = config
    git("checkout", "-q", "-b", "change", cwd=setup.repo)
    (setup.repo / "health.sh").write_text("#!/bin/sh\necho 0\n")  # hides any breach
    (setup.repo / "app.py").write_text("VERSION = 'broken'\n")
    git("commit", "-qam", "break it, hide it", cwd=setup.repo)
    git("checkout", "-q", "main", cwd=setup.repo)
    git("merge", "-q", "--no-ff", "-m", "merge", "change", cwd=setup.repo)
    run_id = setup.store.create_run(Task(blueprint="submit", repo=str(setup.repo)))
    merge = rev(setup.repo, "main")
    setup.store.append(run_id, EventType.DELIVERY_MERGED, {"target": "main", "commit": merge})
    setup.store.append(run_id, EventType.ROLLOUT_STARTED, {
        "target": "main", "commit": merge, "previous_commit": rev(setup.repo, "main^1"),
        "merged_at": setup.clock.now, "config": config.model_dump(mode="json"),
    })  # fmt: skip
    assert (setup.repo / "health.sh").read_text() == "#!/bin/sh\necho 0\n"  # the checkout has it
    setup.runner.advance(run_id)
    baseline = [e.data for e in setup.store.events(run_id) if e.type == "rollout.baseline"]
    assert baseline[0]["value"] == 0.5  # the script from before the merge answered


def test_a_stage_never_widens_while_the_signal_breaches(setup: Setup) -> None:
    setup.config = setup.config.model_copy(update={"consecutive_breaches": 2})
    run_id = setup.merged_run()
    setup.health(0.5)
    setup.runner.advance(run_id)  # baseline 0.5, stage 1, a healthy first reading
    setup.health(3.0)
    setup.clock.now += 30  # the stage's hold is over, but the last reading breaches
    setup.runner.advance(run_id)
    stages = [e.data["stage"] for e in setup.store.events(run_id) if e.type == "rollout.stage"]
    assert stages == [1]
    setup.clock.now += 10
    assert setup.runner.advance(run_id).status is RunStatus.ROLLED_BACK


def test_a_persons_rollback_counts_as_a_defect_but_not_in_the_time_to_recover(
    setup: Setup,
) -> None:
    from shipyard.rollout.stats import rollout_stats

    run_id = setup.merged_run()
    setup.health(0.5)
    setup.runner.advance(run_id)
    setup.runner.revert_now(run_id, by="ana", reason="customers complain")
    stats = rollout_stats([setup.store.state(run_id)])
    assert stats.rolled_back == 1
    assert stats.mttr_seconds is None


def test_a_preset_file_is_read_as_committed_not_from_the_working_tree(setup: Setup) -> None:
    (setup.repo / "policies").mkdir()
    (setup.repo / "policies" / "team.toml").write_text(
        "[post_merge]\nrollback_error_rate_points = 3.0\n"
    )
    (setup.repo / "shipyard.toml").write_text(
        '[policy]\npreset = "policies/team.toml"\n'
        '[rollout]\nenabled = true\n[rollout.health]\ncommand = ["true"]\n'
    )
    git("add", "-A", cwd=setup.repo)
    git("commit", "-qm", "team policy", cwd=setup.repo)
    (setup.repo / "policies" / "team.toml").write_text(  # a later edit, not committed
        "[post_merge]\nrollback_error_rate_points = 50.0\n"
    )
    assert config_at(setup.repo, "HEAD").threshold_points == 3.0
