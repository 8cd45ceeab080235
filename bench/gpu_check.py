"""The one-GPU check (bench/gpu_check.sh runs it): each section's figures are written to --out as soon as it
ends, so a time limit keeps what finished.

Sections: device (name, datasheet and measured bf16 peak), cache (bf16 cached greedy decoding against full
recompute), flex (FlexAttention loss and gradients against SDPA), mfu (bench/train.py on the 100M preset,
packed, compiled), train (a short run of the gpu-100m recipe on byte-level shards of this repository's
source: does the loss fall), torchrun (the same trainer under torchrun on every GPU present, NCCL).

    .venv/bin/python bench/gpu_check.py --out /tmp/gpu_check.json                 # on a GPU
    .venv/bin/python bench/gpu_check.py --out /tmp/check.json --quick             # a CPU smoke run, tiny sizes

The last line printed is the JSON object of every section.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from model import build_model  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.hardware import datasheet_bf16_peak, sustained_matmul_peak  # noqa: E402


def device_section(device: torch.device, quick: bool) -> dict:
    peak = sustained_matmul_peak(torch.bfloat16, device, n=1024 if quick else 8192, iters=5 if quick else 50)
    out = {"device": str(device), "torch": torch.__version__, "measured_bf16_peak": peak.to_dict()}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        out.update(name=name, gpus=torch.cuda.device_count(), datasheet_bf16_peak=datasheet_bf16_peak(name))
    return out


def cache_section(device: torch.device, quick: bool) -> dict:
    """Greedy tokens from the KV-cached decoder against a full forward per step, with bf16 weights."""
    from model.generate import generate_ids

    config = ModelConfig.preset("tiny" if quick else "gpu-100m")
    torch.manual_seed(0)
    model = build_model(config).to(device=device, dtype=torch.bfloat16).eval()
    prompts = torch.randint(5, config.vocab_size, (4, 64)).tolist()
    steps = 16
    cached = generate_ids(model, prompts, 1, 1, max_new_tokens=steps, adaptive_depth=False)
    equal, max_diff = 0, 0.0
    with torch.no_grad():
        for prompt, new in zip(prompts, cached):
            seq = list(prompt)
            for step in range(len(new)):
                ids = torch.tensor([seq], device=device)
                batch = {"input_ids": ids, "prompt_len": torch.tensor([len(prompt)], device=device),
                         "language_ids": torch.tensor([1], device=device), "task_ids": torch.tensor([1], device=device)}
                logits = model(batch).logits[0, -1].float()
                top = int(logits.argmax())
                max_diff = max(max_diff, float(logits.max() - logits[new[step]]))
                equal += top == new[step]
                seq.append(new[step])  # follow the cached path, so each step compares like with like
    total = sum(len(n) for n in cached)
    return {"tokens": total, "full_recompute_agrees": equal / max(total, 1),
            "max_logit_gap_of_cached_choice": round(max_diff, 4)}


def flex_section(device: torch.device, quick: bool) -> dict:
    """Loss and gradients of one packed batch with SDPA and with FlexAttention (compiled on a GPU)."""
    from model.data import Example, collate_packed, pack_rows

    config = ModelConfig.preset("tiny" if quick else "small", max_seq_len=512)
    g = torch.Generator().manual_seed(0)
    examples = [Example(torch.randint(5, config.vocab_size, (n,), generator=g).tolist(), n // 3, 1, 2, [], -1, str(n))
                for n in (300, 120, 64, 200, 90, 400, 33)]
    batch = {k: v.to(device) for k, v in collate_packed(pack_rows(examples, 512)).items()}
    results = {}
    for attention in ("sdpa", "flex"):
        torch.manual_seed(0)
        model = build_model(config.with_changes(attention=attention)).to(device).train()
        runner = torch.compile(model) if device.type == "cuda" and attention == "flex" else model
        with torch.no_grad() if device.type == "cpu" else torch.enable_grad():  # no flex backward on CPU
            loss = runner(batch, answer_logits_only=True).loss
        grads = None
        if loss.requires_grad:
            loss.backward()
            grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[attention] = (float(loss), grads)
    out = {"sdpa_loss": results["sdpa"][0], "flex_loss": results["flex"][0]}
    if results["flex"][1] is not None:
        a, b = results["sdpa"][1], results["flex"][1]
        out["grad_relative_difference"] = float((a - b).norm() / a.norm())
    return out


def mfu_section(quick: bool) -> dict:
    import train as bench_train  # bench/train.py

    argv = (["--preset", "tiny", "--batch", "4", "--seq", "128", "--steps", "2", "--warmup", "1",
             "--matmul-n", "256", "--matmul-iters", "5"] if quick else
            ["--preset", "gpu-100m", "--batch", "16", "--seq", "2048", "--steps", "10", "--warmup", "3",
             "--matmul-n", "8192", "--compile", "--attention", "flex"])
    return bench_train.main(argv + ["--pack"])


def code_shards(directory: Path, seq: int, vocab: int) -> list[str]:
    """This repository's Python source as byte-level training rows (id = byte + 3), a short prompt each."""
    from model.data import write_shard

    rows = []
    for path in sorted(ROOT.glob("*/*.py")):
        data = path.read_bytes()
        for start in range(0, len(data), seq):
            ids = [3 + b for b in data[start:start + seq] if 3 + b < vocab]
            if len(ids) > 16:
                rows.append({"input_ids": ids, "prompt_len": 8, "language": "python", "task_type": "codegen",
                             "edit_tags": [], "tool_label": -1, "split": "train",
                             "example_id": f"{path.name}:{start}"})
    directory.mkdir(parents=True, exist_ok=True)
    return [write_shard(str(directory / "code.parquet"), rows)]


