"""Checkpoints, quantized models and the benchmark report materialise on a tiny configuration and write the
DuckDB history (the training data comes from the `data_warehouse` fixture in conftest.py)."""

import json

import dagster as dg
import pytest

pytestmark = pytest.mark.slow  # trains and materialises checkpoints and the report

TINY = json.dumps({"max_seq_len": 256})  # the tiny preset (hidden 64): nf4 fails on hidden 32


def test_checkpoints_quantized_models_and_report(data_warehouse, sandbox):
    from evals import report as rp
    from evals.pipeline import MODELS
    from hrm_assets import evaluation as ev
    from hrm_assets import training as tr

    instance = dg.DagsterInstance.ephemeral()
    tiny = {"preset": "tiny", "model_overrides": TINY, "steps_per_stage": 2, "batch_size": 4, "max_minutes": 0.0,
            "warmup_steps": 1, "dtype": "fp32"}
    report_cfg = {"humaneval_problems": 1, "humaneval_n": 5, "max_new_tokens": 8, "synthetic_tasks": 2,
                  "synthetic_max_new_tokens": 8, "batch_size": 8}
    run_config = {"ops": {"hrm_checkpoint": {"config": tiny}, "baseline_checkpoint": {"config": tiny},
                          "quantized_models": {"config": {"eval_tasks": 4, "speed_prompts": 2, "speed_new_tokens": 4}},
                          "benchmark_report": {"config": report_cfg}}}
    result = dg.materialize([tr.hrm_checkpoint, tr.baseline_checkpoint, tr.quantized_models, ev.benchmark_report,
                             ev.no_regression], instance=instance, run_config=run_config,
                            resources={"warehouse": data_warehouse, "sandbox": sandbox})
    assert result.success
    meta = result.asset_materializations_for_node("hrm_checkpoint")[0].metadata
    assert meta["tokens_seen"].value > 0 and meta["loss_curve"].value.startswith("![loss curve](data:image/png;base64,")
    assert set(meta["final_losses"].value) >= {"loss"}
    quant = result.asset_materializations_for_node("quantized_models")[0].metadata["results"].value
    assert quant["int8"]["bytes"] < quant["fp32"]["bytes"] and quant["nf4"]["bytes"] < quant["fp32"]["bytes"]
    report = result.asset_materializations_for_node("benchmark_report")[0].metadata
    values = report["values"].value
    for model in MODELS:
        for metric in ("humaneval/pass@1", "humaneval/pass@5", "synthetic-instances/exec_exact_match",
                       "synthetic-instances/repair_fix_rate", "synthetic-templates/exec_exact_match",
                       "synthetic-templates/repair_fix_rate", "code-bpb/bits_per_byte_python",
                       "code-bpb/gzip_bits_per_byte_python", "code-bpb/xz_bits_per_byte_python",
                       "generation/tokens_per_s"):
            assert f"{model}/{metric}" in values, f"{model}/{metric} missing"
    assert report["flops_curve"].value.startswith("![held-out score vs training FLOPs](data:image/png;base64,")
    assert {(p["model"], p["phase"]) for p in report["flops_curve_points"].value} == {
        (m, s) for m in ("hrm", "baseline") for s in "123"}
    assert "polyglot_problems not materialised" in report["report"].value
    db = data_warehouse.history_db()
    assert len(rp.report_ids(db)) == 1
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_regression"] is True
    assert data_warehouse.read_table("benchmark_report").num_rows == len(values)
