"""LiveCodeBench's other three scenarios: self-repair, test-output prediction and code execution.

Loaders read the hub datasets' record formats (livecodebench/test_generation, execution-v2) from
jsonl/parquet; graders follow lcb_runner's evaluation code, with every model answer evaluated in
the sandbox (lcb_runner `eval`s test-output predictions in its own process) by a process that never
holds the expected answer: the answer's value comes back as plain data and is compared on the host.
"""

from __future__ import annotations

import ast
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from evals.lcb.extraction import extract_execution_answer, extract_test_output_code
from evals.lcb.grader import run_batches
from evals.lcb.prompts import execution_messages, repair_feedback, repair_messages, test_output_messages
from evals.lcb.records import TEST_TYPES
from evals.lcb.jail_runner import EXECUTION_IMPORTS, lcb_json
from evals.lcb.source import iter_raw_records

EXECUTION_TIMEOUT_S = 3  # lcb_runner's code-execution check_correctness timeout
EVAL_OUTPUT_LIMIT_S = 10.0  # per prediction (lcb_runner sets no limit: it evals in its own process)


@dataclass
class TestOutputProblem:
    question_title: str
    question_content: str
    question_id: str
    contest_id: str
    contest_date: str
    difficulty: str
    tests: list[dict]
    starter_code: str
    function_name: str
    test_id: int

    __test__ = False  # not a pytest class

    @property
    def instance_id(self) -> str:
        return f"{self.question_id}/{self.test_id}"

    @property
    def expected_output(self) -> str:
        return self.tests[0]["output"]

    def messages(self) -> list[dict]:
        return test_output_messages(self.question_content, self.starter_code, self.tests[0]["input"])

    def to_row(self) -> dict:
        row = asdict(self)
        row["tests"] = json.dumps(self.tests)
        row["instance_id"] = self.instance_id
        row["prompt"] = self.messages()[1]["content"]
        return row

    @classmethod
    def from_row(cls, row: dict) -> "TestOutputProblem":
        """A row of the lcb_test_output_problems table (to_row's output)."""
        return _test_output_problem({**row, "test": row["tests"]})


@dataclass
class ExecutionProblem:
    question_id: str
    contest_id: str
    contest_date: str
    difficulty: str
    function_name: str
    code: str
    input: str
    output: str
    id: str
    problem_id: list = field(default_factory=list)
    numsteps: int = 0

    def messages(self, cot: bool = False) -> list[dict]:
        return execution_messages(self.code, self.input, cot)

    def to_row(self) -> dict:
        row = asdict(self)
        row["problem_id"] = json.dumps(self.problem_id)
        row["prompt"] = self.messages()[1]["content"]
        return row

    @classmethod
    def from_row(cls, row: dict) -> "ExecutionProblem":
        """A row of the lcb_execution_problems table (to_row's output)."""
        return _execution_problem(row)


def _date_ok(value) -> str:
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    datetime.fromisoformat(text)
    return text


def _load(paths, build) -> tuple[list, list[dict]]:
    problems, rejected = [], []
    for path in _files(paths):
        for row, raw, error in iter_raw_records(path):
            where = {"file": str(path), "row": row}
            if error:
                rejected.append({**where, "reason": error})
                continue
            try:
                problems.append(build(raw))
            except (KeyError, TypeError, ValueError) as exc:
                reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                rejected.append({**where, "reason": reason})
    return problems, rejected


def _files(paths) -> list[Path]:
    out = []
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        p = Path(p)
        out += sorted(x for x in p.iterdir() if x.suffix in (".jsonl", ".parquet")) if p.is_dir() else [p]
    if not out:
        raise FileNotFoundError(f"no .jsonl/.parquet files in {paths}")
    return out


