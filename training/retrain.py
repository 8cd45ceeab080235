"""Retraining that retrains (the weekly job): continue the published checkpoint of `name` for a number of steps
on every current curriculum shard, from its weights with a fresh optimizer and schedule, into a new run
directory. The result is a challenger: it is not published here; the champion/challenger gate
(evals/gate.py) decides whether `latest` moves to it.

The run directory's fingerprint holds the parent's weights hash, the steps, the training config and the
shards' contents, so a retrain never resumes a finished run of another parent or other data. Each
completed attempt from the same parent on the same data counts up the attempt number, which is added to the
seed: a challenger the gate refused is not simply trained again, identically, the next week. An attempt that
was killed is resumed.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from resources.warehouse import content_hash, write_text_atomic
from training.phases import add_training_flops, continue_from, sha256_file, stage_shards
from training.pipeline import CheckpointSettings, build_configs
from training.plots import loss_curve_png

DONE = "challenger.json"  # written last in an attempt's run directory


def retrain_fingerprint(parent_sha: str, steps: int, train_config, shards: list[tuple[str, str]]) -> str:
    doc = {"parent": parent_sha, "steps": steps, "train": {**train_config.to_dict(), "seed": None},
           "shards": [(stage, sha256_file(Path(p))) for stage, p in shards]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def next_attempt(base: Path) -> tuple[int, Path]:
    """The first attempt directory `<base>-<n>` that has not finished (an interrupted one is resumed)."""
    n = 0
    while (base.with_name(f"{base.name}-{n}") / DONE).exists():
        n += 1
    return n, base.with_name(f"{base.name}-{n}")


def check_tokenizer(parent_dir: Path, tok_dir: Path) -> None:
    """The shards are tokenized with the warehouse's current tokenizer; the parent must have been trained with
    the same one, or its token ids mean something else."""
    from model.checkpoint import TOKENIZER_DIR

    theirs = parent_dir / TOKENIZER_DIR
    if theirs.is_dir() and content_hash([theirs], theirs) != content_hash([tok_dir], tok_dir):
        raise ValueError(f"{parent_dir}: trained with another tokenizer than the current {tok_dir}; continued "
                         "training would read different token ids: train from scratch (materialise the "
                         "checkpoint without retrain_steps)")


def continue_training(settings: CheckpointSettings, warehouse, name: str, steps: int, log=None) -> dict:
    """Train the published `name` `steps` more steps; returns the challenger's summary (the keys
    `train_checkpoint` publishes, plus `parent_sha256`, `retrain_steps` and `attempt`)."""
    from model import checkpoint as ckpt

    if steps <= 0:
        raise ValueError(f"retrain steps must be positive, got {steps}")
    champion = warehouse.latest_checkpoint(name)
    parent = Path(champion["checkpoint_dir"])
    tok_dir = warehouse.tokenizer_dir()
    check_tokenizer(parent, tok_dir)
    model_config = ckpt.load_model_config(parent)
    _, train_config = build_configs(settings, champion["arch"], model_config.vocab_size)
    train_config.max_steps = steps
    shards = stage_shards(warehouse)
    files = [p for _, p in shards]
    fingerprint = retrain_fingerprint(champion["weights_sha256"], steps, train_config, shards)
    base = warehouse.checkpoint_dir(name, f"retrain-{fingerprint}")
    attempt, run_dir = next_attempt(base)
    train_config.seed = settings.seed + attempt
    out = run_dir / "continued"
    start = time.monotonic()
    r = continue_from(parent, out, model_config, train_config, files, tok_dir, f"{name} retrain", log)
    history = [{**h, "global_step": h["step"], "phase": "retrain"} for h in r.loss_history]
    before = champion.get("train_flops")
    flops = add_training_flops(history, r.tokens_seen - int(champion.get("tokens_seen") or 0), before) \
        if before is not None else None
    final = r.final_metrics or (r.loss_history[-1] if r.loss_history else {})
    png = loss_curve_png(history, f"{name} retrain of {champion['weights_sha256'][:12]} ({steps} steps)")
    (run_dir / "loss_curve.png").write_bytes(png)
    summary = {
        **{k: champion[k] for k in ("name", "arch", "params", "model_config") if k in champion},
        "checkpoint_dir": str(out), "run_dir": str(run_dir), "parent_sha256": champion["weights_sha256"],
        "parent_checkpoint_dir": str(parent), "retrain_steps": steps, "attempt": attempt,
        "weights_sha256": sha256_file(out / ckpt.WEIGHTS), "weights_bytes": (out / ckpt.WEIGHTS).stat().st_size,
        "phases": [*champion.get("phases", []), {
            "stage": f"retrain-{attempt}", "steps": r.steps, "shards": len(files), "wall_s": round(r.wall_s, 2),
            "resumed_from_step": r.resumed_from_step, "dir": str(out), "tokens_seen": r.tokens_seen,
            "train_flops": flops}],
        "tokens_seen": r.tokens_seen, "train_flops": flops, "wall_s": round(time.monotonic() - start, 2),
        "train_wall_s": round(r.wall_s, 2), "tokens_per_s": round(r.tokens_per_s, 1),
        "final_losses": {k: round(float(v), 4) for k, v in final.items() if "loss" in k},
        "stopped_early_by_time_budget": r.steps < steps, "loss_curve": str(run_dir / "loss_curve.png"),
        "created_at": time.time(),
    }
    write_text_atomic(run_dir / DONE, json.dumps(summary, indent=1))
    return {**summary, "history": history, "loss_curve_png": png}
