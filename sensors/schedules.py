"""Fixed-time automation: nightly regression evaluation, weekly retraining. Both start RUNNING; their cron
strings and time zone are the HRM_NIGHTLY_CRON, HRM_WEEKLY_CRON and HRM_SCHEDULE_TZ settings."""

import dagster as dg

from resources.settings import env_str
from sensors.jobs import evaluate_job, retrain_job

nightly_regression_schedule = dg.ScheduleDefinition(
    name="nightly_regression", job=evaluate_job,
    cron_schedule=env_str("HRM_NIGHTLY_CRON"),
    execution_timezone=env_str("HRM_SCHEDULE_TZ"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night: re-run the benchmark report on the latest checkpoints; its no_regression check "
                "compares with the previous report.")

weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain", job=retrain_job,
    cron_schedule=env_str("HRM_WEEKLY_CRON"),
    execution_timezone=env_str("HRM_SCHEDULE_TZ"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every week: retrain HRM and baseline on the current curriculum shards, quantize, evaluate.")
