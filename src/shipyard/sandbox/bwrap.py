"""The bubblewrap sandbox: new namespaces, no capabilities, a seccomp filter, a read-only system.

bwrap itself starts with an explicit minimal environment and ``--clearenv``; the command sees only what
the harness passes, and only the seccomp filter's fd is passed in. Limits are rlimits set on bwrap before
it starts (inherited by everything inside), cgroups where the host allows, and a watchdog here for wall
time and disk use that kills the whole tree. See docs/security-model.md for the threat model.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from shipyard.errors import SandboxError, SandboxUnavailable
from shipyard.sandbox import cgroups, mountns, seccomp
from shipyard.sandbox.base import WORKSPACE, CommandResult, Limits, Mount

SANDBOX_UID = 1000
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "ssl",
    "ca-certificates",
    "localtime",
    "nsswitch.conf",
    "mime.types",
)
RESERVED = ("/proc", "/dev", "/tmp", "/etc", WORKSPACE)
DEFAULT_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
SHM_BYTES = 64 * 1024**2
# When shipyard runs as root, the sandbox's uid maps to host root (without capabilities), and procfs
# grants the owner's write bits on files like /proc/sys/kernel/core_pattern to that uid: cover them.
PROC_READ_ONLY = ("sys", "sysrq-trigger", "fs", "acpi", "scsi", "asound", "driver")
PROC_MASKED = ("kcore", "keys", "kallsyms", "timer_list", "sched_debug", "latency_stats")
DISK_POLL_SECONDS = 0.1
"""Shortest pause between two measurements of the writable trees (longer for big trees, see _DiskWatch)."""


def bwrap_path() -> str:
    found = shutil.which("bwrap") or ("/usr/bin/bwrap" if Path("/usr/bin/bwrap").exists() else None)
    if found is None:
        raise SandboxUnavailable(
            "bubblewrap is not installed; install it with `apt-get install bubblewrap` "
            "(or run `make setup`, which does)."
        )
    return found


def ensure_available() -> str:
    """The bubblewrap version, after proving that a sandbox can start on this host."""
    sandbox = BwrapSandbox()
    with tempfile.TemporaryDirectory(prefix="shipyard-probe-") as tmp:
        result = sandbox.run(["/bin/true"], workspace=Path(tmp), limits=Limits(wall_seconds=30))
    if not result.ok:
        raise SandboxUnavailable(
            f"bubblewrap cannot create a sandbox here: {result.stderr.strip() or result.exit_code}. "
            "Unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1)."
        )
    version = subprocess.run(
        [bwrap_path(), "--version"],
        capture_output=True,
        text=True,
        timeout=10,
        env=DEFAULT_ENV,
        check=False,
    )
    return version.stdout.strip()


class BwrapSandbox:
    """Runs commands under bubblewrap. One instance can run many commands, each in fresh namespaces."""

    name = "bwrap"

    def __init__(self, *, extra_ro_paths: Sequence[Path] = ()) -> None:
        interpreter = Path(sys.base_prefix).resolve()
        ro = list(extra_ro_paths)
        if not any(str(interpreter).startswith(d + "/") for d in SYSTEM_DIRS):
            ro.append(interpreter)
        self.extra_ro_paths = tuple(ro)
        self._etc = _synthetic_etc()

    def interpreter(self) -> str:
        """A python3 usable inside the sandbox: the one shipyard runs on (bound read-only)."""
        return str(
            Path(sys.base_prefix)
            / "bin"
            / f"python{sys.version_info.major}.{sys.version_info.minor}"
        )

    def argv(
        self,
        command: Sequence[str],
        *,
        workspace: Path,
        env: Mapping[str, str],
        mounts: Sequence[Mount],
        cwd: str,
        network: bool,
        tmp_bytes: int,
        seccomp_fd: int,
    ) -> list[str]:
        args = [bwrap_path(), "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID)]
        args += [
            "--gid",
            str(SANDBOX_UID),
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
        ]
        args += ["--disable-userns"] if _supports("--disable-userns") else []
        if network:
            args.append("--share-net")
        for d in SYSTEM_DIRS:
            path = Path(d)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), d]
            elif path.is_dir():
                args += ["--ro-bind", d, d]
        args += ["--dir", "/etc"]
        for name in ETC_FILES:
            if (Path("/etc") / name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        for name in ("passwd", "group", "hosts"):
            args += ["--ro-bind", str(self._etc / name), f"/etc/{name}"]
        for path in self.extra_ro_paths:
            args += ["--ro-bind", str(path), str(path)]
        args += ["--proc", "/proc", *_proc_covers()]
        args += ["--dev", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
        args += ["--size", str(min(tmp_bytes, SHM_BYTES)), "--tmpfs", "/dev/shm"]
        args += ["--bind", str(workspace.resolve()), WORKSPACE]
        git_dir = workspace / ".git"
        if git_dir.exists():
            args += ["--ro-bind", str(git_dir.resolve()), f"{WORKSPACE}/.git"]
        for mount in mounts:
            _check_mount(mount)
            args += [
                "--bind" if mount.writable else "--ro-bind",
                str(mount.source.resolve()),
                mount.target,
            ]
        # The root and /dev are bwrap's own tmpfs: read-only, so nothing but the size-limited /tmp,
        # /dev/shm and the writable binds can take memory or disk.
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--seccomp", str(seccomp_fd)]
        args += ["--chdir", cwd, "--clearenv"]
        for key, value in {**DEFAULT_ENV, **env}.items():
            args += ["--setenv", key, value]
        return [*args, "--", *command]

    def run(
        self,
        argv: Sequence[str],
        *,
        workspace: Path,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
        limits: Limits | None = None,
        cwd: str = WORKSPACE,
        network: bool = False,
    ) -> CommandResult:
        limits = limits or Limits()
        if not workspace.is_dir():
            raise SandboxError(f"workspace {workspace} does not exist")
        filter_fd = seccomp.filter_fd()
        try:
            full = self.argv(
                argv, workspace=workspace, env=env or {}, mounts=mounts, cwd=cwd, network=network,
                tmp_bytes=limits.tmp_bytes, seccomp_fd=filter_fd,
            )  # fmt: skip
            # A pooled environment lent as an overlay exists only in its private mount namespace:
            # bwrap starts there, and its writes (the overlay's upper layer) count as disk use.
            join = mountns.join_for([workspace, *(m.source for m in mounts)])
            writable = [workspace, *(m.source for m in mounts if m.writable), *join.writes]
            watch = _DiskWatch(writable, skip=workspace / ".git", limit=limits.disk_bytes)
            return _supervise(full, tuple(argv), limits, watch, filter_fd, join.namespace)
        finally:
            os.close(filter_fd)


def _supervise(
    full: list[str],
    argv: tuple[str, ...],
    limits: Limits,
    watch: _DiskWatch,
    filter_fd: int,
    namespace: mountns.PrivateMounts | None = None,
) -> CommandResult:
    """Starts bwrap (in ``namespace`` when given), enforces wall time and disk use, and cleans up
    every process it left."""
    group = cgroups.create(max_processes=limits.max_processes, memory_bytes=limits.memory_bytes)
    applied, limit = _rlimits(limits, group)

    def preexec() -> None:
        # Limits last: once an address-space limit below the parent's size (a host process with an
        # embedding model loaded is well over a GiB) is set, any further allocation here fails.
        if namespace is not None:
            namespace.enter()
        limit()

    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(DEFAULT_ENV), close_fds=True, pass_fds=(filter_fd,), start_new_session=True,
            preexec_fn=preexec,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        if group is not None:
            group.remove()
        raise SandboxUnavailable(f"could not start bubblewrap: {exc}") from exc
    out, err = (
        _Capture(proc.stdout, limits.output_bytes),
        _Capture(proc.stderr, limits.output_bytes),
    )
    hits: tuple[str, ...] = ()
    try:
        violations = _watch(proc, limits.wall_seconds, watch)
    finally:
        _kill_tree(proc)
        if group is not None:
            group.kill()  # before reading the counters: nothing left can change them
            hits = group.hits()
            group.remove()
    violations += hits
    out.join()
    err.join()
    timed_out = any(v.startswith("wall") for v in violations)
    return CommandResult(
        argv=argv,
        exit_code=-signal.SIGKILL if timed_out else proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        duration_seconds=round(time.monotonic() - started, 4),
        timed_out=timed_out,
        output_truncated=out.truncated or err.truncated,
        limits_applied=(
            f"wall={limits.wall_seconds:g}s (kill process tree)",
            *applied,
            *watch.applied(),
            f"tmp={limits.tmp_bytes >> 20}MiB, /dev/shm={min(limits.tmp_bytes, SHM_BYTES) >> 20}MiB"
            " (tmpfs size)",
            f"output={limits.output_bytes}B per stream (truncated)",
        ),
        violations=violations,
    )


def _watch(
    proc: subprocess.Popen[bytes], wall_seconds: float, watch: _DiskWatch
) -> tuple[str, ...]:
    """Waits for bwrap; past the wall time or over the disk limit, kills the tree and says why."""
    deadline = time.monotonic() + wall_seconds
    with _ExitWaiter(proc) as exited:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill_tree(proc)
                return (
                    f"wall: still running after {wall_seconds:g}s; the process tree was killed",
                )
            if not exited(min(remaining, watch.next_in())):
                over = watch.check()
                if over is not None:
                    _kill_tree(proc)
                    return (f"{over}; the process tree was killed",)
                continue
            over = watch.check(force=True)
            return () if over is None else (over,)


class _ExitWaiter:
    """Waits for a process to exit with a timeout, woken by the kernel (a pidfd) rather than by
    polling: ``Popen.wait(timeout)`` sleeps in growing steps and notices an exit up to 50 ms late."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.fd: int | None = None

    def __enter__(self) -> Callable[[float], bool]:
        with contextlib.suppress(AttributeError, OSError):
            self.fd = os.pidfd_open(self.proc.pid)
        return self.wait

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)

    def wait(self, timeout: float) -> bool:
        """True once the process has exited (and been reaped), False after ``timeout`` seconds."""
        if self.fd is None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        if not poller.poll(max(0.0, timeout) * 1000):
            return False
        self.proc.wait()
        return True


