"""Alerts: every failed run, and every report whose regression check finds a worse metric, is recorded in
the `alerts` table of the warehouse's history database (and logged)."""

import dagster as dg

from evals.pipeline import regression_findings
from evals.report import describe, record_alert
from resources.settings import env_float, env_str
from resources.warehouse import Warehouse


@dg.run_failure_sensor(name="run_failure_alert", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Record an alert for every failed run.")
def run_failure_alert(context: dg.RunFailureSensorContext, warehouse: Warehouse):
    run = context.dagster_run
    message = f"run {run.run_id} ({run.job_name}) failed: {context.failure_event.message}"
    record_alert(warehouse.history_db(), "run_failure", message,
                 {"run_id": run.run_id, "job": run.job_name, "tags": dict(run.tags)})
    context.log.error(message)


@dg.sensor(name="regression_alert", minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Record an alert when the newest benchmark report regressed against the previous one.")
def regression_alert(context: dg.SensorEvaluationContext, warehouse: Warehouse):
    found = regression_findings(warehouse, env_str("HRM_REGRESSION_THRESHOLDS"), env_float("HRM_REGRESSION_ALPHA"))
    if found["report_id"] is None or found["report_id"] == context.cursor:
        return dg.SkipReason("no new benchmark report")
    context.update_cursor(found["report_id"])
    if not found["regressions"]:
        return dg.SkipReason(f"report {found['report_id']}: no regression")
    message = f"report {found['report_id']} regressed on {len(found['regressions'])} metric(s) vs " \
              f"{found['previous_report_id']}: " + "; ".join(describe(r) for r in found["regressions"])
    record_alert(warehouse.history_db(), "regression", message, found)
    context.log.error(message)
    return dg.SkipReason(message + " (alert recorded)")
