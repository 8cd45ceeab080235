"""Attacks on the jail's limits and on what it shows: each is a real program run in the jail, and the
test passes only when the attack fails."""

import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resources import sandbox as sandbox_module
from resources.sandbox import Sandbox, SandboxJob
from resources.toolchains import REPO_ROOT, TOOLCHAIN_DIR

pytestmark = pytest.mark.slow  # each attack runs in the jail

UID_BASE = 62000  # a uid range of our own: other modules' jails may run meanwhile
ROOT = os.geteuid() == 0


def _sandbox(**kw) -> Sandbox:
    return Sandbox(uid_base=UID_BASE, **{"timeout_s": 30, **kw})


def py(code: str) -> list[str]:
    return ["python3", "-u", "-c", code]


def _require(condition: bool, why: str) -> None:
    # As conftest: on CI (a root machine like the development one) a missing layer is a set-up bug.
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def _needs_cgroup():
    # A writable memory cgroup is a property of the machine, not of its set-up: where there is none the
    # jail says so (`hrm sandbox layers`) and these tests are skipped with the reason, even on CI.
    from resources.cgroups import memory_hierarchy

    hierarchy, why = memory_hierarchy()
    if hierarchy is None:
        pytest.skip(f"no memory cgroup here: {why}")


# --- memory that rlimits never saw ------------------------------------------------------------
HOLD = """
import os, sys
held = 0
def grow(write):
    global held
    while held < 3072:
        write()
        held += 64
        print("held", held, flush=True)
"""


def _held_mb(stdout: str) -> int:
    return max([int(n) for n in re.findall(r"held (\d+)", stdout)] or [0])


def test_memfd_beyond_the_limit_is_killed_as_memory(sandbox):
    _needs_cgroup()
    # One memfd per 64 MB, each below the file-size rlimit; rlimits never see any of it.
    code = HOLD + "fds = []\nchunk = bytes(64 << 20)\n" \
                  "grow(lambda: fds.append(os.memfd_create('hog')) or os.write(fds[-1], chunk))\n"
    r = _sandbox().run(py(code), memory_mb=256)
    assert r.status == "memory", r
    assert _held_mb(r.stdout) <= 256 + sandbox_module.JAIL_SLACK_MB, r.stdout[-300:]


def test_shared_memory_beyond_the_limit_is_killed_as_memory(sandbox):
    _needs_cgroup()
    # POSIX shared memory lives in /dev/shm, which the jail cannot write; System V segments live in
    # the jail's IPC namespace, and their pages count toward the jail's memory.
    code = HOLD + """
try:
    open('/dev/shm/hog', 'wb').write(bytes(1 << 20))
    print('wrote /dev/shm', flush=True)
except OSError as e:
    print('no /dev/shm', e.errno, flush=True)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
shm = libc.shmget(0, ctypes.c_size_t(3 << 30), 0o1600)
base = libc.shmat(shm, None, 0)
assert shm >= 0 and base not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
grow(lambda: ctypes.memset(base + (held << 20), 1, 64 << 20))
"""
    r = _sandbox().run(py(code), memory_mb=256)
    assert "wrote /dev/shm" not in r.stdout
    assert r.status == "memory", r
    assert _held_mb(r.stdout) <= 256 + sandbox_module.JAIL_SLACK_MB, r.stdout[-300:]


def test_files_in_the_jails_tmpfs_count_as_its_memory(sandbox):
    _needs_cgroup()
    # /work may hold 1 GB, but only 256 MB of memory: the files' pages are the jail's memory.
    code = HOLD + "chunk = bytes(64 << 20)\nn = iter(range(100))\n" \
                  "grow(lambda: open(f'/work/f{next(n)}', 'wb').write(chunk))\n"
    r = _sandbox(work_mb=1024).run(py(code), memory_mb=256)
    assert r.status == "memory", r
    assert _held_mb(r.stdout) <= 256 + sandbox_module.JAIL_SLACK_MB


# --- inodes -----------------------------------------------------------------------------------
MANY_FILES = """
import os, sys
n = 0
try:
    while n < 60000:
        open(f'{sys.argv[1]}/{n}', 'w').close()
        n += 1
    print('created', n, 'no limit')
except OSError as e:
    print('created', n, 'stopped', e.errno)
"""


@pytest.mark.parametrize("where", ["/work", "/tmp"])
def test_empty_files_stop_at_the_inode_cap(sandbox, where):
    _require(ROOT, "inode caps need root (the launcher mounts the tmpfs)")
    sb = _sandbox(work_mb=64, tmp_mb=64)
    r = sb.run(["python3", "-c", MANY_FILES, where])
    created = int(r.stdout.split()[1])
    assert f"stopped {errno.ENOSPC}" in r.stdout, r
    assert created < 64 * sb.inodes_per_mb


