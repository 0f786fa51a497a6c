"""``shipyard doctor``: can this host run shipyard safely? Each check says what it found and how to fix it.

Every check takes what it inspects as parameters (paths under /proc and /sys, the user id, a URL), so
tests can point it at fake files and values; ``run_checks`` passes the real ones.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from shipyard.config import load_config
from shipyard.deps.index import redact
from shipyard.errors import ShipyardError
from shipyard.gates.environment import uv_binary
from shipyard.sandbox import BwrapSandbox, Limits
from shipyard.sandbox.pool import OverlayUnavailable, mount_overlay, root_from_env
from shipyard.store import Store

MIN_BWRAP = (0, 4)
CONTAINER_MARKERS = re.compile(r"docker|kubepods|containerd|libpod|lxc")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def problem(name: str, found: str, fix: str) -> Check:
    """A failed check: what was found, then the concrete fix."""
    return Check(name, False, f"{found}. Fix: {fix}")


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else ""


def check_bubblewrap(bwrap: str | None) -> Check:
    """bubblewrap is installed and new enough."""
    install = "`apt-get install bubblewrap` (or `make setup`, which does)"
    if bwrap is None:
        return problem("bubblewrap", "not installed", install)
    text = _version([bwrap, "--version"])
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if found is None:
        return problem(
            "bubblewrap", f"{bwrap} does not report a version", f"reinstall it: {install}"
        )
    if (int(found[1]), int(found[2])) < MIN_BWRAP:
        return problem(
            "bubblewrap",
            f"{text} is older than {'.'.join(map(str, MIN_BWRAP))}",
            f"upgrade it: {install}",
        )
    return Check("bubblewrap", True, f"{text} at {bwrap}")


def _sysctl(root: Path, name: str) -> int | None:
    try:
        return int((root / name.replace(".", "/")).read_text().strip())
    except (OSError, ValueError):
        return None


def check_userns(sysctl: Path, *, uid: int) -> Check:
    """The kernel lets this user create user namespaces (bubblewrap needs one per sandbox)."""
    max_ns = _sysctl(sysctl, "user.max_user_namespaces")
    clone = _sysctl(sysctl, "kernel.unprivileged_userns_clone")
    apparmor = _sysctl(sysctl, "kernel.apparmor_restrict_unprivileged_userns")
    persist = "persist it in /etc/sysctl.d/90-shipyard.conf"
    if max_ns == 0:
        return problem(
            "user namespaces",
            "user.max_user_namespaces=0 forbids them for everyone",
            f"`sysctl -w user.max_user_namespaces=15000` and {persist}",
        )
    if uid != 0 and clone == 0:
        return problem(
            "user namespaces",
            "kernel.unprivileged_userns_clone=0 forbids them for users other than root",
            f"`sysctl -w kernel.unprivileged_userns_clone=1` and {persist}",
        )
    if uid != 0 and apparmor == 1:
        return problem(
            "user namespaces",
            "kernel.apparmor_restrict_unprivileged_userns=1 (Ubuntu 23.10+) confines them",
            "allow bubblewrap with an AppArmor profile granting `userns,` "
            "(/etc/apparmor.d/bwrap: `profile bwrap /usr/bin/bwrap flags=(unconfined) { userns, }`, "
            "then `apparmor_parser -r /etc/apparmor.d/bwrap`), "
            f"or `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` and {persist}",
        )

    def show(value: int | None) -> str:
        return "absent" if value is None else str(value)

    who = "root, so the unprivileged restrictions do not apply" if uid == 0 else f"uid {uid}"
    return Check(
        "user namespaces",
        True,
        f"allowed for {who} (max_user_namespaces={show(max_ns)}, "
        f"unprivileged_userns_clone={show(clone)}, apparmor_restrict={show(apparmor)})",
    )


def detect_container(root: Path) -> str | None:
    """The kind of container this process runs in, from the marker files under ``root``; None on a host."""
    if (root / ".dockerenv").exists():
        return "docker (/.dockerenv)"
    if (root / "run" / ".containerenv").exists():
        return "podman (/run/.containerenv)"
    try:
        found = CONTAINER_MARKERS.search((root / "proc" / "1" / "cgroup").read_text())
    except OSError:
        return None
    return f"{found[0]} (/proc/1/cgroup)" if found else None


CONTAINER_FIX = (
    "start the container with user namespaces allowed: `docker run --security-opt "
    "seccomp=unconfined --security-opt apparmor=unconfined` (podman: `--security-opt "
    "seccomp=unconfined`), or run shipyard on the host or a VM"
)


def check_container(container: str | None) -> Check:
    """Informational: inside a container, nested namespaces need the container's permission."""
    if container is None:
        return Check("container", True, "not inside a container")
    return Check(
        "container",
        True,
        f"inside {container}: nested namespaces need the container's permission",
    )


