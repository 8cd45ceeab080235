"""Grade LiveCodeBench generations in the sandbox with lcb_runner's semantics.

Generations go to the sandbox in small batches of one problem each, which `concurrency` workers
take off a queue; each worker keeps one jail running `runner.py` for all of its batches. Inside,
every generation runs all of its problem's tests in one forked process, killed at lcb_runner's
global limit of (timeout + 1) * n_tests + 5 seconds, and everything it left behind is killed
(and its files deleted) before the next one starts. Result codes per test: True pass, -1 global
timeout (every test), -2 wrong answer, -3 time limit, -4 runtime/compile error, -5 runner error.
"""

from __future__ import annotations

import collections
import json
import math
import os
import selectors
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

from benchmarks.lcb.extraction import code_for_grading
from benchmarks.lcb.metrics import summarise
from benchmarks.lcb.records import LcbProblem, RejectedRecord, normalise_record

RUNNER_SOURCE = (Path(__file__).parent / "runner.py").read_bytes()
# stdin = "<size of runner.py>\n" + runner.py + framed batches; keeps the source out of `ps` listings.
BOOTSTRAP = ("import os\nSTREAM = os.fdopen(os.dup(0), 'rb')\nn = int(STREAM.readline())\n"
             "exec(compile(STREAM.read(n), 'lcb_runner.py', 'exec'))\n")
DEFAULT_TIMEOUT = 6
DEFAULT_MEMORY_MB = 4096  # lcb_runner's guard comment says 4 GB (it sets no limit at all)
STARTUP_SLACK_S = 2.0  # jail + interpreter start, not part of lcb_runner's budget
JAIL_CPU_S = 3600  # per-process CPU cap in a long-lived jail; every program also has its wall limit
MAX_CHUNK = 8  # generations of one problem per batch: small batches balance the workers' queues


def _framed(payload: dict | bytes) -> bytes:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return str(len(data)).encode() + b"\n" + data


class RunnerJail:
    """One jail running runner.py for as long as batches keep coming, so a worker pays for a jail
    once, not once per batch. A program that kills the runner ends the jail; the caller starts
    another."""

    def __init__(self, sandbox, memory_mb: int | None):
        from resources.sandbox import SandboxJob

        self.max_output = max(int(sandbox.max_output_bytes), 1 << 20)
        job = SandboxJob(command=["python3", "-S", "-c", BOOTSTRAP], timeout_s=JAIL_CPU_S, memory_mb=memory_mb)
        self._context = sandbox.process(job)
        self.jail = self._context.__enter__()
        self.fresh = True
        self.alive = self._send(_framed(RUNNER_SOURCE))

    def _send(self, data: bytes) -> bool:
        try:
            self.jail.proc.stdin.write(data)
            self.jail.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def grade(self, payload: bytes, limits: list[float]) -> tuple[dict[int, dict], str]:
        """Answers by position in the batch, and why any are missing ("" when none are). Each item
        gets its own limit (plus slack) from the previous answer on, so a runner that stops (a program
        can SIGSTOP it) costs one item's time, not the whole batch's."""
        slack = STARTUP_SLACK_S + len(payload) / 20e6  # the runner reads and decodes the batch first
        if self.fresh:
            slack += STARTUP_SLACK_S
            self.fresh = False
        if not (self.alive and self._send(_framed(payload))):
            self.alive = False
            return {}, f"runner died: {self.jail.stderr_tail(300).strip()}"
        deadline = time.monotonic() + limits[0] + slack
        out, answers = bytearray(), {}
        fd = self.jail.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.alive = False
                    return answers, "timeout"
                if not sel.select(timeout=left):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    self.alive = False
                    return answers, f"runner died: {self.jail.stderr_tail(300).strip()}"
                out += chunk
                if len(out) > self.max_output:
                    self.alive = False
                    return answers, "runner answered more than the output limit"
                *lines, rest = out.split(b"\n")
                out = bytearray(rest)
                for line in lines:
                    if line == b"end":
                        return answers, ""
                    answers.update(_batch_answers(line.decode("utf-8", "replace")))
                if len(answers) < len(limits):
                    deadline = time.monotonic() + limits[len(answers)] + STARTUP_SLACK_S

    def close(self) -> None:
        self._context.__exit__(None, None, None)


def plan_batches(items: list[dict], n_workers: int) -> list[list[int]]:
    """Item indices per batch, costliest first. A batch holds generations of one problem only (its
    tests travel once per batch), at most MAX_CHUNK of them, fewer when there is little work per
    worker; cost = generations x tests."""
    size = max(1, min(MAX_CHUNK, math.ceil(len(items) / max(1, 8 * n_workers))))
    groups: dict = {}
    for i, item in enumerate(items):
        groups.setdefault(item.get("shared_key", ("item", i)), []).append(i)
    chunks = []
    for indices in groups.values():
        for start in range(0, len(indices), size):
            part = indices[start:start + size]
            chunks.append((len(part) * item_tests(items[part[0]]), part))
    chunks.sort(key=lambda c: -c[0])
    return [part for _, part in chunks]


def item_tests(item: dict) -> int:
    return int(item.get("n_tests", 1))


def run_batches(sandbox, mode: str, items: list[dict], shared: dict | None = None,
                memory_mb: int | None = None, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """The runner's answer for every item (same order).

    `concurrency` workers each keep one jail (`RunnerJail`) and take the next batch off a shared
    queue as soon as they are free, so a batch stuck on time limits holds up one worker only.
    Items need `limit_s`; an item with `shared_key` gets `shared[key]` merged in inside the jail.
    When a batch's jail dies (a program killed its runner), its unanswered items are graded again,
    one per jail, and an item that dies alone is a runner error.
    """
    shared = shared or {}
    shared_json = {k: json.dumps(v) for k, v in shared.items()}  # encoded once, however many batches carry them
    queue = collections.deque(plan_batches(items, sandbox.concurrency))
    answers: list[dict] = [{}] * len(items)
    lock = threading.Lock()
    done = [0]

    def payload(indices: list[int]) -> bytes:
        keys = sorted({items[i]["shared_key"] for i in indices if "shared_key" in items[i]})
        return (f'{{"mode": {json.dumps(mode)}, "shared": {{'
                + ", ".join(f"{json.dumps(k)}: {shared_json[k]}" for k in keys)
                + f'}}, "items": {json.dumps([items[i] for i in indices])}}}').encode()

    def record(i: int, answer: dict) -> None:
        with lock:
            answers[i] = answer
            done[0] += 1
            if progress:
                progress(done[0], len(items))

    def worker() -> None:
        jail = None
        try:
            while not errors:
                with lock:
                    if not queue:
                        return
                    indices = queue.popleft()
                if jail is None:
                    jail = RunnerJail(sandbox, memory_mb)
                got, why = jail.grade(payload(indices), [float(items[i]["limit_s"]) for i in indices])
                for pos, i in enumerate(indices):
                    if pos in got:
                        record(i, got[pos])
                if not jail.alive:
                    jail.close()
                    jail = None
                missing = [i for pos, i in enumerate(indices) if pos not in got]
                if len(indices) > 1:
                    with lock:
                        queue.extendleft([i] for i in reversed(missing))
                elif missing:
                    record(missing[0], {"global_timeout": True} if why == "timeout" else {"runner_error": why})
        except BaseException as exc:  # no sandbox, say: the caller hears of it, not a runner error per item
            errors.append(exc)
        finally:
            if jail is not None:
                jail.close()

    errors: list[BaseException] = []
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, sandbox.concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
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
