"""A pool of jailed SWE-ReX sessions for agents: opened on demand up to `size`, idle ones reused, broken ones
discarded; and what each agent used, read on the host from the jail's processes and its memory cgroup.

CPU seconds are the user+system time of the jail's process tree (live processes plus the children they
reaped), so a sub-task's figure is the difference across it; peak memory is the jail cgroup's high-water
mark, reset when a sub-task starts. Neither costs a command in the jail.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from resources import cgroups

_TICK = os.sysconf("SC_CLK_TCK")


class SessionPool:
    """Sessions are opened on the pool's own long-lived threads: a jail dies with the thread that started it
    (bwrap --die-with-parent is a parent-death signal, and the parent is a thread), so a session opened
    on an agent's worker thread would not outlive that worker."""

    def __init__(self, sessions, size: int, open_kwargs: dict | None = None, open_workers: int = 4):
        self.sessions, self.size, self.open_kwargs = sessions, max(1, size), dict(open_kwargs or {})
        self._opener = ThreadPoolExecutor(max_workers=max(1, open_workers), thread_name_prefix="session-opener")
        self._idle: list = []
        self._busy: set = set()
        self._cond = threading.Condition()
        self.opened = self.reused = self.discarded = 0
        self.open_s = 0.0

    def prewarm(self, n: int | None = None) -> float:
        """Open sessions until `n` (default: size) exist; the seconds it took."""
        t0 = time.monotonic()
        want = min(self.size, n or self.size) - len(self._idle) - len(self._busy)
        fresh = [f.result() for f in [self._opener.submit(self._open_here) for _ in range(max(0, want))]]
        with self._cond:
            self._idle += fresh
            self._cond.notify_all()
        return time.monotonic() - t0

    def _open(self):
        return self._opener.submit(self._open_here).result()

    def _open_here(self):
        t0 = time.monotonic()
        s = self.sessions.open(**self.open_kwargs)
        with self._cond:
            self.opened += 1
            self.open_s += time.monotonic() - t0
        return s

    def acquire(self, timeout_s: float | None = None):
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._idle:
                    s = self._idle.pop()
                    self._busy.add(s)
                    self.reused += 1
                    return s
                if len(self._busy) < self.size:
                    self._busy.add(None)  # the slot is taken while the session opens
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("no free session in the pool")
                self._cond.wait(left)
        try:
            s = self._open()
        except BaseException:
            with self._cond:
                self._busy.discard(None)
                self._cond.notify_all()
            raise
        with self._cond:
            self._busy.discard(None)
            self._busy.add(s)
        return s

    def release(self, session, healthy: bool = True) -> None:
        with self._cond:
            self._busy.discard(session)
            if healthy:
                self._idle.append(session)
            self._cond.notify_all()
        if not healthy:
            self.discarded += 1
            with contextlib.suppress(Exception):
                session.close()

    def close(self) -> None:
        with self._cond:
            sessions, self._idle = list(self._idle) + [s for s in self._busy if s is not None], []
            self._busy.clear()
        for s in sessions:
            with contextlib.suppress(Exception):
                s.close()
        self._opener.shutdown(wait=True)

    def stats(self) -> dict:
        return {"size": self.size, "opened": self.opened, "reused": self.reused, "discarded": self.discarded,
                "open_s": round(self.open_s, 3)}


# --- the host's view of a session's jail ----------------------------------------------------------
def jail_pid(session) -> int | None:
    """The pid of the process that became the jail (the launcher execs bwrap) of a local session."""
    try:
        return session._deployment.runtime.sessions["default"]._shell.pid  # swe-rex 1.4.0 BashSession
    except Exception:
        return None


def kill_jail(session) -> bool:
    """Kill the session's jail from outside (its PID namespace takes every process in it down)."""
    import signal

    pid = jail_pid(session)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total / _TICK


def _memory_file(pid: int | None, name_v1: str, name_v2: str) -> Path | None:
    if pid is None:
        return None
    try:
        own = cgroups.own_cgroups(Path(f"/proc/{pid}/cgroup").read_text())
        mounts = cgroups.cgroup_mounts(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return None
    if "memory" in own and "memory" in mounts:
        return cgroups.under_mount(mounts["memory"], own["memory"]) / name_v1
    if "" in own and "" in mounts:
        return cgroups.under_mount(mounts[""], own[""]) / name_v2
    return None


def reset_peak(session) -> None:
    path = _memory_file(jail_pid(session), "memory.max_usage_in_bytes", "memory.peak")
    with contextlib.suppress(OSError, TypeError):
        path.write_text("0\n")


def peak_mb(session) -> float | None:
    path = _memory_file(jail_pid(session), "memory.max_usage_in_bytes", "memory.peak")
    try:
        return round(int(path.read_text()) / 2**20, 2)
    except (OSError, ValueError, AttributeError):
        return None
