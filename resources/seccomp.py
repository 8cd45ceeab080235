"""The jail's seccomp filter: a classic-BPF program that bubblewrap loads (`--seccomp FD`) just
before it starts the jailed command, for that command and everything it starts.

It allows every system call except the ones below, which jailed programs never need and which
either reach kernel state outside the jail (keyrings, mounts, namespaces, other processes' memory)
or are large attack surfaces of their own (bpf, io_uring, perf, userfaultfd). Denied calls fail with
EPERM, except io_uring_* and clone3, which fail with ENOSYS so that libuv and glibc fall back to
epoll and clone. clone itself is denied only with namespace flags; ioctl only for pushing input into
a terminal (TIOCSTI, TIOCLINUX); socket only for AF_VSOCK, which a network namespace does not isolate.
Calls of another ABI (x32 numbers, i386 `int 0x80`, AArch32) fail with ENOSYS, so their numbering
cannot be used to slip past the list. Only x86_64 and aarch64 have tables; elsewhere there is no
filter (`filter_program` returns None and the sandbox says so).
"""

from __future__ import annotations

import errno
import functools
import platform
import struct

# System call numbers (see arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h;
# numbers from 424 on are shared by every architecture). tests/test_sandbox_attacks.py checks them
# against the installed kernel headers.
_COMMON = {"io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
           "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
           "pidfd_getfd": 438, "mount_setattr": 442, "quotactl_fd": 443, "open_tree_attr": 467}
SYSCALLS = {
    "x86_64": {**_COMMON, "ioctl": 16, "socket": 41, "clone": 56, "ptrace": 101, "syslog": 103, "uselib": 134,
               "modify_ldt": 154, "pivot_root": 155, "chroot": 161, "acct": 163, "mount": 165, "umount2": 166,
               "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172, "ioperm": 173, "init_module": 175,
               "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212, "kexec_load": 246, "add_key": 248,
               "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298, "fanotify_init": 300,
               "name_to_handle_at": 303, "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310,
               "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "kexec_file_load": 320, "bpf": 321,
               "userfaultfd": 323},
    "aarch64": {**_COMMON, "lookup_dcookie": 18, "ioctl": 29, "umount2": 39, "mount": 40, "pivot_root": 41,
                "chroot": 51, "quotactl": 60, "acct": 89, "unshare": 97, "kexec_load": 104, "init_module": 105,
                "delete_module": 106, "syslog": 116, "ptrace": 117, "reboot": 142, "socket": 198, "add_key": 217,
                "request_key": 218, "keyctl": 219, "clone": 220, "swapon": 224, "swapoff": 225,
                "perf_event_open": 241, "fanotify_init": 262, "name_to_handle_at": 264, "open_by_handle_at": 265,
                "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "finit_module": 273,
                "bpf": 280, "userfaultfd": 282, "kexec_file_load": 294},
}
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000

# Denied outright, with the errno the caller sees.
DENIED = {
    **dict.fromkeys(("add_key", "request_key", "keyctl"), errno.EPERM),  # kernel keyrings outlive the jail
    **dict.fromkeys(("bpf", "perf_event_open", "userfaultfd"), errno.EPERM),
    **dict.fromkeys(("io_uring_setup", "io_uring_enter", "io_uring_register", "clone3"), errno.ENOSYS),
    **dict.fromkeys(("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"), errno.EPERM),
    **dict.fromkeys(("mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "open_tree_attr",
                     "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"), errno.EPERM),
    **dict.fromkeys(("unshare", "setns"), errno.EPERM),
    **dict.fromkeys(("kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
                     "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "lookup_dcookie",
                     "fanotify_init", "open_by_handle_at", "name_to_handle_at"), errno.EPERM),
    **dict.fromkeys(("iopl", "ioperm", "modify_ldt", "uselib"), errno.EPERM),  # x86_64 only
}
NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
DENIED_IOCTLS = (0x5412, 0x541C)  # TIOCSTI, TIOCLINUX
DENIED_SOCKET_FAMILIES = (40,)  # AF_VSOCK

# classic BPF opcodes and seccomp return values
_LD_W_ABS, _JA, _JEQ, _JGE, _JSET, _RET = 0x20, 0x05, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_NR, _ARCH, _ARG0, _ARG1 = 0, 4, 16, 24  # offsets in struct seccomp_data (low 32 bits of an argument)


def host_arch() -> str | None:
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return machine if machine in SYSCALLS else None


@functools.lru_cache(maxsize=None)
def filter_program(arch: str | None = None) -> bytes | None:
    """The filter as bubblewrap reads it (struct sock_filter[]), or None for an unsupported arch."""
    arch = arch or host_arch()
    if arch not in SYSCALLS:
        return None
    numbers = SYSCALLS[arch]
    # Instructions with symbolic jump targets; targets resolve to forward offsets below.
    prog: list[tuple] = [(_LD_W_ABS, None, None, _ARCH),
                         (_JEQ, "next", "enosys", AUDIT_ARCH[arch]),
                         (_LD_W_ABS, None, None, _NR)]
    if arch == "x86_64":
        prog.append((_JGE, "enosys", "next", X32_SYSCALL_BIT))
    for name, err in DENIED.items():
        if name in numbers:
            prog.append((_JEQ, "eperm" if err == errno.EPERM else "enosys", "next", numbers[name]))
    prog += [(_JEQ, "clone", "next", numbers["clone"]),
             (_JEQ, "ioctl", "next", numbers["ioctl"]),
             (_JEQ, "socket", "next", numbers["socket"]),
             (_RET, None, None, _RET_ALLOW),
             ("label", "clone"), (_LD_W_ABS, None, None, _ARG0),
             (_JSET, "eperm", "allow", NAMESPACE_FLAGS),
             ("label", "ioctl"), (_LD_W_ABS, None, None, _ARG1)]
    prog += [(_JEQ, "eperm", "next", cmd) for cmd in DENIED_IOCTLS]
    prog += [(_JA, None, None, "allow"),
             ("label", "socket"), (_LD_W_ABS, None, None, _ARG0)]
    prog += [(_JEQ, "eperm", "next", family) for family in DENIED_SOCKET_FAMILIES]
    prog += [("label", "allow"), (_RET, None, None, _RET_ALLOW),
             ("label", "eperm"), (_RET, None, None, _RET_ERRNO | errno.EPERM),
             ("label", "enosys"), (_RET, None, None, _RET_ERRNO | errno.ENOSYS)]
    return _assemble(prog)


def _assemble(prog: list[tuple]) -> bytes:
    labels, code = {}, []
    for item in prog:
        if item[0] == "label":
            labels[item[1]] = len(code)
        else:
            code.append(item)
    out = bytearray()
    for pc, (op, jt, jf, k) in enumerate(code):
        if op == _JA:  # unconditional: the offset is in k
            k = _offset(labels, k, pc)
        jt, jf = (0 if t in (None, "next") else _offset(labels, t, pc) for t in (jt, jf))
        out += struct.pack("=HBBI", op, jt, jf, k)
    return bytes(out)


def _offset(labels: dict, target: str, pc: int) -> int:
    offset = labels[target] - pc - 1
    if not 0 <= offset <= 255:  # cBPF jumps only forward, by at most 255 in a conditional jump
        raise ValueError(f"seccomp jump to {target} out of range at instruction {pc}")
    return offset