def check_sandbox(container: str | None) -> list[Check]:
    """Start a real sandbox: proves namespaces work and shows which limits bind here."""
    with tempfile.TemporaryDirectory(prefix="shipyard-doctor-") as tmp:
        try:
            result = BwrapSandbox().run(
                ["/bin/sh", "-c", "id -u"],
                workspace=Path(tmp),
                limits=Limits(wall_seconds=30, max_processes=64),
            )
        except ShipyardError as exc:
            return [problem("sandbox", str(exc), CONTAINER_FIX if container else "see above")]
    if not (result.ok and result.stdout.strip() == "1000"):
        fix = (
            CONTAINER_FIX
            if container
            else "fix the user namespace check above; `bwrap --unshare-user --ro-bind / / true` "
            "must succeed for this user"
        )
        return [
            problem(
                "sandbox", f"bubblewrap could not start one: {result.stderr.strip()[:200]}", fix
            )
        ]
    started = Check(
        "sandbox",
        True,
        f"{_version(['bwrap', '--version'])} started one in {result.duration_seconds * 1000:.0f} ms",
    )
    binding = [a for a in result.limits_applied if a.startswith(("processes", "memory"))]
    unbound = [a for a in binding if "NOT limited" in a]
    if unbound:
        limits = problem(
            "limits",
            "; ".join(unbound),
            "give shipyard a pids cgroup (see the cgroups check) or run it as a user other than root",
        )
    else:
        limits = Check("limits", True, "; ".join(binding))
    return [started, limits]


