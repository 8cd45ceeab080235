"""HumanEval from the installed package: 164 problems, canonical solutions pass, simple mutations fail."""

import dagster as dg
import pytest

from evals import humaneval
from evals.humaneval import TABLE as HUMANEVAL_TABLE
from hrm_assets import humaneval as humaneval_assets
from resources.warehouse import Warehouse


def test_the_installed_package_holds_164_problems():
    problems = humaneval.load_problems()
    assert len(problems) == 164 and len({p["task_id"] for p in problems}) == 164
    assert problems[0]["task_id"] == "HumanEval/0" and problems[0]["entry_point"] == "has_close_elements"
    evals = humaneval.to_eval_problems(problems[:3])
    assert evals[0].grading_mode == "humaneval_check" and "def check(" in evals[0].hidden_tests["test.py"]


@pytest.mark.slow
def test_asset_writes_the_table_and_canonical_solutions_pass_164_of_164(sandbox, tmp_path):
    warehouse = Warehouse(root=str(tmp_path))
    result = dg.materialize([humaneval_assets.humaneval_problems, humaneval_assets.humaneval_canonical_solutions_pass],
                            resources={"warehouse": warehouse, "sandbox": sandbox},
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["humaneval_problems_valid"].passed
    canonical = checks["humaneval_canonical_solutions_pass"]
    assert canonical.passed and canonical.metadata["passed"].value == 164
    assert len(warehouse.read_table(HUMANEVAL_TABLE)) == 164


@pytest.mark.slow
def test_simple_mutations_fail(sandbox):
    problems = humaneval.load_problems()[::4]  # 41 problems, every kind of test style
    mutations = {}
    for p in problems:
        body = p["canonical_solution"]
        mutations[p["task_id"]] = [
            humaneval.mutated_completion(p),  # returns None first
            "    raise NotImplementedError\n",
            "    while True:\n        pass\n",  # timed out after 3 s... so a short timeout below
        ]
        if "return " in body:
            mutations[p["task_id"]].append(body.replace("return ", "return not ", 1))
    tasks = humaneval.grade_completions(problems, mutations, sandbox, timeout=0.5)
    survivors = [(t["task_id"], i) for t in tasks for i, ok in enumerate(t["graded_list"]) if ok]
    assert survivors == []
    timeouts = [t["results"][2] for t in tasks]
    assert set(timeouts) == {"timed out"}


@pytest.mark.slow
def test_completion_format_and_unknown_tasks(sandbox):
    problems = humaneval.load_problems()[:2]
    samples = [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in problems]
    out = humaneval.evaluate(problems, samples + samples, sandbox)
    assert out["pass@1"] == 1.0 and out["n_generations"] == 4
    try:
        humaneval.grade_completions(problems, [{"task_id": "HumanEval/999", "completion": ""}], sandbox)
    except ValueError as exc:
        assert "HumanEval/999" in str(exc)
    else:
        raise AssertionError("unknown task id accepted")


def test_humaneval_recast_as_lcb_call_problems():
    recast = humaneval.as_lcb_call_problems(humaneval.load_problems())
    assert len(recast) >= 150
    problem, reference = recast[0]
    assert problem.func_name == "has_close_elements" and problem.testtype == "functional"
    assert problem.private_tests[0] == {"input": "[1.0, 2.0, 3.9, 4.0, 5.0, 2.2]\n0.3", "output": "true",
                                        "testtype": "functional"}
    assert "def has_close_elements" in reference
