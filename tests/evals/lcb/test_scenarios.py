"""Self-repair, test-output prediction and code execution: loaders, lcb_runner-format prompts, graders;
and the EvalProblem mapping that lets one generation loop serve LCB."""

import json
from pathlib import Path

import pytest

from evals.lcb.grader import grade_generations
from evals.lcb.pipeline import scenario_eval_problems, to_eval_problems
from evals.lcb.prompts import codegen_messages, repair_feedback
from evals.lcb.scenarios import (grade_execution, grade_test_output, load_execution_problems,
                                      load_test_output_problems, self_repair_prompts)
from evals.lcb.source import load_records

FIXTURES = Path(__file__).parents[2] / "fixtures" / "lcb"


@pytest.mark.slow
def test_test_output_prediction_prompt_and_grading(sandbox, tmp_path):
    problems, rejected = load_test_output_problems(FIXTURES / "test_generation.jsonl")
    assert not rejected and [p.instance_id for p in problems] == ["3901/0", "3902/0"]
    user = problems[0].messages()[1]["content"]
    assert user.endswith("Please complete the following test case:\n\n```\n"
                         "assert largestPairSum([1, 2, 3], 4) == # TODO\n```\n")
    marker = tmp_path / "evaluated-on-the-host"
    outputs = {"3901/0": ["```python\nassert largestPairSum([1, 2, 3], 4) == [5, 2]\n```",
                          "assert largestPairSum([1,2,3], 4) == [5, 3]",
                          "The answer is five and two.",
                          f"assert largestPairSum([1, 2, 3], 4) == open({str(marker)!r}, 'w').write('x')"],
               "3902/0": ["assert countVowels(\"banana\") == 3"]}
    graded = {g["instance_id"]: g["graded_list"] for g in grade_test_output(problems, outputs, sandbox)}
    assert graded == {"3901/0": [True, False, False, False], "3902/0": [True]}
    assert not marker.exists()  # the model's expression ran in the jail, not here


@pytest.mark.slow
def test_code_execution_grading(sandbox):
    problems, rejected = load_execution_problems(FIXTURES / "execution.jsonl")
    assert not rejected and len(problems) == 2
    assert "assert doubleAll(nums = [1, 2]) == ??" in problems[0].messages()[1]["content"]
    outputs = {"sample_0": ["assert doubleAll(nums = [1, 2]) == [2, 4]\n[/ANSWER]",
                            "assert doubleAll(nums = [1, 2]) == [2, 5]",
                            "doubleAll(nums = [1, 2])"],  # repeats the input: dropped, as lcb_runner does
               "sample_1": ["countVowels(s = 'banana')"]}
    graded = {g["id"]: g["graded_list"] for g in grade_execution(problems, outputs, sandbox)}
    assert graded == {"sample_0": [True, False], "sample_1": [False]}


def test_scenario_loaders_quarantine_malformed_rows(tmp_path):
    good = (FIXTURES / "execution.jsonl").read_text().splitlines()[0]
    bad = json.loads(good)
    del bad["code"]
    path = tmp_path / "execution.jsonl"
    path.write_text("\n".join([good, json.dumps(bad), "{nope"]) + "\n")
    problems, rejected = load_execution_problems(path)
    assert len(problems) == 1
    assert [(r["row"], r["reason"][:13]) for r in rejected] == [(2, "missing field"), (3, "not valid JSO")]


@pytest.mark.slow
def test_self_repair_prompts_follow_lcb_runner(sandbox):
    problems = load_records([FIXTURES / "code_generation_plain.jsonl"]).problems
    gens = json.loads((FIXTURES / "generations.json").read_text())
    graded = grade_generations(problems, gens, sandbox, timeout=1)
    prompts = self_repair_prompts(problems, graded)
    assert len(prompts) == 15
    by_key = {(p["question_id"], p["code_index"]): p for p in prompts}
    assert by_key[("abc901_a", 0)]["messages"] is None  # passed: kept as is
    wrong = by_key[("abc901_a", 1)]["messages"][1]["content"]
    assert "The above code is incorrect and got a wrong answer.\nInput: 1\n-5\n\nGenerated Output: 0\n" in wrong
    assert wrong.startswith("### Question:\nYou are given N integers")
    assert wrong.endswith("### Answer: (use the provided format with backticks)\n\n\n\nFirst reason about the code "
                          "providing a textual explanation of what is wrong with the code and then generate a fixed "
                          "of the program enclosed code delimiters.")
    assert "time limit exceeded" in by_key[("abc901_a", 3)]["messages"][1]["content"]
    assert repair_feedback(json.dumps({"execution time": 0.1})) == ""


@pytest.mark.slow
def test_eval_problem_mapping_grades_like_the_records(sandbox):
    problems = load_records([FIXTURES / "code_generation_pickled.jsonl"]).problems
    evals = to_eval_problems(problems)
    assert {e.grading_mode for e in evals} == {"lcb_stdin", "lcb_call"}
    assert evals[0].prompt == codegen_messages(problems[0])[1]["content"]
    assert "### Format: You will use the following starter code" in evals[2].prompt
    gens = {"3901": json.loads((FIXTURES / "generations.json").read_text())[2]["code_list"]}
    [q] = grade_generations(evals, gens, sandbox, timeout=1)
    assert q["graded_list"] == json.loads((FIXTURES / "expected_graded.json").read_text())["3901"]
    test_output, _ = load_test_output_problems(FIXTURES / "test_generation.jsonl")
    execution, _ = load_execution_problems(FIXTURES / "execution.jsonl")
    scenario = scenario_eval_problems(test_output, execution)
    assert [e.grading_mode for e in scenario] == ["exec_output"] * 4
    assert scenario[0].metadata["scenario"] == "test_output_prediction"


@pytest.mark.parametrize("code", [-1, -2, -3, -4, -5])
def test_every_error_code_has_feedback(code):
    assert repair_feedback({"error_code": code, "error": "E", "inputs": "I", "output": "O", "expected": "X"})
