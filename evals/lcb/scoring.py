"""LiveCodeBench's four scenarios scored for a model: lcb_runner's prompts, one generation callable, the
sandboxed graders, and report result rows with lcb_runner's metric definitions.

`generate` has `evals.evaluate.complete`'s signature without the candidate:
generate(prompts, languages, task, *, max_new_tokens, n, temperature, stop, batch_size, seed) -> list[list[str]]
(n outputs per prompt). Every prompt is `prompt_text` of the scenario's lcb_runner chat messages, as for
code generation. Each function returns rows {"benchmark", "metric", "value", "n", "ci_low", "ci_high",
"problems": [{"problem", "sample", "passed", "error_kind"}]}: all under benchmark "livecodebench", one
metric per scenario, `n` the number of problems (instances) scored.
"""

from __future__ import annotations

from typing import Callable

from evals.lcb.grader import as_problem, grade_generations
from evals.lcb.metrics import mean_pass_at_k, pass_at_k
from evals.lcb.prompts import codegen_messages, prompt_text
from evals.lcb.scenarios import grade_execution, grade_test_output, self_repair_prompts
from evals.stats import breakdown_results, rate_interval

BENCHMARK = "livecodebench"
Generate = Callable[..., list[list[str]]]
# Our model's task ids: a whole program answers code generation and self-repair (lcb_runner wants the full
# fixed program in a fence, not an edit), a value answers test-output prediction and code execution.
CODE_TASK, VALUE_TASK = "codegen", "exec_predict"


def _generate(generate: Generate, prompts: list[str], task: str, s, n: int) -> list[list[str]]:
    # lcb_runner samples at temperature 0.2; one sample is greedy
    return generate(prompts, ["python"] * len(prompts), task, max_new_tokens=s.max_new_tokens, n=n,
                    temperature=0.2 if n > 1 else 0.0, stop=(), batch_size=s.batch_size, seed=s.seed)


def _row(metric: str, graded_lists: list[list[bool]], entries: list[dict], s, k: int = 1) -> dict:
    """lcb_runner's pass@k: the unbiased estimator per problem, averaged over problems; the 95 % interval is
    the bootstrap over problems (evals/stats.py)."""
    value = mean_pass_at_k(graded_lists, k) or 0.0
    low, high = rate_interval([pass_at_k(len(g), sum(g), k) for g in graded_lists], s.bootstrap_resamples, s.seed)
    return {"benchmark": BENCHMARK, "metric": metric, "value": value, "n": len(graded_lists), "ci_low": low,
            "ci_high": high, "problems": entries}


def codegen_error(code: str, passed: bool, metadata: dict) -> str:
    """Why a generation failed, from the grader's metadata ("" when it passed)."""
    if passed:
        return ""
    if not code.strip():
        return "no_code"
    error = metadata.get("error_code")
    if error in (-1, -3):  # the global limit, or one test's time limit
        return "timeout"
    if error == -2:
        return "wrong_answer"
    if error == -4:  # no test ran: the program did not load (syntax error, no such function, ...)
        return "runtime_error" if "inputs" in metadata else "compile_error"
    return "runner_error"


def _verdicts(question: dict) -> list[tuple[bool, str]]:
    """(passed, error kind) of each generation of one graded question."""
    return [(ok, codegen_error(code, ok, meta))
            for code, ok, meta in zip(question["code_list"], question["graded_list"], question["metadata"])]


def _unique(problems) -> list:
    """LcbProblems, each question once (cumulative releases repeat the earlier releases' problems)."""
    out, seen = [], set()
    for p in map(as_problem, problems):
        if p.question_id not in seen:
            seen.add(p.question_id)
            out.append(p)
    return out


def code_generation(problems, generate: Generate, sandbox, s) -> tuple[list[dict], list[dict]]:
    """pass@1, and pass@5 when s.lcb_n >= 5 (lcb_runner reports pass@k only where every problem has k
    samples), over s.lcb_n samples per problem; and the graded questions (grade_generations' output),
    which self-repair starts from."""
    problems = _unique(problems)
    if not problems:
        return [], []
    texts = _generate(generate, [prompt_text(codegen_messages(p)) for p in problems], CODE_TASK, s, s.lcb_n)
    graded = grade_generations(problems, {p.question_id: t for p, t in zip(problems, texts)}, sandbox)
    entries = [{"problem": q["question_id"], "sample": i, "passed": ok, "error_kind": why}
               for q in graded for i, (ok, why) in enumerate(_verdicts(q))]
    lists = [q["graded_list"] for q in graded]
    rows = [_row("pass@1", lists, entries, s)]
    if s.lcb_n >= 5:
        rows.append(_row("pass@5", lists, entries, s, k=5))
    difficulty = {q["question_id"]: q["difficulty"] for q in graded if q.get("difficulty")}
    rows += breakdown_results(BENCHMARK, "pass@1", entries, difficulty, resamples=s.bootstrap_resamples, seed=s.seed)
    return rows, graded


