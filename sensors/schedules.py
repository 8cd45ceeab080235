"""Fixed-time automation: nightly regression evaluation, weekly retraining. Both start RUNNING; their cron
strings and time zone are the HRM_NIGHTLY_CRON, HRM_WEEKLY_CRON and HRM_SCHEDULE_TZ settings. A tick whose
job has nothing to work on yet (no checkpoint published) is skipped with the reason instead of launching a
run that would fail."""

import dagster as dg

from resources.settings import env_int, env_str, split_csv
from resources.warehouse import Warehouse
from sensors.jobs import evaluate_job, retrain_job

RETRAINED = ("hrm_checkpoint", "baseline_checkpoint")


def needed_for_report(models: list[str]) -> list[str]:
    """The published checkpoints (`checkpoints/<name>/latest.json`) the report's warehouse models load."""
    needed = []
    for model in models:
        if ":" in model:  # a model spec (local:..., openai:...) names its own weights or endpoint
            continue
        base, _, quant = model.partition("-")
        if base in ("hrm", "baseline"):
            needed.append(f"{base}_checkpoint")
        if quant:
            needed.append("quantized_models")
    return sorted(set(needed))


def missing(warehouse: Warehouse, names) -> list[str]:
    return [n for n in names if not (warehouse.checkpoint_dir(n) / "latest.json").exists()]


@dg.schedule(name="nightly_regression", job=evaluate_job, cron_schedule=env_str("HRM_NIGHTLY_CRON"),
             execution_timezone=env_str("HRM_SCHEDULE_TZ"), default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every night: re-run the benchmark report on the latest checkpoints; its no_regression "
                         "check compares with the previous report. Skips while a checkpoint it needs is missing.")
def nightly_regression_schedule(context: dg.ScheduleEvaluationContext, warehouse: Warehouse):
    absent = missing(warehouse, needed_for_report(list(split_csv(env_str("HRM_REPORT_MODELS")))))
    if absent:
        return dg.SkipReason(f"no published {', '.join(absent)} yet: materialise them (e.g. `hrm materialize`) "
                             "before the nightly report")
    return dg.RunRequest()


@dg.schedule(name="weekly_retrain", job=retrain_job, cron_schedule=env_str("HRM_WEEKLY_CRON"),
             execution_timezone=env_str("HRM_SCHEDULE_TZ"), default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every week: continue training HRM and the baseline from their latest checkpoints for "
                         "HRM_RETRAIN_STEPS steps on the current shards; the champion/challenger gate publishes a "
                         "new checkpoint only when it does not regress; then quantize and report.")
def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext, warehouse: Warehouse):
    absent = missing(warehouse, RETRAINED)
    if absent:
        return dg.SkipReason(f"no published {', '.join(absent)} to continue training from: materialise it first")
    steps = env_int("HRM_RETRAIN_STEPS")
    return dg.RunRequest(run_config={"ops": {name: {"config": {"retrain_steps": steps}} for name in RETRAINED}})
