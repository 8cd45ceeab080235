"""Training assets: hrm_checkpoint, baseline_checkpoint (curriculum training with model/train.py, in the
`gpu` pool, resumed after a failure) and quantized_models (int8 and nf4 versions of the HRM checkpoint).

Curriculum: phase k trains on the shards of stages 1..k (earlier stages are rehearsed), starting from
phase k-1's weights with a fresh optimizer and learning-rate schedule. Each phase keeps its own
checkpoint directory under checkpoints/<asset>/<fingerprint>/, where the fingerprint hashes the model
config, the training config and the shard contents: re-materialising after a failure finds the same
directories and resumes (model/train.py restores weights, optimizer, RNG and sampler position);
new data or config starts a new run.
"""

import base64
import hashlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from hrm_assets.training_data import STAGE_KEYS, env_float, env_int, env_str, shard_path, tokenizer_dir
from resources.warehouse import Warehouse, write_text_atomic


class CheckpointConfig(dg.Config):
    preset: str = env_str("HRM_MODEL_PRESET", "tiny")  # ModelConfig preset: tiny, small, 100m, gpu-base
    model_overrides: str = env_str("HRM_MODEL_OVERRIDES", "")  # JSON of ModelConfig fields
    steps_per_stage: int = env_int("HRM_TRAIN_STEPS_PER_STAGE", 40)
    batch_size: int = env_int("HRM_TRAIN_BATCH_SIZE", 16)
    grad_accum: int = env_int("HRM_TRAIN_GRAD_ACCUM", 1)
    lr: float = env_float("HRM_TRAIN_LR", 3e-3)
    warmup_steps: int = env_int("HRM_TRAIN_WARMUP_STEPS", 5)
    dtype: str = env_str("HRM_TRAIN_DTYPE", "fp32")  # bf16 pays off on GPUs and big CPU matmuls only
    qat: bool = env_str("HRM_TRAIN_QAT", "0") == "1"
    wandb: bool = env_str("HRM_WANDB", "0") == "1"  # offline mode; needs the wandb package
    seed: int = env_int("HRM_TRAIN_SEED", 0)
    checkpoint_every: int = env_int("HRM_TRAIN_CHECKPOINT_EVERY", 20)
    max_minutes: float = env_float("HRM_TRAIN_MAX_MINUTES", 2.0)  # wall budget for all phases; 0 = none
    torchrun_nproc: int = env_int("HRM_TORCHRUN_NPROC", 0)  # > 0: launch each phase with torchrun (DDP)


# --- the plain functions ---------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stage_shards(warehouse: Warehouse) -> list[tuple[str, str]]:
    """(stage, shard path) for every materialised stage whose shard holds training rows, in order."""
    import pyarrow.parquet as pq

    out = []
    for stage in STAGE_KEYS:
        path = shard_path(warehouse, stage)
        if path.exists() and "train" in set(pq.read_table(path, columns=["split"]).column("split").to_pylist()):
            out.append((stage, str(path)))
    if not out:
        raise FileNotFoundError(f"no curriculum shard with training rows under {shard_path(warehouse, '1').parent.parent}"
                                "; materialise curriculum_shards first")
    return out


def build_configs(config: CheckpointConfig, arch: str, vocab_size: int):
    from model.config import ModelConfig
    from model.train import TrainConfig

    overrides = json.loads(config.model_overrides) if config.model_overrides.strip() else {}
    model_config = ModelConfig.preset(config.preset, **{"vocab_size": vocab_size, **overrides, "arch": arch})
    train_config = TrainConfig(max_steps=config.steps_per_stage, batch_size=config.batch_size,
                               grad_accum=config.grad_accum, lr=config.lr, warmup_steps=config.warmup_steps,
                               dtype=config.dtype, qat=config.qat, wandb=config.wandb, seed=config.seed,
                               checkpoint_every=config.checkpoint_every, log_every=5)
    return model_config, train_config


