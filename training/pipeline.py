"""The training stages without Dagster: a curriculum-trained checkpoint (hrm_checkpoint, baseline_checkpoint)
and its quantized versions (quantized_models). Each function writes its files through the warehouse,
publishes `checkpoints/<name>/latest.json` and returns the summary its asset reports."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from model.config import ModelConfig
from model.tokenizer import CodeTokenizer
from resources.settings import named_numbers
from training.phases import run_fingerprint, sha256_file, stage_shards, train_curriculum
from training.plots import loss_curve_png
from training.quantization import heldout_batch, measure, qat_finetune


@dataclass
class CheckpointSettings:
    preset: str = "tiny"  # ModelConfig preset (model/config.py PRESETS)
    model_overrides: dict = field(default_factory=dict)  # ModelConfig fields
    steps_per_stage: int = 40
    batch_size: int = 16
    grad_accum: int = 1
    micro_batch_tokens: int = 0  # cut micro-batches by length into pieces of at most this many padded tokens
    pack: bool = False  # pack sequences into rows of up to max_seq_len tokens (model.data.collate_packed)
    lr: float = 3e-3
    warmup_steps: int = 5
    dtype: str = "fp32"  # bf16 pays off on GPUs and big CPU matmuls only
    task_weights: dict = field(default_factory=dict)  # {task type: sampling weight}, see model.data
    qat: bool = False
    wandb: bool = False  # offline mode; needs the wandb package
    seed: int = 0
    checkpoint_every: int = 20
    max_minutes: float = 2.0  # wall budget for all phases; 0 = none
    torchrun_nproc: int = 0  # > 0: launch each phase with torchrun (DDP)


def parse_task_weights(text: str) -> dict[str, float]:
    """"repair=3, exec_predict=2" -> {"repair": 3.0, "exec_predict": 2.0}; a bad entry is an error naming it."""
    return named_numbers(text, "task weight", "task")


def build_configs(settings: CheckpointSettings, arch: str, vocab_size: int):
    """(ModelConfig, TrainConfig) of one phase."""
    from model.train import TrainConfig

    model_config = ModelConfig.preset(settings.preset,
                                      **{"vocab_size": vocab_size, **settings.model_overrides, "arch": arch})
    train_config = TrainConfig(max_steps=settings.steps_per_stage, batch_size=settings.batch_size,
                               grad_accum=settings.grad_accum, micro_batch_tokens=settings.micro_batch_tokens,
                               pack=settings.pack, lr=settings.lr, warmup_steps=settings.warmup_steps,
                               dtype=settings.dtype, task_weights=dict(settings.task_weights), qat=settings.qat,
                               wandb=settings.wandb, seed=settings.seed,
                               checkpoint_every=settings.checkpoint_every, log_every=5)
    return model_config, train_config


def train_checkpoint(settings: CheckpointSettings, warehouse, name: str, arch: str, log=None) -> dict:
    """Train `arch` through the curriculum into checkpoints/<name>/<fingerprint>/ (resuming a killed run),
    draw its loss curve and publish it; the summary carries the PNG bytes under `loss_curve_png`."""
    tok_dir = warehouse.tokenizer_dir()
    vocab = CodeTokenizer.load(tok_dir).vocab_size
    model_config, train_config = build_configs(settings, arch, vocab)
    shards = stage_shards(warehouse)
    run_dir = warehouse.checkpoint_dir(name, run_fingerprint(model_config, train_config, shards))
    summary = train_curriculum(model_config, train_config, shards, run_dir, tok_dir,
                               max_minutes=settings.max_minutes, torchrun_nproc=settings.torchrun_nproc, log=log)
    ckpt_dir = Path(summary["checkpoint_dir"])
    png = loss_curve_png(summary["history"], f"{name} ({arch}, {model_config.estimated_params():,} params)")
    (run_dir / "loss_curve.png").write_bytes(png)
    summary.update(name=name, arch=arch, params=model_config.estimated_params(), model_config=model_config.to_dict(),
                   weights_sha256=sha256_file(ckpt_dir / "model.safetensors"), run_dir=str(run_dir),
                   weights_bytes=(ckpt_dir / "model.safetensors").stat().st_size,
                   loss_curve=str(run_dir / "loss_curve.png"), created_at=time.time())
    warehouse.publish_checkpoint(name, {k: v for k, v in summary.items() if k != "history"})
    summary["loss_curve_png"] = png
    return summary


def published_checkpoint(warehouse, name: str) -> tuple[Path, str]:
    """(directory, weights sha256) of the published `name`, its weights checked against the published hash."""
    source = warehouse.latest_checkpoint(name)
    directory = Path(source["checkpoint_dir"])
    sha = sha256_file(directory / "model.safetensors")
    if sha != source["weights_sha256"]:
        raise ValueError(f"{directory / 'model.safetensors'}: sha256 {sha[:12]} is not the published "
                         f"{source['weights_sha256'][:12]}; re-materialise {name}")
    return directory, sha


@dataclass
class QuantizeSettings:
    kinds: tuple[str, ...] = ("int8", "nf4")
    eval_tasks: int = 32  # held-out synthetic tasks for the loss delta
    speed_prompts: int = 8
    speed_new_tokens: int = 16
    qat_steps: int = 0  # > 0: also fine-tune the fp32 checkpoint this many steps with 8-bit QAT (hrm-int8-qat)
    qat_lr: float = 0.0  # 0: the source run's final learning rate (lr x min_lr_ratio)


def _measure_artifact(ckpt_dir: Path, kind: str, tok, batch, prompts, settings: QuantizeSettings,
                      fp32: dict) -> dict:
    """Quantize `ckpt_dir` into its `quantized/<kind>/` artifact, load that back and measure it."""
    from model.checkpoint import load_checkpoint, quantize_checkpoint

    t0 = time.perf_counter()
    artifact = quantize_checkpoint(ckpt_dir, kind)
    quantize_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, _ = load_checkpoint(ckpt_dir, quantization=kind, require_artifact=True)
    load_s = time.perf_counter() - t0
    r = measure(model, tok, batch, prompts, settings.speed_new_tokens)
    r["loss_delta_pct"] = round(100.0 * (r["heldout_loss"] - fp32["heldout_loss"]) / fp32["heldout_loss"], 3)
    r["bytes_ratio"] = round(r["bytes"] / fp32["bytes"], 4)
    r.update(artifact=str(artifact), artifact_bytes=(artifact / "model.safetensors").stat().st_size,
             quantize_and_save_s=round(quantize_s, 3), load_s=round(load_s, 3))
    return r


def build_quantized_models(settings: QuantizeSettings, warehouse, log=None) -> dict:
    """Quantize the HRM checkpoint (bitsandbytes int8 / nf4) into saved artifacts beside its weights
    (`quantized/<kind>/`), optionally fine-tune an 8-bit QAT copy and quantize it too, and compare each
    loaded artifact with fp32 on held-out tasks (loss, bytes, speed). Task scores come from benchmark_report."""
    from model.checkpoint import load_checkpoint

    ckpt_dir, source_sha = published_checkpoint(warehouse, "hrm_checkpoint")
    fp32, tok = load_checkpoint(ckpt_dir)
    batch, n = heldout_batch(warehouse, tok, fp32.config.max_seq_len - settings.speed_new_tokens, settings.eval_tasks)
    prompts = [row[:int(pl)].tolist() for row, pl in zip(batch["input_ids"], batch["prompt_len"])][:settings.speed_prompts]
    results = {"fp32": measure(fp32, tok, batch, prompts, settings.speed_new_tokens)}
    for kind in settings.kinds:
        results[kind] = _measure_artifact(ckpt_dir, kind, tok, batch, prompts, settings, results["fp32"])
    qat = None
    if settings.qat_steps > 0:
        run = qat_finetune(ckpt_dir, stage_shards(warehouse), warehouse.checkpoint_dir("quantized_models"),
                           warehouse.tokenizer_dir(), settings.qat_steps, settings.qat_lr, source_sha, log=log)
        qat_dir = Path(run["checkpoint_dir"])
        results["int8-qat"] = _measure_artifact(qat_dir, "int8", tok, batch, prompts, settings, results["fp32"])
        qat = {**run, "weights_sha256": sha256_file(qat_dir / "model.safetensors")}
    manifest = {"source_checkpoint": str(ckpt_dir), "source_sha256": source_sha, "kinds": list(settings.kinds),
                "qat_steps": settings.qat_steps, "qat": qat, "heldout_tasks": n, "results": results,
                "created_at": time.time(),
                "load": "model.checkpoint.load_checkpoint(source_checkpoint, quantization=<kind>) loads "
                        "source_checkpoint/quantized/<kind>/ (qat: qat.checkpoint_dir, int8)"}
    warehouse.publish_checkpoint("quantized_models", manifest)
    return manifest
