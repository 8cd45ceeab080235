"""Runs through the Dagster instance, for `hrm materialize`: load the code location from workspace.yaml (a code
server, as `dagster dev` does), submit a run of the asset job through the instance's run coordinator and
launcher (each run executes in its own process with a job origin, so the UI, run monitoring and run-status
sensors see it), and follow it in the event log until it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time

import dagster as dg

LOG = logging.getLogger("hrm materialize")
E = dg.DagsterEventType
KEPT_EVENTS = {E.STEP_FAILURE, E.ASSET_MATERIALIZATION, E.ASSET_CHECK_EVALUATION, E.RUN_FAILURE, E.RUN_CANCELED,
               E.ENGINE_EVENT}
DAEMON_FRESH_S = 60.0  # a daemon heartbeat this recent (they beat every 30 s) means a daemon serves the instance


@contextlib.contextmanager
def workspace(instance, workspace_file: str):
    """The workspace process context; fails early with the loader's error when the code location is broken."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[workspace_file])) as context:
        request = context.create_request_context()
        for name in request.code_location_names:
            error = request.get_code_location_error(name)
            if error is not None:
                raise SystemExit(f"hrm materialize: code location {name} does not load:\n{error.to_string()}")
        yield context


def daemon_running(instance, daemon_type: str) -> bool:
    from dagster._daemon.controller import get_daemon_statuses

    status = get_daemon_statuses(instance, [daemon_type], ignore_errors=True,
                                 heartbeat_tolerance_seconds=DAEMON_FRESH_S)[daemon_type]
    return bool(status.required and status.healthy)


class Daemon:
    """The daemon's run-queue and run-monitoring iterations, done by `hrm materialize` while it waits, when no
    Dagster daemon (`dagster dev`, `dagster-daemon run`) serves the instance: queued runs are launched by
    Dagster's own dequeuer (queue limits and all), killed runs are marked failed and their slots freed."""

    def __init__(self, context):
        from dagster._core.run_coordinator import QueuedRunCoordinator
        from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

        self.context = context
        self.queue = (QueuedRunCoordinatorDaemon(interval_seconds=1)
                      if isinstance(context.instance.run_coordinator, QueuedRunCoordinator) else None)
        self.monitored_at = time.monotonic()  # materialize() made a pass before planning

    def tick(self) -> None:
        instance = self.context.instance
        if self.queue is not None and not daemon_running(instance, self.queue.daemon_type()):
            for error in self.queue.run_iteration(self.context):
                if error is not None:
                    print(f"[hrm materialize] run queue: {error.to_string()}", file=sys.stderr)
        due = time.monotonic() - self.monitored_at >= instance.run_monitoring_poll_interval_seconds
        if due and not daemon_running(instance, "MONITORING"):
            monitor(self.context)
            self.monitored_at = time.monotonic()


def monitor(context) -> None:
    """One pass of the monitoring daemon's work (what `dagster dev`'s daemon does every poll interval): runs
    whose worker died are marked failed, and pool slots still held by ended runs are freed."""
    from dagster._daemon.monitoring.concurrency import execute_concurrency_slots_iteration
    from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

    if not context.instance.run_monitoring_enabled:
        return
    for iteration in (execute_run_monitoring_iteration, execute_concurrency_slots_iteration):
        for error in iteration(context, LOG):
            if error is not None:
                print(f"[hrm materialize] run monitoring: {error.to_string()}", file=sys.stderr)


def submit(context, asset_keys: list[str], partition: str | None, tags: dict[str, str]):
    """Create and submit one run of the implicit asset job for these assets (and their checks), as the
    asset daemon and backfills do."""
    from dagster._core.execution.submit_asset_runs import submit_asset_run
    from dagster._core.storage.tags import PARTITION_NAME_TAG

    run_tags = {**tags, **({PARTITION_NAME_TAG: partition} if partition else {})}
    request = dg.RunRequest(asset_selection=[dg.AssetKey.from_user_string(k) for k in asset_keys],
                            partition_key=partition, tags=run_tags)
    return asyncio.run(submit_asset_run(None, request, 0, context.instance, context,
                                        context.create_request_context(), {}, {}, LOG))


def follow(daemon: Daemon, run_id: str, echo, poll_s: float = 0.5):
    """Echo the run's step and asset events as they are stored; return the finished run and its events."""
    instance, cursor, events = daemon.context.instance, None, []
    while True:
        daemon.tick()
        run = instance.get_run_by_id(run_id)
        connection = instance.get_records_for_run(run_id, cursor=cursor)
        cursor = connection.cursor
        for record in connection.records:
            entry = record.event_log_entry
            if entry.dagster_event is not None and entry.dagster_event.event_type in KEPT_EVENTS:
                events.append(entry)
                line = _progress(entry)
                if line:
                    echo(line)
        if run.is_finished and not connection.has_more:
            return run, events
        if not connection.has_more:
            time.sleep(poll_s)


def _progress(entry) -> str | None:
    """One line per materialisation and check (the run worker's own log lines, on the same console when
    this command launched it, carry the detail)."""
    event = entry.dagster_event
    kind = event.event_type
    if kind == E.ASSET_MATERIALIZATION:
        m = event.step_materialization_data.materialization
        return f"materialised {m.asset_key.to_user_string()}" + (f" [{m.partition}]" if m.partition else "")
    if kind == E.ASSET_CHECK_EVALUATION:
        e = event.asset_check_evaluation_data
        return f"check {e.asset_check_key.to_user_string()}: {'passed' if e.passed else 'FAILED'}"
    return None


def failed_checks(events) -> list[str]:
    return [e.dagster_event.asset_check_evaluation_data.check_name for e in events
            if e.dagster_event.event_type == E.ASSET_CHECK_EVALUATION
            and not e.dagster_event.asset_check_evaluation_data.passed]


def failures(events) -> list[tuple[str, str]]:
    """(step or 'run', message) for each failed step, innermost cause first; the run's own failure when no
    step failed (a killed worker, a launch error)."""
    found = []
    for entry in events:
        event = entry.dagster_event
        if event.event_type == E.STEP_FAILURE:
            error = event.step_failure_data.error
            message = error.message.strip() if error else "unknown error"
            cause = error.cause if error else None
            while cause is not None:  # the user code's own exception is the innermost cause
                message, cause = cause.message.strip(), cause.cause
            found.append((event.step_key, message[-2000:]))
    if not found:
        found = [("run", e.message) for e in events if e.dagster_event.event_type in (E.RUN_FAILURE, E.RUN_CANCELED)]
        crash = [e.message for e in events if e.dagster_event.event_type == E.ENGINE_EVENT
                 and "Run execution process for" in (e.message or "")]  # the code server saw its worker die
        found += [("run", m) for m in crash]
    return found