def run_fingerprint(model_config, train_config, shards: list[tuple[str, str]]) -> str:
    doc = {"model": model_config.to_dict(), "train": train_config.to_dict(),
           "shards": [(stage, _sha256(Path(p))) for stage, p in shards]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def seed_phase(prev_dir: Path, new_dir: Path, model_config, train_config, files: list[str], tok_dir) -> None:
    """A step-0 checkpoint for the next phase: the previous phase's weights, a fresh optimizer, and the
    sampler over this phase's shards; model/train.py then resumes from it like from any checkpoint."""
    from model import build_model
    from model import checkpoint as ckpt
    from model.data import BalancedSampler, load_shards
    from model.optim import build_optimizer

    model = build_model(model_config)
    ckpt.load_weights(model, prev_dir)
    if train_config.qat:
        from model.quantize import enable_qat

        enable_qat(model)
    optimizer = build_optimizer(model, train_config.optimizer, lr=train_config.lr, betas=train_config.betas,
                                weight_decay=train_config.weight_decay)
    previous = json.loads((prev_dir / ckpt.TRAINER_STATE).read_text())
    data = load_shards(files, train_config.split, model_config.max_seq_len, model_config.vocab_size)
    sampler = BalancedSampler(data, train_config.seed, train_config.language_balance)
    state = {"step": 0, "tokens_seen": previous["tokens_seen"], "history": [], "wall_s": 0.0,
             "sampler": sampler.state_dict()}
    ckpt.save_checkpoint(new_dir, model, model_config, train_config=train_config.to_dict(), tokenizer_dir=tok_dir,
                         optimizer=optimizer, trainer_state=state)


def _torchrun_phase(nproc: int, model_config, train_config, files: list[str], out: Path, tok_dir) -> None:
    cfg_file = out.with_name(out.name + ".config.json")
    write_text_atomic(cfg_file, json.dumps({"model": model_config.to_dict(), "train": train_config.to_dict()}))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "-m", "hrm_cli.main",
           "train", "--config", str(cfg_file), "--shards", *files, "--out", str(out), "--tokenizer", str(tok_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun phase {out.name} failed ({proc.returncode}): {proc.stderr[-3000:]}")


def train_curriculum(model_config, train_config, shards: list[tuple[str, str]], run_dir: Path, tok_dir, *,
                     max_minutes: float = 0.0, torchrun_nproc: int = 0, log=None, on_step=None) -> dict:
    """Train phase by phase (stage 1, then 1+2, ...); returns the summary the asset reports.

    `on_step(phase, step, metrics)` runs every log_every steps (tests use it to interrupt a run)."""
    from model import checkpoint as ckpt
    from model.train import train

    start = time.monotonic()
    phases, history, stopped_early = [], [], False
    tokens_seen, train_wall, prev = 0, 0.0, None
    for i, (stage, _) in enumerate(shards):
        files = [p for _, p in shards[:i + 1]]
        out = run_dir / f"phase-{stage}"
        if prev is not None and not ckpt.is_checkpoint(out):
            seed_phase(prev, out, model_config, train_config, files, tok_dir)
        remaining = len(shards) - i
        deadline = (start + max_minutes * 60 - time.monotonic()) / remaining + time.monotonic() if max_minutes else None

        def callback(step, metrics, _stage=stage, _deadline=deadline):
            if log:
                log(f"phase {_stage} step {step}/{train_config.max_steps} loss {metrics['loss']:.4f} "
                    f"tok/s {metrics.get('tokens_per_s', 0):.0f}")
            if on_step:
                on_step(_stage, step, metrics)
            return _deadline is not None and time.monotonic() > _deadline

        if torchrun_nproc > 0:
            _torchrun_phase(torchrun_nproc, model_config, train_config, files, out, tok_dir)
            state = json.loads((out / ckpt.TRAINER_STATE).read_text())
            result = {"steps": state["step"], "tokens_seen": state["tokens_seen"], "history": state["history"],
                      "wall_s": state["wall_s"], "final_metrics": state["history"][-1] if state["history"] else {},
                      "resumed_from_step": 0}
        else:
            r = train(model_config, train_config, files, out, tokenizer_dir=tok_dir, resume=True, callback=callback)
            result = {"steps": r.steps, "tokens_seen": r.tokens_seen, "history": r.loss_history, "wall_s": r.wall_s,
                      "final_metrics": r.final_metrics or (r.loss_history[-1] if r.loss_history else {}),
                      "resumed_from_step": r.resumed_from_step}
        stopped_early |= result["steps"] < train_config.max_steps
        offset = sum(p["steps"] for p in phases)
        history += [{**h, "global_step": offset + h["step"], "phase": stage} for h in result["history"]]
        phases.append({"stage": stage, "steps": result["steps"], "shards": len(files), "wall_s": round(result["wall_s"], 2),
                       "resumed_from_step": result["resumed_from_step"], "dir": str(out)})
        tokens_seen = result["tokens_seen"]
        train_wall += result["wall_s"]
        final = result["final_metrics"]
        prev = out
    return {"checkpoint_dir": str(prev), "phases": phases, "history": history, "tokens_seen": tokens_seen,
            "wall_s": round(time.monotonic() - start, 2), "train_wall_s": round(train_wall, 2),
            "tokens_per_s": round(tokens_seen / train_wall, 1) if train_wall else 0.0,
            "final_losses": {k: round(float(v), 4) for k, v in final.items() if "loss" in k},
            "stopped_early_by_time_budget": stopped_early}


def loss_curve_png(history: list[dict], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=90)
    for key in ("loss", "lm_loss_codegen", "lm_loss_exec_predict", "lm_loss_repair"):
        points = [(h["global_step"], h[key]) for h in history if key in h]
        if points:
            ax.plot(*zip(*points), label=key, linewidth=1.4 if key == "loss" else 0.9)
    for h0, h1 in zip(history, history[1:]):
        if h1["phase"] != h0["phase"]:
            ax.axvline(h0["global_step"], color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("step (all curriculum phases)")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def publish(warehouse: Warehouse, name: str, summary: dict) -> Path:
    """checkpoints/<name>/latest.json: where downstream assets and sensors find the newest checkpoint."""
    target = warehouse.path("checkpoints", name, "latest.json")
    write_text_atomic(target, json.dumps(summary, indent=1))
    return target


def latest_checkpoint(warehouse: Warehouse, name: str) -> dict:
    path = Path(warehouse.root) / "checkpoints" / name / "latest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: {name} has not been materialised")
    return json.loads(path.read_text())


def train_checkpoint(config: CheckpointConfig, warehouse: Warehouse, name: str, arch: str, log=None) -> dict:
    """The whole body of a checkpoint asset, without Dagster."""
    from model.tokenizer import CodeTokenizer

    tok_dir = tokenizer_dir(warehouse)
    vocab = CodeTokenizer.load(tok_dir).vocab_size
    model_config, train_config = build_configs(config, arch, vocab)
    shards = stage_shards(warehouse)
    run_dir = warehouse.path("checkpoints", name, run_fingerprint(model_config, train_config, shards))
    summary = train_curriculum(model_config, train_config, shards, run_dir, tok_dir, max_minutes=config.max_minutes,
                               torchrun_nproc=config.torchrun_nproc, log=log)
    ckpt_dir = Path(summary["checkpoint_dir"])
    png = loss_curve_png(summary["history"], f"{name} ({arch}, {model_config.estimated_params():,} params)")
    (run_dir / "loss_curve.png").write_bytes(png)
    summary.update(name=name, arch=arch, params=model_config.estimated_params(), model_config=model_config.to_dict(),
                   weights_sha256=_sha256(ckpt_dir / "model.safetensors"), run_dir=str(run_dir),
                   loss_curve=str(run_dir / "loss_curve.png"), created_at=time.time())
    publish(warehouse, name, {k: v for k, v in summary.items() if k != "history"})
    summary["loss_curve_png"] = png
    return summary


def checkpoint_metadata(summary: dict) -> dict:
    png64 = base64.b64encode(summary["loss_curve_png"]).decode()
    return {
        "checkpoint": dg.MetadataValue.path(summary["checkpoint_dir"]),
        "checkpoint_hash": summary["weights_sha256"][:12],
        "params": summary["params"], "tokens_seen": summary["tokens_seen"], "wall_s": summary["wall_s"],
        "train_wall_s": summary["train_wall_s"], "tokens_per_s": summary["tokens_per_s"],
        "final_losses": dg.MetadataValue.json(summary["final_losses"]),
        "phases": dg.MetadataValue.json(summary["phases"]),
        "resumed": any(p["resumed_from_step"] > 0 for p in summary["phases"]),
        "stopped_early_by_time_budget": summary["stopped_early_by_time_budget"],
        "loss_curve": dg.MetadataValue.md(f"![loss curve](data:image/png;base64,{png64})"),
    }


def _checkpoint_asset(name: str, arch: str, description: str):
    @dg.asset(name=name, group_name="training", kinds={"pytorch"}, pool="gpu",
              deps=["curriculum_shards", "tokenizer"], description=description,
              tags={"dagster/max_runtime": str(6 * 3600)})
    def _asset(context: dg.AssetExecutionContext, config: CheckpointConfig, warehouse: Warehouse) -> dg.MaterializeResult:
        summary = train_checkpoint(config, warehouse, name, arch, log=context.log.info)
        return dg.MaterializeResult(metadata=checkpoint_metadata(summary))

    return _asset


hrm_checkpoint = _checkpoint_asset(
    "hrm_checkpoint", "hrm", "The HRM-Code model trained through curriculum stages 1-4 (model/train.py); "
                             "resumes from its last checkpoint when re-materialised after a failure.")
baseline_checkpoint = _checkpoint_asset(
    "baseline_checkpoint", "baseline", "A plain transformer with the same parameter budget, trained on the same "
                                       "curriculum, for HRM-vs-baseline comparisons.")


# --- quantized_models ------------------------------------------------------------------------------------
class QuantizeConfig(dg.Config):
    kinds: str = env_str("HRM_QUANT_KINDS", "int8,nf4")
    eval_tasks: int = env_int("HRM_QUANT_EVAL_TASKS", 32)  # held-out synthetic tasks for the loss delta
    speed_prompts: int = env_int("HRM_QUANT_SPEED_PROMPTS", 8)
    speed_new_tokens: int = env_int("HRM_QUANT_SPEED_TOKENS", 16)


def heldout_batch(warehouse: Warehouse, tokenizer, max_seq_len: int, limit: int):
    """A padded batch of held-out synthetic tasks (split "test"), for teacher-forced loss."""
    from datagen.curriculum import tokenize_examples
    from model.data import Example, collate
    from model.vocab import language_id, task_id

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
    import torch

    from model.generate import generate_ids
    from model.quantize import weight_bytes
    from model.vocab import language_id, task_id

    with torch.no_grad():
        loss = float(model(batch).loss)
    t0 = time.perf_counter()
    out = generate_ids(model, speed_prompts, language_id("python"), task_id("exec_predict"),
                       max_new_tokens=new_tokens, eos_id=None)
    seconds = time.perf_counter() - t0
    return {"heldout_loss": round(loss, 5), "bytes": weight_bytes(model),
            "tokens_per_s": round(sum(len(o) for o in out) / seconds, 2)}


def build_quantized_models(config: QuantizeConfig, warehouse: Warehouse) -> dict:
    """Quantize the HRM checkpoint (bitsandbytes int8 / nf4) and compare with fp32 on held-out tasks."""
    from model.checkpoint import load_checkpoint

    source = latest_checkpoint(warehouse, "hrm_checkpoint")
    ckpt_dir = source["checkpoint_dir"]
    fp32, tok = load_checkpoint(ckpt_dir)
    batch, n = heldout_batch(warehouse, tok, fp32.config.max_seq_len - config.speed_new_tokens, config.eval_tasks)
    prompts = [row[:int(pl)].tolist() for row, pl in zip(batch["input_ids"], batch["prompt_len"])][:config.speed_prompts]
    results = {"fp32": measure(fp32, tok, batch, prompts, config.speed_new_tokens)}
    base = results["fp32"]["heldout_loss"]
    for kind in [k.strip() for k in config.kinds.split(",") if k.strip()]:
        model, _ = load_checkpoint(ckpt_dir, quantization=kind)
        r = measure(model, tok, batch, prompts, config.speed_new_tokens)
        r["loss_delta_pct"] = round(100.0 * (r["heldout_loss"] - base) / base, 3)
        r["bytes_ratio"] = round(r["bytes"] / results["fp32"]["bytes"], 4)
        results[kind] = r
    manifest = {"source_checkpoint": ckpt_dir, "source_sha256": source["weights_sha256"], "heldout_tasks": n,
                "results": results, "created_at": time.time(),
                "load": "model.checkpoint.load_checkpoint(source_checkpoint, quantization=<kind>)"}
    publish(warehouse, "quantized_models", manifest)
    return manifest


@dg.asset(group_name="training", kinds={"pytorch"}, pool="gpu", deps=["hrm_checkpoint", "synthetic_tasks"],
          check_specs=[dg.AssetCheckSpec("int8_within_5_percent", asset="quantized_models", blocking=False,
                                         description="8-bit held-out loss within 5 % of fp32")])
def quantized_models(context: dg.AssetExecutionContext, config: QuantizeConfig, warehouse: Warehouse,
                     ) -> dg.MaterializeResult:
    """int8 and nf4 versions of the HRM checkpoint: bytes, tokens/s and held-out quality vs fp32."""
    manifest = build_quantized_models(config, warehouse)
    results = manifest["results"]
    table = "| model | bytes | tokens/s | held-out loss | loss Δ % |\n|---|---|---|---|---|\n" + "".join(
        f"| {k} | {v['bytes']:,} | {v['tokens_per_s']} | {v['heldout_loss']} | {v.get('loss_delta_pct', 0.0)} |\n"
        for k, v in results.items())
    checks = []
    if "int8" in results:
        delta = results["int8"]["loss_delta_pct"]
        checks.append(dg.AssetCheckResult(check_name="int8_within_5_percent", passed=abs(delta) <= 5.0,
                                          severity=dg.AssetCheckSeverity.WARN, metadata={"loss_delta_pct": delta}))
    else:
        checks.append(dg.AssetCheckResult(check_name="int8_within_5_percent", passed=True,
                                          metadata={"note": "int8 not configured"}))
    return dg.MaterializeResult(
        metadata={"table": dg.MetadataValue.md(table), "results": dg.MetadataValue.json(results),
                  "source_checkpoint": dg.MetadataValue.path(manifest["source_checkpoint"]),
                  "heldout_tasks": manifest["heldout_tasks"]},
        check_results=checks)
