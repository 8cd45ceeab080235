"""Write-audit-publish: a table is built into staging, audited there by its blocking check, and published only
when the check passes. A bad row fails the check, leaves the published table byte for byte as it was, and
the asset downstream of it is not materialised. HumanEval (unpartitioned), Polyglot (per language), LCB (per
release, and an unpartitioned scenario table)."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from evals import humaneval
from evals.lcb.pipeline import EXECUTION_TABLE, RAW_TABLE
from evals.polyglot import pipeline as polyglot_pipeline
from hrm_assets import humaneval as humaneval_assets
from hrm_assets import lcb as lcb_assets
from hrm_assets import polyglot as polyglot_assets
from hrm_assets.expectations import after_upstream
from resources.partitions import polyglot_languages
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


@pytest.mark.slow
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


def test_a_staged_partition_stands_in_for_its_published_version(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    wh.write_table("t", [{"a": 1}], partition="x")
    wh.write_table("t", [{"a": 2}], partition="y")
    with wh.staging("t", "y"):
        assert wh.partitions("t") == ["x", "y"]
        wh.write_table("t", [{"a": 3}, {"a": 4}], partition="y")
        assert sorted(zip(*wh.read_table("t").select(["part", "a"]).to_pydict().values())) == [
            ("x", 1), ("y", 3), ("y", 4)]
    with wh.staging("t", "z"):
        assert wh.partitions("t") == ["x", "y"]  # nothing staged yet
        wh.write_table("t", [{"a": 5}], partition="z")
        assert wh.partitions("t") == ["x", "y", "z"] and wh.read_table("t").num_rows == 3
    assert wh.partitions("t") == ["x", "y"]  # outside, only the published partitions
    assert sorted(wh.read_table("t").column("a").to_pylist()) == [1, 2]


# --- Polyglot: partitioned by language --------------------------------------------------------------------


@dg.asset(deps=[polyglot_assets.polyglot_problems, notes], partitions_def=polyglot_languages,
          automation_condition=after_upstream())
def polyglot_rows(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": len(warehouse.read_table(polyglot_pipeline.TABLE,
                                                                           context.partition_key))})


@pytest.mark.slow
def test_a_bad_exercise_keeps_the_published_language_and_holds_downstream(polyglot_bundle, tmp_path):
    wh = Warehouse(root=str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization("notes"))
    assert dg.materialize([polyglot_assets.polyglot_benchmark], resources={"warehouse": wh}, instance=instance,
                          run_config={"ops": {"polyglot_benchmark": {"config": {"source": str(polyglot_bundle)}}}}
                          ).success
    assets = [polyglot_assets.polyglot_problems, polyglot_rows]
    good = dg.materialize(assets, partition_key="python", resources={"warehouse": wh}, instance=instance)
    assert good.success
    published = wh.published_file(polyglot_pipeline.TABLE, "python").read_bytes()
    version = wh.table_hash(polyglot_pipeline.TABLE, "python")
    defs = dg.Definitions(assets=[polyglot_assets.polyglot_benchmark, *assets, notes], resources={"warehouse": wh})
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor

    def requested() -> set:
        nonlocal cursor
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        return set(result.get_requested_partitions(dg.AssetKey("polyglot_rows")))

    instance.report_runless_asset_event(dg.AssetMaterialization("notes"))
    assert "python" in requested()  # new upstream data alone requests it while the checks pass

    # A bad exercise in the source: a copy of bowling is a 35th Python exercise where 34 are expected.
    practice = wh.polyglot_checkout() / "python/exercises/practice"
    shutil.copytree(practice / "bowling", practice / "bowling-copy")
    bad = dg.materialize(assets, partition_key="python", resources={"warehouse": wh}, instance=instance,
                         raise_on_error=False)
    assert not bad.success
    (check,) = bad.get_asset_check_evaluations()
    assert check.check_name == "polyglot_problems_valid" and check.partition == "python" and not check.passed
    assert check.metadata["rows"].value == 35 and check.metadata["total_rows"].value == 35
    failed = {f["expectation"] for f in check.metadata["failures"].value["partition"]}
    assert "expect_table_row_count_to_equal" in failed
    assert wh.published_file(polyglot_pipeline.TABLE, "python").read_bytes() == published
    assert wh.table_hash(polyglot_pipeline.TABLE, "python") == version
    assert wh.staging_file(polyglot_pipeline.TABLE, "python").exists()  # the rejected rows, for a look
    assert not bad.get_asset_materialization_events()  # neither the table nor what reads it
    for key in ("polyglot_problems", "polyglot_rows"):
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert event.run_id == good.run_id and event.asset_materialization.partition == "python"

    instance.report_runless_asset_event(dg.AssetMaterialization("notes"))  # other upstream data is new
    assert "python" not in requested() and "python" not in requested()  # held, tick after tick
    shutil.rmtree(practice / "bowling-copy")  # the source is good again: checked and published
    assert dg.materialize([polyglot_assets.polyglot_problems], partition_key="python", resources={"warehouse": wh},
                          instance=instance).success
    assert "python" in requested()


# --- LiveCodeBench: partitioned by release, and an unpartitioned scenario table -------------------------

LCB_FIXTURES = Path(__file__).parents[1] / "fixtures" / "lcb"


def test_a_release_of_malformed_records_keeps_the_published_release_and_holds_lcb_problems(tmp_path):
    src = tmp_path / "lcb"
    src.mkdir()
    shutil.copy(LCB_FIXTURES / "code_generation_pickled.jsonl", src / "test.jsonl")
    wh = Warehouse(root=str(tmp_path / "wh"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("lcb_release", ["v1"])
    assets = [lcb_assets.livecodebench_raw, lcb_assets.lcb_problems]
    config = {"ops": {"livecodebench_raw": {"config": {"source": str(src)}},
                      "lcb_problems": {"config": {"start_date": "", "end_date": "", "training_cutoff": ""}}}}
    good = dg.materialize(assets, partition_key="v1", resources={"warehouse": wh}, instance=instance,
                          run_config=config)
    assert good.success
    published, version = wh.published_file(RAW_TABLE, "v1").read_bytes(), wh.table_hash(RAW_TABLE, "v1")

    # The release's records become malformed: every row is quarantined and the release comes out empty.
    bad_rows = [line for line in (LCB_FIXTURES / "code_generation_bad.jsonl").read_text().splitlines()
                if "ok_row" not in line]
    (src / "test.jsonl").write_text("\n".join(bad_rows) + "\n")
    bad = dg.materialize(assets, partition_key="v1", resources={"warehouse": wh}, instance=instance,
                         run_config=config, raise_on_error=False)
    assert not bad.success
    (check,) = bad.get_asset_check_evaluations()
    assert check.check_name == "livecodebench_raw_valid" and check.partition == "v1" and not check.passed
    assert wh.published_file(RAW_TABLE, "v1").read_bytes() == published and wh.table_hash(RAW_TABLE, "v1") == version
    assert not bad.get_asset_materialization_events()  # neither the release nor lcb_problems
    assert {e.step_key for e in bad.all_events if e.event_type_value == "STEP_START"} == {"livecodebench_raw"}
    for key in ("livecodebench_raw", "lcb_problems"):
        assert instance.get_latest_materialization_event(dg.AssetKey(key)).run_id == good.run_id


@dg.asset(deps=[lcb_assets.lcb_execution_problems])
def execution_count(warehouse: Warehouse) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": len(warehouse.read_table(EXECUTION_TABLE))})


def test_a_duplicate_execution_record_keeps_the_published_table(tmp_path):
    src = tmp_path / "execution.jsonl"
    records = (LCB_FIXTURES / "execution.jsonl").read_text().splitlines()
    src.write_text("\n".join(records) + "\n")
    wh = Warehouse(root=str(tmp_path / "wh"))
    instance = dg.DagsterInstance.ephemeral()
    assets = [lcb_assets.lcb_execution_problems, execution_count]
    config = {"ops": {"lcb_execution_problems": {"config": {"execution_source": str(src), "test_output_source": "",
                                                            "start_date": "", "end_date": "", "training_cutoff": ""}}}}
    good = dg.materialize(assets, resources={"warehouse": wh}, instance=instance, run_config=config)
    assert good.success
    published = wh.published_file(EXECUTION_TABLE).read_bytes()

    src.write_text("\n".join(records + records[:1]) + "\n")  # one record twice
    bad = dg.materialize(assets, resources={"warehouse": wh}, instance=instance, run_config=config,
                         raise_on_error=False)
    assert not bad.success
    (check,) = bad.get_asset_check_evaluations()
    assert check.check_name == "lcb_execution_problems_valid" and not check.passed
    assert "expect_column_values_to_be_unique" in {f["expectation"] for f in check.metadata["failures"].value}
    assert wh.published_file(EXECUTION_TABLE).read_bytes() == published
    assert not bad.get_asset_materialization_events()
    assert instance.get_latest_materialization_event(dg.AssetKey("execution_count")).run_id == good.run_id
