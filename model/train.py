"""The training recipe, top to bottom: no Dagster, runs on CPU, one GPU, or many under torchrun (DDP).

`train(model_config, train_config, shard_files, out_dir)` trains from token shards and keeps one checkpoint
in `out_dir`, written atomically every `checkpoint_every` steps and at the end. Called again with the same
arguments it resumes from that checkpoint, and on CPU ends with weights bit-identical to a run that was
never interrupted: weights, optimizer, RNG and the sampler position are all restored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from model import checkpoint as ckpt
from model.losses import combine
from model.vocab import TASK_TYPES


@dataclass
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 8  # sequences per micro-batch on each rank
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 3e-4
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr (1.0 would make the schedule constant)
    warmup_steps: int = 100
    optimizer: str = "adamw"  # "adamw" | "adam_atan2"
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    dtype: str = "bf16"  # autocast dtype on CPU and GPU: "bf16" | "fp32"
    compile: bool = False  # torch.compile the model
    seed: int = 0
    language_balance: float = 0.5  # sampling weight per language = count ** language_balance
    # {task type: weight}: sample (language, task) groups, weight count ** language_balance x task weight
    # (1 for tasks not named); empty = sample languages only
    task_weights: dict[str, float] = field(default_factory=dict)
    split: str = "train"
    pad_to_multiple: int = 8
    fixed_length: bool = False  # pad every batch to max_seq_len (static shapes, fewer torch.compile recompiles)
    # cut each micro-batch, sorted by length, into pieces of at most this many padded tokens (0: never);
    # the same gradient with less padding. Ignored with fixed_length.
    micro_batch_tokens: int = 0
    # pack each micro-batch's examples into rows of up to max_seq_len tokens, one document each (document-aware
    # prefix-LM mask, positions restart per document); cut by micro_batch_tokens like unpacked examples
    pack: bool = False
    # a directory: the training tokens are copied there once as .npy arrays and read memory-mapped (ranks on a
    # machine share them); "" = read the shards into this process's memory
    token_cache: str = ""
    prefetch_steps: int = 1  # steps of batches built ahead in a background thread (0: build in the loop)
    checkpoint_every: int = 200
    log_every: int = 10
    eval_every: int = 0  # steps between validation-loss passes; 0 = never
    eval_batches: int = 4
    qat: bool = False  # 8-bit quantization-aware training (fake-quant in every Linear's forward)
    # HRM: one optimizer step per segment (the paper's deep supervision), each micro-batch carrying its
    # detached state to the next; false: one step per batch on the mean of its segments' losses
    segment_steps: bool = False
    wandb: bool = False  # log to Weights & Biases in offline mode, if wandb is installed
    wandb_project: str = "hrm-code"

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.validate()

    def validate(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: {why}")

        for name in ("max_steps", "batch_size", "grad_accum", "pad_to_multiple", "checkpoint_every", "log_every",
                     "eval_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(name, "must be a positive integer")
        for name in ("warmup_steps", "eval_every", "seed", "micro_batch_tokens", "prefetch_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                bad(name, "must be an integer >= 0")
        if not self.lr > 0:
            bad("lr", "must be > 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            bad("min_lr_ratio", "must be in [0, 1]")
        if self.optimizer not in ("adamw", "adam_atan2"):
            bad("optimizer", "must be 'adamw' or 'adam_atan2'")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            bad("betas", "must be two numbers in [0, 1)")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.language_balance < 0:
            bad("weight_decay" if self.weight_decay < 0 else "grad_clip" if self.grad_clip < 0 else
                "language_balance", "must be >= 0")
        if self.dtype not in ("bf16", "fp32"):
            bad("dtype", "must be 'bf16' or 'fp32'")
        if self.pack and self.fixed_length:
            bad("pack", "packs rows without padding them; it cannot be combined with fixed_length")
        if not isinstance(self.task_weights, dict) or any(
                k not in TASK_TYPES or isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0
                for k, v in self.task_weights.items()):
            bad("task_weights", f"must map task types ({', '.join(TASK_TYPES)}) to numbers >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**data)


@dataclass
class TrainResult:
    steps: int
    tokens_seen: int
    wall_s: float  # this call only
    tokens_per_s: float  # this call only
    final_metrics: dict[str, float]  # loss, per-task losses/accuracies and the model's other metrics
    loss_history: list[dict] = field(default_factory=list)  # {"step", "loss", "lr", ...} every log_every
    checkpoint_dir: str = ""
    resumed_from_step: int = 0


@dataclass
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Distributed:
    """DDP when launched by torchrun (RANK/WORLD_SIZE/LOCAL_RANK set): NCCL on GPU, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.accelerator.is_available():
        accelerator = torch.accelerator.current_accelerator()
        device = torch.device(accelerator.type, local_rank if world > 1 else torch.accelerator.current_device_index())
        if world > 1:
            torch.accelerator.set_device_index(local_rank)
    else:
        device = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world)
    return Distributed(rank, world, local_rank, device)


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type != "cpu" and hasattr(torch, device.type):
        state["device"] = getattr(torch, device.type).get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "device" in state and device.type != "cpu":
        getattr(torch, device.type).set_rng_state(state["device"], device)