def _test_output_problem(raw: dict) -> TestOutputProblem:
    tests = json.loads(raw["test"]) if isinstance(raw["test"], str) else raw["test"]
    if not isinstance(tests, list) or not tests:
        raise ValueError("test is not a non-empty JSON list")
    for t in tests:
        if not isinstance(t, dict) or t.get("testtype") not in TEST_TYPES or not isinstance(t.get("input"), str) \
                or not isinstance(t.get("output"), str):
            raise ValueError(f"malformed test {str(t)[:100]}")
    return TestOutputProblem(
        question_title=str(raw["question_title"]), question_content=str(raw["question_content"]),
        question_id=str(raw["question_id"]), contest_id=str(raw["contest_id"]),
        contest_date=_date_ok(raw["contest_date"]), difficulty=str(raw["difficulty"]), tests=tests,
        starter_code=str(raw["starter_code"]), function_name=str(raw["function_name"]), test_id=int(raw["test_id"]))


def _execution_problem(raw: dict) -> ExecutionProblem:
    problem_id = raw.get("problem_id", [])
    return ExecutionProblem(
        question_id=str(raw["question_id"]), contest_id=str(raw["contest_id"]),
        contest_date=_date_ok(raw["contest_date"]), difficulty=str(raw["difficulty"]),
        function_name=str(raw["function_name"]), code=str(raw["code"]), input=str(raw["input"]),
        output=str(raw["output"]), id=str(raw["id"]),
        problem_id=list(problem_id) if not isinstance(problem_id, str) else json.loads(problem_id),
        numsteps=int(raw.get("numsteps") or 0))


def load_test_output_problems(paths) -> tuple[list[TestOutputProblem], list[dict]]:
    """Records in livecodebench/test_generation's format; malformed rows come back with file, row, reason."""
    return _load(paths, _test_output_problem)


def load_execution_problems(paths) -> tuple[list[ExecutionProblem], list[dict]]:
    """Records in livecodebench/execution-v2's format."""
    return _load(paths, _execution_problem)


def grade_test_output(problems: list[TestOutputProblem], outputs: dict[str, list[str]], sandbox,
                      extract: bool = True) -> list[dict]:
    """Per instance: the prediction extracted from each model output, checked against the expected output
    as lcb_runner does (right-hand side of the assert, evaluated, == json.loads(expected)). Each
    prediction is evaluated in the sandbox, in its own process, which never sees the expected output;
    its value comes back as plain data and is compared here. `error_list` says why each failed
    (see `answer_error`; "" for a pass)."""
    by_id = {p.instance_id: p for p in problems}
    keys = [k for k in outputs if k in by_id]
    missing = sorted(set(outputs) - set(by_id))
    if missing:
        raise ValueError(f"outputs for unknown test-output instances: {', '.join(missing[:10])}")
    preds = {k: [extract_test_output_code(o) if extract else o for o in outputs[k]] for k in keys}
    items = [{"text": pred, "limit_s": EVAL_OUTPUT_LIMIT_S} for k in keys for pred in preds[k]]
    answers = iter(run_batches(sandbox, "eval_expr", items))
    out = []
    for k in keys:
        expected = _json_expected(by_id[k].expected_output)
        verdicts = [_verdict(pred, next(answers), expected) for pred in preds[k]]
        graded = [ok for ok, _ in verdicts]
        out.append({"instance_id": k, "pred_list": preds[k], "graded_list": graded,
                    "error_list": [why for _, why in verdicts], "pass@1": sum(graded) / len(graded) if graded else 0.0})
    return out


_NO_VALUE = object()


def _json_expected(text: str):
    try:
        return lcb_json(text)
    except (ValueError, RecursionError):
        return _NO_VALUE  # lcb_runner: no prediction can match


