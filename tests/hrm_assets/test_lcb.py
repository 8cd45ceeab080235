"""The LCB assets: a release from local files, the windowed problems table with its GX checks, a clear
failure without data, the default run not touching LCB, and the scenario tables."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from evals.lcb.pipeline import PROBLEMS_TABLE, RAW_TABLE, TEST_OUTPUT_TABLE, EXECUTION_TABLE
from hrm_assets import lcb as lcb_assets
from resources.warehouse import Warehouse

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lcb"
ASSETS = [lcb_assets.livecodebench_raw, lcb_assets.lcb_problems]  # each with its blocking check


def _instance(*releases):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("lcb_release", list(releases))
    return instance


def _source(tmp_path) -> Path:
    src = tmp_path / "lcb"
    src.mkdir()
    shutil.copy(FIXTURES / "code_generation_pickled.jsonl", src / "test.jsonl")
    bad = (FIXTURES / "code_generation_bad.jsonl").read_text()
    (src / "test2.jsonl").write_text(bad)
    return src


@pytest.mark.slow
def test_release_and_windowed_problems_with_checks(tmp_path):
    warehouse = Warehouse(root=str(tmp_path / "wh"))
    config = {"ops": {"livecodebench_raw": {"config": {"source": str(_source(tmp_path))}},
                      "lcb_problems": {"config": {"start_date": "2024-10-01", "end_date": "", "training_cutoff": ""}}}}
    result = dg.materialize(ASSETS, partition_key="release_v2", resources={"warehouse": warehouse},
                            run_config=config, instance=_instance("release_v2"))
    assert result.success
    raw = warehouse.read_table(RAW_TABLE, "release_v2").to_pylist()
    assert sorted(r["question_id"] for r in raw) == ["2051_A", "3901", "abc901_a", "ok_row"]
    problems = warehouse.read_table(PROBLEMS_TABLE, "release_v2").to_pylist()
    assert sorted(r["question_id"] for r in problems) == ["2051_A", "3901"]
    assert {r["category"] for r in problems} == {"codeforces/medium/stdin", "leetcode/easy/functional"}
    assert all(r["prompt"].startswith("### Question:") for r in problems)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"livecodebench_raw_valid": True, "lcb_problems_valid": True}
    meta = result.asset_materializations_for_node("livecodebench_raw")[0].metadata
    assert meta["rejected"].value == 6 and meta["unsafe_rejected"].value == 1
    quarantine = Path(meta["quarantine"].value).read_text()
    assert "evil_pickle" in quarantine and "posix.system" in quarantine and "test2.jsonl" in quarantine


@pytest.mark.slow
def test_missing_data_fails_with_directions(tmp_path, monkeypatch):
    monkeypatch.delenv("HRM_LCB_SOURCE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    warehouse = Warehouse(root=str(tmp_path / "wh"))
    result = dg.materialize([lcb_assets.livecodebench_raw], partition_key="release_v1",
                            resources={"warehouse": warehouse}, instance=_instance("release_v1"),
                            run_config={"ops": {"livecodebench_raw": {"config": {"source": ""}}}},
                            raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "HRM_LCB_SOURCE" in failure.event_specific_data.error.to_string()
    assert not warehouse.has_table(RAW_TABLE, "release_v1")


def test_default_run_has_no_lcb_partitions_without_a_source(monkeypatch):
    from hrm_cli.materialize import build_plan, register_configured_partitions
    from hrm_assets.definitions import defs

    monkeypatch.delenv("HRM_LCB_SOURCE", raising=False)
    assert lcb_assets.default_releases() == []
    instance, graph = dg.DagsterInstance.ephemeral(), defs.resolve_asset_graph()
    register_configured_partitions(graph, instance)
    plan = build_plan(graph, instance, None, None)
    planned = [k for keys, _ in plan for k in keys]
    assert "livecodebench_raw" not in planned and "lcb_problems" not in planned
    monkeypatch.setenv("HRM_LCB_SOURCE", "/data/lcb")
    monkeypatch.setenv("HRM_LCB_RELEASES", "release_v5, v6")
    assert lcb_assets.default_releases() == ["release_v5", "v6"]


def test_lcb_assets_sit_in_their_groups_with_lineage():
    from hrm_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    group = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert group["livecodebench_raw"] == "sources" and group["humaneval_problems"] == "sources"
    for name in ("lcb_problems", "lcb_test_output_problems", "lcb_execution_problems"):
        assert group[name] == "problems"
    parents = graph.get(dg.AssetKey("lcb_problems")).parent_keys
    assert dg.AssetKey("livecodebench_raw") in parents


@pytest.mark.slow
def test_scenario_tables_are_empty_without_a_source_and_load_with_one(tmp_path):
    warehouse = Warehouse(root=str(tmp_path / "wh"))
    scenario = [lcb_assets.lcb_test_output_problems, lcb_assets.lcb_execution_problems]
    empty = {"test_output_source": "", "execution_source": ""}
    empty_run = dg.materialize(scenario, resources={"warehouse": warehouse}, instance=dg.DagsterInstance.ephemeral(),
                               run_config={"ops": {"lcb_test_output_problems": {"config": empty},
                                                   "lcb_execution_problems": {"config": empty}}})
    # materialised (so a UI backfill completes), empty and saying why
    events = empty_run.get_asset_materialization_events()
    assert empty_run.success and len(events) == 2
    assert all(e.materialization.metadata["source"].value == "none configured" for e in events)
    assert all(e.passed for e in empty_run.get_asset_check_evaluations())
    assert len(warehouse.read_table(TEST_OUTPUT_TABLE)) == 0 and "code" in warehouse.read_table(EXECUTION_TABLE).column_names
    sources = {"test_output_source": str(FIXTURES / "test_generation.jsonl"),
               "execution_source": str(FIXTURES / "execution.jsonl")}
    loaded = dg.materialize(scenario, resources={"warehouse": warehouse}, instance=dg.DagsterInstance.ephemeral(),
                            run_config={"ops": {"lcb_test_output_problems": {"config": sources},
                                                "lcb_execution_problems": {"config": sources}}})
    assert loaded.success
    assert all(e.passed for e in loaded.get_asset_check_evaluations())
    assert len(warehouse.read_table(TEST_OUTPUT_TABLE)) == 2 and len(warehouse.read_table(EXECUTION_TABLE)) == 2


@pytest.mark.slow
@pytest.mark.parametrize("window, rows", [({"start_date": "2025-02-02"}, 2), ({"end_date": "2025-02-01"}, 0),
                                          ({"training_cutoff": "2025-02-02"}, 0)])
def test_scenario_tables_keep_the_date_window(tmp_path, window, rows):
    warehouse = Warehouse(root=str(tmp_path / "wh"))
    scenario = [lcb_assets.lcb_test_output_problems, lcb_assets.lcb_execution_problems]
    config = {"test_output_source": str(FIXTURES / "test_generation.jsonl"),
              "execution_source": str(FIXTURES / "execution.jsonl"),
              "start_date": "", "end_date": "", "training_cutoff": "", **window}
    result = dg.materialize(scenario, resources={"warehouse": warehouse}, instance=dg.DagsterInstance.ephemeral(),
                            run_config={"ops": {"lcb_test_output_problems": {"config": config},
                                                "lcb_execution_problems": {"config": config}}})
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    assert len(warehouse.read_table(TEST_OUTPUT_TABLE)) == rows and len(warehouse.read_table(EXECUTION_TABLE)) == rows


@pytest.mark.slow
@pytest.mark.parametrize("tag", ["latest", "v0x"])
def test_bad_release_tags_fail_clearly(tmp_path, tag):
    warehouse = Warehouse(root=str(tmp_path / "wh"))
    result = dg.materialize([lcb_assets.livecodebench_raw], partition_key=tag, resources={"warehouse": warehouse},
                            instance=_instance(tag), raise_on_error=False,
                            run_config={"ops": {"livecodebench_raw": {"config": {"source": str(_source(tmp_path))}}}})
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "unknown LiveCodeBench release tag" in failure.event_specific_data.error.to_string()


@pytest.mark.slow
def test_an_empty_window_gives_an_empty_valid_table(tmp_path):
    warehouse = Warehouse(root=str(tmp_path / "wh"))
    config = {"ops": {"livecodebench_raw": {"config": {"source": str(_source(tmp_path))}},
                      "lcb_problems": {"config": {"start_date": "2030-01-01", "end_date": "", "training_cutoff": ""}}}}
    result = dg.materialize(ASSETS, partition_key="v1", resources={"warehouse": warehouse},
                            run_config=config, instance=_instance("v1"))
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    table = warehouse.read_table(PROBLEMS_TABLE, "v1")
    assert table.num_rows == 0 and "private_tests" in table.column_names


@pytest.mark.slow
def test_a_release_of_only_bad_rows_fails_its_check(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    bad = [line for line in (FIXTURES / "code_generation_bad.jsonl").read_text().splitlines() if "ok_row" not in line]
    (src / "test.jsonl").write_text("\n".join(bad) + "\n")
    warehouse = Warehouse(root=str(tmp_path / "wh"))
    result = dg.materialize([lcb_assets.livecodebench_raw], partition_key="v1",
                            resources={"warehouse": warehouse}, instance=_instance("v1"), raise_on_error=False,
                            run_config={"ops": {"livecodebench_raw": {"config": {"source": str(src)}}}})
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and not result.success
    assert not warehouse.has_table(RAW_TABLE, "v1") and warehouse.staging_file(RAW_TABLE, "v1").exists()