def train_section(work: Path, quick: bool) -> dict:
    from model.train import TrainConfig, train

    model_config = ModelConfig.preset("tiny" if quick else "gpu-100m", attention="sdpa" if quick else "flex")
    steps = 20 if quick else 300
    train_config = TrainConfig(max_steps=steps, batch_size=4 if quick else 16, lr=3e-3 if quick else 6e-4,
                               warmup_steps=5 if quick else 30, dtype="bf16", compile=not quick, pack=True,
                               micro_batch_tokens=0, checkpoint_every=steps, log_every=5 if quick else 25)
    files = code_shards(work / "shards", model_config.max_seq_len, model_config.vocab_size)
    t0 = time.perf_counter()
    result = train(model_config, train_config, files, work / "run")
    history = [(h["step"], round(h["loss"], 4)) for h in result.loss_history] if result.loss_history else []
    first, last = history[0][1], history[-1][1]
    return {"steps": steps, "wall_s": round(time.perf_counter() - t0, 1), "tokens": result.tokens_seen,
            "first_logged_loss": first, "last_loss": last, "loss_fell": last < first, "loss_curve": history}


def torchrun_section(work: Path, quick: bool) -> dict:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    nproc = max(gpus, 1) if not quick else 2
    recipe = {"model": {"preset": "tiny" if quick else "gpu-100m"},
              "train": {"max_steps": 10, "batch_size": 4, "lr": 1e-3, "warmup_steps": 2, "dtype": "bf16",
                        "pack": True, "checkpoint_every": 10, "log_every": 5}}
    config = work / "torchrun.json"
    config.write_text(json.dumps(recipe))
    shards = code_shards(work / "shards", 256, 512 if quick else 32768)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "training.run", "--config", str(config), "--shards", *shards, "--out", str(work / "ddp")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = {"nproc": nproc, "rc": proc.returncode, "wall_s": round(time.perf_counter() - t0, 1)}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        summary = json.loads(lines[-1])
        out.update(steps=summary.get("steps"), tokens=summary.get("tokens_seen"))
    else:
        out["stderr_tail"] = proc.stderr[-1500:]
    if gpus:  # an NCCL collective even with one GPU (a 1-process world trains without a process group)
        probe = ("import torch, torch.distributed as d; d.init_process_group('nccl'); "
                 "t = torch.ones(1, device='cuda'); d.all_reduce(t); print(int(t.item())); d.destroy_process_group()")
        p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            f"--nproc_per_node={gpus}", "-c", probe], capture_output=True, text=True, timeout=120)
        out["nccl_all_reduce"] = p.stdout.split()[-1] if p.returncode == 0 and p.stdout.split() else p.stderr[-500:]
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="JSON file rewritten after every section")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a CPU smoke run of the script itself)")
    p.add_argument("--sections", default="device,cache,flex,mfu,train,torchrun")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results: dict = {"bench": "gpu_check", "quick": args.quick}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sections = {"device": lambda: device_section(device, args.quick),
                    "cache": lambda: cache_section(device, args.quick),
                    "flex": lambda: flex_section(device, args.quick),
                    "mfu": lambda: mfu_section(args.quick),
                    "train": lambda: train_section(work, args.quick),
                    "torchrun": lambda: torchrun_section(work, args.quick)}
        for name in args.sections.split(","):
            t0 = time.perf_counter()
            try:
                results[name] = sections[name]()
            except Exception as exc:  # one failed section must not hide the others' figures
                results[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-1500:]}
            results[name]["section_s"] = round(time.perf_counter() - t0, 1)
            args.out.write_text(json.dumps(results))
            print(f"{name}: {json.dumps(results[name])[:400]}", file=sys.stderr, flush=True)
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
