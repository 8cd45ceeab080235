"""Grade LiveCodeBench generations in the sandbox with lcb_runner's semantics.

Each generation is one jailed `python3` running `runner.py` over all of its problem's tests; the
sandbox runs `concurrency` of them at once and kills a generation at lcb_runner's global limit of
(timeout + 1) * n_tests + 5 seconds. Result codes per test: True pass, -1 global timeout (every
test), -2 wrong answer, -3 time limit, -4 runtime/compile error, -5 runner error.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, Iterable, Mapping

from benchmarks.lcb.extraction import code_for_grading
from benchmarks.lcb.metrics import summarise
from benchmarks.lcb.records import LcbProblem, RejectedRecord, normalise_record

RUNNER_SOURCE = (Path(__file__).parent / "runner.py").read_text()
DEFAULT_TIMEOUT = 6
DEFAULT_MEMORY_MB = 4096  # lcb_runner's guard comment says 4 GB (it sets no limit at all)
STARTUP_SLACK_S = 2.0  # jail + interpreter start, not part of lcb_runner's budget


def runner_job(payload: dict, timeout_s: float, memory_mb: int | None = None):
    """A SandboxJob that runs the in-jail runner on `payload`."""
    from resources.sandbox import SandboxJob

    return SandboxJob(command=["python3", "-S", "-c", RUNNER_SOURCE], stdin=json.dumps(payload).encode(),
                      timeout_s=timeout_s, memory_mb=memory_mb)


def runner_answer(result) -> dict | None:
    """The runner's JSON answer (last JSON line of stdout), or None when the process gave none."""
    for line in reversed(result.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def as_problem(problem) -> LcbProblem:
    """Accept an LcbProblem, a normalised table row, a raw code_generation_lite record or an EvalProblem."""
    if isinstance(problem, LcbProblem):
        return problem
    if hasattr(problem, "grading_mode"):  # EvalProblem from to_eval_problems()
        sample = json.loads(problem.hidden_tests["input_output.json"])
        tests = [{"input": i, "output": o, "testtype": "functional" if sample["fn_name"] else "stdin"}
                 for i, o in zip(sample["inputs"], sample["outputs"])]
        meta = problem.metadata
        return LcbProblem(question_id=problem.problem_id, question_title=meta.get("question_title", ""),
                          question_content=problem.prompt, platform=meta.get("platform", ""),
                          contest_id=meta.get("contest_id", ""), contest_date=problem.date or "",
                          difficulty=meta.get("difficulty", ""), starter_code=meta.get("starter_code", ""),
                          private_tests=tests, func_name=sample["fn_name"])
    if isinstance(problem, Mapping) and "public_test_cases" in problem:
        try:
            return normalise_record(dict(problem))
        except RejectedRecord as exc:
            raise ValueError(f"problem {problem.get('question_id')!r}: {exc.reason}") from None
    if isinstance(problem, Mapping):
        return LcbProblem.from_row(dict(problem))
    raise TypeError(f"cannot grade against a {type(problem).__name__}")


def generations_by_question(generations) -> dict[str, list[str]]:
    """lcb_runner's custom format [{question_id, code_list}] or {question_id: [code, ...]}."""
    if isinstance(generations, Mapping):
        return {str(k): list(v) for k, v in generations.items()}
    out: dict[str, list[str]] = {}
    for i, item in enumerate(generations):
        if not isinstance(item, Mapping) or "question_id" not in item or "code_list" not in item:
            raise ValueError(f"generation #{i} lacks question_id/code_list (lcb_runner's custom format)")
        codes = item["code_list"]
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise ValueError(f"generation #{i} ({item['question_id']}): code_list must be a list of strings")
        out.setdefault(str(item["question_id"]), []).extend(codes)
    return out


def grade_one(problem: LcbProblem, code: str, sandbox, timeout: int = DEFAULT_TIMEOUT,
              memory_mb: int | None = DEFAULT_MEMORY_MB) -> tuple[list, dict]:
    """(per-test results, metadata) for one extracted program."""
    sample = problem.evaluation_sample()
    n = len(sample["inputs"])
    payload = {"mode": "lcb", "code": code, "timeout": int(timeout), **sample}
    result = sandbox.run_job(runner_job(payload, (timeout + 1) * n + 5 + STARTUP_SLACK_S, memory_mb))
    return interpret(result, n)


def interpret(result, n_tests: int) -> tuple[list, dict]:
    if result.status == "timeout":
        return [-1] * n_tests, {"error_code": -1, "error_message": "Global timeout"}
    answer = runner_answer(result)
    if answer is None or "runner_error" in answer:
        why = (answer or {}).get("runner_error") or (
            f"sandbox status {result.status}, exit code {result.exit_code}: {result.stderr[-300:].strip()}")
        return [-5], {"error_code": -5, "error_message": "TestRunnerError", "error": why}
    return answer["results"], answer.get("metadata", {})


def grade_generations(problems: Iterable, generations, sandbox, timeout: int = DEFAULT_TIMEOUT,
                      memory_mb: int | None = DEFAULT_MEMORY_MB, extract: str = "auto",
                      progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Grade every generation; one result dict per question that has generations.

    Each result: question_id, platform, difficulty, contest_date, code_list (what ran),
    graded_list (one bool per generation), results (per-test codes per generation), metadata
    (per generation) and pass@1 for the question.
    """
    by_id = {}
    for p in problems:
        prob = as_problem(p)
        by_id[prob.question_id] = prob
    gens = generations_by_question(generations)
    unknown = sorted(set(gens) - set(by_id))
    if unknown:
        raise ValueError(f"generations for unknown question ids: {', '.join(unknown[:10])}"
                         f"{' ...' if len(unknown) > 10 else ''}")
    work = [(qid, i, code_for_grading(code, extract)) for qid, codes in gens.items() for i, code in enumerate(codes)]
    done, lock = [0], threading.Lock()

    def grade(item):
        qid, _, code = item
        graded = grade_one(by_id[qid], code, sandbox, timeout, memory_mb)
        if progress:
            with lock:
                done[0] += 1
                progress(done[0], len(work))
        return graded

    graded = sandbox.map(grade, work)
    per_question: dict[str, list] = {qid: [] for qid in gens}
    for item, g in zip(work, graded):
        per_question[item[0]].append((item[2], g))
    questions = []
    for qid, mine in per_question.items():
        prob = by_id[qid]
        results = [g[0] for _, g in mine]
        graded_list = [all(r > 0 for r in res) for res in results]  # lcb_runner: correct iff every result > 0
        questions.append({
            "question_id": qid, "platform": prob.platform, "difficulty": prob.difficulty,
            "contest_date": prob.contest_date, "code_list": [code for code, _ in mine],
            "graded_list": graded_list, "results": results, "metadata": [g[1] for _, g in mine],
            "pass@1": sum(graded_list) / len(graded_list) if graded_list else 0.0,
        })
    return questions


def evaluate(problems: Iterable, generations, sandbox, ks=(1, 5), **options) -> dict:
    """pass@k summary plus per-question results (the `hrm lcb grade` output)."""
    questions = grade_generations(problems, generations, sandbox, **options)
    return {**summarise(questions, ks), "timeout": options.get("timeout", DEFAULT_TIMEOUT), "questions": questions}
