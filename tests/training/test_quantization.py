"""The quantization checks (training/quantization.py): task scores of hrm-int8 / hrm-nf4 / hrm-int8-qat
against fp32 HRM on synthetic-instances, from a real artifact and real report rows; a missing artifact or
missing rows fail the check, and a near-zero fp32 score is compared absolutely and says so."""

import pytest
import torch

from model import build_model
from model.checkpoint import quantize_checkpoint, save_checkpoint
from model.config import ModelConfig
from model.quantized_artifacts import sha256_file
from training.quantization import QUANT_GOALS, quantization_check

INT8, NF4, QAT = (QUANT_GOALS[n] for n in ("int8_within_5_percent", "nf4_within_10_percent",
                                            "int8_qat_within_5_percent"))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(checkpoint dir, its weights sha256) with int8 and nf4 artifacts."""
    out = tmp_path_factory.mktemp("quantcheck") / "ckpt"
    torch.manual_seed(0)
    config = ModelConfig.preset("tiny", max_seq_len=64, vocab_size=300)
    save_checkpoint(out, build_model(config), config)
    for kind in ("int8", "nf4"):
        quantize_checkpoint(out, kind)
    return out, sha256_file(out / "model.safetensors")


def manifest_for(source, kinds=("int8", "nf4"), qat=None):
    out, sha = source
    results = {k: {"artifact": str(out / "quantized" / k), "loss_delta_pct": 0.5} for k in kinds}
    manifest = {"source_checkpoint": str(out), "source_sha256": sha, "kinds": list(kinds), "qat_steps": 0,
                "qat": None, "results": results}
    if qat is not None:
        qat_dir, qat_sha = qat
        manifest.update(qat_steps=10, qat={"checkpoint_dir": str(qat_dir), "weights_sha256": qat_sha})
        results["int8-qat"] = {"artifact": str(qat_dir / "quantized" / "int8")}
    return manifest


def rows(scores: dict, checkpoint_hash: str, benchmark: str = "synthetic-instances") -> list[dict]:
    """Report rows: scores = {model: (exec_exact_match, repair_fix_rate)}."""
    return [{"report_id": "r1", "model": model, "checkpoint_hash": checkpoint_hash, "benchmark": benchmark,
             "metric": metric, "value": value, "n": 120}
            for model, values in scores.items()
            for metric, value in zip(("exec_exact_match", "repair_fix_rate"), values)]


def test_within_the_goal_passes_with_the_relative_loss(source):
    _, sha = source
    got = quantization_check(manifest_for(source), rows({"hrm": (0.6, 0.5), "hrm-int8": (0.58, 0.49)}, sha[:12]),
                             INT8)
    assert got["passed"] is True
    metrics = got["metadata"]["metrics"]
    assert metrics["exec_exact_match"]["basis"] == "relative"
    assert metrics["exec_exact_match"]["relative_loss_pct"] == pytest.approx(3.33, abs=0.01)
    assert metrics["repair_fix_rate"]["relative_loss_pct"] == pytest.approx(2.0)
    assert "fp32_near_zero" not in got["metadata"] and got["metadata"]["heldout_loss_delta_pct"] == 0.5


def test_a_loss_over_the_goal_fails(source):
    _, sha = source
    got = quantization_check(manifest_for(source), rows({"hrm": (0.6, 0.5), "hrm-int8": (0.5, 0.5)}, sha[:12]), INT8)
    assert got["passed"] is False and got["severity"] == "WARN"
    assert got["description"].startswith("goal missed: exec_exact_match 0.600 -> 0.500 (+16.7 %)")
    nf4 = rows({"hrm": (0.6, 0.5), "hrm-nf4": (0.552, 0.5)}, sha[:12])  # 8 % lost: within 4-bit's 10 %
    assert quantization_check(manifest_for(source), nf4, NF4)["passed"] is True
    int8 = rows({"hrm": (0.6, 0.5), "hrm-int8": (0.552, 0.5)}, sha[:12])  # the same 8 % misses 8-bit's 5 %
    assert quantization_check(manifest_for(source), int8, INT8)["passed"] is False


def test_an_improvement_is_not_a_loss(source):
    _, sha = source
    got = quantization_check(manifest_for(source), rows({"hrm": (0.5, 0.5), "hrm-int8": (0.7, 0.6)}, sha[:12]), INT8)
    assert got["passed"] is True and got["metadata"]["metrics"]["exec_exact_match"]["relative_loss_pct"] == -40.0


def test_near_zero_fp32_is_compared_absolutely_and_says_so(source):
    _, sha = source
    got = quantization_check(manifest_for(source), rows({"hrm": (0.0, 0.01), "hrm-int8": (0.0, 0.0)}, sha[:12]), INT8)
    assert got["passed"] is True
    assert got["metadata"]["fp32_near_zero"] == ["exec_exact_match", "repair_fix_rate"]
    assert "relative loss is undefined" in got["metadata"]["note"] and "fp32 near 0" in got["description"]
    assert got["metadata"]["metrics"]["exec_exact_match"]["basis"] == "absolute"
    drifted = rows({"hrm": (0.0, 0.01), "hrm-int8": (0.05, 0.0)}, sha[:12])  # the quantized model behaves otherwise
    assert quantization_check(manifest_for(source), drifted, INT8)["passed"] is False


def test_configured_int8_without_report_rows_fails(source):
    _, sha = source
    got = quantization_check(manifest_for(source), rows({"hrm": (0.6, 0.5), "hrm-nf4": (0.6, 0.5)}, sha[:12]), INT8)
    assert got["passed"] is False and got["severity"] == "ERROR"
    assert "benchmark_report r1 has no hrm-int8 synthetic-instances rows for checkpoint" in got["description"]
    assert quantization_check(manifest_for(source), [], INT8)["passed"] is False


def test_rows_of_another_checkpoint_or_benchmark_do_not_count(source):
    _, sha = source
    stale = rows({"hrm": (0.6, 0.5)}, sha[:12]) + rows({"hrm-int8": (0.6, 0.5)}, "0123456789ab")
    got = quantization_check(manifest_for(source), stale, INT8)
    assert got["passed"] is False and "no hrm-int8 synthetic-instances rows for checkpoint" in got["description"]
    templates = rows({"hrm": (0.6, 0.5)}, sha[:12]) + rows({"hrm-int8": (0.6, 0.5)}, sha[:12], "synthetic-templates")
    assert quantization_check(manifest_for(source), templates, INT8)["passed"] is False


def test_configured_int8_without_its_artifact_fails(source, tmp_path):
    _, sha = source
    manifest = manifest_for(source)
    manifest["results"]["int8"]["artifact"] = str(tmp_path / "gone" / "int8")
    got = quantization_check(manifest, rows({"hrm": (0.6, 0.5), "hrm-int8": (0.6, 0.5)}, sha[:12]), INT8)
    assert got["passed"] is False and got["severity"] == "ERROR"
    assert f"{tmp_path / 'gone' / 'int8' / 'manifest.json'}: no quantized artifact here" in got["description"]
    del manifest["results"]["int8"]
    got = quantization_check(manifest, rows({"hrm": (0.6, 0.5), "hrm-int8": (0.6, 0.5)}, sha[:12]), INT8)
    assert got["passed"] is False and "recorded no artifact for hrm-int8" in got["description"]


def test_an_artifact_of_other_weights_fails(source):
    _, sha = source
    manifest = manifest_for(source)
    manifest["results"]["int8"]["artifact"] = manifest["results"]["nf4"]["artifact"].replace("nf4", "int8")
    manifest["source_sha256"] = "f" * 64  # the published HRM weights are not those the artifact came from
    got = quantization_check(manifest, rows({"hrm": (0.6, 0.5), "hrm-int8": (0.6, 0.5)}, "f" * 12), INT8)
    assert got["passed"] is False and "quantize the checkpoint again" in got["description"]


def test_not_configured_passes_with_a_note(source):
    _, sha = source
    got = quantization_check(manifest_for(source, kinds=("nf4",)), rows({"hrm": (0.6, 0.5)}, sha[:12]), INT8)
    assert got["passed"] is True and got["metadata"]["note"] == "int8 not configured (HRM_QUANT_KINDS=nf4)"
    got = quantization_check(manifest_for(source), [], QAT)
    assert got["passed"] is True and "QAT not configured" in got["metadata"]["note"]


def test_qat_is_scored_against_its_own_checkpoint(source, tmp_path):
    _, sha = source
    qat_dir = tmp_path / "qat"
    torch.manual_seed(3)
    config = ModelConfig.preset("tiny", max_seq_len=64, vocab_size=300)
    save_checkpoint(qat_dir, build_model(config), config)
    quantize_checkpoint(qat_dir, "int8")
    qat_sha = sha256_file(qat_dir / "model.safetensors")
    manifest = manifest_for(source, qat=(qat_dir, qat_sha))
    report = rows({"hrm": (0.6, 0.5)}, sha[:12]) + rows({"hrm-int8-qat": (0.59, 0.5)}, qat_sha[:12])
    assert quantization_check(manifest, report, QAT)["passed"] is True
    wrong_hash = rows({"hrm": (0.6, 0.5)}, sha[:12]) + rows({"hrm-int8-qat": (0.59, 0.5)}, sha[:12])
    assert quantization_check(manifest, wrong_hash, QAT)["passed"] is False
