"""The alerts record a failed run, a failed blocking check and a regressed report once, in the DuckDB history,
and POST them to the webhook (a real local HTTP server): sensors evaluated as the daemon does (`evaluate_tick`)
against an instance holding real runs."""

import datetime as dt
import logging

import dagster as dg
import pytest

from evals import report as rp
from resources.alerts import AlertSink
from resources.warehouse import Warehouse
from sensors.alerts import blocking_check_alert, regression_alert, run_failure_alert


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """The retries' backoff, shortened: the tests count attempts, not seconds."""
    monkeypatch.setattr("resources.alerts.BACKOFF_SECONDS", (0.01, 0.02))



def uses(warehouse: Warehouse, alerts: AlertSink | None = None) -> dict:
    return {"warehouse": warehouse, "alerts": alerts or AlertSink()}


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
                                             resources=uses(warehouse)).for_run_failure()
    run_failure_alert(ctx)
    alerts = rp.list_alerts(warehouse.history_db())
    assert len(alerts) == 1 and alerts[0]["kind"] == "run_failure"
    assert result.run_id in alerts[0]["message"]


def test_regression_alert_records_once_per_regressed_report(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("HRM_REGRESSION_THRESHOLDS", "default=0.05")
    warehouse = Warehouse(root=str(tmp_path))
    db = warehouse.history_db()
    ctx = dg.build_sensor_context(instance=instance, resources=uses(warehouse))
    assert isinstance(regression_alert(ctx), dg.SkipReason)

    def add(report_id, minute, value):
        rp.append_history(db, rp.make_rows(report_id, dt.datetime(2026, 1, 1, 0, minute), "hrm", "h", "none",
                                           [{"benchmark": "humaneval", "metric": "pass@1", "value": value, "n": 4}],
                                           "v"))

    add("r1", 0, 0.5)
    ctx = dg.build_sensor_context(instance=instance, resources=uses(warehouse))
    regression_alert(ctx)
    assert rp.list_alerts(db) == [] and ctx.cursor == "r1"
    add("r2", 1, 0.25)
    ctx = dg.build_sensor_context(instance=instance, resources=uses(warehouse), cursor="r1")
    regression_alert(ctx)
    alerts = rp.list_alerts(db)
    assert [a["kind"] for a in alerts] == ["regression"]
    assert alerts[0]["details"]["regressions"][0]["metric"] == "pass@1"
    regression_alert(dg.build_sensor_context(instance=instance, resources=uses(warehouse), cursor="r2"))
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
    regression_alert(dg.build_sensor_context(instance=instance, resources=uses(warehouse)))
    assert rp.list_alerts(db) == []
    monkeypatch.setenv("HRM_REGRESSION_ALPHA", "0.2")
    result = no_regression(dg.build_asset_check_context(resources={"warehouse": warehouse}))
    assert not result.passed and "p00, p01, p02" in result.description
    regression_alert(dg.build_sensor_context(instance=instance, resources=uses(warehouse), cursor="r1"))
    [alert] = rp.list_alerts(db)
    assert alert["details"]["regressions"][0]["worse_problems"] == ["p00", "p01", "p02"]


# --- a real failed run, seen the way the daemon evaluates the sensor -----------------------------------------
@dg.asset(group_name="test")
def broken():
    raise RuntimeError('boom: "quoted"\nsecond line — ünïcødé')


def tick(sensor, instance, repo, resources, cursor):
    """One evaluation as the daemon runs it; returns the new cursor."""
    ctx = dg.build_sensor_context(instance=instance, repository_def=repo, repository_name=repo.name,
                                  resources=resources, cursor=cursor)
    sensor.evaluate_tick(ctx)
    return ctx.cursor


@pytest.fixture(params=["in_memory", "on_disk"])
def any_instance(request, instance, tmp_path):
    """The in-memory test instance, and the on-disk SQLite one that `dagster dev` uses (its event log is split
    per run, so cross-run queries take other paths)."""
    if request.param == "in_memory":
        yield instance
    else:
        home = tmp_path / "dagster_home"
        home.mkdir()
        with dg.instance_for_test(temp_dir=str(home)) as on_disk:
            yield on_disk


def test_a_failed_run_reaches_the_webhook_as_slack_json_with_the_run_link(any_instance, tmp_path, webhook):
    instance = any_instance
    warehouse = Warehouse(root=str(tmp_path))
    resources = uses(warehouse, AlertSink(webhook_url=webhook.url, format="slack", ui_url="http://dagster.test:3000"))
    # The sensor's repository: its name differs from that of a run without a job origin (an in-process
    # `dg.materialize`), as in the daemon.
    repo = dg.Definitions(assets=[broken], sensors=[run_failure_alert]).get_repository_def()
    cursor = tick(run_failure_alert, instance, repo, resources, None)  # the first tick only sets the cursor
    result = dg.materialize([broken], instance=instance, raise_on_error=False)
    assert not result.success
    cursor = tick(run_failure_alert, instance, repo, resources, cursor)
    [body] = webhook.bodies()
    assert set(body) == {"text"} and result.run_id in body["text"]
    assert 'step broken: RuntimeError: boom: "quoted"\nsecond line — ünïcødé' in body["text"]
    assert f"<http://dagster.test:3000/runs/{result.run_id}|run {result.run_id}>" in body["text"]
    [alert] = rp.list_alerts(warehouse.history_db())
    assert alert["kind"] == "run_failure" and alert["details"]["run_url"].endswith(f"/runs/{result.run_id}")
    assert alert["delivery"] == {"status": "sent", "attempts": 1, "target": "127.0.0.1", "format": "slack"}
    tick(run_failure_alert, instance, repo, resources, cursor)
    assert len(webhook.received) == 1 and len(rp.list_alerts(warehouse.history_db())) == 1


def test_without_monitor_all_code_locations_a_materialize_run_is_not_seen(instance, tmp_path):
    """Why run_failure_alert monitors all code locations: a run without a job origin is outside every location."""
    warehouse = Warehouse(root=str(tmp_path))

    @dg.run_failure_sensor(name="location_only")
    def location_only(context: dg.RunFailureSensorContext, warehouse: Warehouse):
        rp.record_alert(warehouse.history_db(), "run_failure", context.dagster_run.run_id)

    repo = dg.Definitions(assets=[broken], sensors=[location_only]).get_repository_def()
    cursor = tick(location_only, instance, repo, {"warehouse": warehouse}, None)
    dg.materialize([broken], instance=instance, raise_on_error=False)
    tick(location_only, instance, repo, {"warehouse": warehouse}, cursor)
    assert rp.list_alerts(warehouse.history_db()) == []


@pytest.mark.parametrize("down", ["refused", "500", "hangs"])
def test_a_webhook_that_fails_leaves_the_sensor_running_and_the_history_says_so(instance, tmp_path, webhook,
                                                                                 closed_port_url, down):
    url = closed_port_url if down == "refused" else webhook.url
    webhook.status, webhook.hang_s = (500, 0) if down == "500" else (200, 3 if down == "hangs" else 0)
    warehouse = Warehouse(root=str(tmp_path))
    resources = uses(warehouse, AlertSink(webhook_url=url, format="json", timeout_seconds=0.3))
    repo = dg.Definitions(assets=[broken], sensors=[run_failure_alert]).get_repository_def()
    cursor = tick(run_failure_alert, instance, repo, resources, None)
    result = dg.materialize([broken], instance=instance, raise_on_error=False)
    tick(run_failure_alert, instance, repo, resources, cursor)
    [alert] = rp.list_alerts(warehouse.history_db())
    assert result.run_id in alert["message"] and alert["delivery"]["status"] == "failed"
    expected = {"refused": "ConnectionRefused", "500": "HTTP 500", "hangs": "timed out"}[down]
    assert expected in alert["delivery"]["reason"]


def test_the_webhook_url_is_never_logged_nor_recorded(instance, tmp_path, closed_port_url, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    warehouse = Warehouse(root=str(tmp_path))
    resources = uses(warehouse, AlertSink(webhook_url=closed_port_url))
    repo = dg.Definitions(assets=[broken], sensors=[run_failure_alert]).get_repository_def()
    cursor = tick(run_failure_alert, instance, repo, resources, None)
    dg.materialize([broken], instance=instance, raise_on_error=False)
    tick(run_failure_alert, instance, repo, resources, cursor)
    [alert] = rp.list_alerts(warehouse.history_db())
    out = capsys.readouterr()
    assert alert["delivery"]["status"] == "failed" and "not delivered" in out.err + caplog.text  # logged
    for text in (repr(alert), caplog.text, out.out, out.err):
        assert "T0KEN" not in text and closed_port_url.split("/hooks")[0] not in text


# --- failed blocking checks ---------------------------------------------------------------------------------
@dg.asset(group_name="test")
def table():
    return 1


@dg.asset_check(asset=table, blocking=True, description="rows are well formed")
def rows_ok():
    return dg.AssetCheckResult(passed=False, description="3 rows have no id", metadata={"bad_rows": 3})


@dg.asset_check(asset=table, blocking=False)
def advisory():
    return dg.AssetCheckResult(passed=False, description="only a warning")


def test_a_failed_blocking_check_alerts_once(any_instance, tmp_path, webhook):
    instance = any_instance
    warehouse = Warehouse(root=str(tmp_path))
    resources = uses(warehouse, AlertSink(webhook_url=webhook.url, format="json"))
    repo = dg.Definitions(assets=[table], asset_checks=[rows_ok, advisory],
                          sensors=[blocking_check_alert]).get_repository_def()
    cursor = tick(blocking_check_alert, instance, repo, resources, None)
    result = dg.materialize([table, rows_ok, advisory], instance=instance, raise_on_error=False)
    cursor = tick(blocking_check_alert, instance, repo, resources, cursor)
    [body] = webhook.bodies()
    assert body["kind"] == "check_failure" and body["run_id"] == result.run_id
    assert "table:rows_ok" in body["message"] and "3 rows have no id" in body["message"]
    assert body["details"]["metadata"] == {"bad_rows": 3}
    [alert] = rp.list_alerts(warehouse.history_db())
    assert alert["kind"] == "check_failure" and alert["delivery"]["status"] == "sent"
    cursor = tick(blocking_check_alert, instance, repo, resources, cursor)
    assert len(webhook.received) == 1
    # A second failing run is a new evaluation: one more alert.
    dg.materialize([table, rows_ok], instance=instance, raise_on_error=False)
    tick(blocking_check_alert, instance, repo, resources, cursor)
    assert len(webhook.received) == 2 and len(rp.list_alerts(warehouse.history_db())) == 2


def test_failed_checks_from_before_the_sensor_started_are_not_alerted(instance, tmp_path, webhook):
    warehouse = Warehouse(root=str(tmp_path))
    resources = uses(warehouse, AlertSink(webhook_url=webhook.url))
    repo = dg.Definitions(assets=[table], asset_checks=[rows_ok], sensors=[blocking_check_alert]).get_repository_def()
    dg.materialize([table, rows_ok], instance=instance, raise_on_error=False)
    cursor = tick(blocking_check_alert, instance, repo, resources, None)
    tick(blocking_check_alert, instance, repo, resources, cursor)
    assert webhook.received == [] and rp.list_alerts(warehouse.history_db()) == []


# --- regressions through the same sink -----------------------------------------------------------------------
def test_a_regression_reaches_the_webhook(instance, tmp_path, monkeypatch, webhook):
    monkeypatch.setenv("HRM_REGRESSION_THRESHOLDS", "default=0.05")
    warehouse = Warehouse(root=str(tmp_path))
    db = warehouse.history_db()
    for report_id, minute, value in (("r1", 0, 0.5), ("r2", 1, 0.25)):
        rp.append_history(db, rp.make_rows(report_id, dt.datetime(2026, 1, 1, 0, minute), "hrm", "h", "none",
                                           [{"benchmark": "humaneval", "metric": "pass@1", "value": value, "n": 4}],
                                           "v"))
    resources = uses(warehouse, AlertSink(webhook_url=webhook.url, format="json"))
    regression_alert(dg.build_sensor_context(instance=instance, resources=resources, cursor="r1"))
    [body] = webhook.bodies()
    assert body["kind"] == "regression" and "report r2 regressed" in body["message"]
    assert body["details"]["regressions"][0]["metric"] == "pass@1"
    [alert] = rp.list_alerts(db)
    assert alert["delivery"]["status"] == "sent" and alert["delivery"]["format"] == "json"
