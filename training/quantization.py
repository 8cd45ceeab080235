"""Measuring a quantized checkpoint against fp32 (held-out loss on synthetic tasks, weight bytes, tokens/s),
and the 8-bit QAT fine-tune that makes the `hrm-int8-qat` model."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

from datagen.curriculum import tokenize_examples
from model.vocab import language_id, task_id


def heldout_batch(warehouse, tokenizer, max_seq_len: int, limit: int):
    """A padded batch of held-out synthetic tasks (split "test"), for teacher-forced loss."""
    from model.data import Example, collate

    rows = [r for r in warehouse.read_table("synthetic_tasks").to_pylist() if r["split"] == "test"]
    examples = [{"prompt": r["prompt"], "answer": r["answer"], "language": r["language"], "task_type": r["task_type"],
                 "split": "test", "example_id": r["task_id"], "edit_tags": [], "tool_calls": "[]"} for r in rows]
    shard, _ = tokenize_examples(examples, tokenizer, max_seq_len)
    shard = shard[:limit]
    if not shard:
        raise ValueError("no held-out synthetic task fits the model's context")
    examples = [Example(r["input_ids"], r["prompt_len"], language_id(r["language"]), task_id(r["task_type"]), [], -1,
                        r["example_id"]) for r in shard]
    return collate(examples), len(shard)


def measure(model, tokenizer, batch, speed_prompts: list[list[int]], new_tokens: int) -> dict:
    """Held-out loss on `batch`, weight bytes, and greedy decoding speed on `speed_prompts`."""
    import torch

    from model.generate import generate_ids
    from model.quantize import weight_bytes

    with torch.no_grad():
        loss = float(model(batch).loss)
    t0 = time.perf_counter()
    out = generate_ids(model, speed_prompts, language_id("python"), task_id("exec_predict"),
                       max_new_tokens=new_tokens, eos_id=None)
    seconds = time.perf_counter() - t0
    return {"heldout_loss": round(loss, 5), "bytes": weight_bytes(model),
            "tokens_per_s": round(sum(len(o) for o in out) / seconds, 2)}


def qat_finetune(source_dir: Path, shards: list[tuple[str, str]], runs_dir: Path, tok_dir, steps: int, lr: float,
                 source_sha256: str, log=None) -> dict:
    """Fine-tune the fp32 checkpoint `steps` optimizer steps with 8-bit fake quantization (TrainConfig.qat) on
    every curriculum stage, with the source run's training config otherwise; `lr` 0 = the source run's final
    learning rate. The run lives in `runs_dir/qat-<fingerprint>` and resumes after a failure."""
    from model import checkpoint as ckpt
    from model.train import TrainConfig
    from training.phases import continue_from, run_fingerprint

    model_config = ckpt.load_model_config(source_dir)
    base = TrainConfig.from_dict(json.loads((source_dir / ckpt.TRAIN_CONFIG).read_text()))
    train_config = dataclasses.replace(base, qat=True, max_steps=steps, lr=lr or base.lr * base.min_lr_ratio,
                                       warmup_steps=min(base.warmup_steps, steps // 10), checkpoint_every=steps,
                                       eval_every=0)
    fingerprint = hashlib.sha256(f"{source_sha256}:{run_fingerprint(model_config, train_config, shards)}".encode())
    out = Path(runs_dir) / f"qat-{fingerprint.hexdigest()[:16]}"
    files = [p for _, p in shards]
    t0 = time.perf_counter()
    result = continue_from(source_dir, out, model_config, train_config, files, tok_dir, "qat", log)
    return {"checkpoint_dir": str(out), "steps": result.steps, "lr": train_config.lr,
            "train_wall_s": round(result.wall_s, 2), "wall_s": round(time.perf_counter() - t0, 2),
            "resumed_from_step": result.resumed_from_step,
            "final_losses": {k: round(float(v), 4) for k, v in (result.final_metrics or {}).items() if "loss" in k}}


# --- the quantization checks: task scores of the quantized models against fp32 ----------------------------
SCORE_BENCHMARK = "synthetic-instances"
SCORE_METRICS = ("exec_exact_match", "repair_fix_rate")
MIN_RELATIVE_BASE = 0.05  # below this fp32 score a relative loss is undefined or noise: compare absolutely


@dataclasses.dataclass(frozen=True)
class QuantGoal:
    model: str  # report model name
    goal_pct: float  # relative task-score loss vs fp32 must stay below this
    abs_tolerance: float  # |quantized - fp32| allowed where fp32 scores below MIN_RELATIVE_BASE


QUANT_GOALS = {"int8_within_5_percent": QuantGoal("hrm-int8", 5.0, 0.02),
               "nf4_within_10_percent": QuantGoal("hrm-nf4", 10.0, 0.04),
               "int8_qat_within_5_percent": QuantGoal("hrm-int8-qat", 5.0, 0.02)}


def score_loss(fp32: float, quantized: float, goal: QuantGoal) -> dict:
    """One metric: the relative loss when fp32 scores at least MIN_RELATIVE_BASE, else the absolute gap."""
    if fp32 >= MIN_RELATIVE_BASE:
        loss = 100.0 * (fp32 - quantized) / fp32
        return {"basis": "relative", "fp32": fp32, "quantized": quantized, "relative_loss_pct": round(loss, 2),
                "passed": loss < goal.goal_pct}
    gap = abs(quantized - fp32)
    return {"basis": "absolute", "fp32": fp32, "quantized": quantized, "abs_diff": round(gap, 4),
            "passed": gap <= goal.abs_tolerance}


def _scored_checkpoint(manifest: dict, model: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(why it is not configured, artifact dir, the sha256 of the weights it was quantized from, the
    checkpoint hash its report rows carry) of a quantized report model."""
    if model == "hrm-int8-qat":
        if not manifest.get("qat_steps"):
            return "QAT not configured (HRM_QUANT_QAT_STEPS=0)", None, None, None
        qat, result = manifest.get("qat") or {}, manifest.get("results", {}).get("int8-qat", {})
        return None, result.get("artifact"), qat.get("weights_sha256"), (qat.get("weights_sha256") or "")[:12]
    kind = model.removeprefix("hrm-")
    if kind not in manifest.get("kinds", []):
        return f"{kind} not configured (HRM_QUANT_KINDS={','.join(manifest.get('kinds', []))})", None, None, None
    source = manifest.get("source_sha256")
    return None, manifest.get("results", {}).get(kind, {}).get("artifact"), source, (source or "")[:12]


