"""Specialists: LoRA adapters (model/lora.py) trained from the generalist checkpoint on one slice of
`training_examples` each, a language (`rust`: every task of that language) or a task type (`repair`,
`exec_predict`, `tool_use`, ...: every language's examples of that task).

Each adapter trains `steps` steps with AdamW on its slice's train split (the base weights frozen, the loss
and its token-weighted denominators those of model/train.py) and is saved alone, beside the sha256 of the
generalist's weights it was trained on, under `checkpoints/specialist_adapters/<fingerprint>/<name>/`.
`local:<generalist>+<adapter dir>` (inference/specs.py) loads it. evals/specialists.py scores it against the
generalist on its own domain.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datagen.curriculum import tokenize_examples
from datagen.schema import LANGUAGES, TASK_TYPES
from training.pipeline import published_checkpoint

# slices a specialist can be named after: languages (not "none") and task types other than plain codegen
SLICE_LANGUAGES = tuple(lang for lang in LANGUAGES if lang != "none")
SLICE_TASKS = tuple(t for t in TASK_TYPES if t != "codegen")


@dataclass
class AdapterSettings:
    specialists: tuple[str, ...] = ("rust",)  # slice names (SLICE_LANGUAGES, SLICE_TASKS)
    steps: int = 30  # optimizer steps per specialist
    rank: int = 8
    alpha: float = 16.0
    lr: float = 3e-3
    warmup_steps: int = 3
    batch_size: int = 16
    # as the generalist trains (HRM_TRAIN_PACK, HRM_TRAIN_MICRO_BATCH_TOKENS): examples packed into rows of up to
    # max_seq_len tokens, cut into micro-batches of at most this many padded tokens (0: never)
    pack: bool = True
    micro_batch_tokens: int = 2048
    seed: int = 0
    targets: tuple[str, ...] = field(default_factory=lambda: ("attn.qkv", "attn.out", "mlp.gate_up", "mlp.down"))


def slice_kind(name: str) -> str:
    """"language" or "task"; ValueError naming the slices there are."""
    if name in SLICE_LANGUAGES:
        return "language"
    if name in SLICE_TASKS:
        return "task"
    raise ValueError(f"specialist {name!r}: expected a language ({', '.join(SLICE_LANGUAGES)}) or a task type "
                     f"({', '.join(SLICE_TASKS)})")


def slice_rows(examples: list[dict], name: str, split: str = "train") -> list[dict]:
    """The training_examples rows of slice `name` in `split`."""
    key = "language" if slice_kind(name) == "language" else "task_type"
    return [r for r in examples if r[key] == name and r["split"] == split]


def slice_dataset(rows: list[dict], tokenizer, max_seq_len: int):
    """A TokenDataset of `rows` (examples longer than max_seq_len are left out, as the shards leave them)."""
    from model.data import Example, TokenDataset
    from model.vocab import language_id, task_id

    shard, _ = tokenize_examples(rows, tokenizer, max_seq_len)
    return TokenDataset.from_examples([Example(r["input_ids"], r["prompt_len"], language_id(r["language"]),
                                               task_id(r["task_type"]), r["edit_tags"], r["tool_label"],
                                               r["example_id"]) for r in shard], max_seq_len)


def train_adapter(base_dir: str | Path, dataset, out_dir: str | Path, settings: AdapterSettings, base_sha256: str,
                  metadata: dict | None = None, log=None) -> dict:
    """Train one LoRA adapter on `dataset` from the checkpoint in `base_dir`, save it to `out_dir`; a summary."""
    import torch

    from model.checkpoint import load_checkpoint
    from model.data import BatchStream
    from model.lora import LoRAConfig, add_lora, save_adapter
    from model.optim import build_optimizer, lr_at
    from model.train import micro_batch_loss, step_denominators

    if len(dataset) == 0:
        raise ValueError(f"{out_dir}: no training examples in the slice")
    torch.manual_seed(settings.seed)
    accelerated = torch.accelerator.is_available()
    model, _ = load_checkpoint(base_dir, device=torch.accelerator.current_accelerator() if accelerated else None)
    config = LoRAConfig(settings.rank, settings.alpha, tuple(settings.targets))
    wrapped = add_lora(model, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(model, "adamw", lr=settings.lr, betas=(0.9, 0.95), weight_decay=0.0)
    stream = BatchStream(dataset, settings.batch_size, seed=settings.seed, pad_id=model.config.pad_token_id,
                         max_tokens=settings.micro_batch_tokens,
                         pack_to=model.config.max_seq_len if settings.pack else 0)
    model.train()
    losses, started = [], time.perf_counter()
    for step in range(settings.steps):
        lr = lr_at(step, base_lr=settings.lr, warmup_steps=settings.warmup_steps, total_steps=settings.steps,
                   min_lr_ratio=0.1)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batches = stream.step_batches(1)
        denominators = step_denominators(batches, model.device)
        total = 0.0
        for batch in batches:
            out = model({k: v.to(model.device) for k, v in batch.items()}, answer_logits_only=True)
            loss = micro_batch_loss(model.config, out.loss_parts, denominators)
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(total, 4))
        if log and ((step + 1) % 10 == 0 or step + 1 == settings.steps):
            log(f"adapter {Path(out_dir).name} step {step + 1}/{settings.steps} loss {total:.4f}")
    wall = time.perf_counter() - started
    model.eval()
    summary = {"steps": settings.steps, "examples": len(dataset), "tokens": dataset.token_count(),
               "trainable_params": sum(p.numel() for p in trainable), "modules": len(wrapped),
               "first_loss": losses[0], "final_loss": losses[-1], "losses": losses, "train_wall_s": round(wall, 2)}
    save_adapter(out_dir, model, config, base_sha256, metadata={**(metadata or {}), **summary})
    return {**summary, "adapter_dir": str(out_dir)}


def fingerprint(base_sha256: str, settings: AdapterSettings, examples_sha256: str) -> str:
    doc = {"base": base_sha256, "settings": asdict(settings), "examples": examples_sha256}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=list).encode()).hexdigest()[:16]


def rows_sha256(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r["example_id"], r["prompt"], r["answer"], r["split"]]).encode())
    return h.hexdigest()


def train_specialists(settings: AdapterSettings, warehouse, log=None) -> dict:
    """Train every specialist of `settings` from the published hrm_checkpoint into
    checkpoints/specialist_adapters/<fingerprint>/<name>/ (an adapter already there, from the same base,
    settings and examples, is kept); the manifest: base checkpoint and hash, and per specialist its slice,
    summary and spec."""
    from model.tokenizer import CodeTokenizer

    base_dir, base_sha = published_checkpoint(warehouse, "hrm_checkpoint")
    for name in settings.specialists:
        slice_kind(name)
    examples = warehouse.read_table("training_examples").to_pylist()
    tok = CodeTokenizer.load(base_dir / "tokenizer" if (base_dir / "tokenizer").is_dir() else warehouse.tokenizer_dir())
    max_seq_len = json.loads((base_dir / "config.json").read_text())["max_seq_len"]
    run_dir = warehouse.checkpoint_dir("specialist_adapters", fingerprint(base_sha, settings, rows_sha256(examples)))
    specialists = {}
    for name in settings.specialists:
        out = run_dir / name
        rows = slice_rows(examples, name)
        done = out / "adapter.json"
        if done.is_file():
            summary = {**json.loads(done.read_text())["metadata"], "adapter_dir": str(out), "reused": True}
        else:
            dataset = slice_dataset(rows, tok, max_seq_len)
            summary = train_adapter(base_dir, dataset, out, settings, base_sha,
                                    metadata={"specialist": name, "slice": slice_kind(name)}, log=log)
        specialists[name] = {"slice": slice_kind(name), "spec": f"local:{base_dir}+{out}", **summary}
    manifest = {"base_checkpoint": str(base_dir), "base_sha256": base_sha, "run_dir": str(run_dir),
                "settings": asdict(settings), "specialists": specialists, "created_at": time.time()}
    return manifest
