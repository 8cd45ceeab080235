"""A memory cgroup per jail, nested under this process's own cgroup.

The cgroup's limit counts everything the jail holds in RAM: process memory, memfd and shared memory,
files in its tmpfs and kernel memory (inodes, page tables, socket buffers), and the page cache it
reads (which the kernel reclaims before it kills anything). Over the limit the kernel's OOM killer
kills a process in the jail and counts it (`oom_kill` in memory.oom_control on cgroup v1,
memory.events on v2); the sandbox reports that as status "memory". Swap is limited to nothing.

Works with cgroup v1 (the memory controller's own hierarchy) and v2. Where the hierarchy is not
writable (no root, a read-only cgroupfs, a v2 cgroup whose memory controller cannot be handed down),
`memory_hierarchy()` returns None with the reason, and the jail has only its per-process rlimits.
"""

from __future__ import annotations

import errno
import functools
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


JAIL_PREFIX = "hrm-sandbox"
HOST_LEAF = "hrm-host"  # cgroup v2: where this process moves itself so that its cgroup can delegate memory


@dataclass(frozen=True)
class Hierarchy:
    version: int  # 1 or 2
    base: Path  # jail cgroups are made here (this process's own cgroup, or on v2 its parent-to-be)


@functools.lru_cache(maxsize=None)
def memory_hierarchy() -> tuple[Hierarchy | None, str]:
    """Where jail cgroups go, and a line saying which (or why there are none). Cached per process."""
    try:
        own = own_cgroups(Path("/proc/self/cgroup").read_text())
        mounts = cgroup_mounts(Path("/proc/self/mountinfo").read_text())
    except OSError as exc:
        return None, f"cannot read /proc/self/cgroup or mountinfo: {exc}"
    if "memory" in own and "memory" in mounts:  # v1: the memory controller has a hierarchy of its own
        base = under_mount(mounts["memory"], own["memory"])
        if not os.access(base / "memory.limit_in_bytes", os.W_OK) or not os.access(base, os.W_OK):
            return None, f"cgroup v1 memory hierarchy not writable at {base}"
        return Hierarchy(1, base), f"cgroup v1 under {base}"
    if "" in own and "" in mounts:
        return v2_base(under_mount(mounts[""], own[""]))
    return None, "no memory cgroup controller mounted"


def v2_base(own: Path) -> tuple[Hierarchy | None, str]:
    if own.name == HOST_LEAF and "memory" in _read(own.parent / "cgroup.subtree_control").split():
        own = own.parent  # this process, or its parent, moved itself into the leaf below
    try:
        if "memory" not in (own / "cgroup.controllers").read_text().split():
            return None, f"cgroup v2: memory controller not available in {own}"
        if "memory" not in (own / "cgroup.subtree_control").read_text().split():
            try:
                _write(own / "cgroup.subtree_control", "+memory")
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                # A cgroup with processes of its own cannot hand controllers down ("no internal
                # processes"); when those are only ours, move them into a leaf and try again.
                procs = set((own / "cgroup.procs").read_text().split())
                if procs - {str(os.getpid())}:
                    return None, f"cgroup v2: {own} holds other processes, so its memory controller cannot be delegated"
                leaf = own / HOST_LEAF
                leaf.mkdir(exist_ok=True)
                _write(leaf / "cgroup.procs", str(os.getpid()))
                _write(own / "cgroup.subtree_control", "+memory")
        return Hierarchy(2, own), f"cgroup v2 under {own}"
    except OSError as exc:
        return None, f"cgroup v2 not writable at {own}: {exc}"


def own_cgroups(proc_self_cgroup: str) -> dict[str, str]:
    """controller -> path of this process's cgroup ("" is the v2 hierarchy)."""
    out = {}
    for line in proc_self_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def cgroup_mounts(mountinfo: str) -> dict[str, tuple[str, str]]:
    """controller -> (mount point, root of the mount in the hierarchy), from /proc/self/mountinfo."""
    out = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2":
            out.setdefault("", (fields[4], fields[3]))
        elif fstype == "cgroup" and "memory" in options.split(","):
            out.setdefault("memory", (fields[4], fields[3]))
    return out


def under_mount(mount: tuple[str, str], path: str) -> Path:
    point, root = mount
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root):]
    return Path(point) / path.lstrip("/")


class JailCgroup:
    """One jail's cgroup, `hrm-sandbox-<label>-<host pid>-<n>`: made with its limit, joined by the jail's
    first process (the launcher writes to `join_file`), emptied and removed at the end."""

    _counter = itertools.count()

    def __init__(self, hierarchy: Hierarchy, label: str, limit_bytes: int):
        _sweep_once(hierarchy)
        self.version = hierarchy.version
        self.path = hierarchy.base / f"{JAIL_PREFIX}-{label}-{os.getpid()}-{next(self._counter)}"
        self._oom_before = 0
        memsw = self.path / "memory.memsw.limit_in_bytes"  # v1: memory + swap, never below the memory limit
        try:
            self.path.mkdir()
        except FileExistsError:  # left by a dead process that had our pid
            self.kill_all()
            self._oom_before = self.oom_kills()
            if self.version == 1 and memsw.exists():
                _write(memsw, "-1")
        if self.version == 1:
            _write(self.path / "memory.limit_in_bytes", str(limit_bytes))
            if memsw.exists():
                _write(memsw, str(limit_bytes))
        else:
            _write(self.path / "memory.max", str(limit_bytes))
            if (self.path / "memory.swap.max").exists():
                _write(self.path / "memory.swap.max", "0")

    @property
    def join_file(self) -> Path:
        """Where the jail's first process writes "0" to move itself in. On v1 that is `tasks`: moving one
        thread (the launcher has one) skips the global lock whose RCU grace period makes a write to
        cgroup.procs cost ~10 ms. v2 has only cgroup.procs."""
        return self.path / ("tasks" if self.version == 1 else "cgroup.procs")

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this jail for memory since the jail started."""
        return self.oom_kills() > self._oom_before

    def peak_bytes(self) -> int | None:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def kill_all(self) -> None:
        if self.version == 2 and (self.path / "cgroup.kill").exists():
            _write(self.path / "cgroup.kill", "1")
            return
        for _ in range(20):  # v1: kill what is listed until nothing is (a fork may race one read)
            try:
                pids = [int(p) for p in self.procs_file.read_text().split()]
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def remove(self) -> bool:
        """Kill what is left in the cgroup and remove it; False if it is still busy after a second."""
        deadline = time.monotonic() + 1.0
        pause = 0.0005  # the jail's last processes are usually still exiting: a few ms, not 10
        for attempt in range(1000):
            try:
                self.path.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    return False
                if attempt == 0:
                    self.kill_all()
                time.sleep(pause)
                pause = min(pause * 2, 0.01)
        return False


@functools.lru_cache(maxsize=None)
def _sweep_once(hierarchy: Hierarchy) -> None:
    """Remove jail cgroups left by host processes that died without removing them (once per process)."""
    for path in hierarchy.base.glob(f"{JAIL_PREFIX}-*-*-*"):
        try:
            os.kill(int(path.name.split("-")[-2]), 0)
            continue  # its process lives (or another took its pid): leave it
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue
        stale = JailCgroup.__new__(JailCgroup)
        stale.version, stale.path = hierarchy.version, path
        stale.remove()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