class _DiskWatch:
    """Measures how much the writable trees grew since the start (allocated blocks, each inode once).

    Polled, so a fast writer can overshoot by what it writes between two polls; RLIMIT_FSIZE bounds
    each file meanwhile. A scan of a big tree takes a while, so polls are spaced to keep their cost
    under a twentieth of the run.
    """

    def __init__(self, roots: Sequence[Path], *, skip: Path, limit: int | None) -> None:
        self.roots = tuple(r.resolve() for r in roots)
        self.skip = skip.resolve()
        self.limit = limit
        self.interval = DISK_POLL_SECONDS
        self.due = 0.0
        self.baseline = self._measure() if limit is not None else 0

    def applied(self) -> tuple[str, ...]:
        if self.limit is None:
            return ()
        return (f"disk={self.limit >> 20}MiB growth (watchdog, polled every >={self.interval:g}s)",)

    def next_in(self) -> float:
        return math.inf if self.limit is None else max(0.0, self.due - time.monotonic())

    def check(self, *, force: bool = False) -> str | None:
        """A ``disk: ...`` violation if the trees grew past the limit; scans only when due."""
        if self.limit is None or not (force or time.monotonic() >= self.due):
            return None
        grown = self._measure() - self.baseline
        if grown <= self.limit:
            return None
        return (
            f"disk: the workspace and writable mounts grew by {grown >> 20}MiB, "
            f"more than the {self.limit >> 20}MiB allowed"
        )

    def _measure(self) -> int:
        started = time.monotonic()
        seen: set[tuple[int, int]] = set()
        total = sum(self._usage(root, seen) for root in self.roots)
        spent = time.monotonic() - started
        self.interval = max(DISK_POLL_SECONDS, 20 * spent)
        self.due = time.monotonic() + self.interval
        return total

    def _usage(self, path: Path, seen: set[tuple[int, int]]) -> int:
        total = 0
        stack = [str(path)]
        while stack:
            try:
                # closed even when the folder vanishes mid-listing (else a ResourceWarning)
                with os.scandir(stack.pop()) as listing:
                    entries = list(listing)
            except OSError:  # removed meanwhile, or unreadable
                continue
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False) and entry.path != str(self.skip):
                    stack.append(entry.path)
        return total


