"""The SWE assets materialise end to end on a tiny local repo; their tables feed TrainingExample rows."""

import importlib.util
import json
from pathlib import Path

import dagster as dg
import pytest

from datagen.schema import TASK_TYPES, TrainingExample
from resources.swerex import SweRexSessions
from resources.warehouse import Warehouse

pytestmark = pytest.mark.slow  # materialises the SWE assets

# tests/ is not on sys.path under --import-mode=importlib: load the tiny-repo builder by path
_spec = importlib.util.spec_from_file_location(
    "swe_tiny_repo", Path(__file__).parents[1] / "datagen" / "swe" / "test_tasks.py")
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)
make_tiny_repo = _tiny.make_tiny_repo


def test_swe_assets_materialise_and_feed_training(tmp_path, sandbox, monkeypatch):
    from datagen.swe import training_examples
    from hrm_assets import swe

    repo = make_tiny_repo(tmp_path)
    monkeypatch.setenv("HRM_SWE_REPOS", str(repo))
    key = "local__tinycalc"
    warehouse = Warehouse(root=str(tmp_path / "data"))
    resources = {"sandbox": sandbox, "warehouse": warehouse, "swe_sessions": SweRexSessions()}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("swe_repos", [key])

    first = dg.materialize([swe.swe_repos, swe.swesmith_tasks], partition_key=key, resources=resources,
                           instance=instance, raise_on_error=False)
    assert first.success
    assert all(e.passed for e in first.get_asset_check_evaluations())
    tasks = warehouse.read_table("swesmith_tasks", partition=key).to_pylist()
    assert tasks and all(t["n_fail_to_pass"] >= 1 for t in tasks)

    # a `dataset:` source loads SWE-smith rows (here: local files of them) through the same asset
    rows_file = tmp_path / "swesmith_rows.jsonl"
    rows_file.write_text("".join(json.dumps({k: t[k] for k in ("instance_id", "repo", "patch", "FAIL_TO_PASS",
                                                                "PASS_TO_PASS", "problem_statement", "image_name")})
                                 + "\n" for t in tasks) + '{"instance_id": "broken"}\n')
    monkeypatch.setenv("HRM_SWE_REPOS", f"{repo},dataset:{rows_file}")
    instance.add_dynamic_partitions("swe_repos", ["dataset-swesmith_rows"])
    loaded = dg.materialize([swe.swe_repos, swe.swesmith_tasks], partition_key="dataset-swesmith_rows",
                            resources=resources, instance=instance, raise_on_error=False)
    assert loaded.success
    hf_rows = warehouse.read_table("swesmith_tasks", partition="dataset-swesmith_rows").to_pylist()
    assert len(hf_rows) == len(tasks) and {r["source"] for r in hf_rows} == {"hf"}
    quarantine = (tmp_path / "data" / "quarantine" / "swesmith_tasks-dataset-swesmith_rows.jsonl").read_text()
    assert "missing fields" in quarantine

    second = dg.materialize(
        [swe.tool_use_examples, swe.swe_trajectories], resources=resources,
        instance=instance, raise_on_error=False,
        run_config={"ops": {"swe_trajectories": {"config": {"tasks_per_repo": 2}},
                            "tool_use_examples": {"config": {"only": "git_merge_conflict,fs_reorganise_recovery"}}}})
    assert second.success

    trajs = warehouse.read_table("swe_trajectories").to_pylist()
    assert len(trajs) == 2 and all(t["resolved"] for t in trajs), [t["eval_status"] for t in trajs]
    steps = json.loads(trajs[0]["steps"])
    assert any("pytest" in s["command"] for s in steps) and steps[-1]["tool"] == "submit"
    assert trajs[0]["patch"].startswith("diff --git")
    rl = warehouse.read_table("swe_trajectories_rl").to_pylist()
    assert sum(r["done"] for r in rl) == 2 and sum(r["reward"] for r in rl) == 2.0

    examples = training_examples(warehouse)
    assert all(isinstance(e, TrainingExample) for e in examples)
    assert len({e.example_id for e in examples}) == len(examples)
    kinds = {e.task_type for e in examples}
    assert kinds == {"repair", "diff_edit", "tool_use", "agent_step"} and kinds <= set(TASK_TYPES)  # plan: agents
    repair = next(e for e in examples if e.task_type == "repair")
    assert len(repair.edit_tags) == repair.prompt.count("\n") + 1 and 1 in repair.edit_tags
    # the tables read by name carry one TrainingExample per row
    for name in ("tool_use_examples",):
        table = warehouse.read_table(name)
        assert {"task_type", "language", "prompt", "answer"} <= set(table.column_names)
