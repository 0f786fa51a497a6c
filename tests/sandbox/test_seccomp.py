"""The seccomp filter: the generated BPF program, run by a small interpreter here and by the kernel."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import struct
from pathlib import Path

import pytest

from shipyard.errors import SandboxUnavailable
from shipyard.sandbox import BwrapSandbox, Limits
from shipyard.sandbox import seccomp as sc
from tests.conftest import needs_bwrap

ARCHES = {"x86_64": sc.AUDIT_ARCH_X86_64, "aarch64": sc.AUDIT_ARCH_AARCH64}
ORDINARY = {  # read, write, openat, execve, getpid
    sc.AUDIT_ARCH_X86_64: (0, 1, 257, 59, 39),
    sc.AUDIT_ARCH_AARCH64: (63, 64, 56, 221, 172),
}
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x00020000, 0x40000000
THREAD_FLAGS = 0x003D0F00  # what glibc's pthread_create passes to clone()
SIGCHLD = 17


def evaluate(program: bytes, *, arch: int, nr: int, args: tuple[int, ...] = ()) -> int:
    """Runs a classic BPF seccomp program over one seccomp_data, as the kernel would."""
    data = struct.pack("=IIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    insns = [struct.unpack_from("=HBBI", program, at) for at in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == sc.RET_K:
            return k
        if code == sc.LD_W_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
            continue
        taken = {sc.JEQ_K: acc == k, sc.JGE_K: acc >= k, sc.JSET_K: bool(acc & k)}[code]
        pc += 1 + (jt if taken else jf)


@pytest.fixture(scope="module")
def program() -> bytes:
    return sc.filter_bytes()


def test_program_is_a_well_formed_sock_filter_array(program: bytes) -> None:
    assert len(program) % 8 == 0
    assert 0 < len(program) // 8 <= 4096  # BPF_MAXINSNS
    assert set(sc.DENIED) <= set(sc.SYSCALLS[sc.AUDIT_ARCH_X86_64])
    assert sc.SYSCALLS[sc.AUDIT_ARCH_X86_64].keys() == sc.SYSCALLS[sc.AUDIT_ARCH_AARCH64].keys()


@pytest.mark.parametrize("arch", ARCHES.values(), ids=ARCHES.keys())
def test_every_listed_syscall_is_denied_with_eperm(program: bytes, arch: int) -> None:
    for name in sc.DENIED:
        assert evaluate(program, arch=arch, nr=sc.SYSCALLS[arch][name]) == sc.DENY, name


@pytest.mark.parametrize("arch", ARCHES.values(), ids=ARCHES.keys())
def test_ordinary_syscalls_are_allowed(program: bytes, arch: int) -> None:
    for nr in ORDINARY[arch]:
        assert evaluate(program, arch=arch, nr=nr) == sc.RET_ALLOW, nr


@pytest.mark.parametrize("arch", ARCHES.values(), ids=ARCHES.keys())
def test_terminal_injection_ioctls_are_denied_and_others_allowed(program: bytes, arch: int) -> None:
    ioctl = sc.SYSCALLS[arch]["ioctl"]
    for request in (sc.TIOCSTI, sc.TIOCLINUX, 0xFFFF_FFFF_0000_0000 | sc.TIOCSTI):
        # high bits set: the kernel ignores them, so the filter must too
        assert evaluate(program, arch=arch, nr=ioctl, args=(0, request)) == sc.DENY, hex(request)
    for request in (0x5401, 0x541B, 0x5413):  # TCGETS, FIONREAD, TIOCGWINSZ
        assert evaluate(program, arch=arch, nr=ioctl, args=(0, request)) == sc.RET_ALLOW


@pytest.mark.parametrize("arch", ARCHES.values(), ids=ARCHES.keys())
def test_namespace_flags_are_denied_on_clone_and_unshare(program: bytes, arch: int) -> None:
    for name in ("clone", "unshare"):
        nr = sc.SYSCALLS[arch][name]
        for flags in (CLONE_NEWUSER, CLONE_NEWNS | SIGCHLD, CLONE_NEWNET):
            assert evaluate(program, arch=arch, nr=nr, args=(flags,)) == sc.DENY, (name, flags)
    clone = sc.SYSCALLS[arch]["clone"]
    for flags in (SIGCHLD, THREAD_FLAGS):
        assert evaluate(program, arch=arch, nr=clone, args=(flags,)) == sc.RET_ALLOW
    assert evaluate(program, arch=arch, nr=sc.SYSCALLS[arch]["unshare"], args=(0x400,)) == (
        sc.RET_ALLOW  # CLONE_FILES: no new namespace
    )
    assert evaluate(program, arch=arch, nr=435) == sc.NO_CLONE3  # libc falls back to clone()


def test_unknown_architectures_are_killed_and_x32_calls_denied(program: bytes) -> None:
    for arch in (0x40000003, 0x40000028, 0):  # i386 (int 0x80 on x86_64), arm, nonsense
        assert evaluate(program, arch=arch, nr=0) == sc.RET_KILL_PROCESS
    x32_read = sc.X32_SYSCALL_BIT | 0
    assert evaluate(program, arch=sc.AUDIT_ARCH_X86_64, nr=x32_read) == sc.DENY


def test_jumps_out_of_range_are_refused() -> None:
    far = [
        sc.Insn(sc.JEQ_K, 1, jt="end"),
        *[sc.Insn(sc.RET_K, 0)] * 300,
        "end",
        sc.Insn(sc.RET_K, 0),
    ]
    with pytest.raises(SandboxUnavailable, match="out of range"):
        sc.assemble(far)


def test_the_fd_bwrap_reads_holds_the_program(program: bytes) -> None:
    fd = sc.filter_fd()
    try:
        assert os.read(fd, 1 << 16) == program
        assert not os.get_inheritable(fd)  # only pass_fds hands it on
    finally:
        os.close(fd)


def test_syscall_numbers_match_libseccomp() -> None:
    found = ctypes.util.find_library("seccomp")
    if found is None:
        pytest.skip("libseccomp is not installed; the numbers come from the kernel headers")
    lib = ctypes.CDLL(found)
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    for arch, table in sc.SYSCALLS.items():
        for name, nr in table.items():
            assert lib.seccomp_syscall_resolve_name_arch(arch, name.encode()) == nr, (
                hex(arch),
                name,
            )


# Arguments chosen so that, without the filter, most calls fail with something other than EPERM
# (EBADF, EFAULT, EINVAL, ENOSPC from --disable-userns) or succeed harmlessly (keyctl,
# process_vm_readv, ptrace): an EPERM here is the filter's answer. Checked once by running this
# probe under bwrap without --seccomp.
PROBE = r"""
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return 0 if ret >= 0 else ctypes.get_errno()
NR = json.loads(os.environ["NR"])
child = os.fork()
if child == 0:
    os._exit(0)
