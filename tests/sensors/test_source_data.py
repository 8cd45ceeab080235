"""Schedules and sensors fire (or skip) as they should, evaluated with Dagster's context builders."""

import datetime as dt
import subprocess

import dagster as dg
import pytest

from evals import report as rp
from resources.warehouse import Warehouse
from sensors.alerts import regression_alert, run_failure_alert
from sensors.checkpoints import new_checkpoint_sensor
from sensors.schedules import nightly_regression_schedule, weekly_retrain_schedule
from sensors.source_data import new_lcb_release_sensor, new_polyglot_commit_sensor


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


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


def test_new_checkpoint_sensor_fires_once_per_materialisation(instance):
    ctx = dg.build_sensor_context(instance=instance)
    assert isinstance(new_checkpoint_sensor(ctx), dg.SkipReason)
    instance.report_runless_asset_event(dg.AssetMaterialization("hrm_checkpoint"))
    ctx = dg.build_sensor_context(instance=instance, cursor=ctx.cursor)
    request = new_checkpoint_sensor(ctx)
    assert isinstance(request, dg.RunRequest) and "hrm_checkpoint@" in request.run_key
    again = dg.build_sensor_context(instance=instance, cursor=ctx.cursor)
    assert isinstance(new_checkpoint_sensor(again), dg.SkipReason)
    instance.report_runless_asset_event(dg.AssetMaterialization("baseline_checkpoint"))
    later = new_checkpoint_sensor(dg.build_sensor_context(instance=instance, cursor=again.cursor))
    assert isinstance(later, dg.RunRequest) and "baseline_checkpoint@" in later.run_key


def test_new_lcb_release_sensor_adds_partition_and_requests_run(instance, tmp_path, monkeypatch):
    monkeypatch.delenv("HRM_LCB_SOURCE", raising=False)
    assert isinstance(new_lcb_release_sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)
    (tmp_path / "test.jsonl").write_text("")
    (tmp_path / "test2.jsonl").write_text("")
    monkeypatch.setenv("HRM_LCB_SOURCE", str(tmp_path))
    result = new_lcb_release_sensor(dg.build_sensor_context(instance=instance))
    assert [r.partition_key for r in result.run_requests] == ["release_v2"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["release_v2"]
    assert result.cursor == "release_v2"
    assert isinstance(new_lcb_release_sensor(dg.build_sensor_context(instance=instance, cursor="release_v2")),
                      dg.SkipReason)
    (tmp_path / "test3.jsonl").write_text("")
    newer = new_lcb_release_sensor(dg.build_sensor_context(instance=instance, cursor="release_v2"))
    assert newer.run_requests[0].partition_key == "release_v3"


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_new_polyglot_commit_sensor_reclones_a_new_head(instance, tmp_path, monkeypatch):
    repo = tmp_path / "bench"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    (repo / "README.md").write_text("v1\n")
    _git("add", "README.md", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "v1", cwd=repo)
    head = _git("rev-parse", "HEAD", cwd=repo)
    monkeypatch.setenv("HRM_POLYGLOT_SOURCE", str(repo))
    ctx = dg.build_sensor_context(instance=instance)
    request = new_polyglot_commit_sensor(ctx)
    assert isinstance(request, dg.RunRequest)
    assert request.run_config["ops"]["polyglot_benchmark"]["config"]["commit"] == head
    instance.report_runless_asset_event(dg.AssetMaterialization("polyglot_benchmark", metadata={"commit": head}))
    assert isinstance(new_polyglot_commit_sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)


def test_run_failure_alert_records_the_failed_run(instance, tmp_path):
    @dg.asset(group_name="test")
    def broken():
        raise RuntimeError("boom")

    result = dg.materialize([broken], instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    warehouse = Warehouse(root=str(tmp_path))
    ctx = dg.build_run_status_sensor_context(sensor_name="run_failure_alert", dagster_instance=instance,
                                             dagster_run=result.dagster_run, dagster_event=failure,
                                             resources={"warehouse": warehouse}).for_run_failure()
    run_failure_alert(ctx)
    alerts = rp.list_alerts(warehouse.history_db())
    assert len(alerts) == 1 and alerts[0]["kind"] == "run_failure"
    assert result.run_id in alerts[0]["message"]


def test_regression_alert_records_once_per_regressed_report(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("HRM_REGRESSION_THRESHOLDS", "default=0.05")
    warehouse = Warehouse(root=str(tmp_path))
    db = warehouse.history_db()
    ctx = dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse})
    assert isinstance(regression_alert(ctx), dg.SkipReason)

    def add(report_id, minute, value):
        rp.append_history(db, rp.make_rows(report_id, dt.datetime(2026, 1, 1, 0, minute), "hrm", "h", "none",
                                           [{"benchmark": "humaneval", "metric": "pass@1", "value": value, "n": 4}],
                                           "v"))

    add("r1", 0, 0.5)
    ctx = dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse})
    regression_alert(ctx)
    assert rp.list_alerts(db) == [] and ctx.cursor == "r1"
    add("r2", 1, 0.25)
    ctx = dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse}, cursor="r1")
    regression_alert(ctx)
    alerts = rp.list_alerts(db)
    assert [a["kind"] for a in alerts] == ["regression"]
    assert alerts[0]["details"]["regressions"][0]["metric"] == "pass@1"
    regression_alert(dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse}, cursor="r2"))
    assert len(rp.list_alerts(db)) == 1
