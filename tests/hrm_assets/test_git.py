"""The git_tasks asset materialises from SWE tables and a real git history; its rows are TrainingExamples."""

import dataclasses
import importlib.util
from pathlib import Path

import dagster as dg
import pytest

from datagen.schema import TrainingExample
from resources.warehouse import Warehouse

_spec = importlib.util.spec_from_file_location("git_tasks_fixture_assets",
                                               Path(__file__).parents[1] / "datagen" / "test_git_tasks.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


@pytest.mark.slow
def test_git_tasks_materialises_and_audits_its_held_out_split(tmp_path, sandbox, monkeypatch, polyglot_bundle):
    from hrm_assets import git

    repo_row, tasks = fx.build_fixture(tmp_path, sandbox)
    warehouse = Warehouse(root=str(tmp_path / "data"))
    warehouse.write_table("swe_repos", [repo_row], partition=repo_row["key"])
    warehouse.write_table("swesmith_tasks", tasks, partition=repo_row["key"])
    monkeypatch.setenv("HRM_GIT_HISTORY_SOURCES", str(polyglot_bundle))
    result = dg.materialize([git.git_tasks_asset], resources={"sandbox": sandbox, "warehouse": warehouse},
                            raise_on_error=False)
    assert result.success
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True]
    meta = result.asset_materializations_for_node("git_tasks")[0].metadata
    assert meta["conflict_tasks"].value == 1 and meta["commit_tasks"].value == 4
    rows = warehouse.read_table("git_tasks").to_pylist()
    fields = {f.name for f in dataclasses.fields(TrainingExample)}
    for row in rows:
        TrainingExample(**{k: row[k] for k in fields})  # task type, language and split are known ones
    assert {r["kind"] for r in rows} == {"conflict", "commit_message"}


def test_the_held_out_check_catches_a_test_answer_inside_a_train_row():
    from hrm_assets.git import held_out_check

    test = {"example_id": "t", "split": "test", "kind": "conflict", "prompt": "p", "answer": "--- RESOLVE a #1\nx\n"}
    train = {"example_id": "r", "split": "train", "kind": "conflict", "prompt": "--- RESOLVE a #1\nx\n", "answer": ""}
    assert held_out_check([test]).passed
    assert not held_out_check([test, train]).passed
    assert not held_out_check([test, test]).passed
