"""Evaluate every newly materialised checkpoint that no report has scored yet."""

import json

import dagster as dg

from evals.report import reported_checkpoints
from resources.warehouse import Warehouse
from sensors.jobs import evaluate_new_checkpoint_job

# checkpoint asset -> the report's model name for it
CHECKPOINT_ASSETS = {"hrm_checkpoint": "hrm", "baseline_checkpoint": "baseline"}


def _evaluated_in_same_run(instance, run_id: str | None) -> bool:
    """Runs that also build the report (`hrm materialize`, the retrain job) need no second evaluation."""
    run = instance.get_run_by_id(run_id) if run_id else None
    selection = run.asset_selection if run is not None else None
    return bool(selection) and dg.AssetKey("benchmark_report") in selection


def _checkpoint_hash(record) -> str | None:
    value = record.asset_materialization.metadata.get("checkpoint_hash")
    return getattr(value, "value", value)


@dg.sensor(name="new_checkpoint", job=evaluate_new_checkpoint_job, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="When hrm_checkpoint or baseline_checkpoint gets a new materialisation, quantize and "
                       "evaluate, unless a report in the history already scored that checkpoint (its weights "
                       "hash) or the run that made it also builds the report.")
def new_checkpoint_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
    cursor = json.loads(context.cursor) if context.cursor else {}
    reported = reported_checkpoints(warehouse.history_db())
    fresh, known = [], []
    for name, model in CHECKPOINT_ASSETS.items():
        records = context.instance.fetch_materializations(dg.AssetKey(name), limit=1).records
        if not records or records[0].storage_id <= cursor.get(name, -1):
            continue
        cursor[name] = records[0].storage_id
        weights = _checkpoint_hash(records[0])
        if (model, weights) in reported or _evaluated_in_same_run(context.instance, records[0].run_id):
            known.append(f"{name}@{weights or records[0].storage_id}")
        else:
            fresh.append(f"{name}@{records[0].storage_id}")
    context.update_cursor(json.dumps(cursor))
    if not fresh:
        why = f"already reported: {', '.join(known)}" if known else "no checkpoint materialised since the last tick"
        return dg.SkipReason(why)
    return dg.RunRequest(run_key="evaluate-" + "-".join(fresh), tags={"hrm/checkpoints": ",".join(fresh)})
