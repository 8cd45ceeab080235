"""Does a training configuration learn? Train HRM and/or the baseline through the curriculum on the
materialised shards (the same code path as the checkpoint assets), then score held-out synthetic tasks
(exec exact match and repair fix rate, per template) and bits per byte of held-out code next to gzip.

    .venv/bin/python bench/learn.py --data .hrm_data --out /tmp/learn/a --arch hrm,baseline \\
        --preset cpu-default --steps-per-stage 150 --batch 16 --lr 3e-3 --max-minutes 4
    .venv/bin/python bench/learn.py ... --curve      # also score every phase checkpoint (a learning curve)
    .venv/bin/python bench/learn.py --data .hrm_data --out - --decode <checkpoint dir>,...   # decoding speed only

Nothing is published to the warehouse: checkpoints go under --out. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals.evaluate import EvalSettings, compressor_results, complete, heldout_code  # noqa: E402
from training.phases import stage_shards, train_curriculum  # noqa: E402
from training.pipeline import CheckpointSettings, build_configs, parse_task_weights, run_fingerprint  # noqa: E402


def score_synthetic(model, tok, rows: list[dict], sandbox, s: EvalSettings) -> dict:
    """Exec exact match and repair fix rate over `rows`, overall and per template."""
    from datagen.repair_grading import repair_fixed
    from datagen.synthetic import exec_answer_correct
    from evals.evaluate import Candidate

    c = Candidate("bench", model, tok)
    out: dict = {}
    for task, metric in (("exec_predict", "exec_exact_match"), ("repair", "repair_fix_rate")):
        chosen = [r for r in rows if r["task_type"] == task]
        if not chosen:
            continue
        budget = s.synthetic_max_new_tokens if task == "exec_predict" else max(s.synthetic_max_new_tokens,
                                                                               s.repair_max_new_tokens)
        texts = [t[0] for t in complete(c, [r["prompt"] for r in chosen], [r["language"] for r in chosen], task,
                                        max_new_tokens=budget, batch_size=s.batch_size)]
        if task == "exec_predict":
            ok = [exec_answer_correct(r["answer"], t) for r, t in zip(chosen, texts)]
        else:
            ok = sandbox.map(lambda rt: repair_fixed(sandbox, rt[0]["language"], rt[0]["program"], rt[1],
                                                     rt[0]["test_program"]), list(zip(chosen, texts)))
        per: dict[str, list[int]] = {}
        for r, good in zip(chosen, ok):
            per.setdefault(r["template"], []).append(int(good))
        out[metric] = round(sum(ok) / len(ok), 4)
        out[f"{metric}_n"] = len(ok)
        out[f"{metric}_by_template"] = {k: round(sum(v) / len(v), 3) for k, v in sorted(per.items())}
    out["decode_tokens_per_s"] = round(c.tokens_per_s, 1)
    return out


def score_bpb(model, tok, files, s: EvalSettings) -> dict:
    from evals.evaluate import Candidate, eval_code_bpb

    return {r["metric"]: round(r["value"], 4) for r in eval_code_bpb(Candidate("bench", model, tok), files, s)}


def score(ckpt_dir: str, suite: dict, sandbox, s: EvalSettings, splits: list[str]) -> dict:
    from model.checkpoint import load_checkpoint

    model, tok = load_checkpoint(ckpt_dir)
    t0 = time.monotonic()
    result = {split: score_synthetic(model, tok, suite[split], sandbox, s) for split in splits}
    result["bpb"] = score_bpb(model, tok, suite["code"], s)
    result["eval_s"] = round(time.monotonic() - t0, 1)
    return result


def decode_timing(ckpt_dir: str, rows: list[dict], prompts: int = 16, new_tokens: int = 32) -> dict:
    """Seconds to decode the first `prompts` held-out exec prompts greedily, `new_tokens` at most, as one batch."""
    from model.checkpoint import load_checkpoint
    from model.generate import generate_ids
    from model.vocab import language_id, task_id

    model, tok = load_checkpoint(ckpt_dir)
    chosen = [r for r in rows if r["task_type"] == "exec_predict"][:prompts]
    ids = [tok.encode_prompt(r["prompt"]) for r in chosen]
    langs = [language_id(r["language"]) for r in chosen]
    generate_ids(model, ids, langs, task_id("exec_predict"), max_new_tokens=2, eos_id=tok.eos_id)  # warm-up
    t0 = time.perf_counter()
    out = generate_ids(model, ids, langs, task_id("exec_predict"), max_new_tokens=new_tokens, eos_id=tok.eos_id)
    wall = time.perf_counter() - t0
    return {"checkpoint": ckpt_dir, "arch": model.config.arch, "prompts": len(ids), "decode_s": round(wall, 3),
            "new_tokens": sum(map(len, out))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=".hrm_data", help="the warehouse root holding shards, tokenizer, tasks")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--arch", default="hrm,baseline")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--overrides", default="{}", help="JSON of ModelConfig fields")
    p.add_argument("--steps-per-stage", type=int, default=40)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--micro-batch-tokens", type=int, default=0, help="HRM_TRAIN_MICRO_BATCH_TOKENS")
    p.add_argument("--task-weights", default="", help="task=weight,... (HRM_TRAIN_TASK_WEIGHTS)")
    p.add_argument("--max-minutes", type=float, default=0.0, help="wall budget per model, all phases")
    p.add_argument("--stages", default="", help="comma-separated stages to train on (default: every shard)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--splits", default="instances", help="held-out synthetic splits to score")
    p.add_argument("--eval-tasks", type=int, default=0, help="held-out tasks per type and split (0 = all)")
    p.add_argument("--curve", action="store_true", help="score each phase checkpoint too")
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--decode", default="", help="only time decoding with these checkpoint dirs (comma-separated)")
    args = p.parse_args(argv)

    import torch

    from resources.sandbox import Sandbox
    from resources.warehouse import Warehouse

    if args.threads:
        torch.set_num_threads(args.threads)
    warehouse = Warehouse(root=str(Path(args.data).resolve()))
    if args.decode:
        held = [r for r in warehouse.read_table("synthetic_tasks").to_pylist() if r["heldout"] == "instances"]
        print(json.dumps({"threads": torch.get_num_threads(),
                          "runs": [decode_timing(d, held) for d in args.decode.split(",")]}))
        return 0
    settings = CheckpointSettings(preset=args.preset, model_overrides=json.loads(args.overrides),
                                  steps_per_stage=args.steps_per_stage, batch_size=args.batch, lr=args.lr,
                                  micro_batch_tokens=args.micro_batch_tokens,
                                  warmup_steps=args.warmup, dtype=args.dtype, max_minutes=args.max_minutes,
                                  checkpoint_every=10 ** 6, task_weights=parse_task_weights(args.task_weights))
    shards = stage_shards(warehouse)
    if args.stages:
        shards = [s for s in shards if s[0] in args.stages.split(",")]
    s = EvalSettings(synthetic_max_new_tokens=32, batch_size=64)
    splits = [x for x in args.splits.split(",") if x]
    suite: dict = {}
    if not args.no_eval:
        held = [r for r in warehouse.read_table("synthetic_tasks").to_pylist() if r["split"] == "test"]
        for split in splits:
            rows = [r for r in held if r["heldout"] == split]
            if args.eval_tasks:
                from evals.evaluate import spread, synthetic_eval_problems

                keep = {q.problem_id for t in ("exec_output", "repair_tests")
                        for q in spread([q for q in synthetic_eval_problems(rows) if q.grading_mode == t],
                                        args.eval_tasks)}
                rows = [r for r in rows if r["task_id"] in keep]
            suite[split] = rows
        suite["code"] = heldout_code(warehouse.read_table("code_corpus").to_pylist(), s)
    sandbox = Sandbox()
    from model.tokenizer import CodeTokenizer

    vocab = CodeTokenizer.load(warehouse.tokenizer_dir()).vocab_size
    report: dict = {"args": vars(args) | {"out": str(args.out)}, "torch_threads": torch.get_num_threads(),
                    "models": {}}
    if suite.get("code"):
        report["compressors"] = {r["metric"]: round(r["value"], 4) for r in compressor_results(suite["code"], s)
                                 if r["metric"].startswith("gzip")}
    for arch in args.arch.split(","):
        model_config, train_config = build_configs(settings, arch, vocab)
        run_dir = args.out / arch / run_fingerprint(model_config, train_config, shards)
        t0 = time.monotonic()
        summary = train_curriculum(model_config, train_config, shards, run_dir, warehouse.tokenizer_dir(),
                                   max_minutes=args.max_minutes,
                                   log=lambda m: print(f"[{arch}] {m}", file=sys.stderr, flush=True))
        entry = {"params": model_config.estimated_params(), "train_wall_s": summary["train_wall_s"],
                 "wall_s": round(time.monotonic() - t0, 1), "tokens_seen": summary["tokens_seen"],
                 "tokens_per_s": summary["tokens_per_s"], "train_flops": summary["train_flops"],
                 "stopped_early": summary["stopped_early_by_time_budget"],
                 "phases": [{k: p[k] for k in ("stage", "steps", "wall_s", "tokens_seen", "train_flops")}
                            for p in summary["phases"]],
                 "final_losses": {k: v for k, v in summary["final_losses"].items()
                                  if k == "lm_loss" or k.startswith("lm_loss_")}}
        print(f"[{arch}] trained: {json.dumps(entry)}", file=sys.stderr, flush=True)
        if not args.no_eval:
            entry["final"] = score(summary["checkpoint_dir"], suite, sandbox, s, splits)
            if args.curve:
                entry["curve"] = [{"phase": ph["stage"], "train_flops": ph["train_flops"],
                                   **score(ph["dir"], suite, sandbox, s, splits)} for ph in summary["phases"][:-1]]
            print(f"[{arch}] scored: {json.dumps(entry['final'])}", file=sys.stderr, flush=True)
        report["models"][arch] = entry
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
