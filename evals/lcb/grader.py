"""Grade LiveCodeBench generations in the sandbox with lcb_runner's semantics, judged on the host.

Generations go to the sandbox in small batches of one problem each, which `concurrency` workers
take off a queue; each worker keeps one jail running `jail_runner.py` for all of its batches. The jail
gets a problem's code and inputs, never its expected outputs: every generation runs its tests in
its own process there, and each test's raw result (stdout text or returned value, as plain data)
comes back here, where `LcbJudge` compares it as lcb_runner does and stops the program at the first
failure. The process is killed at lcb_runner's global limit of (timeout + 1) * n_tests + 5 seconds,
and everything it left behind is killed (and /work, /tmp restored) before the next one starts.
Result codes per test: True pass, -1 global timeout (every test), -2 wrong answer, -3 time limit,
-4 runtime/compile error, -5 runner error (including anything malformed a process sent).
"""

from __future__ import annotations

import collections
import json
import math
import os
import selectors
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterable, Mapping

from evals.lcb.extraction import code_for_grading
from evals.lcb.metrics import summarise
from evals.lcb.records import LcbProblem, RejectedRecord, normalise_record
from evals.lcb.jail_runner import MAX_MESSAGE, Malformed, Opaque, decode_message, decode_value, lcb_json, lcb_text

RUNNER_SOURCE = (Path(__file__).parent / "jail_runner.py").read_bytes()
# stdin = "<size of jail_runner.py>\n" + jail_runner.py + frames; keeps the source out of `ps` listings. The runner
# keeps its compiled code to start HumanEval candidate processes from it.
BOOTSTRAP = ("import os\nb = b''\nwhile not b.endswith(b'\\n'):\n    b += os.read(0, 1) or os._exit(1)\n"
             "n = int(b)\ns = b''\nwhile len(s) < n:\n    s += os.read(0, n - len(s)) or os._exit(1)\n"
             "_RUNNER_CODE = compile(s, 'lcb_runner.py', 'exec')\nexec(_RUNNER_CODE)\n")
DEFAULT_TIMEOUT = 6
DEFAULT_MEMORY_MB = 4096  # lcb_runner's guard comment says 4 GB (it sets no limit at all)
STARTUP_SLACK_S = 2.0  # jail + interpreter start, not part of lcb_runner's budget
JAIL_CPU_S = 3600  # per-process CPU cap in a long-lived jail; every program also has its wall limit
MAX_CHUNK = 8  # generations of one problem per batch: small batches balance the workers' queues
MAX_LINE = MAX_MESSAGE + 4096  # the runner never relays a longer line


def _framed(payload: dict | bytes) -> bytes:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return str(len(data)).encode() + b"\n" + data


class Judge:
    """Turns one item's messages (relayed from its process in the jail) into its answer, on the host.

    `read` gets each decoded message and returns the answer once it is decided (None until then); the
    runner is then told to stop the process. Anything a process sends that no honest one would (bad
    JSON, wrong types, results out of order) makes the answer a runner error for that item only.
    """

    def __init__(self):
        self.decided: dict | None = None

    def take(self, raw: bytes) -> bool:
        """Read one relayed message; True once the answer is decided."""
        if self.decided is None:
            try:
                self.decided = self.read(decode_message(raw))
            except Exception as exc:  # whatever a forged message breaks: this item's runner error only
                self.decided = {"runner_error": f"malformed answer: {type(exc).__name__}: {str(exc)[:300]}"}
        return self.decided is not None

    def read(self, message: dict) -> dict | None:
        raise NotImplementedError

    def stop_early(self) -> bool:
        """Whether the decided item's process should be stopped rather than left to finish."""
        return False

    def end(self, ended: dict) -> dict:
        """The answer, given how the process ended (runner's {"timeout"/"stopped"/"error", "status", "wall_s"})."""
        if self.decided is not None:
            answer = self.decided
        elif ended.get("timeout"):
            answer = {"global_timeout": True}
        else:
            answer = {"runner_error": ended.get("error") or
                      f"process ended without a result (wait status {ended.get('status')})"}
        return {**answer, "wall_s": ended.get("wall_s")}


class AnswerJudge(Judge):
    """One message per item: {"result": text}, {"value": plain data} or {"runner_error": text}."""

    def read(self, message: dict) -> dict:
        if len(message) == 1:
            (key, body), = message.items()
            if key in ("result", "runner_error") and type(body) is str:
                return {key: body}
            if key == "value":
                return {"value": decode_value(body)}
        raise Malformed(f"unexpected message with keys {sorted(message)[:5]}")


