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


class Timer:
    """Wall and process-CPU seconds of a block. On a shared machine, CPU time leaves out the time other
    people's processes held the cores (exact for one thread; with more, spinning threads count too)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        synchronize(self.device)
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        synchronize(self.device)
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


class MatmulPeak:
    """Dense n x n x n matmul at the benchmark's dtype: the peak each training step is compared with."""

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device):
        self.n, self.device = n, device
        self.a = torch.randn(n, n, dtype=dtype, device=device)
        self.b = torch.randn(n, n, dtype=dtype, device=device)
        self.a @ self.b

    def sample(self) -> tuple[float, float]:
        """(FLOP/s by wall time, FLOP/s by CPU time) of one matmul."""
        with Timer(self.device) as t:
            self.a @ self.b
        flops = 2 * self.n ** 3
        return flops / t.wall, flops / max(t.cpu, 1e-9)


def synthetic_batch(config: ModelConfig, batch: int, seq: int, seed: int = 0) -> dict:
    """Random tokens, the first half of each row a prompt, every language and task type represented."""
    g = torch.Generator().manual_seed(seed)
    examples = []
    for row in range(batch):
        ids = torch.randint(1, config.vocab_size, (seq,), generator=g).tolist()
        examples.append(Example(ids, seq // 2, row % config.num_languages, row % config.num_task_types, [], -1,
                                f"row{row}"))
    return collate(examples, pad_id=config.pad_token_id, pad_to=seq)


def measure(config: ModelConfig, args, device: torch.device, peak: MatmulPeak) -> dict:
    """Median over measured steps; each step's FLOP/s is divided by a peak sample taken just before it, so
    a change in the machine's load affects both sides of the ratio alike."""
    torch.manual_seed(0)
    model = build_model(config).to(device)
    optimizer = build_optimizer(model, "adamw", lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    runner = torch.compile(model) if args.compile else model
    batch = {k: v.to(device) for k, v in synthetic_batch(config, args.batch, args.seq).items()}
    answer_tokens = int((batch["labels"] != -100).sum())
    flops = train_step_flops(config, args.batch, args.seq, answer_tokens)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    walls, cpus, ratios, cpu_ratios, peaks = [], [], [], [], []
    for step in range(args.warmup + args.steps):
        peak_wall, peak_cpu = peak.sample()
        with Timer(device) as t:
            with autocast:
                loss = runner(batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if step >= args.warmup:
            walls.append(t.wall)
            cpus.append(t.cpu)
            peaks.append(peak_wall)
            ratios.append(flops / t.wall / peak_wall)
            cpu_ratios.append(flops / max(t.cpu, 1e-9) / peak_cpu)
    step_s = statistics.median(walls)
    return {"params": sum(p.numel() for p in model.parameters()), "step_s": step_s,
            "step_cpu_s": statistics.median(cpus), "tokens_per_s": args.batch * args.seq / step_s,
            "flops_per_step": flops, "flops_per_s": flops / step_s, "matmul_flops_per_s": statistics.median(peaks),
            "mfu": statistics.median(ratios), "mfu_cpu_time": statistics.median(cpu_ratios),
            "mfu_samples": [round(r, 4) for r in ratios], "loss": float(loss)}


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
    base = ModelConfig.preset(args.preset, max_seq_len=max(args.seq, ModelConfig.preset(args.preset).max_seq_len))
    peak = MatmulPeak(args.matmul_n, DTYPES[args.dtype], device)
    results = {}
    for arch in args.archs.split(","):
        results[arch] = measure(base.with_changes(arch=arch, baseline_layers=base.baseline_layers), args, device, peak)
        r = results[arch]
        print(f"{arch}: {r['params'] / 1e6:.2f}M params, {r['step_s'] * 1000:.0f} ms/step, "
              f"{r['flops_per_s'] / 1e9:.1f} GFLOP/s; MFU {100 * r['mfu']:.1f}% of the {args.dtype} matmul peak "
              f"(~{r['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s), {100 * r['mfu_cpu_time']:.1f}% by CPU time",
              file=sys.stderr)
    summary = {"bench": "train", "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "preset": args.preset, "batch": args.batch, "seq": args.seq, "dtype": args.dtype,
               "compile": args.compile, "matmul_n": args.matmul_n, "goal_mfu": 0.40,
               **{f"{arch}_{k}": v for arch, r in results.items() for k, v in r.items()}}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
