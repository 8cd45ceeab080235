"""evals/pipeline.py: the regression findings read the DuckDB history, and a model without a published
checkpoint is named. (The whole report is built on a trained tiny model in tests/hrm_assets/test_training.py.)"""

import datetime as dt

import pytest

from evals import report as rp
from evals.pipeline import MODELS, load_candidate, regression_findings
from resources.warehouse import Warehouse


def _report(db, report_id: str, minute: int, value: float) -> None:
    rp.append_history(db, rp.make_rows(report_id, dt.datetime(2026, 1, 1, 0, minute), "hrm", "h", "none",
                                       [{"benchmark": "humaneval", "metric": "pass@1", "value": value, "n": 4}], "v"))


def test_findings_compare_the_newest_report_with_the_one_before(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    assert regression_findings(wh, "default=0.05") == {"report_id": None, "previous_report_id": None,
                                                       "regressions": []}
    _report(wh.history_db(), "r1", 0, 0.2)
    assert regression_findings(wh, "default=0.05") == {"report_id": "r1", "previous_report_id": None,
                                                       "regressions": []}
    _report(wh.history_db(), "r2", 1, 0.5)
    assert regression_findings(wh, "default=0.05")["regressions"] == []  # better
    _report(wh.history_db(), "r3", 2, 0.47)
    assert regression_findings(wh, "default=0.05")["regressions"] == []  # within the threshold
    _report(wh.history_db(), "r4", 3, 0.25)  # worse than r3, though still better than r1
    found = regression_findings(wh, "default=0.05")
    assert (found["report_id"], found["previous_report_id"]) == ("r4", "r3")
    assert [(r["model"], r["metric"]) for r in found["regressions"]] == [("hrm", "pass@1")]
    assert regression_findings(wh, "default=0.5")["regressions"] == []


def test_a_bad_threshold_spec_is_refused(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    _report(wh.history_db(), "r1", 0, 0.5)
    with pytest.raises(ValueError):
        regression_findings(wh, "default=lots")


@pytest.mark.parametrize("name, checkpoint", [("hrm", "hrm_checkpoint"), ("hrm-int8", "hrm_checkpoint"),
                                              ("baseline", "baseline_checkpoint")])
def test_a_model_without_a_published_checkpoint_is_named(tmp_path, name, checkpoint):
    assert name in MODELS
    with pytest.raises(FileNotFoundError, match=f"{checkpoint} has not been materialised"):
        load_candidate(Warehouse(root=str(tmp_path)), name)


@pytest.mark.slow
def test_a_quantized_model_is_loaded_from_its_artifact_or_named_missing(tmp_path):
    import torch

    from evals.pipeline import QAT_MODEL
    from model import build_model
    from model.checkpoint import quantize_checkpoint, save_checkpoint
    from model.config import ModelConfig
    from model.quantized_artifacts import sha256_file

    wh = Warehouse(root=str(tmp_path / "wh"))
    ckpt = tmp_path / "ckpt"
    config = ModelConfig.preset("tiny", max_seq_len=64, vocab_size=300)
    save_checkpoint(ckpt, build_model(config), config)
    sha = sha256_file(ckpt / "model.safetensors")
    wh.publish_checkpoint("hrm_checkpoint", {"checkpoint_dir": str(ckpt), "weights_sha256": sha})
    with pytest.raises(FileNotFoundError, match=r"quantized/int8: no int8 artifact for this checkpoint"):
        load_candidate(wh, "hrm-int8")  # never quantized in memory behind the report's back
    quantize_checkpoint(ckpt, "int8")
    candidate = load_candidate(wh, "hrm-int8")
    assert (candidate.quantization, candidate.checkpoint_hash) == ("int8", sha[:12])
    assert any(type(m).__name__ == "Linear8bitLt" for m in candidate.model.modules())
    batch = {"input_ids": torch.zeros(1, 4, dtype=torch.long), "prompt_len": torch.tensor([2])}
    assert candidate.model(batch).logits.shape[-1] == 300
    wh.publish_checkpoint("quantized_models", {"qat": None})
    with pytest.raises(FileNotFoundError, match="quantized_models has no QAT checkpoint: set HRM_QUANT_QAT_STEPS"):
        load_candidate(wh, QAT_MODEL)