def test_kernel_memory_of_empty_files_counts_toward_the_limit(sandbox):
    _needs_cgroup()
    # With the inode cap lifted far above what 64 MB of kernel memory holds, the cgroup stops it.
    sb = _sandbox(tmp_mb=512, inodes_per_mb=4096)
    code = MANY_FILES.replace("60000", "2000000")
    r = sb.run(["python3", "-c", code, "/tmp"], memory_mb=64)
    assert "no limit" not in r.stdout
    assert r.status in ("memory", "failed"), r
    if r.status == "failed":  # the kernel refused the inode (ENOMEM) instead of killing
        assert f"stopped {errno.ENOMEM}" in r.stdout or f"stopped {errno.ENOSPC}" in r.stdout, r


# --- system calls the filter denies -------------------------------------------------------------
SYSCALL_PROBE = """
import ctypes, errno, json, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
calls = json.loads(sys.argv[1])
out = {}
for name, (nr, args) in calls.items():
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    out[name] = ctypes.get_errno() if ret == -1 else f"returned {ret}"
# what must keep working
out["fork"] = __import__("os").waitpid(__import__("os").fork() or __import__("os")._exit(0), 0)[1]
out["inet socket"] = socket.socket(socket.AF_INET, socket.SOCK_STREAM).fileno() > 0
print(json.dumps(out))
"""
# Arguments that make the call harmless, or fail differently, when no filter stops it.
PROBE_ARGS = {"ptrace": (0x7FFF, 1), "clone": (0x10000000 | 0x200, 0),  # CLONE_NEWUSER|CLONE_FS: EINVAL
              "ioctl": (0, 0x5412, 0), "socket": (40, 1, 0), "userfaultfd": (1,), "unshare": (0,)}


def _probe_calls() -> dict:
    from resources import seccomp

    arch = seccomp.host_arch()
    if arch is None:
        pytest.skip("no seccomp table for this architecture")
    numbers = seccomp.SYSCALLS[arch]
    calls = {name: (numbers[name], PROBE_ARGS.get(name, (0, 0, 0, 0))) for name in seccomp.DENIED if name in numbers}
    for name in ("clone", "ioctl", "socket"):
        calls[name] = (numbers[name], PROBE_ARGS[name])
    if arch == "x86_64":
        calls["getpid (x32)"] = (0x40000000 | 39, ())
    return calls


def test_denied_system_calls_fail_inside_the_jail(sandbox):
    import json

    from resources import seccomp

    calls = _probe_calls()
    r = _sandbox().run(["python3", "-c", SYSCALL_PROBE, json.dumps(calls)])
    assert r.status == "ok", r
    got = json.loads(r.stdout)
    expected = {name: seccomp.DENIED.get(name, errno.EPERM) for name in calls}
    expected["getpid (x32)"] = errno.ENOSYS
    wrong = {name: got[name] for name in calls if got[name] != expected[name]}
    assert not wrong, f"calls that were not denied as expected: {wrong}"
    assert got["fork"] == 0 and got["inet socket"] is True


def test_syscall_numbers_match_the_kernel_headers():
    from resources import seccomp

    headers = {"x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
               "aarch64": Path("/usr/include/asm-generic/unistd.h")}
    checked = 0
    for arch, header in headers.items():
        if not header.exists():
            continue
        defined = dict(re.findall(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", header.read_text()))
        for name, nr in seccomp.SYSCALLS[arch].items():
            if name in defined:
                assert int(defined[name]) == nr, f"{arch} {name}: header says {defined[name]}, table {nr}"
                checked += 1
    if not checked:
        pytest.skip("no kernel headers installed")


def test_seccomp_filter_is_well_formed():
    from resources import seccomp

    for arch in seccomp.SYSCALLS:
        prog = seccomp.filter_program(arch)
        assert prog and len(prog) % 8 == 0 and len(prog) // 8 < 4096
    assert seccomp.filter_program("s390x") is None


# --- keyrings -----------------------------------------------------------------------------------
def _keyctl_as(uid: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "keyctl", *args],
                          capture_output=True, text=True)


@pytest.fixture
def slot_zero(tmp_path, monkeypatch):
    """A sandbox whose jails always get slot 0 (uid UID_BASE), so two runs share a uid."""
    _require(ROOT and shutil.which("keyctl") is not None, "needs root and keyctl (scripts/setup.sh installs keyutils)")
    monkeypatch.setattr(sandbox_module, "SLOT_DIR", tmp_path / "slots")
    return _sandbox(concurrency=1)


def test_a_key_stored_in_one_run_cannot_be_read_in_the_next(sandbox, slot_zero):
    from resources import seccomp

    arch = seccomp.host_arch() or pytest.skip("no syscall table for this architecture")
    keyctl, add_key = seccomp.SYSCALLS[arch]["keyctl"], seccomp.SYSCALLS[arch]["add_key"]
    store = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
             f"k = libc.syscall({add_key}, b'user', b'hrm-secret', b's3cret', 6, ctypes.c_long(-4))\n"  # @u
             "print('stored' if k > 0 else f'refused {ctypes.get_errno()}')\n")
    read = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            f"k = libc.syscall({keyctl}, 10, ctypes.c_long(-4), b'user', b'hrm-secret', 0)\n"  # KEYCTL_SEARCH
            "buf = ctypes.create_string_buffer(64)\n"
            f"n = libc.syscall({keyctl}, 11, k, buf, 64) if k > 0 else -1\n"  # KEYCTL_READ
            "print('read', buf.value.decode() if n > 0 else None)\n"
            "print('proc/keys', repr(open('/proc/keys').read()), repr(open('/proc/key-users').read()))\n")
    first, second = slot_zero.run(py(store)), slot_zero.run(py(read))
    assert first.status == "ok" and second.status == "ok", (first, second)
    assert f"refused {errno.EPERM}" in first.stdout, first.stdout
    assert "read None" in second.stdout and "proc/keys '' ''" in second.stdout, second.stdout