class _Capture:
    """Reads a pipe in a thread, keeping at most ``limit`` bytes and draining the rest."""

    def __init__(self, pipe: IO[bytes] | None, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.kept = 0
        self.limit = limit
        self.truncated = False
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe: IO[bytes] | None) -> None:
        if pipe is None:
            return
        with pipe:
            for chunk in iter(lambda: pipe.read(65536), b""):
                room = self.limit - self.kept
                if room > 0:
                    self.chunks.append(chunk[:room])
                    self.kept += min(room, len(chunk))
                if len(chunk) > room:
                    self.truncated = True

    def join(self) -> None:
        self.thread.join(timeout=10)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    # bwrap leads its own session; killing its group takes bwrap down, and --die-with-parent plus the
    # PID namespace take every process inside down with it. A reaped bwrap's pid may be reused: skip it.
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _rlimits(
    limits: Limits, group: cgroups.CgroupLimits | None
) -> tuple[tuple[str, ...], Callable[[], None]]:
    wanted: list[tuple[int, int, str]] = []
    if limits.cpu_seconds is not None:
        wanted.append((resource.RLIMIT_CPU, limits.cpu_seconds, f"cpu={limits.cpu_seconds}s"))
    if limits.memory_bytes is not None:
        wanted.append(
            (resource.RLIMIT_AS, limits.memory_bytes, f"memory={limits.memory_bytes >> 20}MiB")
        )
    if limits.file_size_bytes is not None:
        wanted.append(
            (
                resource.RLIMIT_FSIZE,
                limits.file_size_bytes,
                f"file_size={limits.file_size_bytes >> 20}MiB",
            )
        )
    # A crashing test must not dump a core the size of its memory into the workspace.
    wanted.append((resource.RLIMIT_CORE, 0, "core dumps=off"))
    if limits.max_processes is not None and os.getuid() != 0:
        # The kernel exempts host root from RLIMIT_NPROC; for root only the pids cgroup binds.
        wanted.append(
            (resource.RLIMIT_NPROC, limits.max_processes, f"processes={limits.max_processes}")
        )

    # Built here, in the parent: the child allocates nothing after its address space is capped,
    # which is why that limit is set last.
    settings = [(kind, (value, value)) for kind, value, _ in wanted if kind != resource.RLIMIT_AS]
    settings += [(kind, (value, value)) for kind, value, _ in wanted if kind == resource.RLIMIT_AS]

    def apply() -> None:
        if group is not None:
            group.join()
        for kind, pair in settings:
            resource.setrlimit(kind, pair)

    applied = [f"{label} (rlimit)" for _, _, label in wanted]
    applied += group.applied if group is not None else ()
    if (
        limits.max_processes is not None
        and os.getuid() == 0
        and not any(a.startswith("processes=") for a in applied)
    ):
        applied.append(
            "processes: NOT limited (no pids cgroup available and rlimits do not bind root)"
        )
    return tuple(applied), apply