def quantization_check(manifest: dict, report_rows: list[dict], goal: QuantGoal) -> dict:
    """{"passed", "severity" ("ERROR" when something is missing, "WARN" when the goal is missed), "description",
    "metadata"} for `goal.model` against fp32 HRM on the newest report's synthetic-instances scores."""
    from model.quantized_artifacts import verify_artifact

    not_configured, artifact, weights_sha, row_hash = _scored_checkpoint(manifest, goal.model)
    meta = {"model": goal.model, "benchmark": SCORE_BENCHMARK,
            "goal": f"relative loss < {goal.goal_pct:g} % where fp32 >= {MIN_RELATIVE_BASE}; otherwise "
                    f"|quantized - fp32| <= {goal.abs_tolerance} (relative loss undefined near 0)"}
    if not_configured:
        return {"passed": True, "severity": "WARN", "description": not_configured, "metadata": {**meta,
                "note": not_configured}}
    missing = []
    if not artifact:
        missing.append(f"quantized_models recorded no artifact for {goal.model}")
    else:
        try:
            verify_artifact(artifact, weights_sha or "")
        except (OSError, ValueError) as exc:
            missing.append(f"artifact: {exc}")
    hrm_hash = (manifest.get("source_sha256") or "")[:12]

    def rows_of(model: str, checkpoint_hash: str) -> dict:
        return {r["metric"]: r for r in report_rows if r["model"] == model and r["benchmark"] == SCORE_BENCHMARK
                and r["checkpoint_hash"] == checkpoint_hash and r["metric"] in SCORE_METRICS}

    fp32, quant = rows_of("hrm", hrm_hash), rows_of(goal.model, row_hash)
    report_id = report_rows[0]["report_id"] if report_rows else None
    meta["report_id"] = report_id or "none"
    for model, found, h in (("hrm", fp32, hrm_hash), (goal.model, quant, row_hash)):
        if not found:
            missing.append(f"benchmark_report {report_id or '(none yet)'} has no {model} {SCORE_BENCHMARK} rows for "
                           f"checkpoint {h} (HRM_REPORT_MODELS must name {model}; materialise benchmark_report "
                           "after quantized_models)")
    metrics = {m: {**score_loss(fp32[m]["value"], quant[m]["value"], goal), "n": quant[m]["n"]}
               for m in SCORE_METRICS if m in fp32 and m in quant}
    if fp32 and quant and not metrics:
        missing.append(f"no metric of {SCORE_METRICS} is scored for both hrm and {goal.model}")
    meta["metrics"] = metrics
    loss_delta = manifest.get("results", {}).get(goal.model.removeprefix("hrm-"), {}).get("loss_delta_pct")
    if loss_delta is not None:
        meta["heldout_loss_delta_pct"] = loss_delta
    near_zero = [m for m, r in metrics.items() if r["basis"] == "absolute"]
    if near_zero:
        meta["fp32_near_zero"] = near_zero
        meta["note"] = (f"fp32 scores below {MIN_RELATIVE_BASE} on {', '.join(near_zero)}: the relative loss is "
                        f"undefined there, so |quantized - fp32| <= {goal.abs_tolerance} is checked instead; a model "
                        "that scores about 0 cannot show a quantization loss")
    if missing:
        meta["missing"] = missing
        return {"passed": False, "severity": "ERROR", "description": "; ".join(missing), "metadata": meta}
    failed = [m for m, r in metrics.items() if not r["passed"]]
    parts = [f"{m} {r['fp32']:.3f} -> {r['quantized']:.3f} (" + (f"{r['relative_loss_pct']:+.1f} %" if r["basis"] ==
             "relative" else f"|diff| {r['abs_diff']:.3f}, fp32 near 0") + ")" for m, r in metrics.items()]
    return {"passed": not failed, "severity": "WARN", "metadata": meta,
            "description": ("goal missed: " if failed else "") + "; ".join(parts)}
