"""Alerts: every failed run, every failed blocking check, and every report whose regression check finds a worse
metric is POSTed to the configured webhook (the `alerts` resource, resources/alerts.py) and recorded, with how
the delivery went, in the `alerts` table of the warehouse's history database (and logged)."""

import json

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus  # not exported

from evals.pipeline import regression_findings
from evals.report import describe, record_alert
from resources.alerts import AlertSink
from resources.settings import env_float, env_str
from resources.warehouse import Warehouse

STEP_ERRORS_SHOWN, STEP_ERROR_CHARS = 3, 500  # of a failed run, in its alert
FAILED_CHECKS_REMEMBERED = 20  # per check: failed executions the cursor remembers as already alerted


def send_and_record(context, warehouse: Warehouse, alerts: AlertSink, kind: str, message: str, details: dict,
                    run_id: str | None = None) -> dict:
    delivery = alerts.send(kind, message, details, run_id)
    record_alert(warehouse.history_db(), kind, message, {**details, "run_url": alerts.run_url(run_id)}, delivery)
    context.log.error(message)
    if delivery["status"] == "failed":
        context.log.warning(f"{kind} alert not delivered to {delivery['target']} after {delivery['attempts']} "
                            f"attempt(s): {delivery['reason']} (recorded in the history)")
    return delivery


# monitor_all_code_locations: by default a run-status sensor sees only runs whose job origin is its own code
# location, which leaves out runs without an origin (`dg.materialize(instance=...)` in a notebook or script).
@dg.run_failure_sensor(name="run_failure_alert", default_status=dg.DefaultSensorStatus.RUNNING,
                       monitor_all_code_locations=True,
                       description="Alert (webhook + history) for every failed run on this instance, whatever "
                                   "launched it.")
def run_failure_alert(context: dg.RunFailureSensorContext, warehouse: Warehouse, alerts: AlertSink):
    run = context.dagster_run
    message = f"run {run.run_id} ({run.job_name}) failed: {context.failure_event.message}"
    for event in context.get_step_failure_events()[:STEP_ERRORS_SHOWN]:
        error = event.step_failure_data.error
        cause = error.cause if error is not None and error.cause is not None else error  # the user's exception
        if cause is not None:
            message += f"\nstep {event.step_key}: {cause.message.strip()[:STEP_ERROR_CHARS]}"
    send_and_record(context, warehouse, alerts, "run_failure", message,
                    {"run_id": run.run_id, "job": run.job_name, "tags": dict(run.tags)}, run.run_id)


def blocking_check_keys(repository_def) -> list[dg.AssetCheckKey]:
    graph = repository_def.asset_graph
    return sorted((k for k in graph.asset_check_keys if graph.get_check_spec(k).blocking),
                  key=lambda k: k.to_user_string())


def _check_alert(record) -> tuple[str, dict]:
    evaluation = record.event.asset_check_evaluation
    name = record.key.to_user_string()
    where = f" (partition {record.partition})" if record.partition else ""
    message = (f"blocking check {name}{where} failed in run {record.run_id}: "
               f"{evaluation.description or 'no description'}")
    details = {"check": name, "run_id": record.run_id, "partition": record.partition,
               "severity": evaluation.severity.value, "description": evaluation.description,
               "metadata": {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}}
    return message, details


@dg.sensor(name="blocking_check_alert", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Alert (webhook + history) once for each failed evaluation of a blocking asset check.")
def blocking_check_alert(context: dg.SensorEvaluationContext, warehouse: Warehouse, alerts: AlertSink):
    # The cursor holds, per check, the ids of its latest failed executions. Not a high-water mark: ids are
    # given when a run plans the check, so a check planned earlier can fail after one planned later.
    starting = context.cursor is None
    seen = json.loads(context.cursor) if context.cursor else {}
    fresh = []
    for key in blocking_check_keys(context.repository_def):
        name = key.to_user_string()
        records = context.instance.event_log_storage.get_asset_check_execution_history(
            key, limit=FAILED_CHECKS_REMEMBERED, status={AssetCheckExecutionRecordStatus.FAILED})
        known = set(seen.get(name, []))
        fresh += [r for r in records if r.id not in known and r.event is not None]
        seen[name] = [r.id for r in records]
    context.update_cursor(json.dumps(seen, sort_keys=True))
    if starting:
        return dg.SkipReason("first tick: failed checks from before the sensor started are not alerted")
    sent = 0
    for record in sorted(fresh, key=lambda r: r.id):
        evaluation = record.event.asset_check_evaluation
        if evaluation is None or evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue
        message, details = _check_alert(record)
        send_and_record(context, warehouse, alerts, "check_failure", message, details, record.run_id)
        sent += 1
    return dg.SkipReason(f"{sent} failed blocking check(s) alerted" if sent else "no new failed blocking check")


def report_run_id(instance, report_id: str) -> str | None:
    """The run whose `benchmark_report` materialisation wrote `report_id` (for the alert's link)."""
    for record in instance.fetch_materializations(dg.AssetKey("benchmark_report"), limit=5).records:
        value = record.asset_materialization.metadata.get("report_id")
        if getattr(value, "value", value) == report_id:
            return record.run_id
    return None


@dg.sensor(name="regression_alert", minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Alert (webhook + history) when the newest benchmark report regressed against the previous one.")
def regression_alert(context: dg.SensorEvaluationContext, warehouse: Warehouse, alerts: AlertSink):
    found = regression_findings(warehouse, env_str("HRM_REGRESSION_THRESHOLDS"), env_float("HRM_REGRESSION_ALPHA"))
    if found["report_id"] is None or found["report_id"] == context.cursor:
        return dg.SkipReason("no new benchmark report")
    context.update_cursor(found["report_id"])
    if not found["regressions"]:
        return dg.SkipReason(f"report {found['report_id']}: no regression")
    message = f"report {found['report_id']} regressed on {len(found['regressions'])} metric(s) vs " \
              f"{found['previous_report_id']}: " + "; ".join(describe(r) for r in found["regressions"])
    delivery = send_and_record(context, warehouse, alerts, "regression", message, found,
                               report_run_id(context.instance, found["report_id"]))
    return dg.SkipReason(f"{message} (alert recorded, delivery {delivery['status']})")