def _own_cgroup(self_cgroup: Path, controller: str) -> str | None:
    """This process's path in a v1 controller's hierarchy ("" for the v2 one)."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if controller in names.split(",") or (controller == "" and names == ""):
            return path
    return None


def check_cgroups(root: Path, self_cgroup: Path, *, uid: int) -> Check:
    """Whether shipyard can create cgroups for process and memory limits: v2 delegated, v1, or none."""
    fix = (
        "run shipyard inside a cgroup it may manage: a systemd unit with `Delegate=yes`, or "
        "`systemd-run --scope -p Delegate=yes shipyard ...`; in a container, start it with "
        "`--cgroupns=private` and a writable /sys/fs/cgroup"
    )
    if (root / "cgroup.controllers").exists():
        own = root / (_own_cgroup(self_cgroup, "") or "/").lstrip("/")
        try:
            enabled = (own / "cgroup.subtree_control").read_text().split()
        except OSError:
            enabled = []
        if "pids" in enabled and os.access(own, os.W_OK):
            return Check("cgroups", True, f"v2, delegated at {own} ({' '.join(enabled)})")
        found = f"v2, but {own} is not a writable subtree with the pids controller enabled"
    else:
        usable = []
        for controller in ("pids", "memory"):
            own_path = _own_cgroup(self_cgroup, controller)
            base = root / controller
            if (
                own_path is not None
                and (base / "cgroup.procs").exists()
                and os.access(base / own_path.lstrip("/"), os.W_OK)
            ):
                usable.append(controller)
        if "pids" in usable:
            return Check("cgroups", True, f"v1, writable: {', '.join(usable)}")
        found = "no writable pids cgroup (v1)" if (root / "pids").exists() else "no cgroups found"
    if uid != 0:
        return Check("cgroups", True, f"{found}; as uid {uid}, rlimits bind instead")
    return problem("cgroups", f"{found}; as root, nothing else limits processes", fix)


def check_overlay(filesystems: Path, scratch: Path, *, pool: Path) -> Check:
    """A real overlay mount in ``scratch``: the environment pool lends overlays, or copies without."""
    how = (
        "`modprobe overlay` as root, and run shipyard as root (overlays are mounted in a private "
        "mount namespace, which needs root); "
        "without them each run copies the environment"
    )
    try:
        supported = "overlay" in filesystems.read_text().split()
    except OSError:
        supported = False
    if not supported:
        return problem("overlayfs", f"the kernel has no overlay filesystem ({filesystems})", how)
    lower, target = scratch / "lower", scratch / "merged"
    lower.mkdir(parents=True, exist_ok=True)
    (lower / "probe").write_text("lower\n")
    try:
        namespace = mount_overlay(lower, target, scratch / "layer")
    except OverlayUnavailable as exc:
        return Check("overlayfs", True, f"{exc}: the environment pool ({pool}) copies instead")
    try:  # the overlay lives in its own mount namespace: write through it from in there
        namespace.run(lambda: (target / "probe").write_text("upper\n"))
        intact = (lower / "probe").read_text() == "lower\n"
    finally:
        namespace.close()
    if not intact:
        return problem("overlayfs", "a write through the overlay reached its lower layer", how)
    return Check("overlayfs", True, f"mounts work: the environment pool ({pool}) lends overlays")


def check_uv() -> Check:
    try:
        uv = uv_binary()
    except ShipyardError as exc:
        return Check("uv", False, str(exc))
    version = _version([str(uv), "--version"])
    if not version:
        return problem(
            "uv", f"{uv} does not run", "reinstall shipyard's environment (`make setup`)"
        )
    return Check("uv", True, f"{version} at {uv}")


def check_store(home: Path) -> Check:
    """The store opens and is migrated to the current schema."""
    try:
        Store.open(home=home).close()
    except ShipyardError as exc:  # its message says what to do
        return Check("store", False, str(exc))
    return Check("store", True, f"opened and migrated at {home}")


def check_index(url: str | None, *, timeout: float = 5.0) -> Check:
    """The configured package index answers (skipped when none is configured)."""
    if url is None:
        return Check("index", True, "none configured here (deps.index_url in shipyard.toml)")
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        return problem(
            "index",
            f"{redact(url)} unreachable ({type(exc).__name__})",
            "start the index, or correct deps.index_url in shipyard.toml",
        )
    if response.status_code >= 400:
        return problem(
            "index",
            f"{redact(url)} answered HTTP {response.status_code}",
            "check the URL (it should be the simple API root) and any credentials in it",
        )
    return Check("index", True, f"{redact(url)} answered HTTP {response.status_code}")


def configured_index(repo: Path) -> str | None:
    """The package index the repository's shipyard.toml names, if it names one."""
    try:
        return load_config(repo).config.deps.index_url
    except ShipyardError:
        return None


def run_checks(home: Path, *, repo: Path | None = None) -> list[Check]:
    """Every check, against this host; ``repo`` (default: the current directory) names the index."""
    container = detect_container(Path("/"))
    checks = [
        Check("python", sys.version_info >= (3, 11), sys.version.split()[0]),
        Check(
            "git",
            bool(shutil.which("git")),
            _version(["git", "--version"]) or "missing. Fix: `apt-get install git`",
        ),
        check_bubblewrap(shutil.which("bwrap")),
        check_userns(Path("/proc/sys"), uid=os.getuid()),
        check_container(container),
    ]
    if checks[2].ok:
        checks += check_sandbox(container)
    checks.append(check_cgroups(Path("/sys/fs/cgroup"), Path("/proc/self/cgroup"), uid=os.getuid()))
    with tempfile.TemporaryDirectory(prefix="shipyard-doctor-overlay-") as tmp:
        checks.append(
            check_overlay(
                Path("/proc/filesystems"), Path(tmp), pool=root_from_env(home / "cache" / "envs")
            )
        )
    checks += [
        check_uv(),
        check_store(home),
        check_index(configured_index(repo or Path.cwd())),
    ]
    return checks
