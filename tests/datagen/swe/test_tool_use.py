"""Tool-use workflows are executed in the sandbox and kept only when every step and the final check hold."""

import json
import random

import pytest

from datagen.swe.multi_agent import topological_levels
from datagen.swe.tool_use import (ToolStep, Workflow, build_tool_use_examples, git_merge_conflict, run_workflow,
                                   unavailable_workflows, workflows)
from datagen.swe.examples import from_tool_use, tool_name, with_workflow_example
from datagen.schema import TrainingExample


@pytest.mark.slow
def test_git_merge_conflict_is_real_and_resolved(sandbox):
    row = run_workflow(sandbox, git_merge_conflict(random.Random(1)))
    assert row["kept"], row["reason"]
    steps = json.loads(row["steps"])
    merge = next(s for s in steps if s["command"].startswith("git merge"))
    assert merge["exit_code"] != 0 and "CONFLICT" in merge["output"]
    assert all(s["recovers"] == merge["index"] for s in steps[merge["index"] + 1:])


@pytest.mark.slow
def test_error_recovery_variants_fail_then_recover(sandbox):
    kept, rejected = build_tool_use_examples(sandbox, seed=3, only=["make_build_recovery", "fs_reorganise_recovery",
                                                                    "git_nothing_staged"])
    assert not rejected, [r["reason"] for r in rejected]
    assert {r["category"] for r in kept} == {"make", "fs", "git"}
    for r in kept:
        steps = json.loads(r["steps"])
        failed = [s for s in steps if s["expect"] == "fail"]
        assert failed and all(s["exit_code"] != 0 for s in failed)
        assert any(s["recovers"] == failed[0]["index"] for s in steps)


@pytest.mark.slow
def test_maven_builds_offline_or_says_why_not(sandbox):
    missing = unavailable_workflows().get("maven_package_recovery")
    if missing:  # the machine lacks Debian's Maven plugin packages: the workflow is skipped with the reason
        assert "maven" in missing.lower() or "mvn" in missing
        assert all(not w.workflow_id.startswith("maven") for w in workflows())
        return
    kept, rejected = build_tool_use_examples(sandbox, seed=1, only=["maven_package_recovery"])
    assert not rejected, [r["reason"] for r in rejected]
    steps = json.loads(kept[0]["steps"])
    assert steps[0]["exit_code"] != 0 and "incompatible types" in steps[1]["output"]
    assert kept[0]["language"] == "java"


@pytest.mark.slow
def test_workflow_with_a_false_final_state_is_dropped(sandbox):
    wf = Workflow("broken", "fs", "normal", "none", "Create a.txt", [ToolStep("echo hi > a.txt", "a.txt written")],
                  check="test -f b.txt")
    row = run_workflow(sandbox, wf)
    assert not row["kept"] and "final-state check failed" in row["reason"]
    surprise = Workflow("surprise", "fs", "normal", "none", "List", [ToolStep("ls /nonexistent", "lists")], check="true")
    row = run_workflow(sandbox, surprise)
    assert not row["kept"] and "expected ok" in row["reason"]


def test_workflows_vary_with_the_seed():
    a = [w.task for w in workflows(seed=1)]
    b = [w.task for w in workflows(seed=2)]
    assert a == [w.task for w in workflows(seed=1)] and a != b
    assert len({w.workflow_id for w in workflows(seed=1, variants=2)}) == 2 * len(a)


@pytest.mark.slow
def test_training_examples_and_scenarios_from_a_workflow(sandbox):
    row = run_workflow(sandbox, git_merge_conflict(random.Random(5)))
    assert row["kept"]
    examples = from_tool_use([row])
    assert len(examples) == row["n_steps"] and all(isinstance(e, TrainingExample) for e in examples)
    assert {e.tool_calls[0]["tool"] for e in examples} >= {"git"}
    whole = with_workflow_example(row)
    assert whole["task_type"] == "tool_use" and whole["answer"].count("\n") == row["n_steps"] - 1


def test_tool_names_map_to_the_model_vocabulary():
    from model.vocab import TOOLS

    cases = {"git merge x": "git", "python3 -m pip install -q x": "pip", "PYTHONPATH=/tmp python3 -c 1": "shell",
             "cd app && npm test": "npm", "cargo run -q": "cargo", "ctest": "cmake", "mkdir -p a": "fs",
             "make -q": "make"}
    for command, tool in cases.items():
        assert tool_name(command) == tool and tool in TOOLS


def test_dependency_cycles_are_rejected():
    with pytest.raises(ValueError, match="cycle"):
        topological_levels([{"id": "a", "depends_on": ["b"]}, {"id": "b", "depends_on": ["a"]}])
    assert topological_levels([{"id": "a", "depends_on": []}, {"id": "b", "depends_on": ["a"]},
                               {"id": "c", "depends_on": ["a"]}]) == {"a": 0, "b": 1, "c": 1}


def test_whole_workflows_are_held_out_for_the_report():
    from datagen.swe.tool_use import workflows
    from datagen.swe.examples import _split

    splits = {w.workflow_id: _split(w.workflow_id, test_percent=20) for w in workflows()}
    assert "test" in splits.values() and "train" in splits.values()
    assert {_split(k, test_percent=20) for k in splits} == set(splits.values())  # deterministic