class RunnerJail:
    """One jail running jail_runner.py for as long as batches keep coming, so a worker pays for a jail
    once, not once per batch. A program that kills the runner ends the jail, and so does a runner
    that cannot restore the jail after a program; the caller starts another."""

    def __init__(self, sandbox, memory_mb: int | None, mode: str):
        from resources.sandbox import SandboxJob

        job = SandboxJob(command=["python3", "-I", "-S", "-c", BOOTSTRAP], timeout_s=JAIL_CPU_S,
                         memory_mb=memory_mb)
        self._context = sandbox.process(job)
        self.jail = self._context.__enter__()
        self.fresh = True
        self.seq = 0
        self.alive = self._send(_framed(RUNNER_SOURCE) + _framed({"mode": mode}))

    def _send(self, data: bytes) -> bool:
        try:
            self.jail.proc.stdin.write(data)
            self.jail.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def grade(self, body: bytes, judges: list[Judge], limits: list[float]) -> tuple[dict[int, dict], str]:
        """Answers by position in the batch, and why any are missing ("" when none are). `body` is the
        batch's JSON without its braces ("shared" and "items"). Each item gets its own limit (plus slack)
        from the previous answer on, so a runner that stops (a program can SIGSTOP it) costs one item's
        time, not the whole batch's. A verdict already decided stands if the runner dies after it."""
        self.seq += 1
        payload = b'{"batch": {"seq": ' + str(self.seq).encode() + b", " + body + b"}}"
        slack = STARTUP_SLACK_S + len(payload) / 20e6  # the runner reads and decodes the batch first
        if self.fresh:
            slack += STARTUP_SLACK_S * 2  # the runner imports what it needs (numpy, pandas) first
            self.fresh = False
        answers: dict[int, dict] = {}
        if not (self.alive and self._send(_framed(payload))):
            self.alive = False
            return answers, f"runner died: {self.jail.stderr_tail(300).strip()}"
        deadline = time.monotonic() + limits[0] + slack
        out = bytearray()
        fd = self.jail.proc.stdout.fileno()
        stopped: set[int] = set()
        why = None
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while why is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    why = "timeout"
                    break
                if not sel.select(timeout=left):
                    continue
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    why = f"runner died: {self.jail.stderr_tail(300).strip()}"
                    break
                out += chunk
                if b"\n" not in chunk:
                    if len(out) > MAX_LINE + 64:
                        why = "runner sent a line over the limit"
                    continue
                *lines, rest = out.split(b"\n")
                out = bytearray(rest)
                for line in lines:
                    kind, _, rest_of_line = line.partition(b" ")
                    if kind == b"end":
                        return answers, ""
                    if kind == b"fatal":
                        why = f"runner gave up: {rest_of_line.decode('utf-8', 'replace')[:300]}"
                        break
                    try:
                        pos_text, _, data = rest_of_line.partition(b" ")
                        pos = int(pos_text)
                        if kind == b"m":
                            if judges[pos].take(data) and judges[pos].stop_early() and pos not in stopped \
                                    and pos not in answers:
                                stopped.add(pos)
                                self._send(_framed({"stop": [self.seq, pos]}))
                        elif kind == b"x":
                            answers[pos] = judges[pos].end(json.loads(data))
                            if len(answers) < len(limits):
                                deadline = time.monotonic() + limits[len(answers)] + STARTUP_SLACK_S
                        else:
                            raise ValueError(kind)
                    except (ValueError, IndexError, TypeError, AttributeError):
                        why = f"runner sent a malformed line {line[:100]!r}"
                        break
        self.alive = False
        for pos, judge in enumerate(judges):
            if pos not in answers and judge.decided is not None:
                answers[pos] = {**judge.decided, "wall_s": None}
        return answers, why

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
                memory_mb: int | None = None, progress: Callable[[int, int], None] | None = None,
                judge: Callable[[int], Judge] | None = None) -> list[dict]:
    """Every item's answer (same order), as its `judge(index)` (default AnswerJudge) makes it.

    `concurrency` workers each keep one jail (`RunnerJail`) and take the next batch off a shared
    queue as soon as they are free, so a batch stuck on time limits holds up one worker only.
    Items need `limit_s`; an item with `shared_key` gets `shared[key]` merged in inside the jail.
    When a batch's jail dies (a program killed its runner), its unanswered items are graded again,
    one per jail, and an item that dies alone is a runner error.
    """
    shared = shared or {}
    judge = judge or (lambda i: AnswerJudge())
    shared_json = {k: json.dumps(v) for k, v in shared.items()}  # encoded once, however many batches carry them
    queue = collections.deque(plan_batches(items, sandbox.concurrency))
    answers: list[dict] = [{}] * len(items)
    lock = threading.Lock()
    done = [0]

    def body(indices: list[int]) -> bytes:
        keys = sorted({items[i]["shared_key"] for i in indices if "shared_key" in items[i]})
        return ('"shared": {' + ", ".join(f"{json.dumps(k)}: {shared_json[k]}" for k in keys)
                + f'}}, "items": {json.dumps([items[i] for i in indices])}').encode()

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
                    jail = RunnerJail(sandbox, memory_mb, mode)
                got, why = jail.grade(body(indices), [judge(i) for i in indices],
                                      [float(items[i]["limit_s"]) for i in indices])
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


