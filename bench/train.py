"""Training-step FLOP/s of HRM-Code and its baseline, each as a fraction of the dense matmul FLOP/s measured in
the same run at the same dtype (an MFU against this machine's measured peak, not a datasheet number).

    .venv/bin/python bench/train.py                      # small preset, bf16 autocast, 8 x 256 tokens
    .venv/bin/python bench/train.py --threads 1          # on a shared, busy CPU
    .venv/bin/python bench/train.py --preset gpu-base --batch 16 --seq 2048 --compile    # on a GPU

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
from model.data import Example, collate  # noqa: E402
from model.optim import build_optimizer  # noqa: E402
from model.train import setup_distributed, train_step_flops  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def synchronize(device: torch.device) -> None:
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def matmul_flops_per_s(n: int, dtype: torch.dtype, device: torch.device, repeats: int = 5) -> float:
    """Median FLOP/s of an n x n x n matmul: the dense peak this run's model steps are compared with."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times)


def synthetic_batch(config: ModelConfig, batch: int, seq: int, seed: int = 0) -> dict:
    """Random tokens, the first half of each row a prompt, every language and task type represented."""
    g = torch.Generator().manual_seed(seed)
    examples = []
    for row in range(batch):
        ids = torch.randint(1, config.vocab_size, (seq,), generator=g).tolist()
        examples.append(Example(ids, seq // 2, row % config.num_languages, row % config.num_task_types, [], -1,
                                f"row{row}"))
    return collate(examples, pad_id=config.pad_token_id, pad_to=seq)


def measure(config: ModelConfig, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = build_model(config).to(device)
    optimizer = build_optimizer(model, "adamw", lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    runner = torch.compile(model) if args.compile else model
    batch = {k: v.to(device) for k, v in synthetic_batch(config, args.batch, args.seq).items()}
    answer_tokens = int((batch["labels"] != -100).sum())
    flops = train_step_flops(config, args.batch, args.seq, answer_tokens)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    times = []
    for step in range(args.warmup + args.steps):
        synchronize(device)
        start = time.perf_counter()
        with autocast:
            loss = runner(batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {"params": sum(p.numel() for p in model.parameters()), "step_s": step_s,
            "tokens_per_s": args.batch * args.seq / step_s, "flops_per_step": flops, "flops_per_s": flops / step_s,
            "loss": float(loss)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="measured steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--matmul-n", type=int, default=2048, help="size of the peak-measuring matmul")
    parser.add_argument("--archs", default="hrm,baseline")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: torch's); 1 avoids OpenMP hand-off stalls on a busy shared machine")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = setup_distributed().device
    dtype = DTYPES[args.dtype]
    base = ModelConfig.preset(args.preset, max_seq_len=max(args.seq, ModelConfig.preset(args.preset).max_seq_len))
    peaks = [matmul_flops_per_s(args.matmul_n, dtype, device)]
    results = {}
    for arch in args.archs.split(","):
        config = base.with_changes(arch=arch, baseline_layers=base.baseline_layers)
        results[arch] = measure(config, args, device)
        peaks.append(matmul_flops_per_s(args.matmul_n, dtype, device))  # the machine is shared: re-measure
    peak = statistics.median(peaks)
    for arch, r in results.items():
        r["mfu"] = r["flops_per_s"] / peak
        print(f"{arch}: {r['params'] / 1e6:.2f}M params, {r['step_s'] * 1000:.0f} ms/step, "
              f"{r['flops_per_s'] / 1e9:.1f} GFLOP/s = {100 * r['mfu']:.1f}% of the {peak / 1e9:.1f} GFLOP/s "
              f"{args.dtype} matmul peak", file=sys.stderr)
    summary = {"bench": "train", "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "preset": args.preset, "batch": args.batch, "seq": args.seq, "dtype": args.dtype,
               "compile": args.compile, "matmul_n": args.matmul_n, "matmul_flops_per_s": peak,
               "matmul_flops_per_s_samples": peaks, "goal_mfu": 0.40,
               **{f"{arch}_{k}": v for arch, r in results.items() for k, v in r.items()}}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
