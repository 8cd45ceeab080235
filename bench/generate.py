"""Generation benchmark: KV-cached decoding vs recomputing the whole sequence, segments and ACT (accuracy,
depth, speed) on briefly trained tiny models, and the ~100M configuration's peak RSS / weight bytes / speed
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


# -- 2. segments and ACT on a briefly trained model ------------------------------------------------
NAMES = ["total", "count", "width", "height", "left", "right", "value", "index", "score", "limit"]
OPS = [("add", "+", lambda x, y: x + y), ("subtract", "-", lambda x, y: x - y), ("multiply", "*", lambda x, y: x * y)]


def synthetic_example(rng: random.Random) -> tuple[str, str, int]:
    """A function to write (copy-like tokens) and its value at two digits (tokens that need computing);
    returns (prompt, answer, length of the answer before the value)."""
    (verb, op, value), (a, b) = rng.choice(OPS), rng.sample(NAMES, 2)
    x, y = rng.randrange(10), rng.randrange(10)
    prompt = f"# {verb} {a} and {b}; value at ({x}, {y})\n"
    code = f"def {verb}_{a}_{b}({a}, {b}):\n    return {a} {op} {b}\n# = "
    return prompt, code + f"{value(x, y)}\n", len(code)


def make_batch(examples) -> dict:
    rows, prompt_lens, hard = [], [], []
    for prompt, answer, value_at in examples:
        p = TOK.encode_prompt(prompt)
        rows.append(p + TOK.encode(answer) + [TOK.eos_id])
        prompt_lens.append(len(p))
        hard.append((len(p) - 1 + value_at, len(p) - 1 + len(answer) - 1))  # label positions of the value
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), -100)
    value = torch.zeros(len(rows), width, dtype=torch.bool)
    for r, (row, P, (a, b)) in enumerate(zip(rows, prompt_lens, hard)):
        ids[r, :len(row)] = torch.tensor(row)
        labels[r, P - 1:len(row) - 1] = torch.tensor(row[P:])
        value[r, a:b] = True
    n = len(rows)
    return {"input_ids": ids, "prompt_len": torch.tensor(prompt_lens), "labels": labels, "value_mask": value,
            "language_ids": torch.full((n,), 4), "task_ids": torch.zeros(n, dtype=torch.long)}


ACT_VARIANTS = {  # name: (ModelConfig changes, training-step multiplier)
    "segments1": ({}, 1),
    "segments1_2x_steps": ({}, 2),  # about the training FLOPs of two segments
    "segments2": ({"segments": 2}, 1),
    "segments2_act": ({"segments": 2, "act": True}, 1),
}


def _teacher_forced(model, batch, **kwargs) -> dict:
    with torch.no_grad():
        out = model({k: v for k, v in batch.items() if k != "value_mask"}, **kwargs)
    answer = batch["labels"] != -100
    right = out.logits.argmax(-1) == batch["labels"]
    value = batch["value_mask"]
    depth = out.halt_depth[answer].float().mean()
    return {"acc": round(float(right[answer].float().mean()), 4), "value_acc": round(float(right[value].float().mean()), 4),
            "value_depth": round(float(out.halt_depth[value].float().mean()), 3), "mean_depth": round(float(depth), 3)}


def _generate_exact(model, held_out, adaptive: bool) -> dict:
    exact, value_exact, stats_all, tokens, seconds = 0, 0, [], 0, 0.0
    for prompt, answer, value_at in held_out:  # batch 1: a halted token really skips its remaining passes
        stats = {}
        start = time.perf_counter()
        ids = generate_ids(model, [TOK.encode_prompt(prompt)], 4, 0, max_new_tokens=len(TOK.encode(answer)) + 1,
                           eos_id=TOK.eos_id, adaptive_depth=adaptive, stats=stats)[0]
        seconds += time.perf_counter() - start
        tokens += len(ids) + 1
        text = TOK.decode(ids)
        exact += text == answer
        value_exact += text[value_at:] == answer[value_at:]
        stats_all.append(stats)
    depth = sum(s["mean_depth"] * s["decoded_tokens"] for s in stats_all) / sum(s["decoded_tokens"] for s in stats_all)
    return {"exact": round(exact / len(held_out), 4), "value_exact": round(value_exact / len(held_out), 4),
            "mean_depth": round(depth, 3), "tokens_per_s": round(tokens / seconds, 1)}


def act_ablation(train_steps: int, eval_prompts: int, grad_passes: int, variants: list[str], seed: int = 0) -> dict:
    """Each variant trains a tiny HRM from the same seed on the same example stream; held-out scores with fixed
    depth and, for ACT, adaptive depth up to `segments` and up to twice as many segments."""
    from model.train import train_step_flops

    held_out = [synthetic_example(random.Random(10_000 + i)) for i in range(eval_prompts)]
    eval_batch = make_batch(held_out)
    result = {}
    for name in variants:
        changes, multiplier = ACT_VARIANTS[name]
        torch.manual_seed(seed)
        rng = random.Random(seed)
        config = ModelConfig.preset("tiny", vocab_size=320, hidden_size=128, max_seq_len=160, grad_passes=grad_passes,
                                    **changes)
        model = build_model(config)
        steps = train_steps * multiplier
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
        start, flops = time.perf_counter(), 0.0
        for _ in range(steps):
            batch = make_batch([synthetic_example(rng) for _ in range(16)])
            flops += train_step_flops(config, *batch["input_ids"].shape, int((batch["labels"] != -100).sum()))
            out = model({k: v for k, v in batch.items() if k != "value_mask"})
            optimizer.zero_grad()
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
        model.eval()
        row = {"config": changes, "train_steps": steps, "train_s": round(time.perf_counter() - start, 1),
               "train_gflops": round(flops / 1e9, 1), "fixed": _teacher_forced(model, eval_batch),
               "generate_fixed": _generate_exact(model, held_out, False)}
        if config.act:
            row["adaptive"] = _teacher_forced(model, eval_batch, adaptive_depth=True)
            row["generate_adaptive"] = _generate_exact(model, held_out, True)
            model.config.halt_max_segments = 2 * config.segments  # read at inference only: think longer
            row["adaptive_longer"] = _teacher_forced(model, eval_batch, adaptive_depth=True)
            row["generate_adaptive_longer"] = _generate_exact(model, held_out, True)
        result[name] = row
        print(json.dumps({name: row}), file=sys.stderr)
    return {"grad_passes": grad_passes, "eval_prompts": eval_prompts, "seed": seed, "variants": result}


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
    parser.add_argument("--grad-passes", type=int, default=2, help="k for the segments/ACT models (2 = HRM's one-step gradient)")
    parser.add_argument("--act-seed", type=int, default=0, help="training seed of the segments/ACT models")
    parser.add_argument("--act-variants", default=",".join(ACT_VARIANTS), help="comma-separated: " + ", ".join(ACT_VARIANTS))
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
        result["adaptive_depth"] = act_ablation(args.train_steps, args.eval_prompts, args.grad_passes,
                                                [v for v in args.act_variants.split(",") if v], args.act_seed)
        print(json.dumps({"adaptive_depth": result["adaptive_depth"]}), file=sys.stderr)
    if "big" in sections:
        result["100m"] = big([k for k in args.big_kinds.split(",") if k], args.big_tokens, args.prompt_tokens, args.threads)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
