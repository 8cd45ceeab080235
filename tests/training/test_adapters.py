"""Specialist adapters (training/adapters.py, evals/specialists.py, hrm_assets/specialists.py): slices of
training_examples, a real training run from a published checkpoint, the adapter loaded through its model spec,
and the paired score against the generalist."""

import json

import pytest
import torch

from evals.stats import paired_sign_test
from inference.specs import load_local, parse_spec
from training.adapters import AdapterSettings, slice_kind, slice_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RUST = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n"
PY = "def add(a, b):\n    return a + b\n"


def example(i, language, task="codegen", split="train"):
    body = RUST if language == "rust" else PY
    return {"task_type": task, "language": language, "prompt": f"write add number {i}",
            "answer": body.replace("add", f"add{i}"),
            "source_asset": "code_corpus", "split": split, "example_id": f"{language}-{task}-{i}", "edit_tags": [],
            "tool_calls": [], "stage": "1"}


EXAMPLES = ([example(i, "rust") for i in range(12)] + [example(i, "python") for i in range(6)]
            + [example(i, "python", "repair") for i in range(4)]
            + [example(i, "rust", split="validation") for i in range(12, 15)])


def test_slices_by_language_or_task_type():
    assert slice_kind("rust") == "language" and slice_kind("repair") == "task"
    with pytest.raises(ValueError, match="expected a language"):
        slice_kind("codegen")  # every example's task: the generalist's own slice
    assert len(slice_rows(EXAMPLES, "rust")) == 12
    assert len(slice_rows(EXAMPLES, "rust", "validation")) == 3
    assert {r["task_type"] for r in slice_rows(EXAMPLES, "repair")} == {"repair"}


def test_paired_sign_test_counts_items_each_side_wins():
    base = {"a": 2.0, "b": 2.0, "c": 2.0, "d": 1.0}
    got = paired_sign_test(base, {"a": 1.5, "b": 1.9, "c": 1.0, "d": 1.0}, higher_is_better=False)
    assert got["better"] == ["a", "b", "c"] and got["worse"] == [] and got["p_value"] == pytest.approx(0.125)
    assert paired_sign_test(base, base)["p_value"] == 1.0


def test_adapter_spec_parses_and_is_refused_without_a_directory():
    spec = parse_spec("local:/ckpt/run+/adapters/rust@int8")
    assert (spec.path, spec.adapter, spec.quantization) == ("/ckpt/run", "/adapters/rust", "int8")
    assert parse_spec("local:/ckpt/run").adapter == ""
    with pytest.raises(ValueError, match="no adapter directory"):
        parse_spec("local:/ckpt/run+")


@pytest.fixture
def warehouse(tmp_path):
    """A warehouse with training_examples, a corpus with held-out rust files and a published tiny hrm_checkpoint."""
    from model import build_model
    from model.checkpoint import save_checkpoint
    from model.config import ModelConfig
    from model.quantized_artifacts import sha256_file
    from model.tokenizer import train_tokenizer
    from resources.warehouse import Warehouse

    wh = Warehouse(root=str(tmp_path / "wh"))
    tok_dir = tmp_path / "tok"
    train_tokenizer([RUST, PY] * 20, vocab_size=300, out_dir=tok_dir)
    torch.manual_seed(0)
    config = ModelConfig.preset("tiny", max_seq_len=64, vocab_size=300)
    ckpt = tmp_path / "hrm"
    save_checkpoint(ckpt, build_model(config), config, tokenizer_dir=tok_dir)
    wh.publish_checkpoint("hrm_checkpoint", {"checkpoint_dir": str(ckpt),
                                             "weights_sha256": sha256_file(ckpt / "model.safetensors")})
    wh.write_table("training_examples", EXAMPLES)
    wh.write_table("code_corpus", [{"language": "rust", "doc_id": f"rust/{i}.rs", "text": RUST * 2} for i in range(4)])
    return wh


