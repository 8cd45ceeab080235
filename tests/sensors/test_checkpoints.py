"""The new-checkpoint sensor requests one evaluation per checkpoint materialisation that no report has scored."""

import datetime as dt

import dagster as dg

from evals.report import ReportRow, append_history
from resources.warehouse import Warehouse
from sensors.checkpoints import new_checkpoint_sensor


def _tick(instance, warehouse, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"warehouse": warehouse})
    return new_checkpoint_sensor(ctx), ctx.cursor


def test_new_checkpoint_sensor_fires_once_per_materialisation(instance, tmp_path):
    wh = Warehouse(root=str(tmp_path))
    result, cursor = _tick(instance, wh)
    assert isinstance(result, dg.SkipReason)
    instance.report_runless_asset_event(dg.AssetMaterialization("hrm_checkpoint",
                                                                metadata={"checkpoint_hash": "a" * 12}))
    request, cursor = _tick(instance, wh, cursor)
    assert isinstance(request, dg.RunRequest) and "hrm_checkpoint@" in request.run_key
    again, cursor = _tick(instance, wh, cursor)
    assert isinstance(again, dg.SkipReason)
    instance.report_runless_asset_event(dg.AssetMaterialization("baseline_checkpoint"))
    later, _ = _tick(instance, wh, cursor)
    assert isinstance(later, dg.RunRequest) and "baseline_checkpoint@" in later.run_key


def _report(wh, model, checkpoint_hash):
    row = ReportRow("r1", dt.datetime(2026, 12, 1), model, checkpoint_hash, "none", "humaneval", "pass@1", 0.5, 4, "v")
    append_history(wh.history_db(), [row])


def test_a_checkpoint_the_producing_run_already_reported_is_not_evaluated_again(instance, tmp_path):
    """The first tick after `hrm materialize` (no cursor yet) sees the main run's checkpoints; the main run's
    report scored them, so no second evaluation is launched."""
    wh = Warehouse(root=str(tmp_path))
    for name, weights in (("hrm_checkpoint", "1" * 12), ("baseline_checkpoint", "2" * 12)):
        instance.report_runless_asset_event(dg.AssetMaterialization(name, metadata={"checkpoint_hash": weights}))
    _report(wh, "hrm", "1" * 12)
    result, cursor = _tick(instance, wh)
    # only the baseline, which no report has scored, is evaluated
    assert isinstance(result, dg.RunRequest)
    assert "baseline_checkpoint@" in result.run_key and "hrm_checkpoint" not in result.run_key
    _report_second = ReportRow("r2", dt.datetime(2026, 12, 2), "baseline", "2" * 12, "none", "humaneval", "pass@1",
                               0.4, 4, "v")
    append_history(wh.history_db(), [_report_second])
    instance.report_runless_asset_event(dg.AssetMaterialization("baseline_checkpoint",
                                                                metadata={"checkpoint_hash": "2" * 12}))
    skipped, _ = _tick(instance, wh, cursor)
    assert isinstance(skipped, dg.SkipReason) and "already reported" in skipped.skip_message
