"""Where a training step's time goes: torch.profiler over a few steps of bench/train.py's batch, each op's
self time put in one category (matmuls, attention, norms, optimizer, loss, elementwise, host syncs), and the
time to build the batch (data) timed apart.

    .venv/bin/python bench/profile_train.py                  # HRM, small preset, packed rows, bf16
    .venv/bin/python bench/profile_train.py --arch baseline --no-pack

The last line is one JSON object: seconds and share per category, per step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train import synthetic_batch  # noqa: E402  (bench/train.py)

from model import build_model  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.optim import build_optimizer  # noqa: E402

# the first category whose name part occurs in an op's name takes its self time
CATEGORIES = (
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention")),
    ("matmuls", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("norms", ("rms_norm", "layer_norm", "aten::rsqrt")),
    ("optimizer", ("optimizer", "_foreach", "addcdiv", "lerp", "aten::sqrt", "clip_grad", "linalg_vector_norm")),
    ("loss", ("log_softmax", "nll_loss", "cross_entropy", "argmax", "binary_cross_entropy")),
    ("host syncs", ("aten::item", "_local_scalar_dense", "aten::nonzero", "aten::is_nonzero")),
)


def category(name: str) -> str:
    lowered = name.lower()
    for label, parts in CATEGORIES:
        if any(p.lower() in lowered for p in parts):
            return label
    return "elementwise and other"


def main(argv: list[str] | None = None) -> dict:
    from torch.profiler import ProfilerActivity, profile

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--arch", default="hrm")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--no-pack", dest="pack", action="store_false")
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args(argv)

    config = ModelConfig.preset(args.preset, arch=args.arch)
    torch.manual_seed(0)
    model = build_model(config).train()
    optimizer = build_optimizer(model, "adamw", lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    t0 = time.perf_counter()
    batch = synthetic_batch(config, args.batch, args.seq, pack=args.pack)
    data_s = time.perf_counter() - t0

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(batch, answer_logits_only=True).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    wall = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    wall = (time.perf_counter() - wall) / args.steps
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        label = category(event.key)
        totals[label] = totals.get(label, 0.0) + event.self_cpu_time_total / 1e6 / args.steps
    totals["data (batch build)"] = data_s
    busy = sum(totals.values())
    print(f"{args.arch}, {args.preset}, {'packed' if args.pack else 'padded'}: {wall * 1000:.0f} ms per profiled "
          f"step ({busy * 1000:.0f} ms of op self time, summed over threads' ops)", file=sys.stderr)
    for label, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {label:24s} {seconds * 1000:8.1f} ms  {100 * seconds / busy:5.1f} %", file=sys.stderr)
    out = {"bench": "profile_train", "preset": args.preset, "arch": args.arch, "pack": args.pack,
           "threads": torch.get_num_threads(), "step_wall_s": round(wall, 4),
           "seconds_per_step": {k: round(v, 5) for k, v in totals.items()},
           "share": {k: round(v / busy, 4) for k, v in totals.items()}}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
