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


def test_swe_assets_materialise_and_feed_training(tmp_path, sandbox, monkeypatch, tiny_checkpoint):
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

    # write-audit-publish: a duplicated task in the source fails the blocking check on the staged table; the
    # published table keeps its bytes
    published = warehouse.published_file("swesmith_tasks", "dataset-swesmith_rows")
    before = published.read_bytes()
    with rows_file.open("a") as f:
        f.write(rows_file.read_text().splitlines()[0] + "\n")
    bad = dg.materialize([swe.swe_repos, swe.swesmith_tasks], partition_key="dataset-swesmith_rows",
                         resources=resources, instance=instance, raise_on_error=False)
    assert not bad.success
    assert [e.passed for e in bad.get_asset_check_evaluations()] == [False]
    assert published.read_bytes() == before
    assert warehouse.read_table("swesmith_tasks", partition="dataset-swesmith_rows").num_rows == len(tasks)

    # agent_rollouts per policy (the hrm key: the latest published checkpoint, here the tiny one), then
    # swe_trajectories: the oracle's demonstrations through the agent loop plus the model's rollouts
    warehouse.publish_checkpoint("hrm_checkpoint", {"checkpoint_dir": str(tiny_checkpoint), "weights_sha256": "ab" * 32})
    rollout_config = {"tasks": 1, "max_steps": 2, "max_new_tokens": 16}
    for policy in ("oracle", "hrm"):
        run = dg.materialize([swe.agent_rollouts], partition_key=policy, resources=resources, instance=instance,
                             run_config={"ops": {"agent_rollouts": {"config": rollout_config}}}, raise_on_error=False)
        assert run.success
        meta = run.asset_materializations_for_node("agent_rollouts")[0].metadata
        assert meta["episodes"].value == 1 and 0 <= meta["resolve_ci_low"].value <= meta["resolve_ci_high"].value
        assert meta["steps_per_episode"].value >= 1 and meta["tokens"].value > 0 and meta["overhead_s"].value > 0
    oracle_rows = warehouse.read_table("agent_rollouts", partition="oracle").to_pylist()
    assert [r["resolved"] for r in oracle_rows] == [True] and oracle_rows[0]["policy"] == "oracle"
    hrm_rows = warehouse.read_table("agent_rollouts", partition="hrm").to_pylist()
    assert hrm_rows[0]["policy"] == "local" and hrm_rows[0]["model"] == f"local:{tiny_checkpoint}"
    assert hrm_rows[0]["checkpoint_sha256"] == "ab" * 32 and hrm_rows[0]["eval_status"] != "not verified"

    second = dg.materialize(
        [swe.tool_use_examples, swe.swe_trajectories], resources=resources,
        instance=instance, raise_on_error=False,
        run_config={"ops": {"swe_trajectories": {"config": {"tasks_per_repo": 2}},
                            "tool_use_examples": {"config": {"only": "git_merge_conflict,fs_reorganise_recovery"}}}})
    assert second.success
    assert all(e.passed for e in second.get_asset_check_evaluations())

    trajs = warehouse.read_table("swe_trajectories").to_pylist()
    demos = [t for t in trajs if t["policy"] == "oracle"]
    assert len(demos) == 2 and all(t["resolved"] for t in demos), [t["eval_status"] for t in demos]
    assert [t["model"] for t in trajs if t["policy"] != "oracle"] == [f"local:{tiny_checkpoint}"]
    steps = json.loads(demos[0]["steps"])
    assert [s["tool"] for s in steps][-2:] == ["run_tests", "submit"] and "edit" in [s["tool"] for s in steps]
    assert demos[0]["patch"].startswith("diff --git")
    rl = warehouse.read_table("swe_trajectories_rl").to_pylist()
    assert sum(r["done"] for r in rl) == 3 and sum(r["reward"] for r in rl) == 2.0 + hrm_rows[0]["resolved"]

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

    # training_examples takes SWE-smith tasks (repair, diff_edit) and trajectory turns, counted per source
    from datagen import pipeline as dp

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "m.py").write_text("".join(f"def f{i}(x):\n    y = x * {i}\n    return y + {i}\n\n\n" for i in range(20)))
    dp.build_code_corpus(dp.CorpusSettings(sources=json.dumps({"python": [str(corpus)]}), min_bytes=50), warehouse)
    warehouse.write_table("synthetic_tasks", [{"task_id": "s1", "task_type": "codegen", "language": "python",
                                               "prompt": "add", "answer": "def add(a, b):\n    return a + b\n",
                                               "split": "train", "stage": 1, "edit_tags": []}])
    from hrm_assets import training_data as td

    run = dg.materialize([td.training_examples], resources={"warehouse": warehouse}, instance=instance,
                         raise_on_error=False)
    assert run.success
    meta = run.asset_materializations_for_node("training_examples")[0].metadata
    sources = meta["sources"].value
    assert sources["swesmith_tasks"].startswith("used") and sources["swe_trajectories"].startswith("used")
    by_source = meta["by_source"].value
    assert meta["examples/swesmith_tasks"].value == by_source["swesmith_tasks"]
    assert by_source["swesmith_tasks"] == 2 * len(tasks)  # a repair and a diff_edit example per task
    turns = lambda t: sum(m["role"] == "assistant" for m in json.loads(t["messages"]))  # noqa: E731
    assert by_source["swe_trajectories:oracle"] == sum(turns(t) for t in demos)  # demonstrations, counted apart
    assert by_source.get("swe_trajectories", 0) == (turns(hrm_rows[0]) if hrm_rows[0]["resolved"] else 0)