@pytest.mark.slow
def test_train_load_and_score_a_specialist(warehouse):
    from evals.evaluate import EvalSettings
    from evals.specialists import score_specialists
    from model.lora import read_adapter_config
    from training.adapters import train_specialists

    settings = AdapterSettings(specialists=("rust",), steps=3, batch_size=4, rank=2, lr=1e-2)
    manifest = train_specialists(settings, warehouse)
    rust = manifest["specialists"]["rust"]
    assert rust["steps"] == 3 and rust["examples"] == 12 and rust["slice"] == "language"
    assert rust["trainable_params"] > 0 and len(rust["losses"]) == 3
    assert read_adapter_config(rust["adapter_dir"])["base_sha256"] == manifest["base_sha256"]
    # the spec loads the generalist with the adapter merged in: other weights than the generalist's
    spec = parse_spec(rust["spec"])
    specialist, tok = load_local(spec)
    generalist, _ = load_local(parse_spec(f"local:{manifest['base_checkpoint']}"))
    assert tok is not None
    changed = [k for k, v in specialist.state_dict().items() if not torch.equal(v, generalist.state_dict()[k])]
    assert changed and all(k.endswith(("qkv.weight", "out.weight", "gate_up.weight", "down.weight")) for k in changed)
    # the report's candidate for the spec names both hashes
    from evals.pipeline import candidate_from_spec

    adapter_sha = read_adapter_config(rust["adapter_dir"])["adapter_sha256"]
    assert candidate_from_spec(spec).checkpoint_hash == f"{manifest['base_sha256'][:12]}+{adapter_sha[:12]}"
    # materialised again with the same inputs: the adapter is reused, not retrained
    assert train_specialists(settings, warehouse)["specialists"]["rust"]["reused"] is True

    scores = score_specialists(manifest, warehouse, None,
                               EvalSettings(bpb_files_per_language=0, bootstrap_resamples=50))
    domain, validation = scores["rust"]["domain"], scores["rust"]["validation"]
    assert domain["metric"] == "code-bpb/bits_per_byte_rust" and domain["n"] >= 1
    assert validation["metric"] == "validation_answer_loss" and validation["n"] == 3
    for row in (domain, validation):
        assert 0.0 <= row["p_value"] <= 1.0 and row["items_better"] + row["items_worse"] <= row["n"]
        assert row["generalist_ci"][0] <= row["generalist"] <= row["generalist_ci"][1]
    json.dumps(scores)  # published in latest.json


@pytest.mark.slow
def test_specialist_adapters_asset(warehouse):
    import dagster as dg

    from hrm_assets.specialists import specialist_adapters
    from resources.sandbox import Sandbox

    config = {"specialists": "rust", "steps": 2, "batch_size": 4, "rank": 2, "eval_files": 0}
    result = dg.materialize([specialist_adapters], run_config={"ops": {"specialist_adapters": {"config": config}}},
                            resources={"warehouse": warehouse, "sandbox": Sandbox(timeout_s=30, concurrency=1)})
    assert result.success
    meta = result.asset_materializations_for_node("specialist_adapters")[0].metadata
    assert meta["rust/steps"].value == 2 and meta["rust/examples"].value == 12
    assert 0.0 <= meta["rust/p_value"].value <= 1.0 and meta["rust/generalist"].value > 0
    assert "code-bpb/bits_per_byte_rust" in meta["specialists"].value
    published = warehouse.latest_checkpoint("specialist_adapters")
    assert published["specialists"]["rust"]["score"]["domain"]["metric"] == "code-bpb/bits_per_byte_rust"
    assert published["specialists"]["rust"]["spec"].startswith(f"local:{published['base_checkpoint']}+")


def test_orchestrator_roles_take_specialist_specs():
    from agents.orchestrator.pipeline import parse_role_policies

    got = parse_role_policies("rust_developer=local:/ckpt+/adapters/rust, test_runner=oracle")
    assert got == {"rust_developer": "local:/ckpt+/adapters/rust", "test_runner": "oracle"}
    assert parse_role_policies("") == {}
    for bad in ("rust_developer", "rust_developer=gpt-4", "=local:/ckpt"):
        with pytest.raises(ValueError):
            parse_role_policies(bad)
