"""The alerts record a failed run, and a regressed report once, in the DuckDB history."""

import datetime as dt

import dagster as dg

from evals import report as rp
from resources.warehouse import Warehouse
from sensors.alerts import regression_alert, run_failure_alert


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


def test_regression_alert_and_check_use_the_paired_test_at_the_configured_alpha(instance, tmp_path, monkeypatch):
    from evals import stats
    from hrm_assets.evaluation import no_regression

    monkeypatch.setenv("HRM_REGRESSION_THRESHOLDS", "default=0.05")
    warehouse = Warehouse(root=str(tmp_path))
    db = warehouse.history_db()
    names = [f"p{i:02d}" for i in range(20)]

    def add(report_id, minute, passing):
        results = [stats.problem_rate_result("lcb", "pass@1", [stats.problem(p, p in passing) for p in names],
                                             resamples=100)]
        rp.append_history(db, rp.make_rows(report_id, dt.datetime(2026, 1, 1, 0, minute), "hrm", "h", "none",
                                           results, "v"), rp.problem_rows(report_id, "hrm", results))

    add("r1", 0, set(names[:10]))
    add("r2", 1, set(names[3:10]))  # 3 problems flipped to fail: p = 1/8
    monkeypatch.setenv("HRM_REGRESSION_ALPHA", "0.05")
    assert no_regression(dg.build_asset_check_context(resources={"warehouse": warehouse})).passed
    regression_alert(dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse}))
    assert rp.list_alerts(db) == []
    monkeypatch.setenv("HRM_REGRESSION_ALPHA", "0.2")
    result = no_regression(dg.build_asset_check_context(resources={"warehouse": warehouse}))
    assert not result.passed and "p00, p01, p02" in result.description
    regression_alert(dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse}, cursor="r1"))
    [alert] = rp.list_alerts(db)
    assert alert["details"]["regressions"][0]["worse_problems"] == ["p00", "p01", "p02"]
