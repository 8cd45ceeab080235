"""Write-audit-publish: a table is built into staging, audited there by its blocking check, and published only
when the check passes. A bad row fails the check, leaves the published table byte for byte as it was, and
the asset downstream of it is not materialised."""

import dagster as dg
import pytest

from evals import humaneval
from hrm_assets import humaneval as humaneval_assets
from hrm_assets.expectations import after_upstream
from resources.warehouse import Warehouse

notes = dg.AssetSpec("notes")  # a second upstream of problem_count, updated outside these runs


@dg.asset(deps=[humaneval_assets.humaneval_problems, notes], automation_condition=after_upstream())
def problem_count(warehouse: Warehouse) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": len(warehouse.read_table(humaneval.TABLE))})


def _file_bytes(warehouse: Warehouse) -> bytes:
    return warehouse.published_file(humaneval.TABLE).read_bytes()


def test_warehouse_stages_then_publishes(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    wh.write_table("t", [{"a": 1}])
    with wh.staging("t") as staged:
        wh.write_table("t", [{"a": 1}, {"a": 2}])
        assert wh.read_table("t").num_rows == 2  # the build and its audit read the staged rows
        assert staged.exists()
    assert wh.read_table("t").num_rows == 1  # readers outside still see the published table
    wh.publish("t")
    assert wh.read_table("t").num_rows == 2 and not wh.staging_file("t").exists()
    with pytest.raises(FileNotFoundError, match="nothing staged"):
        wh.publish("t")
    wh.stage_table("t", [{"a": 3}], partition="p1")
    assert not wh.has_table("t", "p1")
    wh.publish("t", "p1")
    assert wh.read_table("t", "p1").column("a").to_pylist() == [3]


def test_a_bad_row_fails_the_check_keeps_the_published_table_and_holds_downstream(tmp_path, monkeypatch):
    wh = Warehouse(root=str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    assets = [humaneval_assets.humaneval_problems, problem_count]
    good = dg.materialize(assets, resources={"warehouse": wh}, instance=instance)
    assert good.success
    published, version = _file_bytes(wh), wh.table_hash(humaneval.TABLE)

    problems = humaneval.load_problems()
    bad_row = {**problems[0], "prompt": ""}  # a duplicate task id with an empty prompt
    monkeypatch.setattr(humaneval, "load_problems", lambda: problems + [bad_row])
    bad = dg.materialize(assets, resources={"warehouse": wh}, instance=instance, raise_on_error=False)

    assert not bad.success
    (check,) = bad.get_asset_check_evaluations()
    assert check.check_name == "humaneval_problems_valid" and not check.passed
    failed = {f["expectation"] for f in check.metadata["failures"].value}
    assert {"expect_table_row_count_to_equal", "expect_column_values_to_be_unique"} <= failed
    assert _file_bytes(wh) == published and wh.table_hash(humaneval.TABLE) == version
    assert wh.staging_file(humaneval.TABLE).exists()  # the rejected rows stay in staging for a look
    assert not bad.get_asset_materialization_events()  # neither the table nor what reads it
    for key in ("humaneval_problems", "problem_count"):
        assert instance.get_latest_materialization_event(dg.AssetKey(key)).run_id == good.run_id


def test_the_failed_check_of_a_real_run_holds_downstream_automation(tmp_path, monkeypatch):
    wh = Warehouse(root=str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization("notes"))
    assets = [humaneval_assets.humaneval_problems, problem_count]
    assert dg.materialize(assets, resources={"warehouse": wh}, instance=instance).success
    defs = dg.Definitions(assets=[*assets, notes], resources={"warehouse": wh})
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor

    def requested() -> bool:
        nonlocal cursor
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        return bool(result.get_num_requested(dg.AssetKey("problem_count")))

    problems = humaneval.load_problems()
    with monkeypatch.context() as patch:
        patch.setattr(humaneval, "load_problems", lambda: problems + [problems[0]])
        assert not dg.materialize(assets, resources={"warehouse": wh}, instance=instance, raise_on_error=False,
                                  selection=[humaneval_assets.humaneval_problems]).success
    instance.report_runless_asset_event(dg.AssetMaterialization("notes"))  # other upstream data is new
    assert not requested() and not requested()  # held, tick after tick
    assert dg.materialize([humaneval_assets.humaneval_problems], resources={"warehouse": wh},
                          instance=instance).success  # the source is good again: checked and published
    assert requested()
