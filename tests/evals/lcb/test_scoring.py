"""The four LCB scenarios scored end to end on the fixture problems: lcb_runner's prompts go to a scripted
answer source (the test chooses each answer), the answers go through the real graders in the sandbox, and
the rows carry lcb_runner's metrics. A wrong answer graded correct is a failing test."""

import json
from pathlib import Path

import pytest

from evals import evaluate as ev
from evals.lcb import scoring
from evals.lcb.pipeline import (to_eval_problems, write_execution_problems, write_problems, write_release,
                                write_test_output_problems)
from evals.lcb.scenarios import load_execution_problems, load_test_output_problems
from evals.lcb.source import load_records
from resources.warehouse import Warehouse

pytestmark = pytest.mark.slow  # every answer is graded in the jail

FIXTURES = Path(__file__).parents[2] / "fixtures" / "lcb"
ROW_KEYS = {"benchmark", "metric", "value", "n", "ci_low", "ci_high", "problems"}

SUM_RIGHT = "```python\nn = int(input())\nprint(sum(map(int, input().split())))\n```"
SUM_OFF_BY_ONE = "n = int(input())\nprint(sum(map(int, input().split())) + 1)\n"
DIV_WRONG = "q = int(input())\nfor _ in range(q):\n    d, t = map(int, input().split())\n    print(d // t)\n"
PAIR_RIGHT = ("class Solution:\n    def largestPairSum(self, nums, k):\n        n = len(nums)\n"
              "        pairs = [nums[i] + nums[j] for i in range(n) for j in range(i + 1, n)]\n"
              "        return [max(pairs), sum(p >= k for p in pairs)]\n")
PAIR_WRONG = "class Solution:\n    def largestPairSum(self, nums, k):\n        return [max(nums) * 2, 0]\n"