def _literal_expected(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_VALUE


def answer_error(prediction: str, answer: dict, matched: bool) -> str:
    """Why a prediction failed, from what its sandboxed evaluation answered ("" when it passed):
    no_answer (nothing was extracted), wrong_answer (a value, not the expected one), timeout,
    runtime_error (evaluating it raised), runner_error."""
    if matched:
        return ""
    if not prediction.strip():
        return "no_answer"
    if "value" in answer:
        return "wrong_answer"
    if answer.get("global_timeout") or answer.get("result") == "timed out":
        return "timeout"
    if "runner_error" in answer:
        return "runner_error"
    return "runtime_error"


def _verdict(prediction: str, answer: dict, expected) -> tuple[bool, str]:
    ok = _matches(answer, expected)
    return ok, answer_error(prediction, answer, ok)


def _matches(answer: dict, expected) -> bool:
    """A plain-data value that equals the expected value (an opaque one equals nothing)."""
    if expected is _NO_VALUE or "value" not in answer:
        return False
    try:
        return bool(answer["value"] == expected)
    except Exception:  # plain data compares without raising; be safe anyway
        return False


def grade_execution(problems: list[ExecutionProblem], outputs: dict[str, list[str]], sandbox,
                    cot: bool = False, extract: bool = True) -> list[dict]:
    """Per instance: lcb_runner's `assert <output> == <prediction>` after the code (3 s), with the sides
    kept apart: the prediction is evaluated after the code in the sandbox, in a process that never sees
    the expected output, and its value is compared here with the output's (ast.literal_eval here, or
    evaluated in its own sandboxed process when it is not a literal). Predictions that contain the input
    expression are dropped, and an instance whose predictions all were scores 0: `graded_list` and
    `error_list` hold the kept predictions (`sample_list`: their positions in the outputs), or all of
    them, failed with "input_repeated", when none was kept."""
    by_id = {p.id: p for p in problems}
    missing = sorted(set(outputs) - set(by_id))
    if missing:
        raise ValueError(f"outputs for unknown execution instances: {', '.join(missing[:10])}")
    plan = []
    for key, outs in outputs.items():
        p = by_id[key]
        preds = [extract_execution_answer(o, cot) if extract else o for o in outs]
        kept = [(i, g) for i, g in enumerate(preds) if p.input not in g]
        plan.append((key, preds, kept))
    expected = {key: _literal_expected(by_id[key].output) for key, _, kept in plan if kept}
    unliteral = [key for key, value in expected.items() if value is _NO_VALUE]

    def item(key: str, expression: str) -> dict:
        return {"program": f"{EXECUTION_IMPORTS}\n{by_id[key].code}", "expression": expression,
                "timeout": EXECUTION_TIMEOUT_S, "limit_s": EXECUTION_TIMEOUT_S + 1}

    items = [item(key, by_id[key].output) for key in unliteral]
    items += [item(key, g) for key, _, kept in plan for _, g in kept]
    answers = iter(run_batches(sandbox, "exec_value", items))
    for key in unliteral:
        answer = next(answers)
        expected[key] = answer["value"] if "value" in answer else _NO_VALUE
    out = []
    for key, preds, kept in plan:
        verdicts = [_verdict(g, next(answers), expected[key]) for _, g in kept]
        samples = [i for i, _ in kept]
        if not kept:
            verdicts, samples = [(False, "input_repeated")] * len(preds), list(range(len(preds)))
        graded = [ok for ok, _ in verdicts]
        out.append({"id": key, "pred_list": preds, "graded_list": graded, "error_list": [why for _, why in verdicts],
                    "sample_list": samples, "pass@1": sum(graded) / len(graded) if graded else 0.0})
    return out


def self_repair_prompts(problems, graded_questions: list[dict]) -> list[dict]:
    """One entry per earlier generation: its self-repair chat messages, or None when it already passed
    (lcb_runner keeps the passing output). `graded_questions` are `grade_generations` results or
    lcb_runner's *_eval_all.json entries (question_content, code_list, graded_list, metadata)."""
    by_id = {p.question_id: p for p in problems}
    out = []
    for q in graded_questions:
        qid = str(q["question_id"])
        if qid not in by_id:
            raise ValueError(f"graded results for unknown question {qid!r}")
        content = q.get("question_content") or by_id[qid].question_content
        for i, (code, ok, meta) in enumerate(zip(q["code_list"], q["graded_list"], q["metadata"])):
            if ok or not repair_feedback(meta):
                out.append({"question_id": qid, "code_index": i, "messages": None, "previous_code": code})
            else:
                out.append({"question_id": qid, "code_index": i, "messages": repair_messages(content, code, meta),
                            "previous_code": code})
    return out
