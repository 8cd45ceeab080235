"""What the LCB and HumanEval assets do, as plain functions over a Warehouse (testable without Dagster)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

from evals.lcb.prompts import codegen_messages, prompt_text
from evals.lcb.records import TEST_TYPES, LcbProblem, date_in_window, filter_window
from evals.lcb.source import load_release, resolve_source
from evals.problem import EvalProblem

RAW_TABLE, PROBLEMS_TABLE = "livecodebench_raw", "lcb_problems"
TEST_OUTPUT_TABLE, EXECUTION_TABLE = "lcb_test_output_problems", "lcb_execution_problems"


def write_release(warehouse, source: str | None, release: str) -> dict:
    """Load one release tag, write its rows and its quarantine file; raises LcbSourceError without data."""
    result = load_release(source, release)
    rows = [{**p.to_row(), "release": release} for p in result.problems]
    if rows:
        warehouse.write_table(RAW_TABLE, arrow_table(rows), partition=release)
    else:
        _write_empty(warehouse, RAW_TABLE, release)
    quarantine = warehouse.write_quarantine(RAW_TABLE, result.rejected, partition=release)
    return {"rows": len(rows), "rejected": len(result.rejected), "rejected_rows": result.rejected,
            "unsafe_rejected": sum(r["unsafe"] for r in result.rejected), "source": resolve_source(source),
            "files": result.files, "quarantine": str(quarantine),
            "by_platform": dict(Counter(p.platform for p in result.problems)),
            "by_difficulty": dict(Counter(p.difficulty for p in result.problems))}


# Decoded LCB tests reach gigabytes per release; 64-bit offsets keep one column chunk past 2 GiB legal.
_LARGE_TEXT = ("question_content", "public_tests", "private_tests", "prompt")


def arrow_table(rows: list[dict]):
    import pyarrow as pa

    fields = [pa.field(k, pa.large_string() if k in _LARGE_TEXT else
                       pa.int64() if isinstance(v, int) and not isinstance(v, bool) else pa.string())
              for k, v in rows[0].items()]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def _write_empty(warehouse, table: str, partition: str | None) -> None:
    """A zero-row table with the full schema, so views and checks still find every column."""
    dummy = LcbProblem("", "", "", "", "", "2000-01-01T00:00:00", "", "", [], [], None)
    row = {**dummy.to_row(), "release": partition or ""}
    if table == PROBLEMS_TABLE:
        row.update(category="", contest_day="", prompt="")
    warehouse.write_table(table, arrow_table([row]).slice(0, 0), partition=partition)


def category(problem: LcbProblem) -> str:
    return f"{problem.platform}/{problem.difficulty}/{problem.testtype}"


def read_problems(warehouse, release: str, table: str = PROBLEMS_TABLE) -> list[LcbProblem]:
    rows = warehouse.read_table(table, release).to_pylist()
    return [LcbProblem.from_row(r) for r in rows if r.get("question_id")]


def write_problems(warehouse, release: str, start_date=None, end_date=None, training_cutoff=None) -> dict:
    """lcb_problems: the raw release inside the contest-date window, with prompt and category."""
    raw = read_problems(warehouse, release, RAW_TABLE)
    kept = filter_window(raw, start_date, end_date, training_cutoff)
    rows = [{**p.to_row(), "release": release, "category": category(p), "contest_day": str(p.contest_day),
             "prompt": codegen_messages(p)[1]["content"]} for p in kept]
    if rows:
        warehouse.write_table(PROBLEMS_TABLE, arrow_table(rows), partition=release)
    else:
        _write_empty(warehouse, PROBLEMS_TABLE, release)
    return {"rows": len(rows), "raw_rows": len(raw), "by_category": dict(Counter(r["category"] for r in rows)),
            "window": {"start_date": start_date, "end_date": end_date, "training_cutoff": training_cutoff}}


def _parses(value) -> bool:
    try:
        datetime.fromisoformat(str(value))
        return True
    except ValueError:
        return False


def _types_valid(tests_json) -> bool:
    try:
        return all(t.get("testtype") in TEST_TYPES for t in json.loads(tests_json))
    except (TypeError, ValueError, AttributeError):
        return False


def check_frame(warehouse, table: str, partition: str | None):
    """The table as a pandas frame with the derived columns the GX suites check."""
    frame = warehouse.read_table(table, partition).to_pandas()
    if table in (RAW_TABLE, PROBLEMS_TABLE):
        frame["date_parses"] = frame["contest_date"].map(_parses) if len(frame) else []
        frame["n_tests"] = (frame["n_public_tests"] + frame["n_private_tests"]) if len(frame) else []
        frame["test_types_valid"] = [(_types_valid(a) and _types_valid(b))
                                     for a, b in zip(frame.get("public_tests", []), frame.get("private_tests", []))]
    elif table == TEST_OUTPUT_TABLE:
        frame["date_parses"] = frame["contest_date"].map(_parses)
        frame["n_tests"] = frame["tests"].map(lambda t: len(json.loads(t)))
        frame["test_types_valid"] = frame["tests"].map(_types_valid)
    elif table == EXECUTION_TABLE:
        frame["date_parses"] = frame["contest_date"].map(_parses)
    return frame


def write_test_output_problems(warehouse, source: str, start_date=None, end_date=None, training_cutoff=None) -> dict:
    """lcb_test_output_problems: the instances inside the contest-date window (the same window as lcb_problems);
    with no source ("") an empty table, so the asset still records that there is nothing to score."""
    from evals.lcb.scenarios import TestOutputProblem, load_test_output_problems

    problems, rejected = (load_test_output_problems(_scenario_files(source, "livecodebench/test_generation"))
                          if source else ([], []))
    dummy = TestOutputProblem("", "", "", "", "2000-01-01", "", [{"input": "", "output": "", "testtype": "functional"}],
                              "def f():\n    pass", "", 0)
    return _write_windowed(warehouse, TEST_OUTPUT_TABLE, problems, rejected, dummy,
                           (start_date, end_date, training_cutoff))


def write_execution_problems(warehouse, source: str, start_date=None, end_date=None, training_cutoff=None) -> dict:
    """lcb_execution_problems: the instances inside the contest-date window (the same window as lcb_problems);
    with no source ("") an empty table."""
    from evals.lcb.scenarios import ExecutionProblem, load_execution_problems

    problems, rejected = (load_execution_problems(_scenario_files(source, "livecodebench/execution-v2"))
                          if source else ([], []))
    dummy = ExecutionProblem("", "", "2000-01-01", "", "", "", "", "", "")
    return _write_windowed(warehouse, EXECUTION_TABLE, problems, rejected, dummy,
                           (start_date, end_date, training_cutoff))


def _write_windowed(warehouse, table: str, problems: list, rejected: list, dummy, window: tuple) -> dict:
    kept = [p for p in problems if date_in_window(p.contest_date, *window)]
    rows = [p.to_row() for p in kept]
    # an empty window still gets every column, so the table's check and readers find them
    warehouse.write_table(table, arrow_table(rows) if rows else arrow_table([dummy.to_row()]).slice(0, 0))
    warehouse.write_quarantine(table, rejected)
    return {"rows": len(rows), "loaded_rows": len(problems), "rejected": len(rejected),
            "window": dict(zip(("start_date", "end_date", "training_cutoff"), window))}


def _scenario_files(source: str, default_repo: str):
    """A local file/directory as is; hf://<dataset> (or "hub") downloaded as parquet through `datasets`."""
    if source == "hub" or source.startswith("hf://"):
        from evals.lcb.source import HOW_TO_POINT, LcbSourceError

        repo = default_repo if source == "hub" else source[len("hf://"):]
        try:
            from datasets import load_dataset

            dataset = load_dataset(repo, split="test")
        except Exception as exc:
            raise LcbSourceError(f"cannot load {repo} from the Hugging Face hub ({type(exc).__name__}); offline? "
                                 f"point the source at a local .jsonl/.parquet file instead ({HOW_TO_POINT})") from None
        import tempfile
        from pathlib import Path

        path = Path(tempfile.mkdtemp(prefix="hrm-lcb-")) / "test.parquet"
        dataset.to_parquet(str(path))
        return [path]
    return source