results = {
    "ptrace": call(NR["ptrace"], 16, 1, 0, 0),             # PTRACE_ATTACH to pid 1
    "process_vm_readv": call(NR["process_vm_readv"], 1, 0, 0, 0, 0, 0),
    "process_vm_writev": call(NR["process_vm_writev"], 1, 0, 0, 0, 0, 0),
    "mount": call(NR["mount"], 0, 0, 0, 0, 0),
    "umount2": call(NR["umount2"], 0, 0),
    "pivot_root": call(NR["pivot_root"], 0, 0),
    "move_mount": call(NR["move_mount"], -1, 0, -1, 0, 0),
    "open_tree": call(NR["open_tree"], -1, 0, 0),
    "fsopen": call(NR["fsopen"], 0, 0),
    "fsconfig": call(NR["fsconfig"], -1, 0, 0, 0, 0),
    "fsmount": call(NR["fsmount"], -1, 0, 0),
    "fspick": call(NR["fspick"], -1, 0, 0),
    "mount_setattr": call(NR["mount_setattr"], -1, 0, 0, 0, 0),
    "unshare": call(NR["unshare"], 0x10000000),
    "unshare_mnt": call(NR["unshare"], 0x00020000),
    "clone_newuser": call(NR["clone"], 0x10000000 | 17, 0, 0, 0, 0),
    "setns": call(NR["setns"], -1, 0),
    "keyctl": call(NR["keyctl"], 0, -3, 0),                # KEYCTL_GET_KEYRING_ID (session)
    "add_key": call(NR["add_key"], 0, 0, 0, 0, 0),
    "request_key": call(NR["request_key"], 0, 0, 0, 0),
    "init_module": call(NR["init_module"], 0, 0, 0),
    "finit_module": call(NR["finit_module"], -1, 0, 0),
    "delete_module": call(NR["delete_module"], 0, 0),
    "kexec_load": call(NR["kexec_load"], 0, 0, 0, 0),
    "kexec_file_load": call(NR["kexec_file_load"], -1, -1, 0, 0, 0),
    "reboot": call(NR["reboot"], 0, 0, 0, 0),              # bad magic: EINVAL without the filter
    "perf_event_open": call(NR["perf_event_open"], 0, 0, -1, -1, 0),
    "bpf": call(NR["bpf"], -1, 0, 0),
    "userfaultfd": call(NR["userfaultfd"], -1),
    "swapon": call(NR["swapon"], 0, 0),
    "swapoff": call(NR["swapoff"], 0),
    "acct": call(NR["acct"], 0),
    "quotactl": call(NR["quotactl"], 0, 0, 0, 0),
    "quotactl_fd": call(NR["quotactl_fd"], -1, 0, 0, 0),
    "syslog": call(NR["syslog"], 10, 0, 0),                 # SYSLOG_ACTION_SIZE_BUFFER
    "open_by_handle_at": call(NR["open_by_handle_at"], -1, 0, 0),
    "tiocsti": call(NR["ioctl"], -1, 0x5412, 0),           # EBADF without the filter
    "tioclinux": call(NR["ioctl"], -1, 0x541C, 0),
    "control_tcgets": call(NR["ioctl"], -1, 0x5401, 0),    # allowed: EBADF
    "control_getpid": call(NR["getpid"]),
    "control_fork": os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]),
}
print(json.dumps(results))
"""


@needs_bwrap
def test_the_kernel_answers_eperm_inside_a_real_sandbox(tmp_path: Path) -> None:
    sandbox = BwrapSandbox()
    numbers = {**sc.SYSCALLS[sc.AUDIT_ARCH_X86_64], "getpid": 39}
    if os.uname().machine == "aarch64":
        numbers = {**sc.SYSCALLS[sc.AUDIT_ARCH_AARCH64], "getpid": 172}
    result = sandbox.run(
        [sandbox.interpreter(), "-c", PROBE],
        workspace=tmp_path,
        env={"NR": json.dumps(numbers)},
        limits=Limits(wall_seconds=30),  # without the filter, attaching to pid 1 stops the sandbox
    )
    assert result.exit_code == 0, result.stderr
    errnos = json.loads(result.stdout)
    controls = {k: errnos.pop(k) for k in list(errnos) if k.startswith("control_")}
    assert {name: errno.errorcode.get(e, e) for name, e in errnos.items() if e != errno.EPERM} == {}
    assert controls == {"control_tcgets": errno.EBADF, "control_getpid": 0, "control_fork": 0}


@needs_bwrap
def test_the_filter_is_installed_with_no_new_privileges(tmp_path: Path) -> None:
    result = BwrapSandbox().run(
        ["grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status"], workspace=tmp_path
    )
    fields = dict(line.split(":\t") for line in result.stdout.splitlines())
    assert fields == {"NoNewPrivs": "1", "Seccomp": "2"}  # 2 = SECCOMP_MODE_FILTER
