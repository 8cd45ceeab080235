"""What the report's decoder rows cost: held-out repair answered by plain sampling and by the edit decoder,
and tool use by plain sampling and by the tool decoder, on a tiny HRM (preset `tiny`, context 256),
untrained or briefly trained on the synthetic training tasks. Plain and decoder runs alternate
(`--repeats` times) on the same loaded model and prompts. Last line: one JSON object.

    .venv/bin/python bench/eval_decoders.py --train-steps 0      # untrained: the worst case for the decoder
    .venv/bin/python bench/eval_decoders.py --train-steps 150
    .venv/bin/python bench/eval_decoders.py --polyglot-bundle ../shared/mirrors/polyglot-benchmark.bundle

With --polyglot-bundle, Polyglot's diff format on the report's default subset (`python:1,javascript:1`,
2 tries) is timed too, plainly and with the edit decoder (each run also runs the exercises' tests in the jail).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from datagen.curriculum import synthetic_examples, tokenize_examples  # noqa: E402
from datagen.swe.examples import with_workflow_example  # noqa: E402
from datagen.swe.tool_use import workflows  # noqa: E402
from datagen.synthetic import SyntheticConfig, generate_synthetic_tasks  # noqa: E402
from evals import evaluate as ev  # noqa: E402
from model import ModelConfig, build_model  # noqa: E402
from model.data import Example, collate  # noqa: E402
from model.tokenizer import train_tokenizer  # noqa: E402
from model.vocab import language_id, task_id  # noqa: E402
from resources.sandbox import Sandbox  # noqa: E402


def tool_rows() -> list[dict]:
    """Every tool-use workflow's example (not executed: the bench needs prompts and answers only)."""
    return [with_workflow_example({"workflow_id": wf.workflow_id, "task": wf.task, "language": wf.language,
                                   "steps": json.dumps([{"command": s.command} for s in wf.steps]),
                                   "files": json.dumps(sorted(wf.files))}) for wf in workflows()]


def train(model, rows: list[dict], tokenizer, steps: int, batch_size: int = 16) -> float:
    shard, _ = tokenize_examples(rows, tokenizer, model.config.max_seq_len)
    examples = [Example(r["input_ids"], r["prompt_len"], language_id(r["language"]), task_id(r["task_type"]),
                        r["edit_tags"], r["tool_label"], r["example_id"]) for r in shard]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rng, t0 = random.Random(0), time.perf_counter()
    model.train()
    for _ in range(steps):
        loss = model(collate(rng.sample(examples, min(batch_size, len(examples))))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-steps", type=int, default=0)
    ap.add_argument("--repair-tasks", type=int, default=40, help="held-out repair instances")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--polyglot-bundle", default="", help="clone source of the Polyglot benchmark")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sandbox = Sandbox(timeout_s=30, concurrency=2)
    t0 = time.perf_counter()
    tasks = generate_synthetic_tasks(sandbox, SyntheticConfig(exec_per_template=2, repair_per_template=4,
                                                              heldout_exec_tasks=1,
                                                              heldout_repair_tasks=args.repair_tasks)).tasks
    data_s = time.perf_counter() - t0
    held = [t for t in tasks if t["split"] == "test" and t["heldout"] == "instances" and t["task_type"] == "repair"]
    tools = tool_rows()
    training = synthetic_examples([t for t in tasks if t["split"] == "train"]) + [
        {**r, "tool_calls": json.loads(r["tool_calls"]) if isinstance(r["tool_calls"], str) else r["tool_calls"]}
        for r in tools]
    with tempfile.TemporaryDirectory() as tmp:
        tok = train_tokenizer([r["prompt"] + r["answer"] for r in training], 1024, tmp)
    torch.manual_seed(0)
    model = build_model(ModelConfig.preset("tiny", vocab_size=tok.vocab_size, max_seq_len=256)).eval()
    train_s = train(model, training, tok, args.train_steps) if args.train_steps else 0.0
    c = ev.Candidate("hrm", model, tok)
    s = ev.EvalSettings(synthetic_max_new_tokens=32, batch_size=64, tool_use_examples=0)
    runs = {"repair_plain": (lambda: ev.eval_synthetic(c, held, sandbox, s)[-1]),
            "repair_edit_decoder": (lambda: ev.eval_repair_edit_decoder(c, held, sandbox, s)[0]),
            "tool_plain": (lambda: ev.eval_tool_use(c, tools, s)[0]),
            "tool_tool_decoder": (lambda: ev.eval_tool_use(c, tools, s, tool_decoder=True)[0])}
    if args.polyglot_bundle:
        from evals.polyglot.pipeline import clone_benchmark, select_exercises

        checkout = Path(tempfile.mkdtemp()) / "polyglot"
        clone_benchmark(args.polyglot_bundle, checkout)
        exercises = ev.select_polyglot(select_exercises(checkout, ["python", "javascript"])[0], "python:1,javascript:1")
        ps = ev.EvalSettings(polyglot_formats=("diff",), polyglot_max_new_tokens=64)
        runs["polyglot_diff_plain"] = lambda: ev.eval_polyglot(c, exercises, sandbox, ps)[0]
        runs["polyglot_diff_edit_decoder"] = lambda: ev.eval_polyglot(c, exercises, sandbox, ps, edit_decoder=True)[0]
    times: dict[str, list[float]] = {k: [] for k in runs}
    rows = {}
    for _ in range(args.repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            rows[name] = run()
            times[name].append(round(time.perf_counter() - t0, 2))
    out = {"train_steps": args.train_steps, "train_s": round(train_s, 1), "synthetic_data_s": round(data_s, 1),
           "repair_n": len(held), "tool_n": rows["tool_plain"]["n"],
           "decoder_errors": len(c.decoder_errors) // args.repeats, "first_decoder_errors": c.decoder_errors[:2],
           **{f"{k}_s": v for k, v in times.items()},
           **{f"{k}_value": round(rows[k]["value"], 4) for k in runs},
           "repair_decoder_vs_plain": round(statistics.median(times["repair_edit_decoder"])
                                            / statistics.median(times["repair_plain"]), 2),
           "tool_decoder_vs_plain": round(statistics.median(times["tool_tool_decoder"])
                                          / statistics.median(times["tool_plain"]), 2)}
    if args.polyglot_bundle:
        out["polyglot_decoder_vs_plain"] = round(statistics.median(times["polyglot_diff_edit_decoder"])
                                                 / statistics.median(times["polyglot_diff_plain"]), 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