def train_step_flops(config, batch_size: int, seq_len: int, answer_tokens: int) -> float:
    """Matmul FLOPs of one training forward + backward over a [batch_size, seq_len] batch with `answer_tokens`
    scored tokens, counted analytically.

    Per token and block: 2 x matmul params forward plus attention 4 x seq_len x hidden (QK^T and AV over every
    key: the prefix-LM mask does not skip work); backward costs 2 x forward. HRM runs `segments` segments of
    every module pass forward, and backward only through each segment's last grad_passes passes. The LM head
    runs on answer tokens only (the trainer asks for answer_logits_only), once per segment for HRM (deep
    supervision), forward and backward. ACT with halt_max_segments > segments adds one no-grad lookahead
    segment. Tokens that stop early under ACT still count (an upper bound: their passes are skipped only when
    the whole batch has stopped). Elementwise work and the optimizer are not counted.
    """
    d, tokens = config.hidden_size, batch_size * seq_len
    block_forward = 2 * (4 * d * d + 3 * d * config.intermediate_size) + 4 * seq_len * d
    head = 2 * d * config.vocab_size
    if config.arch == "baseline":
        return float(tokens * 3 * config.baseline_layers * block_forward + 3 * head * answer_tokens)
    passes = ([config.L_layers] * config.L_cycles + [config.H_layers]) * config.H_cycles
    segments = config.segments
    forward = segments * sum(passes) * block_forward
    backward = segments * 2 * sum(passes[len(passes) - config.grad_passes:]) * block_forward
    lookahead = sum(passes) * block_forward if config.act and config.max_segments > segments else 0
    supervision = segments * 3 * head * answer_tokens
    return float(tokens * (forward + backward + lookahead) + supervision)


def real_tokens(config, batch: dict) -> int:
    """The batch's tokens that are not padding."""
    if "doc_ids" in batch:
        return int((batch["doc_ids"] >= 0).sum())
    return int((batch["input_ids"] != config.pad_token_id).sum())


def batch_train_flops(config, batch: dict) -> float:
    """train_step_flops summed over the documents of a batch, each at its own length: padding is not useful
    work, nor is attention across the documents of a packed row, so neither is counted (the padded work
    is train_step_flops(config, *input_ids.shape, ...))."""
    answers = batch["labels"] != -100
    if "doc_ids" in batch:  # packed rows: one id per document, -1 = padding
        docs = batch["doc_ids"] + (batch["doc_ids"].max() + 1) * torch.arange(len(answers))[:, None]
        docs, answers = docs[batch["doc_ids"] >= 0], answers[batch["doc_ids"] >= 0]
        _, lengths = docs.unique_consecutive(return_counts=True)
        answer_counts = [int(a.sum()) for a in answers.split(lengths.tolist())]
        lengths = lengths.tolist()
    else:
        lengths = (batch["input_ids"] != config.pad_token_id).sum(1).tolist()
        answer_counts = answers.sum(1).tolist()
    return sum(train_step_flops(config, 1, n, a) for n, a in zip(lengths, answer_counts))


def _slot_seed(seed: int, step: int, slot: int) -> int:
    return ((seed * 1_000_003 + step) * 10_007 + slot) % (2 ** 63)


