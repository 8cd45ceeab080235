"""The multifile_tasks asset on a warehouse holding a tiny two-file package's swe_repos row and single-file bugs
(tests/datagen/swe/test_multifile.py makes them): it materialises, reports its counts, and its rows are
curriculum stage 3 diff_edit examples."""

import importlib.util
from pathlib import Path

import dagster as dg
import pytest

from datagen import curriculum
from datagen.swe.repos import baseline_row, parse_repo_spec
from resources.warehouse import Warehouse

_SPEC = importlib.util.spec_from_file_location(
    "multifile_shop_assets", Path(__file__).parents[1] / "datagen" / "swe" / "test_multifile.py")
shop = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(shop)


@pytest.mark.slow
def test_multifile_tasks_materialises_and_feeds_stage_3(tmp_path, sandbox, monkeypatch):
    from hrm_assets import multifile

    monkeypatch.setenv("HRM_MULTIFILE_TEST_PERCENT", "0")
    repo = shop.make_shop_repo(tmp_path)
    repo_row = baseline_row(sandbox, parse_repo_spec(str(repo)), tmp_path / "work")
    key = repo_row["key"]
    warehouse = Warehouse(root=str(tmp_path / "data"))
    warehouse.write_table("swe_repos", [repo_row], partition=key)
    warehouse.write_table("swesmith_tasks", [{**b, "source_repo": key} for b in shop.bug_rows(repo_row)], partition=key)

    run = dg.materialize([multifile.multifile_tasks], resources={"sandbox": sandbox, "warehouse": warehouse},
                         raise_on_error=False)
    assert run.success
    assert [(e.check_name, e.passed) for e in run.get_asset_check_evaluations()] == [("multifile_tasks_gx", True)]
    (event,) = run.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["tasks"].value == 1 and meta["rejected"].value == 1
    assert meta["by_split"].data == {"train": 1} and meta["dagster/row_count"].value == 1

    rows = warehouse.read_table("multifile_tasks").to_pylist()
    examples, rejected = curriculum.build_training_examples(curriculum.external_examples("multifile_tasks", rows))
    assert rejected == [] and [(e["task_type"], e["stage"], e["split"]) for e in examples] == [("diff_edit", "3", "train")]
