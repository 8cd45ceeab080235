"""The schedules request their jobs at their times and start RUNNING."""

import datetime as dt

import dagster as dg

from sensors.schedules import nightly_regression_schedule, weekly_retrain_schedule


def test_schedules_request_their_jobs(instance):
    at = dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.timezone.utc)
    for schedule, job in ((nightly_regression_schedule, "evaluate_latest_checkpoints"),
                          (weekly_retrain_schedule, "retrain_and_evaluate")):
        data = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=at))
        assert len(data.run_requests) == 1
        assert schedule.job_name == job
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert nightly_regression_schedule.cron_schedule == "0 2 * * *"
    assert weekly_retrain_schedule.cron_schedule == "0 3 * * 0"
