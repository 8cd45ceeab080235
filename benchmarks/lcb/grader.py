"""Grade LiveCodeBench generations in the sandbox with lcb_runner's semantics.

Generations go to the sandbox in batches, about four per worker (`runner.py` in one jail per
batch, `concurrency` jails at once). Inside, every generation runs all of its problem's tests in one forked process,
killed at lcb_runner's global limit of (timeout + 1) * n_tests + 5 seconds, and everything it
left behind is killed before the next one starts. Result codes per test: True pass, -1 global
timeout (every test), -2 wrong answer, -3 time limit, -4 runtime/compile error, -5 runner error.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Callable, Iterable, Mapping

from benchmarks.lcb.extraction import code_for_grading
from benchmarks.lcb.metrics import summarise
from benchmarks.lcb.records import LcbProblem, RejectedRecord, normalise_record

RUNNER_SOURCE = (Path(__file__).parent / "runner.py").read_bytes()
# stdin = "<size of runner.py>\n" + runner.py + batch JSON; keeps the source out of `ps` listings.
BOOTSTRAP = ("import sys\ndata = sys.stdin.buffer.read()\nn = data.index(b'\\n')\nend = n + 1 + int(data[:n])\n"
             "BATCH = data[end:]\nexec(compile(data[n + 1:end], 'lcb_runner.py', 'exec'))\n")
DEFAULT_TIMEOUT = 6
DEFAULT_MEMORY_MB = 4096  # lcb_runner's guard comment says 4 GB (it sets no limit at all)
STARTUP_SLACK_S = 2.0  # jail + interpreter start, not part of lcb_runner's budget


def runner_job(payload: dict | bytes, timeout_s: float, memory_mb: int | None = None):
    """A SandboxJob that runs the in-jail runner on `payload` (a dict or its JSON bytes)."""
    from resources.sandbox import SandboxJob

    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    stdin = str(len(RUNNER_SOURCE)).encode() + b"\n" + RUNNER_SOURCE + data
    return SandboxJob(command=["python3", "-S", "-c", BOOTSTRAP], stdin=stdin, timeout_s=timeout_s,
                      memory_mb=memory_mb)


# A jail start-up costs ~0.1-0.25 s; about four batches per worker keeps that small and the tail short.
MAX_BATCH = 64
BATCHES_PER_WORKER = 4
MAX_BATCH_BYTES = 256 << 20  # real LCB tests run to megabytes per problem; a jail holds them all in memory


def plan_batches(items: list[dict], shared_json: dict[str, str], n_workers: int) -> list[list[int]]:
    """Item indices per batch. A problem's generations stay together (its tests travel once) unless
    it has more than a batch's worth; problems go to the least-loaded batch, costliest first, with
    cost = generations x (tests + kilobytes of test data / 10)."""
    size = max(1, min(MAX_BATCH, math.ceil(len(items) / max(1, BATCHES_PER_WORKER * n_workers))))
    total_bytes = sum(len(v) for v in shared_json.values())
    n_batches = max(math.ceil(len(items) / size), math.ceil(total_bytes / MAX_BATCH_BYTES), 1)
    groups: dict = {}
    for i, item in enumerate(items):
        groups.setdefault(item.get("shared_key", ("item", i)), []).append(i)
    chunks = []
    for key, indices in groups.items():
        weight = 1 + len(shared_json.get(key, "")) / 10_000 + item_tests(items[indices[0]])
        for start in range(0, len(indices), size):
            part = indices[start:start + size]
            chunks.append((len(part) * weight, part))
    chunks.sort(key=lambda c: -c[0])
    loads = [0.0] * min(n_batches, len(chunks))
    batches: list[list[int]] = [[] for _ in loads]
    for cost, part in chunks:
        b = loads.index(min(loads))
        loads[b] += cost
        batches[b].extend(part)
    order = sorted(range(len(batches)), key=lambda b: -loads[b])  # heaviest first: the shortest tail
    return [sorted(batches[b]) for b in order if batches[b]]


def item_tests(item: dict) -> int:
    return int(item.get("n_tests", 1))


def run_batches(sandbox, mode: str, items: list[dict], shared: dict | None = None,
                memory_mb: int | None = None, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """The runner's answer for every item (same order), graded `concurrency` batches at a time.

    Items need `limit_s`; an item with `shared_key` gets `shared[key]` merged in inside the jail, so
    a problem's tests travel once per batch. Items whose jail died are retried one per jail.
    """
    shared = shared or {}
    shared_json = {k: json.dumps(v) for k, v in shared.items()}  # encoded once, however many batches carry them
    batches = plan_batches(items, shared_json, sandbox.concurrency)
    done, lock = [0], threading.Lock()

    def run(indices: list[int]) -> list[tuple[int, dict]]:
        keys = sorted({items[i]["shared_key"] for i in indices if "shared_key" in items[i]})
        payload = (f'{{"mode": {json.dumps(mode)}, "shared": {{'
                   + ", ".join(f"{json.dumps(k)}: {shared_json[k]}" for k in keys)
                   + f'}}, "items": {json.dumps([items[i] for i in indices])}}}').encode()
        limit = sum(float(items[i]["limit_s"]) for i in indices) + STARTUP_SLACK_S
        result = sandbox.run_job(runner_job(payload, limit, memory_mb))
        answers = _batch_answers(result.stdout)
        out = []
        for pos, i in enumerate(indices):
            if pos in answers:
                out.append((i, answers[pos]))
            elif len(indices) > 1:
                out.extend(run([i]))  # its batch died (a program killed the runner): alone this time
                continue
            else:
                status = f"sandbox status {result.status}, exit code {result.exit_code}: {result.stderr[-300:].strip()}"
                out.append((i, {"global_timeout": True} if result.status == "timeout" else {"runner_error": status}))
            if progress:
                with lock:
                    done[0] += 1
                    progress(done[0], len(items))
        return out

    answers: list[dict] = [{}] * len(items)
    for chunk in sandbox.map(run, batches):
        for i, answer in chunk:
            answers[i] = answer
    return answers


def _batch_answers(stdout: str) -> dict[int, dict]:
    answers = {}
    for line in stdout.splitlines():
        index, _, text = line.partition("\t")
        if index.isdigit():
            try:
                answers[int(index)] = json.loads(text)
            except ValueError:
                pass
    return answers


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


def interpret(answer: dict, n_tests: int) -> tuple[list, dict]:
    """(per-test results, metadata) from the runner's answer for one generation."""
    if answer.get("global_timeout"):
        return [-1] * n_tests, {"error_code": -1, "error_message": "Global timeout"}
    if "runner_error" in answer or "results" not in answer:
        return [-5], {"error_code": -5, "error_message": "TestRunnerError",
                      "error": answer.get("runner_error", "no result")}
    return answer["results"], answer.get("metadata", {})