def to_eval_problems(problems: list[LcbProblem]) -> list[EvalProblem]:
    """Code-generation problems in the shared EvalProblem shape (graded by evals.lcb.grade_generations)."""
    out = []
    for p in problems:
        messages = codegen_messages(p)
        out.append(EvalProblem(
            benchmark="livecodebench", problem_id=p.question_id, language="python", prompt=prompt_text(messages),
            grading_mode="lcb_call" if p.func_name else "lcb_stdin",
            visible_files={"starter.py": p.starter_code} if p.starter_code else {},
            hidden_tests={"input_output.json": json.dumps(p.evaluation_sample())}, date=p.contest_date,
            metadata={"platform": p.platform, "difficulty": p.difficulty, "contest_id": p.contest_id,
                      "question_title": p.question_title, "starter_code": p.starter_code,
                      "system_message": messages[0]["content"], "category": category(p)}))
    return out


def scenario_eval_problems(test_output=(), execution=()) -> list[EvalProblem]:
    """Test-output prediction and code-execution instances as EvalProblems (grading mode exec_output)."""
    out = []
    for p in test_output:
        messages = p.messages()
        out.append(EvalProblem(benchmark="livecodebench", problem_id=p.instance_id, language="python",
                               prompt=prompt_text(messages), grading_mode="exec_output", date=p.contest_date,
                               hidden_tests={"expected_output": p.expected_output},
                               metadata={"scenario": "test_output_prediction", "system_message": messages[0]["content"],
                                         "difficulty": p.difficulty}))
    for p in execution:
        messages = p.messages()
        out.append(EvalProblem(benchmark="livecodebench", problem_id=p.id, language="python",
                               prompt=prompt_text(messages), grading_mode="exec_output", date=p.contest_date,
                               hidden_tests={"code": p.code, "output": p.output},
                               metadata={"scenario": "code_execution", "system_message": messages[0]["content"],
                                         "input": p.input, "difficulty": p.difficulty}))
    return out