# --- lcb_runner's comparisons, on the host ----------------------------------------------------------------
class LcbCase:
    """One problem's tests as the host holds them: inputs go to the jail, expected outputs never do."""

    def __init__(self, sample: dict):
        self.inputs, self.outputs, self.fn_name = list(sample["inputs"]), list(sample["outputs"]), sample["fn_name"]
        self.n = len(self.inputs)
        self.expected: list = []
        self.outputs_error = None
        if self.fn_name is not None:
            try:  # lcb_runner decodes the outputs after compiling the program: an error then fails every one
                self.expected = [lcb_json(out) for out in self.outputs]
            except Exception as exc:
                self.outputs_error = str(exc)
        self._lines: dict[int, list[str]] = {}

    def expected_lines(self, i: int) -> list[str]:
        if i not in self._lines:
            self._lines[i] = _stripped_lines(self.outputs[i])
        return self._lines[i]

    def inputs_text(self, i: int) -> str:
        if self.fn_name is None:
            return _truncate(self.inputs[i])
        try:
            return _truncate(lcb_text([lcb_json(line) for line in self.inputs[i].split("\n")]))
        except ValueError:
            return _truncate(self.inputs[i])


def _truncate(value, length=300) -> str:
    s = value if isinstance(value, str) else str(value)
    return s if len(s) <= length else s[: length // 2] + "...(truncated) ..." + s[-length // 2:]


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str):
    try:
        return True, [Decimal(x) for x in line.split()]
    except Exception:
        return False, []


def _error_during_testing(exc) -> dict:
    return {"results": [-4], "metadata": {"error_code": -4, "error_message": f"Error during testing: {exc}"}}