def test_keys_the_slot_uid_holds_are_gone_when_a_run_starts(sandbox, slot_zero):
    # Keys stored for the slot's uid past any filter (a jail of an older version, say).
    uid = slot_zero.uid_base
    persistent = _keyctl_as(uid, "get_persistent", "@u").stdout.strip()  # survives @u; expires in days
    rings = ["@u", "@us"] + ([persistent] if persistent else [])
    for ring in rings:
        assert _keyctl_as(uid, "add", "user", "hrm-planted", "s3cret", ring).returncode == 0
        assert _keyctl_as(uid, "search", ring, "user", "hrm-planted").returncode == 0
    assert slot_zero.run(["true"]).status == "ok"
    persistent = _keyctl_as(uid, "get_persistent", "@u").stdout.strip()
    for ring in ["@u", "@us"] + ([persistent] if persistent else []):
        assert _keyctl_as(uid, "search", ring, "user", "hrm-planted").returncode != 0, ring


# --- what the jail can see -------------------------------------------------------------------------
SHOW_PROC = """
import glob, json
out = {}
for p in glob.glob('/proc/[0-9]*/cmdline') + glob.glob('/proc/[0-9]*/environ') + ['/proc/cmdline']:
    try:
        out[p] = open(p, 'rb').read().replace(b'\\0', b' ').decode('utf-8', 'replace')
    except OSError as e:
        out[p] = f'unreadable {e.errno}'
print(json.dumps(out))
"""


def test_no_host_path_in_the_jails_process_command_lines(sandbox, tmp_path):
    import json

    tmp_path.chmod(0o755)
    (tmp_path / "input.txt").write_text("x")
    job = SandboxJob(command=["sh", "-c", "sleep 5 & p=$!; python3 -c \"$0\"; kill $p", SHOW_PROC],
                     files={"a.txt": "y"}, input_dir=tmp_path)
    r = _sandbox().run_job(job)
    assert r.status == "ok", r
    seen = json.loads(r.stdout)
    assert any(p.startswith("/proc/1/") for p in seen) and len(seen) >= 5, seen
    host_paths = {str(tmp_path), str(REPO_ROOT), str(TOOLCHAIN_DIR), os.path.realpath(TOOLCHAIN_DIR),
                  sys.prefix, os.path.realpath(sys.prefix), "/sys/fs/cgroup"}
    # ("/usr" or "/work" themselves are jail paths too: only paths at least two levels deep tell)
    host_markers = {"hrm-sbx-"} | {p for p in host_paths if len(Path(p).parts) > 2}
    leaks = {p: m for p, text in seen.items() for m in host_markers if m in text}
    assert not leaks, leaks


def test_the_vms_kernel_command_line_is_hidden(sandbox):
    host = Path("/proc/cmdline").read_text().strip()
    r = _sandbox().run(["cat", "/proc/cmdline"])
    assert r.status == "ok", r
    assert r.stdout.strip() == "" and (not host or host not in r.stdout)


# --- without root: the user-namespace jail ---------------------------------------------------------
def test_jail_without_root_runs_in_a_user_namespace(sandbox, monkeypatch, tmp_path):
    """The argv a non-root caller gets, run as a non-root uid for real (no cgroup, bwrap's tmpfs)."""
    if not ROOT:
        pytest.skip("this machine already runs the tests without root (every other test covers it)")
    user = 65432
    monkeypatch.setattr(sandbox_module.os, "geteuid", lambda: user)
    monkeypatch.setattr(sandbox_module.cgroups, "memory_hierarchy", lambda: (None, "not root"))
    monkeypatch.setattr(sandbox_module, "all_toolchains", lambda: [])  # their host paths are root-only here
    monkeypatch.setattr(sandbox_module, "SLOT_DIR", tmp_path / "slots")
    sb = _sandbox()
    assert "size only" in sb.layers()["tmpfs"] and "rlimits only" in sb.layers()["memory"]
    job = SandboxJob(command=["sh", "-c", "id -u; grep Seccomp: /proc/self/status; df /work | tail -1; "
                                          "cat /proc/1/cmdline | tr '\\0' ' '"])
    with sb._jail(job) as launch:
        assert launch.argv[0] == "sh" and "unshare" not in launch.argv
        os.chown(launch.stage, user, user)
        for f in launch.stage.iterdir():
            os.chown(f, user, user)
        proc = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *launch.argv],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == str(user) and lines[1].split() == ["Seccomp:", "2"], proc.stdout
    assert str(sb.work_mb << 10) in lines[2]  # bwrap's own size-capped tmpfs
    assert "hrm-sbx-" not in lines[3]