class _LossOf(torch.nn.Module):
    """Returns (loss terms, metrics, carry): DDP must see only the loss tensors, or it waits for gradients of
    outputs such as edit-head logits that a batch without edit tags never uses."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, carry=None, segments=None):
        out = self.model(batch, carry=carry, segments=segments, answer_logits_only=True)
        return out.loss_parts, out.metrics, out.carry


def step_denominators(batches: list[dict], device, world_size: int = 1) -> dict[str, torch.Tensor]:
    """What each loss term divides by over a whole optimizer step: answer tokens (LM and Q terms), tagged
    tokens (edit), labelled sequences (tool), summed over every micro-batch and, under DDP, every rank. So
    accumulated micro-batches weigh by tokens, as one batch of all of them would."""
    def count(batch: dict, key: str, labelled) -> float:
        return float(labelled(batch[key]).sum()) if key in batch else 0.0

    counts = torch.tensor([[count(b, "labels", lambda x: x != -100), count(b, "edit_tags", lambda x: x >= 0),
                            count(b, "tool_labels", lambda x: x >= 0)] for b in batches],
                          dtype=torch.float64).sum(0).to(device)
    if world_size > 1:
        torch.distributed.all_reduce(counts)
    lm, edit, tool = counts.float().unbind()
    return {"lm": lm, "q": lm, "edit": edit, "tool": tool}


def micro_batch_loss(model_config, parts: dict, denominators: dict, world_size: int = 1) -> torch.Tensor:
    """This micro-batch's share of the step's loss; DDP averages gradients over ranks, hence x world_size."""
    return combine(model_config, parts, denominators) * world_size


def _start_wandb(cfg: TrainConfig, model_config, out_dir: Path):
    if not cfg.wandb or importlib.util.find_spec("wandb") is None:
        return None
    import wandb

    return wandb.init(project=cfg.wandb_project, mode="offline", dir=str(out_dir.parent),
                      config={"model": model_config.to_dict(), "train": cfg.to_dict()})


def train(model_config, train_config: TrainConfig, shard_files: list[str], out_dir: str | Path,
          tokenizer_dir: str | Path | None = None, resume: bool = True,
          callback: Callable[[int, dict], bool | None] | None = None) -> TrainResult:
    """Train; `callback(step, metrics)` runs every log_every steps on rank 0 and may return True to stop
    early (a checkpoint is written first)."""
    from model import build_model
    from model.data import BatchStream, StepPrefetcher, load_shards, load_shards_mapped
    from model.optim import build_optimizer, lr_at

    cfg, out = train_config, Path(out_dir)
    dist = setup_distributed()
    torch.manual_seed(cfg.seed)
    model = build_model(model_config).to(dist.device)
    if cfg.qat:
        from model.quantize import enable_qat

        enable_qat(model)
    if cfg.token_cache:
        dataset = load_shards_mapped(shard_files, cfg.token_cache, cfg.split, model_config.max_seq_len,
                                     model_config.vocab_size)
    else:
        dataset = load_shards(shard_files, cfg.split, model_config.max_seq_len, model_config.vocab_size)
    validation = (load_shards(shard_files, "validation", model_config.max_seq_len, model_config.vocab_size)
                  if cfg.eval_every else None)
    stream = BatchStream(dataset, cfg.batch_size, seed=cfg.seed, language_balance=cfg.language_balance,
                         rank=dist.rank, world_size=dist.world_size, pad_id=model_config.pad_token_id,
                         pad_to_multiple=cfg.pad_to_multiple,
                         pad_to=model_config.max_seq_len if cfg.fixed_length else None,
                         task_weights=cfg.task_weights, max_tokens=cfg.micro_batch_tokens,
                         pack_to=model_config.max_seq_len if cfg.pack else 0)
    optimizer = build_optimizer(model, cfg.optimizer, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)

    state = {"step": 0, "tokens_seen": 0, "history": [], "wall_s": 0.0}
    ckpt.recover(out)
    if resume and ckpt.is_checkpoint(out) and (out / ckpt.TRAINER_STATE).is_file():
        saved = ckpt.load_model_config(out)
        if saved.to_dict() != model_config.to_dict():
            changed = sorted(k for k, v in model_config.to_dict().items() if saved.to_dict().get(k) != v)
            raise ValueError(f"{out}: holds a checkpoint of another model config (differs in {', '.join(changed)}); "
                             "resume with the same config, or pass resume=False / --no-resume, or another out dir")
        state, rng_states = ckpt.load_training_state(out, model, optimizer)
        stream.sampler.load_state_dict(state["sampler"])
        if rng_states is not None and dist.rank < len(rng_states):
            _set_rng_state(rng_states[dist.rank], dist.device)
    resumed_from, wall_before = state["step"], state["wall_s"]

    step_module: torch.nn.Module = _LossOf(model)
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        step_module = DistributedDataParallel(
            step_module, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None,
            find_unused_parameters=True)  # heads without labels in a batch get no gradient
    runner = torch.compile(step_module) if cfg.compile else step_module
    autocast = torch.autocast(device_type=dist.device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bf16")
    run = _start_wandb(cfg, model_config, out) if dist.is_main else None

    def save() -> None:
        rng_states = [_rng_state(dist.device)]
        if dist.world_size > 1:
            rng_states = [None] * dist.world_size
            torch.distributed.all_gather_object(rng_states, _rng_state(dist.device))
        if dist.is_main:
            state["sampler"] = feeder.sampler_state() if feeder else stream.sampler.state_dict()
            ckpt.save_checkpoint(out, model, model_config, train_config=cfg.to_dict(), tokenizer_dir=tokenizer_dir,
                                 optimizer=optimizer, rng_states=rng_states, trainer_state=state)
        if dist.world_size > 1:
            torch.distributed.barrier()

    model.train()
    started = time.perf_counter()
    tokens_this_call, window_tokens, window_flops, window_start = 0, 0, 0.0, time.perf_counter()
    metrics: dict[str, float] = {}
    stop = False
    feeder = (StepPrefetcher(stream, cfg.grad_accum, cfg.prefetch_steps, pin=dist.device.type == "cuda")
              if cfg.prefetch_steps and state["step"] < cfg.max_steps else None)
    try:
        while state["step"] < cfg.max_steps and not stop:
            lr = lr_at(state["step"], base_lr=cfg.lr, warmup_steps=cfg.warmup_steps, total_steps=cfg.max_steps,
                       min_lr_ratio=cfg.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            sums: dict[str, float] = {}
            counts: dict[str, int] = {}
            loss_sum, step_tokens = 0.0, 0
            cpu_batches = feeder.next() if feeder else stream.step_batches(cfg.grad_accum)
            batches = [{k: v.to(dist.device, non_blocking=True) for k, v in b.items()} for b in cpu_batches]
            for cpu_batch in cpu_batches:  # counted on the host copies: reading them off the GPU would stall the queue
                step_tokens += real_tokens(model_config, cpu_batch)
                window_flops += batch_train_flops(model_config, cpu_batch)
            denominators = step_denominators(cpu_batches, dist.device, dist.world_size)
            # segment_steps: one optimizer step per segment, each micro-batch continuing from its carry
            calls = model_config.segments if cfg.segment_steps and model_config.arch == "hrm" else 1
            carries = [None] * len(batches)
            for call in range(calls):
                for micro, batch in enumerate(batches):
                    # the model's own randomness (ACT exploration) is a function of (seed, step, global micro-batch
                    # slot): ranks differ, and 2 ranks x 1 micro-batch equal 1 rank x 2 accumulated micro-batches
                    torch.manual_seed(_slot_seed(cfg.seed, state["step"], micro * dist.world_size + dist.rank))
                    sync = micro == len(batches) - 1 or dist.world_size == 1
                    with (contextlib.nullcontext() if sync else step_module.no_sync()), autocast:
                        parts, model_metrics, carries[micro] = runner(batch, carries[micro], 1 if calls > 1 else None)
                        loss = micro_batch_loss(model_config, parts, denominators, dist.world_size)
                    loss.backward()
                    loss_sum += float(loss.detach()) / dist.world_size / calls
                    if call == calls - 1:
                        for key, value in (model_metrics or {}).items():  # per-task keys appear only when the task does
                            sums[key] = sums.get(key, 0.0) + float(value)
                            counts[key] = counts.get(key, 0) + 1
                grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0
                             else torch.zeros(()))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if dist.world_size > 1:  # report the global token count and loss; other metrics stay rank 0's
                totals = torch.tensor([float(step_tokens), loss_sum], dtype=torch.float64, device=dist.device)
                torch.distributed.all_reduce(totals)
                step_tokens, loss_sum = int(totals[0].item()), totals[1].item()
            state["step"] += 1
            state["tokens_seen"] += step_tokens
            tokens_this_call += step_tokens
            window_tokens += step_tokens
            metrics = {k: v / counts[k] for k, v in sums.items()}
            metrics.update(loss=loss_sum, lr=lr, grad_norm=float(grad_norm))
            if not math.isfinite(metrics["loss"]):
                raise FloatingPointError(f"step {state['step']}: loss is {metrics['loss']}; lower lr or check the data")

            last = state["step"] == cfg.max_steps
            if state["step"] % cfg.log_every == 0 or last:
                now = time.perf_counter()
                metrics["tokens_per_s"] = window_tokens / max(now - window_start, 1e-9)
                metrics["flops_per_s"] = window_flops * dist.world_size / max(now - window_start, 1e-9)
                window_tokens, window_flops, window_start = 0, 0.0, now
                if cfg.eval_every and state["step"] % cfg.eval_every == 0:
                    metrics.update(evaluate(model, model_config, cfg, validation, dist.device))
                state["history"].append({"step": state["step"], **metrics})
                if dist.is_main:
                    if run is not None:
                        run.log(metrics, step=state["step"])
                    if callback is not None and callback(state["step"], dict(metrics)):
                        stop = True
                if dist.world_size > 1:
                    flag = torch.tensor([int(stop)], device=dist.device)
                    torch.distributed.broadcast(flag, 0)
                    stop = bool(flag.item())
            if state["step"] % cfg.checkpoint_every == 0 or last or stop:
                state["wall_s"] = wall_before + time.perf_counter() - started
                save()
    finally:
        if feeder:
            feeder.close()

    wall = time.perf_counter() - started
    if run is not None:
        run.finish()
    return TrainResult(steps=state["step"], tokens_seen=state["tokens_seen"], wall_s=wall,
                       tokens_per_s=tokens_this_call / max(wall, 1e-9), final_metrics=metrics,
                       loss_history=list(state["history"]), checkpoint_dir=str(out), resumed_from_step=resumed_from)


@torch.no_grad()
def evaluate(model, model_config, cfg: TrainConfig, data, device) -> dict[str, float]:
    """Over eval_batches fixed batches of `data` (a TokenDataset; empty or None: {}): val_loss, the LM
    cross-entropy of the final segment per answer token (comparable across architectures: no auxiliary terms),
    val_lm_acc likewise, and val_total_loss, the mean training objective (every segment and head)."""
    from model.data import BatchStream

    if data is None or len(data) == 0:
        return {}
    # a fresh stream with a fixed seed: every evaluation sees the same batches and training RNG is untouched
    stream = BatchStream(data, cfg.batch_size, seed=12345, language_balance=cfg.language_balance,
                         pad_id=model_config.pad_token_id, pad_to_multiple=cfg.pad_to_multiple)
    was_training = model.training
    model.eval()
    total, lm_sum, acc_sum, tokens = 0.0, 0.0, 0.0, 0
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bf16"):
        for _ in range(cfg.eval_batches):
            cpu_batch = stream.next_batch()
            out = model({k: v.to(device) for k, v in cpu_batch.items()})
            n = int((cpu_batch["labels"] != -100).sum())
            total += float(out.loss)
            lm_sum += out.metrics.get("lm_loss", 0.0) * n
            acc_sum += out.metrics.get("lm_acc", 0.0) * n
            tokens += n
    model.train(was_training)
    return {"val_loss": lm_sum / max(tokens, 1), "val_lm_acc": acc_sum / max(tokens, 1),
            "val_total_loss": total / cfg.eval_batches}


def load_train_config(path: str | Path) -> TrainConfig:
    return TrainConfig.from_dict(json.loads(Path(path).read_text()))
