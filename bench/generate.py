"""Generation benchmark: KV-cached decoding vs recomputing the whole sequence, adaptive-depth compute saved
and accuracy change on a briefly trained model, and the ~100M configuration's peak RSS / weight bytes / speed
in fp32, int8 and nf4 (each in a fresh process so peak RSS is its own). Last line: one JSON object.

    .venv/bin/python bench/generate.py                 # full run (several minutes on 2 cores)
    .venv/bin/python bench/generate.py --quick         # smaller numbers, for a smoke test
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from model import ModelConfig, build_model  # noqa: E402
from model.generate import generate_ids  # noqa: E402
from model.tokenizer import ByteTokenizer  # noqa: E402


TOK = ByteTokenizer()


# -- 1. KV caches vs recomputing the sequence ------------------------------------------------------
@torch.no_grad()
def recompute_decode(model, prompt: list[int], new_tokens: int) -> list[int]:
    """Greedy decoding without reusing anything: every token reruns the whole sequence (prefix-LM)."""
    lang, task = torch.tensor([4]), torch.tensor([0])
    seq = list(prompt)
    for _ in range(new_tokens):
        cache = model.new_cache(1, len(seq))
        logits = model.step(torch.tensor([prompt]), cache, lang, task, prompt=True, last_logits_only=True).logits
        if len(seq) > len(prompt):
            logits = model.step(torch.tensor([seq[len(prompt):]]), cache, lang, task, last_logits_only=True).logits
        seq.append(int(logits[0, -1].argmax()))
    return seq[len(prompt):]


def kv_speed(preset: str, prompt_tokens: int, new_tokens: int) -> dict:
    torch.manual_seed(0)
    model = build_model(ModelConfig.preset(preset)).eval()
    prompt = torch.randint(3, model.config.vocab_size, (prompt_tokens,)).tolist()
    generate_ids(model, [prompt], 4, 0, max_new_tokens=8, adaptive_depth=False)  # warm-up
    cached_runs = []  # (wall s, cpu s); CPU time is what a shared, overloaded machine does not inflate
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        cached = generate_ids(model, [prompt], 4, 0, max_new_tokens=new_tokens, adaptive_depth=False)[0]
        cached_runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    cached_s, cached_cpu = (statistics.median(r[i] for r in cached_runs) for i in (0, 1))
    wall, cpu = time.perf_counter(), time.process_time()
    recomputed = recompute_decode(model, prompt, new_tokens)
    recompute_s, recompute_cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"config": preset, "params": model.num_parameters(), "prompt_tokens": prompt_tokens,
            "new_tokens": new_tokens, "cached_tokens_per_s": round(new_tokens / cached_s, 2),
            "recompute_tokens_per_s": round(new_tokens / recompute_s, 2),
            "kv_speedup": round(recompute_s / cached_s, 2),
            "cached_tokens_per_cpu_s": round(new_tokens / cached_cpu, 2),
            "recompute_tokens_per_cpu_s": round(new_tokens / recompute_cpu, 2),
            "kv_speedup_cpu_time": round(recompute_cpu / cached_cpu, 2),
            "load_average": round(os.getloadavg()[0], 1),
            "greedy_tokens_agree": sum(a == b for a, b in zip(cached, recomputed)) / new_tokens}


# -- 2. adaptive depth on a briefly trained model --------------------------------------------------
NAMES = ["total", "count", "width", "height", "left", "right", "value", "index", "score", "limit"]
OPS = [("add", "+"), ("subtract", "-"), ("multiply", "*"), ("divide", "/"), ("mod", "%"), ("power", "**")]


def synthetic_example(rng: random.Random) -> tuple[str, str]:
    (verb, op), (a, b) = rng.choice(OPS), rng.sample(NAMES, 2)
    prompt = f"# {verb} {a} and {b}\n"
    answer = f"def {verb}_{a}_{b}({a}, {b}):\n    return {a} {op} {b}\n"
    return prompt, answer


def make_batch(examples) -> dict:
    rows, prompt_lens = [], []
    for prompt, answer in examples:
        p = TOK.encode_prompt(prompt)
        rows.append(p + TOK.encode(answer) + [TOK.eos_id])
        prompt_lens.append(len(p))
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), -100)
    for r, (row, P) in enumerate(zip(rows, prompt_lens)):
        ids[r, :len(row)] = torch.tensor(row)
        labels[r, P - 1:len(row) - 1] = torch.tensor(row[P:])
    n = len(rows)
    return {"input_ids": ids, "prompt_len": torch.tensor(prompt_lens), "labels": labels,
            "language_ids": torch.full((n,), 4), "task_ids": torch.zeros(n, dtype=torch.long)}


def adaptive_depth(train_steps: int, eval_prompts: int, halt_threshold: float, grad_passes: int) -> dict:
    torch.manual_seed(0)
    rng = random.Random(0)
    config = ModelConfig.preset("tiny", vocab_size=320, hidden_size=128, max_seq_len=160, grad_passes=grad_passes)
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=train_steps, pct_start=0.1)
    start = time.perf_counter()
    for _ in range(train_steps):
        out = model(make_batch([synthetic_example(rng) for _ in range(16)]))
        optimizer.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    train_s = time.perf_counter() - start
    model.eval()
    held_out = [synthetic_example(random.Random(10_000 + i)) for i in range(eval_prompts)]
    batch = make_batch(held_out)
    with torch.no_grad():
        full = model(batch)
    sweep = {}
    for threshold in (0.5, 0.7, 0.9, 0.97):
        model.config.halt_threshold = threshold  # read at inference only
        with torch.no_grad():
            m = model(batch, adaptive_depth=True).metrics
        sweep[str(threshold)] = {"acc": round(m["lm_acc"], 4), "compute_saved": round(1 - m["mean_depth"] / config.H_cycles, 4)}
    model.config.halt_threshold = halt_threshold
    with torch.no_grad():
        act = model(batch, adaptive_depth=True)
    result = {"train_steps": train_steps, "grad_passes": grad_passes, "halt_threshold": halt_threshold, "threshold_sweep": sweep, "train_s": round(train_s, 1), "train_metrics": {k: round(v, 4) for k, v in out.metrics.items()},
              "teacher_forced_acc_full": round(full.metrics["lm_acc"], 4),
              "teacher_forced_acc_adaptive": round(act.metrics["lm_acc"], 4),
              "teacher_forced_compute_saved": round(1 - act.metrics["mean_depth"] / config.H_cycles, 4)}
    for mode, flag in (("full", False), ("adaptive", True)):
        exact, stats_all, tokens, seconds = 0, [], 0, 0.0
        for prompt, answer in held_out:  # batch 1: a halted token really skips its remaining passes
            stats = {}
            start = time.perf_counter()
            ids = generate_ids(model, [TOK.encode_prompt(prompt)], 4, 0, max_new_tokens=len(TOK.encode(answer)) + 1,
                               eos_id=TOK.eos_id, adaptive_depth=flag, stats=stats)[0]
            seconds += time.perf_counter() - start
            tokens += len(ids) + 1
            exact += TOK.decode(ids) == answer
            stats_all.append(stats)
        depth = sum(s["mean_depth"] * s["decoded_tokens"] for s in stats_all) / sum(s["decoded_tokens"] for s in stats_all)
        result[f"generate_exact_{mode}"] = round(exact / len(held_out), 4)
        result[f"generate_tokens_per_s_{mode}"] = round(tokens / seconds, 1)
        result[f"generate_compute_saved_{mode}"] = round(1 - depth / config.H_cycles, 4)
    result["accuracy_change"] = round(result["teacher_forced_acc_adaptive"] - result["teacher_forced_acc_full"], 4)
    result["exact_change"] = round(result["generate_exact_adaptive"] - result["generate_exact_full"], 4)
    return result


# -- 3. the ~100M configuration: weights and peak RSS, one process per precision ---------------------
def weight_bytes(model) -> int:
    """Parameters and buffers, plus bitsandbytes' per-row / per-block scales kept beside the weights."""
    total = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    for module in model.modules():
        weight = getattr(module, "weight", None)
        for stat in (getattr(weight, "SCB", None), getattr(getattr(module, "state", None), "SCB", None)):
            if isinstance(stat, torch.Tensor):
                total += stat.numel() * stat.element_size()
        state = getattr(weight, "quant_state", None)
        if state is not None:
            total += state.absmax.numel() * state.absmax.element_size()
    return total


