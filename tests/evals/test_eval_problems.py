"""The eval_* functions return per-problem results with their rates: HumanEval samples and LCB generations
graded in the sandbox (answers fixed in advance, the generation loop replaced), LCB by difficulty, Polyglot
tries, and the error kinds the graders tell apart."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from evals import evaluate as ev
from evals.lcb.metrics import pass_at_k

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lcb"


def _answers(monkeypatch, by_prompt):
    """ev.complete answers each prompt with the first n texts of by_prompt(prompt); the candidate is never called."""
    def complete(c, prompts, languages, task, *, n=1, **_):
        out = [by_prompt(p)[:n] for p in prompts]
        assert all(len(o) == n for o in out)
        return out

    monkeypatch.setattr(ev, "complete", complete)


@pytest.mark.slow  # grades 10 HumanEval samples in the jail
def test_humaneval_rows_carry_every_sample(monkeypatch, sandbox):
    from evals import humaneval

    records = humaneval.load_problems()[:2]
    right, wrong = records[0]["canonical_solution"], humaneval.mutated_completion(records[1])
    good = {ev.humaneval_prompt(p): [right] * 5 for p in humaneval.to_eval_problems(records[:1])}
    mixed = {ev.humaneval_prompt(p): [records[1]["canonical_solution"]] * 2 + [wrong] * 3
             for p in humaneval.to_eval_problems(records[1:])}
    _answers(monkeypatch, lambda p: {**good, **mixed}[p])
    rows = {r["metric"]: r for r in ev.eval_humaneval(None, records, sandbox, ev.EvalSettings(humaneval_n=5))}
    assert rows["pass@1"]["n"] == 2 and rows["pass@1"]["value"] == pytest.approx((1 + 0.4) / 2)
    assert rows["pass@5"]["value"] == pytest.approx(1.0)
    problems = rows["pass@1"]["problems"]
    assert len(problems) == 10 and sorted({p["sample"] for p in problems}) == [0, 1, 2, 3, 4]
    failed = [p for p in problems if not p["passed"]]
    assert [(p["problem"], p["sample"], p["error_kind"]) for p in failed] == \
        [(records[1]["task_id"], s, "failed") for s in (2, 3, 4)]
    assert rows["pass@1"]["ci_low"] < rows["pass@1"]["value"] < rows["pass@1"]["ci_high"]
    assert "pass@5" not in {r["metric"] for r in ev.eval_humaneval(None, records, sandbox, ev.EvalSettings(humaneval_n=2))}


@pytest.mark.slow  # grades the LCB fixtures' 15 generations in the jail
def test_lcb_rows_have_problems_kinds_and_a_difficulty_breakdown(monkeypatch, sandbox):
    from evals.lcb.pipeline import to_eval_problems
    from evals.lcb.source import load_records

    problems = load_records([FIXTURES / "code_generation_plain.jsonl"]).problems
    generations = {g["question_id"]: g["code_list"] for g in json.loads((FIXTURES / "generations.json").read_text())}
    expected = json.loads((FIXTURES / "expected_graded.json").read_text())
    prompts = {e.prompt: generations[e.problem_id] for e in to_eval_problems(problems)}
    _answers(monkeypatch, lambda p: prompts.get(p) or ["no repair"])  # self-repair prompts get a non-answer
    rows = {(r["benchmark"], r["metric"]): r for r in ev.eval_lcb(None, problems, sandbox, ev.EvalSettings(lcb_n=5))}
    assert rows[("livecodebench", "self_repair_pass@1")]["value"] == rows[("livecodebench", "pass@1")]["value"]
    main = rows[("livecodebench", "pass@1")]
    assert main["n"] == 3 and main["value"] == pytest.approx(sum(sum(v) / 5 for v in expected.values()) / 3)
    got = {}
    for p in main["problems"]:
        got.setdefault(p["problem"], []).append(p["passed"])
    assert got == expected
    kinds = {(p["problem"], p["sample"]): p["error_kind"] for p in main["problems"]}
    assert kinds[("abc901_a", 3)] == "timeout" and kinds[("abc901_a", 4)] == "runtime_error"
    assert kinds[("abc901_a", 0)] == ""
    difficulty = {p.question_id: p.difficulty for p in problems}
    for level in set(difficulty.values()):
        row = rows[("livecodebench/" + level, "pass@1")]
        ids = [q for q, d in difficulty.items() if d == level]
        assert row["n"] == len(ids) and "problems" not in row
        assert row["value"] == pytest.approx(sum(pass_at_k(5, sum(expected[q]), 1) for q in ids) / len(ids))


def test_polyglot_pass_within_counts_the_try_that_passed():
    second = SimpleNamespace(language="go", exercise="bob", passed_on_try=2, tries=["fail", "pass"], status="pass")
    never = SimpleNamespace(language="go", exercise="zip", passed_on_try=None, tries=["malformed", "timeout"],
                            status="timeout")
    assert ev._polyglot_within(second, 1) == {"problem": "go/bob", "sample": 0, "passed": False, "error_kind": "fail"}
    assert ev._polyglot_within(second, 2) == {"problem": "go/bob", "sample": 2, "passed": True, "error_kind": ""}
    assert ev._polyglot_within(never, 1)["error_kind"] == "malformed"
    assert ev._polyglot_within(never, 2)["error_kind"] == "timeout"


@pytest.mark.parametrize("why, kind", [("answer does not apply: no match", "no_apply"),
                                       ("run timeout: ", "run_timeout"),
                                       ("solve([1]) returned 2, expected 3", "wrong_answer"),
                                       ("expected 2 results and an end line, got []", "bad_output"),
                                       ("the task's test block is not understood: x", "bad_task")])
def test_repair_reasons_become_error_kinds(why, kind):
    assert ev._repair_kind(why) == kind


def test_tool_use_rows_name_each_example_once(monkeypatch):
    rows = [{"prompt": f"Task {i}\nCommands:", "answer": "git status", "example_id": "w.workflow"} for i in range(3)]
    answers = {"Task 0\nCommands:": ["git status"], "Task 1\nCommands:": ["ls"], "Task 2\nCommands:": [""]}
    _answers(monkeypatch, lambda p: answers[p])
    [row] = ev.eval_tool_use(None, rows, ev.EvalSettings())
    assert row["n"] == 3 and row["value"] == pytest.approx(1 / 3)
    assert [(p["problem"], p["passed"], p["error_kind"]) for p in row["problems"]] == [
        ("w.workflow", True, ""), ("w.workflow#1", False, "wrong_call"), ("w.workflow#2", False, "no_answer")]
