"""Training-step FLOP/s of HRM-Code and its baseline as a fraction of this machine's sustained dense-matmul
peak (MFU), with the padding fraction of the batches.

The peak is measured in the same run before the steps: 50 back-to-back 2048^3 matmuls after warm-up, at each
thread count (1, 2, ... up to torch's), the best kept (model.hardware.sustained_matmul_peak); on a CPU at
bf16 and fp32 both, the step's dtype divides. On a GPU the datasheet dense bf16 peak of the detected device
is reported next to the measured one, with an MFU against each. FLOPs are analytic (model.train.
train_step_flops) over each row's own tokens: padding is not useful work and is not counted.

    .venv/bin/python bench/train.py                      # small preset, bf16 autocast, 8 rows of up to 256 tokens
    .venv/bin/python bench/train.py --pack               # the same sequences packed into rows of 256 tokens
    .venv/bin/python bench/train.py --lengths full       # every row 256 tokens (no padding)
    .venv/bin/python bench/train.py --preset gpu-100m --batch 16 --seq 2048 --compile    # on a GPU

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model import build_model  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.data import Example, collate, collate_packed, pack_rows  # noqa: E402
from model.hardware import datasheet_bf16_peak, sustained_matmul_peak, synchronize  # noqa: E402
from model.optim import build_optimizer  # noqa: E402
from model.train import batch_train_flops, real_tokens, setup_distributed  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
GOAL_MFU = {"cpu": 0.30, "cuda": 0.40}


def synthetic_batch(config: ModelConfig, batch: int, seq: int, lengths: str = "spread", seed: int = 0,
                    pack: bool = False) -> dict:
    """Random tokens, the first half of each row a prompt, every language and task type represented. lengths
    "full": every row `seq` tokens; "spread": row lengths evenly spread over [seq/4, seq], padded to the
    longest (as a batch of real examples is). pack: the same sequences packed into rows of up to `seq`
    tokens (model.data.collate_packed), as the trainer packs them with pack=True."""
    g = torch.Generator().manual_seed(seed)
    examples = []
    for row in range(batch):
        n = seq if lengths == "full" else seq // 4 + (seq - seq // 4) * (row + 1) // batch
        ids = torch.randint(1, config.vocab_size, (n,), generator=g).tolist()
        examples.append(Example(ids, n // 2, row % config.num_languages, row % config.num_task_types, [], -1,
                                f"row{row}"))
    if pack:
        return collate_packed(pack_rows(examples, seq), pad_id=config.pad_token_id)
    return collate(examples, pad_id=config.pad_token_id)


def measure(config: ModelConfig, args, device: torch.device) -> dict:
    """Median step time over the measured steps of one fixed batch."""
    torch.manual_seed(0)
    model = build_model(config).to(device)
    optimizer = build_optimizer(model, "adamw", lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    runner = torch.compile(model) if args.compile else model
    batch = synthetic_batch(config, args.batch, args.seq, args.lengths, pack=args.pack)
    flops = batch_train_flops(config, batch)
    tokens = real_tokens(config, batch)
    batch = {k: v.to(device) for k, v in batch.items()}
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    walls, cpus = [], []
    for step in range(args.warmup + args.steps):
        synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        with autocast:
            loss = runner(batch, answer_logits_only=args.logits == "answer").loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if step >= args.warmup:
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    step_s = statistics.median(walls)
    return {"params": sum(p.numel() for p in model.parameters()), "step_s": step_s,
            "step_cpu_s": statistics.median(cpus), "tokens_per_s": tokens / step_s, "flops_per_step": flops,
            "flops_per_s": flops / step_s, "step_s_samples": [round(w, 4) for w in walls], "loss": float(loss.detach())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--lengths", choices=["spread", "full"], default="spread",
                        help="row lengths: spread over [seq/4, seq] and padded (default), or all seq")
    parser.add_argument("--pack", action="store_true", help="pack the rows' sequences into rows of up to --seq "
                        "tokens, one document each (the trainer's pack=True)")
    parser.add_argument("--logits", choices=["answer", "all"], default="answer",
                        help="LM head on the answer tokens only, as the trainer runs it (default), or on every "
                             "position (the FLOPs still count answer tokens only: the extra work is waste)")
    parser.add_argument("--steps", type=int, default=5, help="measured steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--matmul-n", type=int, default=2048, help="size of the peak-measuring matmuls")
    parser.add_argument("--matmul-iters", type=int, default=50, help="back-to-back matmuls timed for the peak")
    parser.add_argument("--archs", default="hrm,baseline")
    parser.add_argument("--attention", choices=["sdpa", "flex"], default="sdpa",
                        help="attention of the training forward (flex: FlexAttention block masks, for GPUs)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the training steps "
                        "(default: torch's); the peak is the best of 1 .. this many")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = setup_distributed().device
    base = ModelConfig.preset(args.preset, max_seq_len=max(args.seq, ModelConfig.preset(args.preset).max_seq_len),
                              attention=args.attention)
    dtypes = ["bf16", "fp32"] if device.type == "cpu" else [args.dtype]
    peaks = {d: sustained_matmul_peak(DTYPES[d], device, args.matmul_n, args.matmul_iters) for d in dtypes}
    peak = peaks[args.dtype]
    sample = synthetic_batch(base, args.batch, args.seq, args.lengths, pack=args.pack)
    padding = 1 - real_tokens(base, sample) / sample["input_ids"].numel()
    summary = {"bench": "train", "device": str(device), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "preset": args.preset, "batch": args.batch, "seq": args.seq,
               "lengths": args.lengths, "pack": args.pack, "attention": args.attention, "logits": args.logits,
               "rows": int(sample["input_ids"].shape[0]), "padded_seq": int(sample["input_ids"].shape[1]),
               "padding_fraction": round(padding, 4), "dtype": args.dtype, "compile": args.compile,
               "peak_flops_per_s": peak.flops_per_s, "peak_method": peak.method, "peak_threads": peak.threads,
               **{f"peak_{d}": p.to_dict() for d, p in peaks.items()},
               "goal_mfu": GOAL_MFU.get(device.type)}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        summary.update(device_name=name, datasheet_peak_flops_per_s=datasheet_bf16_peak(name))
    print(f"peak: {peak.flops_per_s / 1e9:.0f} GFLOP/s {args.dtype} ({peak.method}, {peak.threads or 'GPU'} "
          f"threads); padding {100 * padding:.1f}% of the batch", file=sys.stderr)
    for arch in args.archs.split(","):
        r = measure(base.with_changes(arch=arch, baseline_layers=base.baseline_layers), args, device)
        r["mfu"] = r["flops_per_s"] / peak.flops_per_s
        if summary.get("datasheet_peak_flops_per_s"):
            r["mfu_datasheet"] = r["flops_per_s"] / summary["datasheet_peak_flops_per_s"]
        summary.update({f"{arch}_{k}": v for k, v in r.items()})
        print(f"{arch}: {r['params'] / 1e6:.2f}M params, {r['step_s'] * 1000:.0f} ms/step, "
              f"{r['flops_per_s'] / 1e9:.1f} GFLOP/s of non-padding work; MFU {100 * r['mfu']:.1f}% of the "
              f"sustained {args.dtype} peak", file=sys.stderr)
    print(json.dumps(summary))
    return summary

if __name__ == "__main__":
    main()
