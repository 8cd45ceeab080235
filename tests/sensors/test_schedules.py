"""The schedules request their jobs at their times, start RUNNING, and skip with a reason while there is no
checkpoint to work on."""

import datetime as dt

import dagster as dg

from resources.warehouse import Warehouse
from sensors.schedules import needed_for_report, nightly_regression_schedule, weekly_retrain_schedule

AT = dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.timezone.utc)


def _tick(schedule, instance, warehouse):
    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=AT,
                                    resources={"warehouse": warehouse})
    return schedule.evaluate_tick(ctx)


def _publish(warehouse, *names):
    for name in names:
        warehouse.publish_checkpoint(name, {"checkpoint_dir": "x", "weights_sha256": "0" * 64})


def test_schedules_request_their_jobs(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("HRM_RETRAIN_STEPS", "7")
    wh = Warehouse(root=str(tmp_path))
    _publish(wh, "hrm_checkpoint", "baseline_checkpoint", "quantized_models")
    for schedule, job in ((nightly_regression_schedule, "evaluate_latest_checkpoints"),
                          (weekly_retrain_schedule, "retrain_and_evaluate")):
        data = _tick(schedule, instance, wh)
        assert len(data.run_requests) == 1, data.skip_message
        assert schedule.job_name == job
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    retrain = _tick(weekly_retrain_schedule, instance, wh).run_requests[0]
    assert retrain.run_config["ops"]["hrm_checkpoint"]["config"]["retrain_steps"] == 7
    assert nightly_regression_schedule.cron_schedule == "0 2 * * *"
    assert weekly_retrain_schedule.cron_schedule == "0 3 * * 0"


def test_cron_jobs_skip_with_a_reason_on_a_fresh_instance(instance, tmp_path):
    wh = Warehouse(root=str(tmp_path))
    nightly = _tick(nightly_regression_schedule, instance, wh)
    assert not nightly.run_requests and "hrm_checkpoint" in nightly.skip_message
    weekly = _tick(weekly_retrain_schedule, instance, wh)
    assert not weekly.run_requests and "continue training from" in weekly.skip_message
    _publish(wh, "hrm_checkpoint")  # the baseline is still missing
    weekly = _tick(weekly_retrain_schedule, instance, wh)
    assert not weekly.run_requests and "baseline_checkpoint" in weekly.skip_message


def test_the_report_needs_the_checkpoints_of_its_models():
    assert needed_for_report(["hrm", "baseline"]) == ["baseline_checkpoint", "hrm_checkpoint"]
    assert needed_for_report(["hrm-int8", "local:/ckpt/run-2@nf4"]) == ["hrm_checkpoint", "quantized_models"]


def test_the_weekly_run_config_is_valid_for_the_retrain_job(instance, tmp_path):
    from hrm_assets.definitions import defs

    wh = Warehouse(root=str(tmp_path))
    _publish(wh, "hrm_checkpoint", "baseline_checkpoint")
    request = _tick(weekly_retrain_schedule, instance, wh).run_requests[0]
    job = defs.resolve_job_def("retrain_and_evaluate")
    assert job.run_config_schema.config_type is not None
    validated = dg.validate_run_config(job, request.run_config)
    assert validated["ops"]["baseline_checkpoint"]["config"]["retrain_steps"] == request.run_config["ops"][
        "baseline_checkpoint"]["config"]["retrain_steps"] > 0
