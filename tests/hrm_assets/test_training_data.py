"""The training-data assets materialise end to end on a tiny config, with their blocking checks."""

import dagster as dg
import pytest

from resources.warehouse import Warehouse

pytestmark = pytest.mark.slow  # materialises the training-data assets

FUNCS = "\n".join(f'def helper_{i}(value):\n    """Scale value by {i}."""\n    doubled = value * {i}\n'
                  f'    return doubled + {i}\n' for i in range(12))


@pytest.fixture(scope="module")
def materialized(tmp_path_factory, sandbox):
    from datagen.pipeline import STAGE_KEYS
    from hrm_assets import training_data as td

    root = tmp_path_factory.mktemp("wh")
    src = tmp_path_factory.mktemp("src")
    for i in range(3):
        (src / f"m{i}.py").write_text(FUNCS.replace("helper_", f"mod{i}_helper_").replace("Scale", f"Scale{i}"))
    import json

    from datagen.decontaminate import humaneval_package_texts
    (src / "leak.py").write_text(FUNCS.replace("helper_", "leak_") + "\n" + humaneval_package_texts()[3][1])
    warehouse = Warehouse(root=str(root))
    instance = dg.DagsterInstance.ephemeral()
    run_config = {"ops": {
        "code_corpus": {"config": {"sources": json.dumps({"python": [str(src)]}), "min_bytes": 50}},
        "synthetic_tasks": {"config": {"exec_per_template": 1, "repair_per_template": 1, "heldout_exec_tasks": 1,
                                        "heldout_repair_tasks": 1}},
        "tokenizer": {"config": {"vocab_size": 400}},
        "curriculum_shards": {"config": {"max_seq_len": 512}},
    }}
    assets = [td.code_corpus, td.synthetic_tasks, td.tokenizer, td.training_examples, td.curriculum_shards]
    resources = {"warehouse": warehouse, "sandbox": sandbox}
    first = dg.materialize(assets[:4], resources=resources, instance=instance,
                           run_config={"ops": {k: v for k, v in run_config["ops"].items() if k != "curriculum_shards"}})
    assert first.success
    shard_runs = [dg.materialize(assets, selection=[td.curriculum_shards], partition_key=s, resources=resources,
                                 instance=instance, run_config={"ops": {"curriculum_shards": run_config["ops"]["curriculum_shards"]}})
                  for s in STAGE_KEYS]
    return warehouse, first, shard_runs


def test_corpus_metadata_counts_the_contaminated_file(materialized):
    warehouse, first, _ = materialized
    meta = first.asset_materializations_for_node("code_corpus")[0].metadata
    assert meta["removed_contaminated"].value == 1
    assert all(e.passed for e in first.get_asset_check_evaluations())
    origins = warehouse.read_table("code_corpus").column("origin").to_pylist()
    assert not any(o.endswith("leak.py") for o in origins) and len(origins) == 3


def test_examples_cover_corpus_and_synthetic_sources(materialized):
    warehouse, _, _ = materialized
    rows = warehouse.read_table("training_examples").to_pylist()
    assert {r["source_asset"] for r in rows} == {"code_corpus", "synthetic_tasks"}
    assert {r["stage"] for r in rows} == {"1", "2", "3"}
    assert {r["task_type"] for r in rows} == {"codegen", "exec_predict", "repair"}


def test_shards_load_with_datasets_and_carry_edit_tags(materialized):
    from datasets import load_dataset

    warehouse, _, shard_runs = materialized
    assert all(r.success for r in shard_runs)
    stage3 = str(warehouse.table_file("curriculum_shards", "3"))
    data = load_dataset("parquet", data_files=stage3, split="train")
    assert set(data.column_names) == {"input_ids", "prompt_len", "language", "task_type", "edit_tags", "tool_label",
                                      "split", "example_id"}
    row = data[0]
    assert row["task_type"] == "repair" and len(row["edit_tags"]) == len(row["input_ids"])
    assert 1 in row["edit_tags"] and row["edit_tags"][row["prompt_len"]] == -1
    # stage 4 has no feeding asset here: an empty shard that still passes its check
    assert warehouse.read_table("curriculum_shards", "4").num_rows == 0
    from model.data import load_shards
    ds = load_shards([str(warehouse.table_file("curriculum_shards", s)) for s in "123"])
    assert len(ds) > 0
