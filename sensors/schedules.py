"""Fixed-time automation: nightly regression evaluation, weekly retraining. Cron strings from HRM_* env vars."""

import os

import dagster as dg

from sensors.jobs import evaluate_job, retrain_job

nightly_regression_schedule = dg.ScheduleDefinition(
    name="nightly_regression", job=evaluate_job,
    cron_schedule=os.environ.get("HRM_NIGHTLY_CRON", "0 2 * * *"),
    execution_timezone=os.environ.get("HRM_SCHEDULE_TZ", "UTC"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night: re-run the benchmark report on the latest checkpoints; its no_regression check "
                "compares with the previous report.")

weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain", job=retrain_job,
    cron_schedule=os.environ.get("HRM_WEEKLY_CRON", "0 3 * * 0"),
    execution_timezone=os.environ.get("HRM_SCHEDULE_TZ", "UTC"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every week: retrain HRM and baseline on the current curriculum shards, quantize, evaluate.")
