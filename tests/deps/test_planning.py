"""Planning: dependencies, index data, rules and the time in; the runs to start out. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from shipyard.app import DepsPlan, deps_tasks
from shipyard.cli_deps import dry_run_records
from shipyard.deps.index import DistFile, Release
from shipyard.deps.manifests.model import Dependency
from shipyard.deps.planning import History, PackageData, plan
from shipyard.deps.rules import DepsConfig
from shipyard.deps.security import Vulnerability, fixes, smallest_fix

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def release(
    version: str, *, days: float = 100, yanked: bool = False, wheel: bool = True
) -> Release:
    name = f"pkg-{version}-py3-none-any.whl" if wheel else f"pkg-{version}.tar.gz"
    uploaded = NOW - timedelta(days=days)
    f = DistFile(filename=name, url=name, wheel=wheel, yanked=yanked, upload_time=uploaded)
    return Release(version=Version(version), files=(f,), yanked=yanked, upload_time=uploaded)


def data(name: str, *releases: Release, **kwargs: object) -> PackageData:
    return PackageData(name=name, releases=releases, **kwargs)  # type: ignore[arg-type]


def pin(name: str, version: str, manifest: str = "requirements.txt", **kw: object) -> Dependency:
    return Dependency(
        name=name,
        specifier=f"=={version}",
        pinned=Version(version),
        manifest=manifest,
        section="requirements",
        **kw,  # type: ignore[arg-type]
    )


def vuln(id_: str, *fixed: str) -> Vulnerability:
    return Vulnerability(
        id=id_, summary=f"{id_} summary", fixed_in=tuple(Version(f) for f in fixed)
    )


def deps_config(**data: object) -> DepsConfig:
    return DepsConfig.model_validate(data)


ALPHA = data(
    "alpha",
    release("1.0.0"),
    release("1.0.1"),
    release("1.1.0", days=5),
    release("2.0.0", days=1),
    release("2.1.0rc1", days=1),
)


def test_newest_release_is_the_target_and_the_update_type_is_reported() -> None:
    result = plan([pin("alpha", "1.0.0")], {"alpha": ALPHA}, DepsConfig(), now=NOW)
    (run,) = result.runs
    (update,) = run.updates
    assert (run.kind, run.change_type) == ("update", "dependency_update")
    assert (str(update.current), str(update.target), update.update_type) == (
        "1.0.0",
        "2.0.0",
        "major",
    )
    assert update.release_age_days == 1
    assert run.title == "Update alpha from 1.0.0 to 2.0.0"
    shown = update.as_dict()
    assert {"package", "manifest", "current", "target", "update_type", "reason"} <= set(shown)
    assert shown["changes"] == [
        {
            "canonical_name": "alpha",
            "manifest": "requirements.txt",
            "new_version": "2.0.0",
            "new_specifier": None,
            "section": "requirements",
        }
    ]


def test_update_types_and_allowed_versions_limit_the_target() -> None:
    (run,) = plan(
        [pin("alpha", "1.0.0")], {"alpha": ALPHA}, deps_config(update_types=["patch"]), now=NOW
    ).runs
    assert str(run.updates[0].target) == "1.0.1"
    (run,) = plan(
        [pin("alpha", "1.0.0")], {"alpha": ALPHA}, deps_config(allowed_versions={"alpha": "<2"}),
        now=NOW,
    ).runs  # fmt: skip
    assert str(run.updates[0].target) == "1.1.0"


def test_ignored_packages_are_skipped_with_the_reason() -> None:
    result = plan([pin("alpha", "1.0.0")], {"alpha": ALPHA}, deps_config(ignore=["alpha"]), now=NOW)
    assert result.runs == ()
    assert [s.reason for s in result.skipped] == ["ignored by the rules"]


def test_cooldown_is_separate_per_update_type() -> None:
    # major needs 3 days (2.0.0 is 1 day old), minor needs 2 (1.1.0 is 5 days old)
    config = deps_config(cooldown={"major": 3, "minor": 2})
    (run,) = plan([pin("alpha", "1.0.0")], {"alpha": ALPHA}, config, now=NOW).runs
    assert str(run.updates[0].target) == "1.1.0"
    # a minor cooldown longer than 1.1.0's age leaves only the patch
    config = deps_config(cooldown={"major": 3, "minor": 10})
    (run,) = plan([pin("alpha", "1.0.0")], {"alpha": ALPHA}, config, now=NOW).runs
    assert str(run.updates[0].target) == "1.0.1"
    # everything in cooldown: deferred, saying which release waits for how long
    result = plan(
        [pin("alpha", "1.0.1")], {"alpha": ALPHA}, deps_config(cooldown={"days": 30}), now=NOW
    )
    assert result.runs == ()
    (waiting,) = result.deferred
    assert str(waiting.updates[0].target) == "2.0.0"
    assert waiting.deferred == (
        "deferred: 2.0.0 is in its major cooldown (1.0 days old, 30 days required)"
    )


def test_yanked_sdist_only_and_prereleases_are_passed_over_unless_asked() -> None:
    index = data("alpha", release("1.0.0"), release("1.2.0", yanked=True), release("1.3.0", wheel=False),
                 release("1.4.0rc1"))  # fmt: skip
    assert plan([pin("alpha", "1.0.0")], {"alpha": index}, DepsConfig(), now=NOW).runs == ()
    (run,) = plan(
        [pin("alpha", "1.0.0")], {"alpha": index}, deps_config(prereleases=True), now=NOW
    ).runs
    assert str(run.updates[0].target) == "1.4.0rc1"
    # a pre-release in use opens pre-releases for that package
    (run,) = plan([pin("alpha", "1.0.0rc1")], {"alpha": index}, DepsConfig(), now=NOW).runs
    assert str(run.updates[0].target) == "1.4.0rc1"


def test_grouping_puts_non_major_updates_in_one_run() -> None:
    beta = data("beta", release("0.3.0"), release("0.3.1"))
    gamma = data("gamma", release("1.0"), release("2.0"))
    config = deps_config(
        groups=[{"name": "non-major", "update_types": ["minor", "patch"]}],
        packages=[{"match": ["alpha"], "update_types": ["minor", "patch"]}],
    )
    result = plan(
        [pin("alpha", "1.0.0"), pin("beta", "0.3.0"), pin("gamma", "1.0")],
        {"alpha": ALPHA, "beta": beta, "gamma": gamma},
        config,
        now=NOW,
    )
    assert [(r.name, [u.package for u in r.updates]) for r in result.runs] == [
        ("non-major", ["alpha", "beta"]),
        ("gamma", ["gamma"]),
    ]
    assert result.runs[0].title == "Update non-major group (2 packages)"


def test_security_first_to_the_smallest_fix_bypassing_cooldown_and_update_types() -> None:
    advisory = vuln("PYSEC-2026-1", "1.1.0", "2.0.0")
    alpha = data("alpha", *ALPHA.releases, vulnerabilities={Version("1.0.0"): (advisory,)})
    beta = data("beta", release("0.3.0"), release("0.4.0"))
    config = deps_config(update_types=["patch"], cooldown={"days": 365}, max_open_runs=1)
    result = plan([pin("beta", "0.3.0"), pin("alpha", "1.0.0")], {"alpha": alpha, "beta": beta},
                  config, now=NOW, history=History(open_runs=5))  # fmt: skip
    (run,) = result.runs
    assert (run.kind, run.change_type) == ("security", "security_patch")
    (update,) = run.updates
    assert str(update.target) == "1.1.0"
    assert update.vulnerabilities == (advisory,)
    assert "PYSEC-2026-1" in update.reason
    assert "smallest release" in update.reason
    assert run.title == "Fix alpha from 1.0.0 to 1.1.0 (PYSEC-2026-1)"
    assert update.as_dict()["vulnerabilities"][0]["fixed_in"] == ["1.1.0", "2.0.0"]


def test_security_respects_ignore_and_reports_a_vulnerability_nothing_fixes() -> None:
    advisory = vuln("GHSA-xxxx", "9.0")
    alpha = data("alpha", *ALPHA.releases, vulnerabilities={Version("1.0.0"): (advisory,)})
    result = plan([pin("alpha", "1.0.0")], {"alpha": alpha}, DepsConfig(), now=NOW)
    assert [r.kind for r in result.runs] == ["update"]  # the regular update still goes ahead
    assert result.skipped[0].vulnerabilities == (advisory,)
    assert "no release within the allowed versions fixes it" in result.skipped[0].reason


def test_limit_of_open_runs_and_schedule_hold_back_regular_updates() -> None:
    beta = data("beta", release("0.3.0"), release("0.3.1"))
    deps = [pin("alpha", "1.0.0"), pin("beta", "0.3.0")]
    packages = {"alpha": ALPHA, "beta": beta}
    result = plan(
        deps, packages, deps_config(max_open_runs=3), now=NOW, history=History(open_runs=2)
    )
    assert [r.updates[0].package for r in result.runs] == ["alpha"]
    (later,) = result.deferred
    assert later.updates[0].package == "beta"
    assert later.deferred == "deferred: open-run limit 3 reached, 2 waiting for review"
    assert result.skipped == ()
    held = plan(deps, packages, deps_config(schedule="weekly"), now=NOW,
                history=History(last_run=NOW - timedelta(hours=1)))  # fmt: skip
    assert held.runs == ()
    assert [(r.updates[0].package, r.deferred) for r in held.deferred] == [
        ("alpha", "deferred: not due by its schedule (weekly)"),
        ("beta", "deferred: not due by its schedule (weekly)"),
    ]


def test_a_dry_run_lists_every_update_beyond_the_default_open_run_limit() -> None:
    names = [f"pkg{i:02}" for i in range(13)]
    packages = {n: data(n, release("1.0.0"), release("1.0.1")) for n in names}
    security = data("pkg12", release("1.0.0"), release("1.0.1"),
                    vulnerabilities={Version("1.0.0"): (vuln("PYSEC-9", "1.0.1"),)})  # fmt: skip
    packages["pkg12"] = security
    result = plan([pin(n, "1.0.0") for n in names], packages, DepsConfig(), now=NOW)
    # the real run starts the security fix and ten updates; the other two wait
    assert [r.kind for r in result.runs] == ["security", *["update"] * 10]
    assert [r.updates[0].package for r in result.deferred] == ["pkg10", "pkg11"]
    records = dry_run_records(result)
    assert sorted(r["package"] for r in records) == names
    assert [r["deferred"] for r in records] == [None] * 11 + [
        "deferred: open-run limit 10 reached"
    ] * 2
    # a real run starts only what fits: one task per run to start, none for the deferred
    tasks = deps_tasks(DepsPlan(repo=Path("/repo"), plan=result))
    assert [t.params["updates"][0]["package"] for t in tasks] == ["pkg12", *names[:10]]
    # grouped updates over the limit are deferred as one run, like they would start
    grouped = deps_config(groups=[{"name": "all", "update_types": ["patch"]}], max_open_runs=1)
    result = plan([pin(n, "1.0.0") for n in names[:3]], packages, grouped, now=NOW,
                  history=History(open_runs=1))  # fmt: skip
    assert result.runs == ()
    (run,) = result.deferred
    assert (run.name, len(run.updates)) == ("all", 3)


def test_ranges_follow_the_range_strategy_and_locks_move_with_them() -> None:
    in_range = Dependency(name="alpha", specifier=">=1.0,<2", pinned=None, manifest="pyproject.toml",
                          section="project.dependencies")  # fmt: skip
    locked = Dependency(name="alpha", specifier="==1.0.0", pinned=Version("1.0.0"), manifest="uv.lock",
                        section="lock")  # fmt: skip
    (run,) = plan([in_range, locked], {"alpha": ALPHA}, DepsConfig(), now=NOW).runs
    (update,) = run.updates
    assert update.manifest == "pyproject.toml"
    assert str(update.current) == "1.0.0"
    assert {(c.manifest, c.new_specifier) for c in update.changes} == {
        ("pyproject.toml", ">=1.0,<3"),
        ("uv.lock", None),
    }
    # within the range, auto leaves the range and moves only the lock
    (run,) = plan([in_range, locked], {"alpha": ALPHA}, deps_config(update_types=["minor", "patch"]),
                  now=NOW).runs  # fmt: skip
    assert [(c.manifest, c.new_specifier) for c in run.updates[0].changes] == [("uv.lock", None)]
    # bump raises the floor
    (run,) = plan([in_range], {"alpha": ALPHA}, deps_config(range_strategy="bump"), now=NOW).runs
    assert run.updates[0].changes[0].new_specifier == ">=2.0.0,<3"


def test_transitive_pins_wait_for_lock_maintenance_unless_vulnerable() -> None:
    transitive = pin("alpha", "1.0.0", manifest="uv.lock", direct=False)
    config = deps_config(lock_maintenance="weekly")
    result = plan([transitive], {"alpha": ALPHA}, config, now=NOW)
    assert [(r.kind, r.title) for r in result.runs] == [
        ("lock", "Lock file maintenance: refresh transitive pins")
    ]
    recent = plan([transitive], {"alpha": ALPHA}, config, now=NOW,
                  history=History(last_lock_maintenance=NOW - timedelta(hours=1)))  # fmt: skip
    assert recent.runs == ()
    vulnerable = data(
        "alpha", *ALPHA.releases, vulnerabilities={Version("1.0.0"): (vuln("X-1", "1.0.1"),)}
    )
    (run,) = plan([transitive], {"alpha": vulnerable}, DepsConfig(), now=NOW).runs
    assert run.kind == "security"
    assert str(run.updates[0].target) == "1.0.1"


def test_fix_on_the_same_release_line_is_required() -> None:
    advisory = vuln("PYSEC-1", "3.2.25", "4.2.14")
    assert not fixes(advisory, Version("4.0.0"))
    assert fixes(advisory, Version("4.2.14"))
    assert fixes(advisory, Version("3.2.30"))
    assert fixes(advisory, Version("5.0"))
    assert not fixes(advisory, Version("3.2.1"))
    assert not fixes(vuln("PYSEC-2"), Version("99"))


versions = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=12,
    unique=True,
).map(lambda vs: [Version(".".join(map(str, v))) for v in vs])  # fmt: skip


@given(available=versions, fixed=versions, current=st.tuples(st.integers(0, 3), st.integers(0, 3)))
def test_smallest_fix_is_the_lowest_release_that_fixes_everything(
    available: list[Version], fixed: list[Version], current: tuple[int, int]
) -> None:
    now = Version(f"{current[0]}.{current[1]}")
    releases = [release(str(v)) for v in available]
    advisory = Vulnerability(id="X", fixed_in=tuple(sorted(fixed)))
    found = smallest_fix(releases, now, [advisory])
    fixing = [v for v in available if v > now and fixes(advisory, v)]
    if found is None:
        assert not fixing
    else:
        assert found.version == min(fixing)
        assert found.version > now
