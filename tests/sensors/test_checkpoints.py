"""The new-checkpoint sensor requests one evaluation per checkpoint materialisation."""

import dagster as dg

from sensors.checkpoints import new_checkpoint_sensor


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