def global_limit_s(timeout: int, n_tests: int) -> float:
    """lcb_runner's per-generation limit: (timeout + 1) * n_tests + 5 seconds."""
    return (timeout + 1) * n_tests + 5


def grade_generations(problems: Iterable, generations, sandbox, timeout: int = DEFAULT_TIMEOUT,
                      memory_mb: int | None = DEFAULT_MEMORY_MB, extract: str = "auto",
                      progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Grade every generation; one result dict per question that has generations.

    Each result: question_id, platform, difficulty, contest_date, code_list (what ran),
    graded_list (one bool per generation), results (per-test codes per generation), metadata
    (per generation), wall_s (seconds each generation's process ran; None where its jail died)
    and pass@1 for the question.
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
    work = [(qid, code_for_grading(code, extract)) for qid, codes in gens.items() for code in codes]
    shared = {qid: by_id[qid].evaluation_sample() for qid in gens}
    n_tests = {qid: len(s["inputs"]) for qid, s in shared.items()}
    items = [{"shared_key": qid, "code": code, "timeout": int(timeout), "n_tests": n_tests[qid],
              "limit_s": global_limit_s(timeout, n_tests[qid])} for qid, code in work]
    answers = run_batches(sandbox, "lcb", items, shared, memory_mb, progress)
    graded = [interpret(a, n_tests[qid]) for (qid, _), a in zip(work, answers)]
    per_question: dict[str, list] = {qid: [] for qid in gens}
    for item, g, answer in zip(work, graded, answers):
        per_question[item[0]].append((item[1], g, answer.get("wall_s")))
    questions = []
    for qid, mine in per_question.items():
        prob = by_id[qid]
        results = [g[0] for _, g, _ in mine]
        graded_list = [all(r > 0 for r in res) for res in results]  # lcb_runner: correct iff every result > 0
        questions.append({
            "question_id": qid, "platform": prob.platform, "difficulty": prob.difficulty,
            "testtype": prob.testtype, "contest_date": prob.contest_date, "code_list": [code for code, _, _ in mine],
            "graded_list": graded_list, "results": results, "metadata": [g[1] for _, g, _ in mine],
            "wall_s": [wall for _, _, wall in mine],
            "pass@1": sum(graded_list) / len(graded_list) if graded_list else 0.0,
        })
    return questions


def evaluate(problems: Iterable, generations, sandbox, ks=(1, 5), **options) -> dict:
    """pass@k summary plus per-question results (the `hrm lcb grade` output)."""
    questions = grade_generations(problems, generations, sandbox, **options)
    return {**summarise(questions, ks), "timeout": options.get("timeout", DEFAULT_TIMEOUT), "questions": questions}
