"""``shipyard doctor``: the real checks on this host, and each failure simulated through its inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipyard.deps.localindex import serve
from shipyard.doctor import (
    check_bubblewrap,
    check_cgroups,
    check_container,
    check_index,
    check_overlay,
    check_store,
    check_userns,
    configured_index,
    detect_container,
    run_checks,
)
from shipyard.sandbox.pool import DIR_VARIABLE
from tests.conftest import example_index, needs_bwrap


def files(root: Path, contents: dict[str, str]) -> Path:
    for name, text in contents.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@needs_bwrap
def test_every_check_passes_on_this_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DIR_VARIABLE)  # the pool in the home's cache, where it is by default
    checks = run_checks(tmp_path / "home", repo=tmp_path)
    names = [c.name for c in checks]
    assert names == [
        "python", "git", "bubblewrap", "user namespaces", "container", "sandbox", "limits",
        "cgroups", "overlayfs", "uv", "store", "index",
    ]  # fmt: skip
    assert [c for c in checks if not c.ok] == []
    overlay = next(c for c in checks if c.name == "overlayfs")
    expected = "lends overlays" if os.geteuid() == 0 else "copies instead"
    assert expected in overlay.detail
    assert str(tmp_path / "home" / "cache" / "envs") in overlay.detail
    monkeypatch.setenv(DIR_VARIABLE, str(tmp_path / "shared" / "envs"))
    overlay = next(c for c in run_checks(tmp_path / "home", repo=tmp_path) if c.name == "overlayfs")
    assert str(tmp_path / "shared" / "envs") in overlay.detail


def test_bubblewrap_missing_or_too_old(tmp_path: Path) -> None:
    missing = check_bubblewrap(None)
    assert not missing.ok
    assert "apt-get install bubblewrap" in missing.detail
    old = tmp_path / "bwrap"
    old.write_text("#!/bin/sh\necho bubblewrap 0.3.1\n")
    old.chmod(0o755)
    too_old = check_bubblewrap(str(old))
    assert not too_old.ok
    assert "older than 0.4" in too_old.detail
    assert "Fix: upgrade" in too_old.detail


@pytest.mark.parametrize(
    ("sysctls", "uid", "needle"),
    [
        ({"user/max_user_namespaces": "0"}, 0, "sysctl -w user.max_user_namespaces=15000"),
        ({"kernel/unprivileged_userns_clone": "0"}, 1000, "kernel.unprivileged_userns_clone=1"),
        (
            {"kernel/apparmor_restrict_unprivileged_userns": "1"},
            1000,
            "apparmor_parser -r /etc/apparmor.d/bwrap",
        ),
    ],
)
def test_user_namespace_restrictions_are_named_with_their_fix(
    tmp_path: Path, sysctls: dict[str, str], uid: int, needle: str
) -> None:
    check = check_userns(files(tmp_path, {"user/max_user_namespaces": "100", **sysctls}), uid=uid)
    assert not check.ok
    assert needle in check.detail
    assert "Fix:" in check.detail


def test_root_is_not_bound_by_the_unprivileged_restrictions(tmp_path: Path) -> None:
    sysctl = files(
        tmp_path,
        {
            "user/max_user_namespaces": "100",
            "kernel/unprivileged_userns_clone": "0",
            "kernel/apparmor_restrict_unprivileged_userns": "1",
        },
    )
    assert check_userns(sysctl, uid=0).ok
    assert not check_userns(sysctl, uid=1000).ok


def test_containers_are_recognised_by_their_markers(tmp_path: Path) -> None:
    assert detect_container(files(tmp_path / "a", {".dockerenv": ""})) == "docker (/.dockerenv)"
    podman = files(tmp_path / "b", {"run/.containerenv": ""})
    assert detect_container(podman) == "podman (/run/.containerenv)"
    k8s = files(tmp_path / "c", {"proc/1/cgroup": "0::/kubepods/burstable/pod1/abc\n"})
    assert detect_container(k8s) == "kubepods (/proc/1/cgroup)"
    host = files(tmp_path / "d", {"proc/1/cgroup": "0::/init.scope\n"})
    assert detect_container(host) is None
    assert check_container("docker (/.dockerenv)").ok


def test_cgroup_v2_delegation(tmp_path: Path) -> None:
    self_cgroup = files(tmp_path, {"self": "0::/user.slice/shipyard.service\n"}) / "self"
    root = files(
        tmp_path / "cg",
        {
            "cgroup.controllers": "cpu memory pids\n",
            "user.slice/shipyard.service/cgroup.subtree_control": "memory pids\n",
        },
    )
    delegated = check_cgroups(root, self_cgroup, uid=0)
    assert delegated.ok
    assert "v2, delegated" in delegated.detail
    (root / "user.slice/shipyard.service/cgroup.subtree_control").write_text("memory\n")
    as_root = check_cgroups(root, self_cgroup, uid=0)
    assert not as_root.ok
    assert "Delegate=yes" in as_root.detail
    assert check_cgroups(root, self_cgroup, uid=1000).ok, "rlimits bind other users"


def test_cgroup_v1_and_none(tmp_path: Path) -> None:
    self_cgroup = files(tmp_path, {"self": "8:pids:/job\n4:memory:/job\n0::/\n"}) / "self"
    root = files(tmp_path / "cg", {"pids/cgroup.procs": "", "memory/cgroup.procs": ""})
    (root / "pids" / "job").mkdir()
    v1 = check_cgroups(root, self_cgroup, uid=0)
    assert v1.ok
    assert v1.detail == "v1, writable: pids"
    empty = tmp_path / "none"
    empty.mkdir()
    none = check_cgroups(empty, self_cgroup, uid=0)
    assert not none.ok
    assert "no cgroups found" in none.detail


def test_overlay_missing_from_the_kernel(tmp_path: Path) -> None:
    filesystems = files(tmp_path, {"filesystems": "nodev\ttmpfs\n\text4\n"}) / "filesystems"
    check = check_overlay(filesystems, tmp_path / "scratch", pool=tmp_path / "envs")
    assert not check.ok
    assert "modprobe overlay" in check.detail


def test_overlay_copy_fallback_is_not_a_failure(tmp_path: Path) -> None:
    filesystems = files(tmp_path, {"filesystems": "nodev\toverlay\n"}) / "filesystems"
    # overlayfs options cannot name a path with a comma, as when mounting is not permitted.
    check = check_overlay(filesystems, tmp_path / "a,b", pool=tmp_path / "envs")
    assert check.ok
    assert "copies instead" in check.detail


def test_store_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    check = check_store(blocker / "home")
    assert not check.ok
    assert "SHIPYARD_HOME" in check.detail


def test_index_reachable_unreachable_or_not_configured(tmp_path: Path) -> None:
    assert check_index(None).ok
    down = check_index("http://user:secret@127.0.0.1:1/simple/", timeout=2)
    assert not down.ok
    assert "secret" not in down.detail
    assert "Fix:" in down.detail
    with serve(example_index()) as index:
        assert check_index(index.url).ok
        (tmp_path / "shipyard.toml").write_text(f'[deps]\nindex_url = "{index.url}"\n')
        assert configured_index(tmp_path) == index.url