def self_repair(problems, graded: list[dict], generate: Generate, sandbox, s) -> list[dict]:
    """self_repair_pass@1: each first-attempt generation that failed is shown to the model with the
    grader's real feedback (its metadata: the failing input, the output, the expected output or the
    error) and one repair is generated (lcb_runner's self-repair runs with n = 1) and graded again. A
    generation that already passed is kept, as lcb_runner keeps its output, and counts as a pass. The
    metric is lcb_runner's pass@1 over the final programs: per problem, the share of its first-attempt
    generations whose final program passes, averaged over problems."""
    problems = _unique(problems)
    if not graded:
        return []
    plans = self_repair_prompts(problems, graded)
    todo = [p for p in plans if p["messages"] is not None]
    repaired: dict[tuple[str, int], tuple[bool, str]] = {}
    if todo:
        texts = _generate(generate, [prompt_text(p["messages"]) for p in todo], CODE_TASK, s, 1)
        by_question: dict[str, list] = {}
        for plan, text in zip(todo, texts):
            by_question.setdefault(plan["question_id"], []).append((plan["code_index"], text[0]))
        regraded = grade_generations(problems, {q: [t for _, t in items] for q, items in by_question.items()}, sandbox)
        for q in regraded:
            for (index, _), verdict in zip(by_question[q["question_id"]], _verdicts(q)):
                repaired[(q["question_id"], index)] = verdict
    first = {(q["question_id"], i): verdict for q in graded for i, verdict in enumerate(_verdicts(q))}
    entries, lists = [], {}
    for plan in plans:
        key = (plan["question_id"], plan["code_index"])
        ok, why = repaired.get(key) or first[key]
        entries.append({"problem": key[0], "sample": key[1], "passed": ok, "error_kind": why})
        lists.setdefault(key[0], []).append(ok)
    return [_row("self_repair_pass@1", list(lists.values()), entries, s)]


def test_output_prediction(problems, generate: Generate, sandbox, s) -> list[dict]:
    """test_output_pass@1 over s.lcb_n predictions per instance (lcb_runner's test_output_metrics)."""
    if not problems:
        return []
    texts = _generate(generate, [prompt_text(p.messages()) for p in problems], VALUE_TASK, s, s.lcb_n)
    graded = grade_test_output(problems, {p.instance_id: t for p, t in zip(problems, texts)}, sandbox)
    entries = [{"problem": g["instance_id"], "sample": i, "passed": ok, "error_kind": why}
               for g in graded for i, (ok, why) in enumerate(zip(g["graded_list"], g["error_list"]))]
    return [_row("test_output_pass@1", [g["graded_list"] for g in graded], entries, s)]


test_output_prediction.__test__ = False  # not a pytest test when imported into a test module


def code_execution(problems, generate: Generate, sandbox, s, cot: bool = False) -> list[dict]:
    """execution_pass@1 (execution_cot_pass@1 with chain of thought) over s.lcb_n predictions per instance,
    as lcb_runner's code_execution_metrics counts them: a prediction that contains the input expression
    is dropped, and an instance whose predictions were all dropped scores 0."""
    if not problems:
        return []
    texts = _generate(generate, [prompt_text(p.messages(cot)) for p in problems], VALUE_TASK, s, s.lcb_n)
    graded = grade_execution(problems, {p.id: t for p, t in zip(problems, texts)}, sandbox, cot=cot)
    entries = [{"problem": g["id"], "sample": i, "passed": ok, "error_kind": why}
               for g in graded for i, ok, why in zip(g["sample_list"], g["graded_list"], g["error_list"])]
    return [_row("execution_cot_pass@1" if cot else "execution_pass@1", [g["graded_list"] for g in graded], entries, s)]


def score_all(problems, test_output, execution, generate: Generate, sandbox, s) -> list[dict]:
    """Every scenario that has problems: code generation, self-repair, test-output prediction, code
    execution without and with chain of thought."""
    rows, graded = code_generation(problems, generate, sandbox, s)
    rows += self_repair(problems, graded, generate, sandbox, s)
    rows += test_output_prediction(test_output, generate, sandbox, s)
    rows += code_execution(execution, generate, sandbox, s)
    rows += code_execution(execution, generate, sandbox, s, cot=True)
    return rows
