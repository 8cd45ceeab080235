"""Report rows, the DuckDB history table, trend and regression thresholds."""

import datetime as dt

import pytest

from evals import report as rp


def _rows(report_id, minute, values):
    at = dt.datetime(2026, 11, 26, 12, minute)
    out = []
    for model, value in values.items():
        out += rp.make_rows(report_id, at, model, "abc123", "none",
                            [{"benchmark": "humaneval", "metric": "pass@1", "value": value, "n": 10},
                             {"benchmark": "synthetic", "metric": "train_loss", "value": 2.0 - value, "n": 1}],
                            "v1")
    return out


def test_history_appends_orders_and_finds_previous(tmp_path):
    db = tmp_path / "h.duckdb"
    first = _rows("r1", 0, {"hrm": 0.20, "baseline": 0.10})
    second = _rows("r2", 5, {"hrm": 0.30, "baseline": 0.10})
    assert rp.append_history(db, first) == 4
    assert rp.append_history(db, second) == 4
    assert rp.report_ids(db) == ["r1", "r2"]
    prev = rp.previous_report(db, "r2")
    assert {(r.model, r.metric, r.value) for r in prev} == {(r.model, r.metric, r.value) for r in first}
    assert rp.previous_report(db, "r1") == []
    with pytest.raises(ValueError, match="already"):
        rp.append_history(db, first)
    t = {(x["model"], x["metric"]): x for x in rp.trend(second, prev)}
    assert t[("hrm", "pass@1")]["delta"] == pytest.approx(0.10)
    assert t[("baseline", "pass@1")]["delta"] == pytest.approx(0.0)


def test_regression_thresholds_respect_direction_and_limits():
    prev = _rows("r1", 0, {"hrm": 0.50})
    cur = _rows("r2", 5, {"hrm": 0.40})  # pass@1 down 0.10, train_loss up 0.10
    found = rp.regressions(cur, prev, rp.parse_thresholds("default=0.05"))
    assert {f["metric"] for f in found} == {"pass@1", "train_loss"}
    assert rp.regressions(cur, prev, rp.parse_thresholds("default=0.2")) == []
    better = _rows("r3", 9, {"hrm": 0.60})
    assert rp.regressions(better, prev, rp.parse_thresholds("")) == []
    only_pass = rp.regressions(cur, prev, rp.parse_thresholds("default=0.5,pass@1=0.01"))
    assert [f["metric"] for f in only_pass] == ["pass@1"]
    with pytest.raises(ValueError, match="metric=number"):
        rp.parse_thresholds("pass@1:0.1")


def test_markdown_side_by_side_lists_every_model():
    rows = _rows("r1", 0, {"hrm": 0.25, "baseline": 0.125})
    md = rp.report_markdown(rows, [], ["hrm", "baseline"])
    assert "| humaneval | pass@1 | 10 | 0.25 | 0.125 |" in md
    assert "Trend" in md


def test_nan_values_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        rp.make_rows("r", dt.datetime.now(), "hrm", "h", "none",
                     [{"benchmark": "b", "metric": "m", "value": float("nan"), "n": 1}], "v")


@pytest.mark.slow  # waits seconds for a child process to let go of the file
def test_history_waits_for_another_process_holding_the_file(tmp_path):
    import subprocess
    import sys
    import time

    db = tmp_path / "h.duckdb"
    rp.append_history(db, _rows("r1", 0, {"hrm": 0.2}))
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(db)!r}); "
                               "print('held', flush=True); time.sleep(2); c.close()"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    assert rp.report_ids(db) == ["r1"]  # waited for the lock instead of raising
    assert time.monotonic() - t0 > 0.5
    holder.wait(timeout=30)


def test_alerts_keep_their_delivery_and_an_older_alerts_table_gains_the_column(tmp_path):
    import duckdb

    db = tmp_path / "history.duckdb"
    with duckdb.connect(str(db)) as con:  # the table as it was before deliveries were recorded
        con.execute("CREATE TABLE alerts (created_at TIMESTAMP, kind VARCHAR, message VARCHAR, details VARCHAR)")
        con.execute("INSERT INTO alerts VALUES (TIMESTAMP '2026-01-01 00:00:00', 'regression', 'old', '{}')")
    assert [a["delivery"] for a in rp.list_alerts(db)] == [None]
    rp.record_alert(db, "run_failure", "new", {"run_id": "r"}, {"status": "failed", "reason": "HTTP 500"})
    old, new = rp.list_alerts(db)
    assert (old["message"], old["delivery"]) == ("old", None)
    assert new["details"] == {"run_id": "r"} and new["delivery"] == {"status": "failed", "reason": "HTTP 500"}