class Scripted:
    """An answer source with complete()'s signature (candidate left out): `answer(prompt)` gives the n
    answers to one prompt. Every call is recorded."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def __call__(self, prompts, languages, task, **options):
        self.calls.append({"prompts": list(prompts), "task": task, **options})
        out = [list(self.answer(p)) for p in prompts]
        assert all(len(o) == options["n"] for o in out), "the script must give n answers per prompt"
        return out


def settings(**changes) -> ev.EvalSettings:
    return ev.EvalSettings(**{"max_new_tokens": 64, "lcb_n": 1, **changes})


def codegen_problems():
    return load_records([FIXTURES / "code_generation_plain.jsonl"]).problems


def by_problem(row) -> dict:
    out = {}
    for e in row["problems"]:
        out.setdefault(e["problem"], []).append((e["sample"], e["passed"], e["error_kind"]))
    return out


def answers_for(table: dict):
    """answer(prompt) from {text in the prompt: answers}, the first key the prompt holds."""
    def answer(prompt):
        hits = [v for k, v in table.items() if k in prompt]
        assert hits, f"no scripted answer for {prompt[:200]!r}"
        return hits[0]
    return answer


def test_code_generation_pass_at_1_and_5_and_why_each_sample_failed(sandbox):
    script = Scripted(answers_for({
        "Print their sum": [SUM_RIGHT, SUM_OFF_BY_ONE, "print(undefined_name)\n", "for x in\n", ""],
        "Print D/T": [DIV_WRONG] * 5,
        "largest nums[i] + nums[j]": [PAIR_RIGHT] * 5}))
    rows, graded = scoring.code_generation(codegen_problems(), script, sandbox, settings(lcb_n=5))
    [call] = script.calls
    assert call["task"] == "codegen" and call["n"] == 5 and call["temperature"] == 0.2
    # the prompt text is code generation's EvalProblem prompt: the user turn of lcb_runner's messages
    assert call["prompts"] == [e.prompt for e in to_eval_problems(codegen_problems())]
    rows, by_difficulty = rows[:2], rows[2:]
    assert [r["metric"] for r in rows] == ["pass@1", "pass@5"] and all(set(r) == ROW_KEYS for r in rows)
    # breakdown rows by difficulty: pass@1 per group, without per-problem results (the main row holds them)
    assert by_difficulty and all(r["benchmark"].startswith("livecodebench/") and r["metric"] == "pass@1"
                                 and "problems" not in r for r in by_difficulty)
    assert sum(r["n"] for r in by_difficulty) == 3
    assert rows[0]["benchmark"] == "livecodebench" and rows[0]["n"] == 3
    assert rows[0]["value"] == pytest.approx((1 / 5 + 0 + 1) / 3)
    assert rows[1]["value"] == pytest.approx((1 + 0 + 1) / 3)  # unbiased pass@5 with n = 5: any pass counts
    assert rows[0]["ci_low"] <= rows[0]["value"] <= rows[0]["ci_high"]
    kinds = by_problem(rows[0])
    assert kinds["abc901_a"] == [(0, True, ""), (1, False, "wrong_answer"), (2, False, "runtime_error"),
                                 (3, False, "compile_error"), (4, False, "no_code")]
    assert kinds["2051_A"] == [(i, False, "wrong_answer") for i in range(5)]
    assert kinds["3901"] == [(i, True, "") for i in range(5)]
    assert {q["question_id"]: q["graded_list"] for q in graded}["abc901_a"] == [True, False, False, False, False]


def test_one_sample_gives_pass_at_1_only_and_greedy_decoding(sandbox):
    script = Scripted(lambda prompt: [SUM_RIGHT if "Print their sum" in prompt else PAIR_WRONG])
    rows, _ = scoring.code_generation(codegen_problems(), script, sandbox, settings(lcb_n=1))
    main = [r for r in rows if r["benchmark"] == "livecodebench"]
    assert [r["metric"] for r in main] == ["pass@1"] and main[0]["value"] == pytest.approx(1 / 3)
    assert script.calls[0]["temperature"] == 0.0 and script.calls[0]["n"] == 1


def test_self_repair_shows_the_real_feedback_and_grades_the_repair(sandbox):
    first = Scripted(answers_for({"Print their sum": [SUM_RIGHT, SUM_OFF_BY_ONE],
                                  "Print D/T": [DIV_WRONG, DIV_WRONG],
                                  "largest nums[i] + nums[j]": [PAIR_WRONG, PAIR_WRONG]}))
    problems = codegen_problems()
    _, graded = scoring.code_generation(problems, first, sandbox, settings(lcb_n=2))
    # repairs: the sum program is fixed, the first pair program too (the second gets the same wrong code
    # back), the division program gets prose, which does not compile
    pair_repairs = iter([PAIR_RIGHT, PAIR_WRONG])

    def repair_answer(prompt):
        if "largestPairSum" in prompt:
            return [next(pair_repairs)]
        return [SUM_RIGHT] if "Print their sum" in prompt else ["I cannot fix this."]

    repair = Scripted(repair_answer)
    [row] = scoring.self_repair(problems, graded, repair, sandbox, settings(lcb_n=2))
    [call] = repair.calls
    assert call["task"] == "codegen" and call["n"] == 1  # lcb_runner's self-repair runs with n = 1
    prompts = call["prompts"]
    assert len(prompts) == 5  # every failed first attempt; the one that passed is kept, not asked again
    sum_prompt = next(p for p in prompts if "Print their sum" in p)
    assert f"### Answer:\n```python\n{SUM_OFF_BY_ONE}\n```" in sum_prompt  # the model's own failed code
    # the grader's real feedback for that code: the failing input, what the program printed, the expected output
    assert ("The above code is incorrect and got a wrong answer.\nInput: 3\n1 2 3\n\nGenerated Output: 7\n\n"
            "Expected: 6\n") in sum_prompt
    pair_prompt = next(p for p in prompts if "largestPairSum" in p)
    assert "wrong answer.\nInput: [[1, 2, 3], 4]\nGenerated Output: [6, 0]\nExpected: [5, 2]\n" in pair_prompt
    assert row["metric"] == "self_repair_pass@1" and set(row) == ROW_KEYS and row["n"] == 3
    kinds = by_problem(row)
    assert kinds["abc901_a"] == [(0, True, ""), (1, True, "")]  # kept pass; repaired pass
    assert kinds["2051_A"] == [(0, False, "compile_error"), (1, False, "compile_error")]
    assert kinds["3901"] == [(0, True, ""), (1, False, "wrong_answer")]
    assert row["value"] == pytest.approx((1 + 0 + 0.5) / 3)


def test_self_repair_with_nothing_failed_asks_nothing(sandbox):
    problems = [p for p in codegen_problems() if p.question_id == "abc901_a"]
    _, graded = scoring.code_generation(problems, Scripted(lambda p: [SUM_RIGHT]), sandbox, settings())
    repair = Scripted(lambda p: pytest.fail("nothing to repair"))
    [row] = scoring.self_repair(problems, graded, repair, sandbox, settings())
    assert row["value"] == 1.0 and not repair.calls


TEST_OUTPUT_ANSWERS = {
    "right": "```python\nassert largestPairSum([1, 2, 3], 4) == [5, 2]\n```",
    "wrong": "assert largestPairSum([1, 2, 3], 4) == [5, 3]",
    "true": "assert largestPairSum([1, 2, 3], 4) == True",
    "print_true": "```python\nprint(True)\n```",
    "any_equal": "assert largestPairSum([1, 2, 3], 4) == type('E', (), {'__eq__': lambda s, o: True, "
                 "'__hash__': object.__hash__})()",
    # a side effect on the grader: replace json.loads so that any expected output decodes to 1
    "side_effect": "assert largestPairSum([1, 2, 3], 4) == (__import__('sys').modules['json'].__setattr__("
                   "'loads', lambda s: 1) or 1)",
    "prose": "The answer is [5, 2].",
}


def test_test_output_prediction_right_passes_and_tricks_fail(sandbox):
    problems, _ = load_test_output_problems(FIXTURES / "test_generation.jsonl")
    names = list(TEST_OUTPUT_ANSWERS)
    script = Scripted(answers_for({"largestPairSum": list(TEST_OUTPUT_ANSWERS.values()),
                                   "countVowels": ["assert countVowels(\"banana\") == 3"] * len(names)}))
    [row] = scoring.test_output_prediction(problems, script, sandbox, settings(lcb_n=len(names)))
    [call] = script.calls
    assert call["task"] == "exec_predict" and call["prompts"][0] == problems[0].messages()[1]["content"]
    assert row["metric"] == "test_output_pass@1" and set(row) == ROW_KEYS and row["n"] == 2
    got = {names[s]: (ok, why) for s, ok, why in by_problem(row)["3901/0"]}
    assert got == {"right": (True, ""), "wrong": (False, "wrong_answer"), "true": (False, "wrong_answer"),
                   "print_true": (False, "wrong_answer"), "any_equal": (False, "wrong_answer"),
                   "side_effect": (False, "wrong_answer"), "prose": (False, "no_answer")}
    assert all(ok for _, ok, _ in by_problem(row)["3902/0"])
    assert row["value"] == pytest.approx((1 / len(names) + 1) / 2)
    assert json.loads("[5, 2]") == [5, 2]  # the host's json was never touched


EXEC_DIRECT = {
    "right": "assert doubleAll(nums = [1, 2]) == [2, 4]\n[/ANSWER]",
    "wrong": "assert doubleAll(nums = [1, 2]) == [2, 5]",
    "any_equal": "assert doubleAll(nums = [1, 2]) == type('E', (), {'__eq__': lambda s, o: True, "
                 "'__hash__': object.__hash__})()",
    "or_true": "assert doubleAll(nums = [1, 2]) == [9, 9] or True",
    "repeats_input": "assert doubleAll(nums = [1, 2]) == doubleAll(nums = [1, 2])",  # dropped, as lcb_runner does
}


def test_code_execution_without_cot(sandbox):
    problems, _ = load_execution_problems(FIXTURES / "execution.jsonl")
    names = list(EXEC_DIRECT)
    script = Scripted(answers_for({"doubleAll(nums = [1, 2]) == ??": list(EXEC_DIRECT.values()),
                                   "countVowels(s = 'banana') == ??": ["countVowels(s = 'banana')"] * len(names)}))
    [row] = scoring.code_execution(problems, script, sandbox, settings(lcb_n=len(names)))
    [call] = script.calls
    assert call["task"] == "exec_predict" and "[THOUGHT]" not in call["prompts"][0]
    assert row["metric"] == "execution_pass@1" and set(row) == ROW_KEYS and row["n"] == 2
    got = {names[s]: (ok, why) for s, ok, why in by_problem(row)["sample_0"]}
    assert got == {"right": (True, ""), "wrong": (False, "wrong_answer"), "any_equal": (False, "wrong_answer"),
                   "or_true": (False, "wrong_answer")}  # the dropped prediction does not count
    assert by_problem(row)["sample_1"] == [(i, False, "input_repeated") for i in range(len(names))]
    assert row["value"] == pytest.approx((1 / 4 + 0) / 2)


EXEC_COT = {
    "right": "s doubles each number.\n[/THOUGHT]\n[ANSWER]\nassert doubleAll(nums = [1, 2]) == [2, 4]\n[/ANSWER]",
    # the thought's own `==` is not the answer: the text after [ANSWER] is
    "thought_misleads": "first guess: doubleAll(...) == [9, 9]? No.\n[ANSWER]\nassert doubleAll(nums = [1, 2]) == "
                        "[2, 4]\n[/ANSWER]",
    "answer_wrong": "it returns == [2, 4] surely\n[ANSWER]\nassert doubleAll(nums = [1, 2]) == [2, 5]\n[/ANSWER]",
    # no tags: the value after the first `==`, up to the end of its line
    "untagged": "so the result == [2, 4]\nand that is all",
    "nothing": "I am not sure.",
}


def test_code_execution_with_cot_extracts_the_answer_tag(sandbox):
    problems, _ = load_execution_problems(FIXTURES / "execution.jsonl")
    names = list(EXEC_COT)
    script = Scripted(answers_for({"doubleAll(nums = [1, 2]) == ??": list(EXEC_COT.values()),
                                   "countVowels(s = 'banana') == ??": ["[ANSWER]\nassert countVowels(s = 'banana') "
                                                                       "== 3\n[/ANSWER]"] * len(names)}))
    [row] = scoring.code_execution(problems, script, sandbox, settings(lcb_n=len(names)), cot=True)
    assert script.calls[0]["prompts"][0].endswith("[/PYTHON]\n[THOUGHT]\n")  # lcb_runner's CoT prompt
    assert row["metric"] == "execution_cot_pass@1" and set(row) == ROW_KEYS
    got = {names[s]: (ok, why) for s, ok, why in by_problem(row)["sample_0"]}
    assert got == {"right": (True, ""), "thought_misleads": (True, ""), "answer_wrong": (False, "wrong_answer"),
                   "untagged": (True, ""), "nothing": (False, "runtime_error")}
    assert row["value"] == pytest.approx((3 / 5 + 1) / 2)


def _warehouse(tmp_path, start_date=None) -> Warehouse:
    """lcb_problems and both scenario tables written by the assets' functions with one date window; a
    scenario instance dated before the window sits in each scenario source."""
    wh = Warehouse(root=str(tmp_path / "wh"))
    write_release(wh, str(FIXTURES / "code_generation_plain.jsonl"), "release_v1")
    write_problems(wh, "release_v1", start_date=start_date)
    wh.write_table("synthetic_tasks", [{"split": "train", "heldout": "", "task_id": "t"}])
    sources = {}
    for name, key in (("test_generation.jsonl", "question_id"), ("execution.jsonl", "id")):
        lines = (FIXTURES / name).read_text().splitlines()
        old = json.loads(lines[0])
        old.update({"contest_date": "2024-01-01T00:00:00", key: "old" if key == "id" else "3999"})
        (tmp_path / name).write_text("\n".join(lines + [json.dumps(old)]) + "\n")
        sources[name] = str(tmp_path / name)
    write_test_output_problems(wh, sources["test_generation.jsonl"], start_date=start_date)
    write_execution_problems(wh, sources["execution.jsonl"], start_date=start_date)
    return wh


def test_the_report_scores_all_four_scenarios_inside_the_window(tmp_path, sandbox, monkeypatch):
    wh = _warehouse(tmp_path, start_date="2024-10-01")  # abc901_a (2024-09-07) and the 2024-01-01 instances fall out
    s = settings(lcb_n=1, lcb_problems=10)
    suite = ev.load_suite(wh, s)
    assert [p.question_id for p in suite.lcb] == ["2051_A", "3901"]
    assert [p.instance_id for p in suite.lcb_test_output] == ["3901/0", "3902/0"]
    assert [p.id for p in suite.lcb_execution] == ["sample_0", "sample_1"]
    answers = answers_for({  # first match wins: a repair or scenario prompt also holds the question text
        "return [max(nums) * 2, 0]": [PAIR_RIGHT],  # 3901's repair prompt
        "doubleAll(nums = [1, 2]) == ??\n[/PYTHON]\n[ANSWER]": ["assert doubleAll(nums = [1, 2]) == [2, 4]"],
        "doubleAll(nums = [1, 2]) == ??\n[/PYTHON]\n[THOUGHT]": ["[ANSWER]\nassert doubleAll(nums = [1, 2]) == [2, 5]"],
        "countVowels(s = 'banana') == ??": ["[ANSWER]\nassert countVowels(s = 'banana') == 3\n[/ANSWER]"],
        "assert largestPairSum": ["assert largestPairSum([1, 2, 3], 4) == [5, 2]"],
        "assert countVowels": ["assert countVowels(\"banana\") == 4"],
        "Print D/T": [DIV_WRONG], "largest nums[i] + nums[j]": [PAIR_WRONG]})
    seen = []

    def complete(c, prompts, languages, task, **options):  # the one generation loop, scripted
        seen.extend(prompts)
        return [[answers(p)[0]] for p in prompts]

    monkeypatch.setattr(ev, "complete", complete)
    rows = ev.evaluate_candidate(ev.Candidate("scripted", None, None), suite, sandbox, s, only=("livecodebench",))
    lcb = {r["metric"]: r for r in rows if r["benchmark"] == "livecodebench"}
    assert sorted(lcb) == ["execution_cot_pass@1", "execution_pass@1", "pass@1", "self_repair_pass@1",
                           "test_output_pass@1"]
    assert all(set(r) == ROW_KEYS for r in lcb.values())
    values = {m: (r["value"], r["n"]) for m, r in lcb.items()}
    assert values == {"pass@1": (0.0, 2), "self_repair_pass@1": (0.5, 2), "test_output_pass@1": (0.5, 2),
                      "execution_pass@1": (1.0, 2), "execution_cot_pass@1": (0.5, 2)}
    scored = {e["problem"] for r in lcb.values() for e in r["problems"]}
    assert not scored & {"abc901_a", "3999/0", "old"}  # outside the window: never scored
    assert not any("Print their sum" in p for p in seen)


def test_absent_scenario_tables_are_notes(tmp_path):
    wh = Warehouse(root=str(tmp_path / "wh"))
    wh.write_table("synthetic_tasks", [{"split": "train", "heldout": "", "task_id": "t"}])
    suite = ev.load_suite(wh, settings())
    assert not suite.lcb and not suite.lcb_test_output and not suite.lcb_execution
    assert "lcb_test_output_problems not materialised" in suite.notes["livecodebench/lcb_test_output_problems"]
    assert "lcb_execution_problems not materialised" in suite.notes["livecodebench/lcb_execution_problems"]


def test_an_empty_window_writes_empty_scenario_tables_with_their_columns(tmp_path, monkeypatch):
    wh = Warehouse(root=str(tmp_path / "wh"))
    out = write_test_output_problems(wh, str(FIXTURES / "test_generation.jsonl"), start_date="2030-01-01")
    write_execution_problems(wh, str(FIXTURES / "execution.jsonl"), end_date="2020-01-01")
    assert out["rows"] == 0 and out["loaded_rows"] == 2
    assert wh.read_table("lcb_test_output_problems").num_rows == 0
    assert "instance_id" in wh.read_table("lcb_test_output_problems").column_names
    assert "code" in wh.read_table("lcb_execution_problems").column_names
    wh.write_table("synthetic_tasks", [{"split": "train", "heldout": "", "task_id": "t"}])
    monkeypatch.setenv("HRM_LCB_EXECUTION_SOURCE", str(FIXTURES / "execution.jsonl"))
    monkeypatch.delenv("HRM_LCB_TEST_OUTPUT_SOURCE", raising=False)
    suite = ev.load_suite(wh, settings())
    assert "no instances in the window" in suite.notes["livecodebench/lcb_execution_problems"]
    assert "no source configured" in suite.notes["livecodebench/lcb_test_output_problems"]
