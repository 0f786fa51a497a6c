"""The sandbox's seccomp filter: a classic BPF program, generated here in pure Python, that bwrap loads.

No libseccomp: the program is a packed ``sock_filter`` array. It kills a process that calls in through an
architecture it does not know (i386 via ``int 0x80`` included), refuses x32 calls, and answers ``EPERM``
to the syscalls a test suite never needs: other processes' memory, mounts, namespaces, keyrings, kernel
modules, reboot, tracing and bpf, swap, accounting, quotas, the kernel log, and terminal injection.
"""

from __future__ import annotations

import errno
import os
import platform
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from shipyard.errors import SandboxUnavailable

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
DENY = RET_ERRNO | errno.EPERM
# clone3 passes its flags in memory a filter cannot read; ENOSYS makes libc fall back to clone().
NO_CLONE3 = RET_ERRNO | errno.ENOSYS

TIOCSTI = 0x5412
TIOCLINUX = 0x541C
NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
    | 0x00000080  # CLONE_NEWTIME
)

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr", "setns", "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "perf_event_open", "bpf", "userfaultfd", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
    "syslog", "open_by_handle_at",
)  # fmt: skip
"""Always refused with EPERM."""

_NR_X86_64 = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165, "umount2": 166,
    "pivot_root": 155, "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442, "setns": 308, "keyctl": 250, "add_key": 248,
    "request_key": 249, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "kexec_load": 246, "kexec_file_load": 320, "reboot": 169, "perf_event_open": 298, "bpf": 321,
    "userfaultfd": 323, "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179,
    "quotactl_fd": 443, "syslog": 103, "open_by_handle_at": 304,
    "ioctl": 16, "clone": 56, "unshare": 272, "clone3": 435,
}  # fmt: skip
_NR_AARCH64 = {
    "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40, "umount2": 39,
    "pivot_root": 41, "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442, "setns": 268, "keyctl": 219, "add_key": 217,
    "request_key": 218, "init_module": 105, "finit_module": 273, "delete_module": 106,
    "kexec_load": 104, "kexec_file_load": 294, "reboot": 142, "perf_event_open": 241, "bpf": 280,
    "userfaultfd": 282, "swapon": 224, "swapoff": 225, "acct": 89, "quotactl": 60,
    "quotactl_fd": 443, "syslog": 116, "open_by_handle_at": 265,
    "ioctl": 29, "clone": 220, "unshare": 97, "clone3": 435,
}  # fmt: skip
SYSCALLS: Mapping[int, Mapping[str, int]] = {
    AUDIT_ARCH_X86_64: _NR_X86_64,
    AUDIT_ARCH_AARCH64: _NR_AARCH64,
}
"""Syscall numbers per audit architecture (from the kernel's unistd headers)."""

# Classic BPF opcodes and the seccomp_data layout: nr, arch, instruction pointer, then six 64-bit args.
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06
OFF_NR, OFF_ARCH = 0, 4


def arg_low(index: int) -> int:
    """Offset of argument ``index``'s low 32 bits (both supported architectures are little-endian)."""
    return 16 + 8 * index


@dataclass(frozen=True)
class Insn:
    """One ``sock_filter``; jump targets are labels until ``assemble`` resolves them."""

    code: int
    k: int
    jt: str | int = 0
    jf: str | int = 0


def _arch_block(arch: int) -> Iterator[Insn | str]:
    nr = SYSCALLS[arch]
    tag = f"{arch:x}"
    yield f"arch_{tag}"
    yield Insn(LD_W_ABS, OFF_NR)
    if arch == AUDIT_ARCH_X86_64:
        yield Insn(JGE_K, X32_SYSCALL_BIT, jt="deny")
    for name in DENIED:
        yield Insn(JEQ_K, nr[name], jt="deny")
    yield Insn(JEQ_K, nr["clone3"], jt="no_clone3")
    yield Insn(JEQ_K, nr["ioctl"], jt=f"ioctl_{tag}")
    yield Insn(JEQ_K, nr["clone"], jt=f"flags_{tag}")
    yield Insn(JEQ_K, nr["unshare"], jt=f"flags_{tag}", jf="allow")
    yield f"ioctl_{tag}"
    # The kernel compares only the low 32 bits of an ioctl request, so that is what is checked.
    yield Insn(LD_W_ABS, arg_low(1))
    yield Insn(JEQ_K, TIOCSTI, jt="deny")
    yield Insn(JEQ_K, TIOCLINUX, jt="deny", jf="allow")
    yield f"flags_{tag}"
    yield Insn(LD_W_ABS, arg_low(0))
    yield Insn(JSET_K, NAMESPACE_FLAGS, jt="deny", jf="allow")


def program() -> list[Insn | str]:
    """The filter as instructions and labels, before assembly."""
    body: list[Insn | str] = [Insn(LD_W_ABS, OFF_ARCH)]
    body.append(Insn(JEQ_K, AUDIT_ARCH_X86_64, jt=f"arch_{AUDIT_ARCH_X86_64:x}"))
    body.append(Insn(JEQ_K, AUDIT_ARCH_AARCH64, jt=f"arch_{AUDIT_ARCH_AARCH64:x}", jf="kill"))
    body += ["kill", Insn(RET_K, RET_KILL_PROCESS)]
    for arch in SYSCALLS:
        body += list(_arch_block(arch))
    body += ["allow", Insn(RET_K, RET_ALLOW), "deny", Insn(RET_K, DENY)]
    body += ["no_clone3", Insn(RET_K, NO_CLONE3)]
    return body


def assemble(items: list[Insn | str]) -> bytes:
    """Packs instructions into ``struct sock_filter[]``, turning labels into relative jumps."""
    labels: dict[str, int] = {}
    insns: list[Insn] = []
    for item in items:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)

    def offset(target: str | int, at: int) -> int:
        if isinstance(target, int):
            return target
        distance = labels[target] - at - 1
        if not 0 <= distance <= 255:
            raise SandboxUnavailable(f"seccomp jump to {target!r} out of range ({distance})")
        return distance

    return b"".join(
        struct.pack("=HBBI", i.code, offset(i.jt, at), offset(i.jf, at), i.k)
        for at, i in enumerate(insns)
    )


def filter_bytes() -> bytes:
    """The assembled filter bwrap reads from ``--seccomp FD``."""
    return assemble(program())


def supported_here() -> bool:
    """Whether this host's architecture is one the filter allows (others would be killed at once)."""
    return platform.machine() in ("x86_64", "aarch64", "arm64")


def filter_fd() -> int:
    """A memfd holding the filter, positioned at its start, for bwrap to read; the caller closes it."""
    if not supported_here():
        raise SandboxUnavailable(
            f"the sandbox's seccomp filter supports x86_64 and aarch64, not {platform.machine()}; "
            "run shipyard on one of those."
        )
    fd = os.memfd_create("shipyard-seccomp", os.MFD_CLOEXEC)
    os.write(fd, filter_bytes())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
