"""Evaluate every newly materialised checkpoint."""

import json

import dagster as dg

from sensors.jobs import evaluate_new_checkpoint_job

CHECKPOINT_ASSETS = ("hrm_checkpoint", "baseline_checkpoint")


def _evaluated_in_same_run(instance, run_id: str | None) -> bool:
    """Runs that also build the report (`hrm materialize`, the retrain job) need no second evaluation."""
    run = instance.get_run_by_id(run_id) if run_id else None
    selection = run.asset_selection if run is not None else None
    return bool(selection) and dg.AssetKey("benchmark_report") in selection


@dg.sensor(name="new_checkpoint", job=evaluate_new_checkpoint_job, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="When hrm_checkpoint or baseline_checkpoint gets a new materialisation, quantize and "
                       "evaluate (unless the run that made it already evaluated).")
def new_checkpoint_sensor(context: dg.SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else {}
    fresh = []
    for name in CHECKPOINT_ASSETS:
        records = context.instance.fetch_materializations(dg.AssetKey(name), limit=1).records
        if not records or records[0].storage_id <= cursor.get(name, -1):
            continue
        cursor[name] = records[0].storage_id
        if not _evaluated_in_same_run(context.instance, records[0].run_id):
            fresh.append(f"{name}@{records[0].storage_id}")
    context.update_cursor(json.dumps(cursor))
    if not fresh:
        return dg.SkipReason("no checkpoint materialised since the last evaluation")
    return dg.RunRequest(run_key="evaluate-" + "-".join(fresh), tags={"hrm/checkpoints": ",".join(fresh)})
