"""The run launcher of the local instance (dagster.yaml `run_launcher`): Dagster's DefaultRunLauncher, which
starts each run in its own process through the code server, plus the worker health check run monitoring needs.

Without a health check run monitoring cannot tell a run whose process was killed from a running one; the code
server that started the run notices a dead worker, but only while it lives itself (a killed process tree, a
reboot or an OOM-killed `dagster dev` leave the run STARTED, holding its `gpu` pool slot, forever)."""

from __future__ import annotations

import os
import socket

from dagster import DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

HOST_TAG = "hrm/run_host"
PID_MESSAGE = "Started process for run (pid: "  # the run worker's first engine event; its metadata has the pid


class LocalRunLauncher(DefaultRunLauncher):
    def launch_run(self, context) -> None:
        self._instance.add_run_tags(context.dagster_run.run_id, {HOST_TAG: socket.gethostname()})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        if run.tags.get(HOST_TAG) != socket.gethostname():
            return CheckRunHealthResult(WorkerStatus.RUNNING, "launched on another host: not checked here")
        started = self._worker_start(run.run_id)
        if started is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker pid recorded yet")
        pid, logged_at = started
        if _alive_since(pid, before=logged_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker pid {pid} alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} is gone (killed?)")

    def _worker_start(self, run_id: str) -> tuple[int, float] | None:
        from dagster import DagsterEventType

        records = self._instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20).records
        for record in records:
            entry = record.event_log_entry
            if (entry.message or "").startswith(PID_MESSAGE):
                pid = entry.dagster_event.engine_event_data.metadata.get("pid")
                if pid is not None:
                    return int(pid.value), entry.timestamp
        return None


def _alive_since(pid: int, before: float) -> bool:
    """Whether process `pid` runs (a zombie does not) and started before `before` (a later start is another
    process that reused the pid, e.g. after a reboot)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, ValueError, StopIteration):
        return True  # no /proc: the pid's existence is all we know
    state, start_ticks = fields[0], int(fields[19])  # fields 3 and 22 of proc(5)
    return state != "Z" and boot + start_ticks / os.sysconf("SC_CLK_TCK") <= before + 1.0