def big_child(kind: str, new_tokens: int, prompt_tokens: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(ModelConfig.preset("100m")).eval()
    params = model.num_parameters()
    if kind != "fp32":
        from model.quantize import quantize_model

        quantize_model(model, kind, skip=("q_head", "heads.edit", "heads.tool"))  # 1- and 10-wide heads stay fp32
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand the freed fp32 weights back to the OS
    build_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) so generation's own peak is measured
    prompt = torch.randint(3, model.config.vocab_size, (prompt_tokens,)).tolist()
    generate_ids(model, [prompt], 4, 0, max_new_tokens=2, adaptive_depth=False)
    start = time.perf_counter()
    out = generate_ids(model, [prompt], 4, 0, max_new_tokens=new_tokens, adaptive_depth=False)[0]
    seconds = time.perf_counter() - start
    return {"params": params, "weight_mb": round(weight_bytes(model) / 2**20, 1),
            "tokens_per_s": round(len(out) / seconds, 2), "new_tokens": len(out),
            "peak_rss_generate_mb": round(_vm_hwm_mb(), 1), "peak_rss_with_fp32_build_mb": round(build_peak_mb, 1),
            "tokens": out[:32]}


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def big(kinds: list[str], new_tokens: int, prompt_tokens: int, threads: int) -> dict:
    result = {}
    for kind in kinds:
        proc = subprocess.run([sys.executable, __file__, "--child", kind, "--big-tokens", str(new_tokens),
                               "--prompt-tokens", str(prompt_tokens), "--threads", str(threads)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            result[kind] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
            continue
        result[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    if "fp32" in result and "weight_mb" in result["fp32"]:
        for kind in kinds:
            if kind != "fp32" and "weight_mb" in result[kind]:
                result[kind]["weight_ratio_vs_fp32"] = round(result[kind]["weight_mb"] / result["fp32"]["weight_mb"], 3)
                agree = sum(a == b for a, b in zip(result[kind]["tokens"], result["fp32"]["tokens"]))
                result[kind]["greedy_agree_first32_vs_fp32"] = agree / max(len(result["fp32"]["tokens"]), 1)
    for r in result.values():
        r.pop("tokens", None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small", help="preset for the KV-cache speed test")
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--eval-prompts", type=int, default=48)
    parser.add_argument("--big-tokens", type=int, default=128, help="tokens generated by the ~100M config")
    parser.add_argument("--big-kinds", default="fp32,int8,nf4")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--halt-threshold", type=float, default=0.9)
    parser.add_argument("--grad-passes", type=int, default=6, help="k for the adaptive-depth model (6 = all passes)")
    parser.add_argument("--sections", default="kv,act,big")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(big_child(args.child, args.big_tokens, args.prompt_tokens, args.threads)))
        return
    if args.quick:
        args.new_tokens, args.train_steps, args.eval_prompts, args.big_tokens = 64, 60, 8, 8
    torch.set_num_threads(args.threads)
    result = {"threads": args.threads, "torch": torch.__version__}
    t0 = time.perf_counter()
    sections = args.sections.split(",")
    if "kv" in sections:
        result["kv_cache"] = kv_speed(args.config, args.prompt_tokens, args.new_tokens)
        print(json.dumps({"kv_cache": result["kv_cache"]}), file=sys.stderr)
    if "act" in sections:
        result["adaptive_depth"] = adaptive_depth(args.train_steps, args.eval_prompts, args.halt_threshold,
                                                  args.grad_passes)
        print(json.dumps({"adaptive_depth": result["adaptive_depth"]}), file=sys.stderr)
    if "big" in sections:
        result["100m"] = big([k for k in args.big_kinds.split(",") if k], args.big_tokens, args.prompt_tokens, args.threads)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
