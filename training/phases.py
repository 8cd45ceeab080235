"""Curriculum training: phase k trains on the shards of stages 1..k (earlier stages are rehearsed), starting
from phase k-1's weights with a fresh optimizer and learning-rate schedule.

Each phase keeps its own checkpoint directory under a run directory named by `run_fingerprint` (model
config, training config and shard contents): training again after a failure finds the same directories
and resumes (model/train.py restores weights, optimizer, RNG and sampler position); new data or config
starts a new run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from datagen.pipeline import STAGE_KEYS
from resources.warehouse import write_text_atomic

REPO_ROOT = Path(__file__).resolve().parent.parent


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stage_shards(warehouse) -> list[tuple[str, str]]:
    """(stage, shard path) for every materialised stage whose shard holds training rows, in order."""
    import pyarrow.parquet as pq

    out = []
    for stage in STAGE_KEYS:
        path = warehouse.shard_path(stage)
        if path.exists() and "train" in set(pq.read_table(path, columns=["split"]).column("split").to_pylist()):
            out.append((stage, str(path)))
    if not out:
        raise FileNotFoundError(f"no curriculum shard with training rows under {warehouse.shard_path('1').parent.parent}"
                                "; materialise curriculum_shards first")
    return out


def run_fingerprint(model_config, train_config, shards: list[tuple[str, str]]) -> str:
    doc = {"model": model_config.to_dict(), "train": train_config.to_dict(),
           "shards": [(stage, sha256_file(Path(p))) for stage, p in shards]}
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
    sampler = BalancedSampler(data, train_config.seed, train_config.language_balance, train_config.task_weights)
    state = {"step": 0, "tokens_seen": previous["tokens_seen"], "history": [], "wall_s": 0.0,
             "sampler": sampler.state_dict()}
    ckpt.save_checkpoint(new_dir, model, model_config, train_config=train_config.to_dict(), tokenizer_dir=tok_dir,
                         optimizer=optimizer, trainer_state=state)


def continue_from(parent: Path, out: Path, model_config, train_config, files: list[str], tok_dir, label: str,
                  log=None):
    """Train `train_config.max_steps` steps from `parent`'s weights with a fresh optimizer (a step-0 checkpoint
    seeded in `out` unless one is there: a killed run resumes), logging `<label> step i/n loss x`; the
    train result."""
    from model import checkpoint as ckpt
    from model.train import train

    if not ckpt.is_checkpoint(out):
        seed_phase(parent, out, model_config, train_config, files, tok_dir)

    def callback(step, metrics):
        if log:
            log(f"{label} step {step}/{train_config.max_steps} loss {metrics['loss']:.4f}")

    return train(model_config, train_config, files, out, tokenizer_dir=tok_dir, resume=True, callback=callback)


def torchrun_command(nproc: int, config_file: Path, files: list[str], out: Path, tok_dir) -> list[str]:
    """torchrun (as `python -m torch.distributed.run`) starting `python -m training.run` on `nproc` ranks."""
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "-m", "training.run",
            "--config", str(config_file), "--shards", *files, "--out", str(out), "--tokenizer", str(tok_dir)]


def run_streaming(cmd: list[str], env: dict, log=None, prefix: str = "") -> tuple[int, str]:
    """Run `cmd`, passing each line of its merged stdout/stderr to `log` as it comes; returns the exit
    status and the output's last lines (for the error message)."""
    tail: deque[str] = deque(maxlen=60)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          bufsize=1) as proc:
        for line in proc.stdout:
            tail.append(line)
            if log and line.strip():
                log(prefix + line.rstrip())
        returncode = proc.wait()
    return returncode, "".join(tail)


def torchrun_phase(nproc: int, model_config, train_config, files: list[str], out: Path, tok_dir, log=None) -> None:
    """One phase under torchrun (DDP); its configs go to `<out>.config.json` for every rank to read, and the
    ranks' output goes to `log` line by line while they train."""
    cfg_file = out.with_name(out.name + ".config.json")
    write_text_atomic(cfg_file, json.dumps({"model": model_config.to_dict(), "train": train_config.to_dict()}))
    # the ranks import this checkout's packages, whatever the caller's working directory
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)}
    returncode, tail = run_streaming(torchrun_command(nproc, cfg_file, files, out, tok_dir), env, log,
                                     prefix=f"{out.name} torchrun: ")
    if returncode != 0:
        raise RuntimeError(f"torchrun phase {out.name} failed ({returncode}): {tail[-3000:]}")


def add_training_flops(history: list[dict], phase_tokens: int, flops_before: float) -> float | None:
    """Cumulative training FLOPs after a phase, and `train_flops` (cumulative) on each of its history entries.

    The trainer logs, for each window of steps, the analytic FLOPs (model.train.train_step_flops) and the
    tokens it processed per second; their ratio is the window's FLOPs per token. The phase's FLOPs are its
    tokens times the step-weighted mean of that ratio, spread over the windows by their step counts.
    None when the history has no such window (nothing is then written)."""
    windows, previous = [], 0
    for h in history:
        if h.get("tokens_per_s") and h.get("flops_per_s") is not None and h["step"] > previous:
            windows.append((h, h["flops_per_s"] / h["tokens_per_s"], h["step"] - previous))
        previous = h["step"]
    steps = sum(w[2] for w in windows)
    if not steps:
        return None
    tokens_per_step = phase_tokens / steps
    total = flops_before
    for h, per_token, n in windows:
        total += per_token * n * tokens_per_step
        h["train_flops"] = total
    return total


def train_curriculum(model_config, train_config, shards: list[tuple[str, str]], run_dir: Path, tok_dir, *,
                     max_minutes: float = 0.0, torchrun_nproc: int = 0, log=None, on_step=None) -> dict:
    """Train phase by phase (stage 1, then 1+2, ...); returns the summary the asset reports.

    `on_step(phase, step, metrics)` runs every log_every steps (tests use it to interrupt a run)."""
    from model import checkpoint as ckpt
    from model.train import train

    start = time.monotonic()
    phases, history, stopped_early = [], [], False
    tokens_seen, train_wall, prev, flops = 0, 0.0, None, 0.0
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
            torchrun_phase(torchrun_nproc, model_config, train_config, files, out, tok_dir, log=log)
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
        phase_history = [{**h, "global_step": offset + h["step"], "phase": stage} for h in result["history"]]
        flops = add_training_flops(phase_history, result["tokens_seen"] - tokens_seen, flops) if flops is not None else None
        history += phase_history
        phases.append({"stage": stage, "steps": result["steps"], "shards": len(files), "wall_s": round(result["wall_s"], 2),
                       "resumed_from_step": result["resumed_from_step"], "dir": str(out),
                       "tokens_seen": result["tokens_seen"], "train_flops": flops})
        tokens_seen = result["tokens_seen"]
        train_wall += result["wall_s"]
        final = result["final_metrics"]
        prev = out
    return {"checkpoint_dir": str(prev), "phases": phases, "history": history, "tokens_seen": tokens_seen,
            "wall_s": round(time.monotonic() - start, 2), "train_wall_s": round(train_wall, 2),
            "tokens_per_s": round(tokens_seen / train_wall, 1) if train_wall else 0.0,
            "final_losses": {k: round(float(v), 4) for k, v in final.items() if "loss" in k},
            "stopped_early_by_time_budget": stopped_early, "train_flops": flops}
