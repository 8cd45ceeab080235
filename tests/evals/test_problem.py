"""evals/problem.py: the contract every benchmark maps onto; a problem with an unknown grading mode is
refused by name."""

import pytest

from evals.polyglot.exercises import Exercise
from evals.problem import GRADING_MODES, EvalProblem


def test_an_unknown_grading_mode_names_the_problem():
    with pytest.raises(ValueError, match="lcb/abc123: unknown grading_mode 'exact'"):
        EvalProblem(benchmark="lcb", problem_id="abc123", language="python", prompt="p", grading_mode="exact")


def test_a_problem_round_trips_as_plain_data():
    problem = EvalProblem(benchmark="humaneval", problem_id="HumanEval/0", language="python", prompt="def f():",
                          grading_mode="humaneval_check", hidden_tests={"check": "assert f() is None"},
                          date="2021-07-07", metadata={"entry_point": "f"})
    data = problem.to_dict()
    assert EvalProblem(**data) == problem and data["visible_files"] == {} and data["hidden_tests"]["check"]


def test_defaults_are_not_shared_between_problems():
    a = EvalProblem(benchmark="synthetic", problem_id="a", language="python", prompt="", grading_mode="exec_output")
    b = EvalProblem(benchmark="synthetic", problem_id="b", language="python", prompt="", grading_mode="exec_output")
    a.visible_files["x.py"] = "1"
    assert b.visible_files == {}


def test_a_polyglot_exercise_shows_its_stubs_and_hides_its_tests():
    ex = Exercise("python", "adder", "Add two numbers.", {"adder.py": "def add(a, b):\n    pass\n"},
                  {"adder_test.py": "def test_add(): ..."}, editor_files={"helper.py": "H = 1\n"},
                  reference_files={"adder.py": "def add(a, b):\n    return a + b\n"}, commit="c0ffee")
    problem = ex.to_eval_problem()
    assert problem.grading_mode in GRADING_MODES and problem.problem_id == "python/adder"
    assert set(problem.visible_files) == {"adder.py", "helper.py"} and "adder_test.py" not in problem.prompt
    assert problem.hidden_tests == {"adder_test.py": "def test_add(): ..."}
    assert problem.metadata == {"cross_language_key": "adder", "commit": "c0ffee"}