class LcbJudge(Judge):
    """lcb_runner's verdict for one generation from what its process produced, test by test: stdin
    output compared as stripped lines then Decimals, call-based results with ==, stopping at the first
    failure. A pass needs one result for every test, in order."""

    def __init__(self, case: LcbCase):
        super().__init__()
        self.case = case
        self.results: list = []
        self.ready = False

    def read(self, message: dict) -> dict | None:
        case = self.case
        keys = set(message)
        if keys == {"ready"} and not self.ready:
            self.ready = True
            if case.outputs_error is not None:
                return _error_during_testing(case.outputs_error)
            return None if case.n else {"runner_error": "the problem has no tests"}
        if keys == {"abort"} and type(message["abort"]) is str:
            return {"results": [-4], "metadata": {"error_code": -4, "error_message": message["abort"]}}
        if keys == {"runner_error"} and type(message["runner_error"]) is str:
            return {"runner_error": message["runner_error"]}
        index = message.get("test")
        if not self.ready or type(index) is not int or index != len(self.results):
            raise Malformed(f"message out of order: {sorted(keys)[:5]}")
        keys.discard("test")
        if keys == {"error", "repr"} and message["error"] in (-3, -4) and type(message["error"]) is int \
                and type(message["repr"]) is str:
            return self._raised(index, message["error"], message["repr"])
        if keys == {"oversize"}:
            return self._wrong_size(index)
        try:
            if keys == {"out"} and case.fn_name is None and type(message["out"]) is str:
                decided = self._stdout(index, message["out"])
            elif keys == {"value"} and case.fn_name is not None:
                decided = self._returned(index, decode_value(message["value"]))
            else:
                raise Malformed(f"unexpected message with keys {sorted(keys)[:5]}")
        except Malformed:
            raise
        except Exception as exc:  # as lcb_runner, where a comparison that raises ends run_test itself
            return _error_during_testing(exc)
        if decided is None and len(self.results) == case.n:
            return {"results": self.results, "metadata": {}}
        return decided

    def stop_early(self) -> bool:
        """Stop at the first failure; a process that passed every test is ending anyway."""
        return self.decided is not None and self.decided.get("results") != [True] * self.case.n

    def _raised(self, index: int, code: int, error: str) -> dict:
        self.results.append(code)
        return {"results": self.results, "metadata": {
            "error": error, "error_code": code,
            "error_message": "Time Limit Exceeded" if code == -3 else "Runtime Error",
            "inputs": self.case.inputs_text(index), "expected": self._expected_text(index)}}

    def _expected_text(self, index: int) -> str:
        if self.case.fn_name is None:
            return _truncate(self.case.outputs[index])
        return _truncate(lcb_text(self.case.expected[index]))

    def _wrong_size(self, index: int) -> dict:
        self.results.append(-2 if self.case.fn_name is None else False)
        return {"results": self.results, "metadata": {
            "output": f"(an output over {MAX_MESSAGE} bytes)", "inputs": self.case.inputs_text(index),
            "expected": self._expected_text(index), "error_code": -2,
            "error_message": "Wrong answer: output over the size limit"}}

    def _stdout(self, index: int, prediction: str) -> dict | None:
        case = self.case
        got, want = _stripped_lines(prediction), case.expected_lines(index)
        wrong = {"output": _truncate(prediction), "inputs": case.inputs_text(index),
                 "expected": _truncate(case.outputs[index]), "error_code": -2}
        if len(got) != len(want):
            self.results.append(-2)
            return {"results": self.results,
                    "metadata": {**wrong, "error_message": "Wrong answer: mismatched output length"}}
        for i, (g, w) in enumerate(zip(got, want)):
            if g == w:
                continue
            ok_g, dec_g = _decimals(g)
            ok_w, dec_w = _decimals(w)
            if ok_g and ok_w and dec_g == dec_w:
                continue
            self.results.append(-2)
            return {"results": self.results, "metadata": {
                **wrong, "error_message": f"Wrong answer at output_line_idx={i}: {_truncate(g)} != {_truncate(w)}"}}
        self.results.append(True)
        return None

    def _returned(self, index: int, prediction) -> dict | None:
        if type(prediction) is tuple:  # lcb_runner: tuples are compared as lists
            prediction = list(prediction)
        ok = prediction == self.case.expected[index]
        self.results.append(ok)
        if ok:
            return None
        try:
            if isinstance(prediction, Opaque) and prediction.error is not None:
                raise _StrFailed(prediction.error)
            output = _truncate(prediction.text if isinstance(prediction, Opaque) else lcb_text(prediction))
        except (ValueError, _StrFailed) as exc:  # lcb_runner's str() of the wrong answer raised: -4 follows
            self.results.append(-4)
            error = str(exc) if isinstance(exc, _StrFailed) else repr(exc)
            return {"results": self.results, "metadata": {
                "error": error, "error_code": -4, "error_message": "Runtime Error",
                "inputs": self.case.inputs_text(index), "expected": self._expected_text(index)}}
        return {"results": self.results, "metadata": {
            "output": output, "inputs": self.case.inputs_text(index), "expected": self._expected_text(index),
            "error_code": -2, "error_message": "Wrong Answer"}}


class _StrFailed(Exception):
    pass


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
    cases = {qid: LcbCase(by_id[qid].evaluation_sample()) for qid in gens}
    shared = {qid: {"inputs": c.inputs, "fn_name": c.fn_name} for qid, c in cases.items()}  # no outputs
    n_tests = {qid: c.n for qid, c in cases.items()}
    items = [{"shared_key": qid, "code": code, "timeout": int(timeout), "n_tests": n_tests[qid],
              "limit_s": global_limit_s(timeout, n_tests[qid])} for qid, code in work]
    answers = run_batches(sandbox, "lcb", items, shared, memory_mb, progress,
                          judge=lambda i: LcbJudge(cases[work[i][0]]))
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