def _check_mount(mount: Mount) -> None:
    target = mount.target.rstrip("/") or "/"
    if not target.startswith("/") or ".." in Path(target).parts:
        raise SandboxError(f"mount target {mount.target!r} must be an absolute path without '..'")
    kernel_trees = (*SYSTEM_DIRS, "/proc", "/dev")
    if target in (*RESERVED, "/") or any(
        target == d or target.startswith(f"{d}/") for d in kernel_trees
    ):
        raise SandboxError(
            f"mount target {mount.target!r} would shadow a path the sandbox controls"
        )
    if target.startswith(f"{WORKSPACE}/.git") and mount.writable:
        raise SandboxError("the workspace's .git stays read-only inside the sandbox")


def _proc_covers() -> list[str]:
    """Binds that make the kernel's tunables read-only and hide what only helps a kernel exploit."""
    args: list[str] = []
    for name in PROC_READ_ONLY:
        if Path("/proc", name).exists():
            args += ["--ro-bind", f"/proc/{name}", f"/proc/{name}"]
    for name in PROC_MASKED:
        if Path("/proc", name).exists():
            args += ["--ro-bind", "/dev/null", f"/proc/{name}"]
    return args


_SUPPORT: dict[str, bool] = {}


def _supports(flag: str) -> bool:
    if flag not in _SUPPORT:
        done = subprocess.run(
            [bwrap_path(), "--help"],
            capture_output=True,
            text=True,
            timeout=10,
            env=DEFAULT_ENV,
            check=False,
        )
        _SUPPORT[flag] = flag in done.stdout
    return _SUPPORT[flag]


def _synthetic_etc() -> Path:
    """passwd, group and hosts that name only the sandbox user and loopback."""
    root = Path(tempfile.gettempdir()) / f"shipyard-sandbox-etc-{os.getuid()}"
    root.mkdir(mode=0o755, exist_ok=True)
    st = root.lstat()
    # In a shared /tmp another user could have made this directory first and could swap its files.
    if not root.is_dir() or root.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise SandboxUnavailable(
            f"{root} is not a directory owned by uid {os.getuid()} and writable only by it; "
            "remove it (someone else may have created it) and run again."
        )
    files = {
        "passwd": f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:/tmp:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        "group": f"sandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n",
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
    }
    for name, content in files.items():
        path = root / name
        if not path.exists() or path.read_text() != content:
            tmp = root / f".{name}.{os.getpid()}"
            tmp.write_text(content)
            tmp.chmod(0o644)
            tmp.replace(path)
    return root
