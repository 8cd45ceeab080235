"""Trajectories: SWE-smith format loader, text policies acting in jailed sessions, the RL view."""

import importlib.util
import json
from pathlib import Path

import pytest

from datagen.swe.repos import baseline_row, parse_repo_spec, repo_from_row
from datagen.swe.tasks import TaskSettings, build_tasks
from datagen.swe.trajectories import ScriptedExpert, TextPolicy, load_trajectories, rl_view, rollout
from resources.swerex import SweRexSessions

_spec = importlib.util.spec_from_file_location("swe_tiny_repo2", Path(__file__).with_name("test_tasks.py"))
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory, sandbox):
    root = tmp_path_factory.mktemp("traj")
    row = baseline_row(sandbox, parse_repo_spec(str(_tiny.make_tiny_repo(root))), root / "work")
    tasks, _, _ = build_tasks(sandbox, row, TaskSettings(max_bugs=6))
    return repo_from_row(row), tasks[0]


@pytest.mark.slow
def test_text_policy_acts_through_parsed_commands(tiny_task, sandbox):
    """A text generator that writes the expert's actions as text solves the task; one that babbles does not."""
    repo, task = tiny_task
    plan = ScriptedExpert().plan(task)

    def replay(prompt: str) -> str:
        step = plan[prompt.count("[assistant]")]
        if step.tool == "submit":
            return "All tests pass now."
        return f"{step.thought}\n<function=bash><parameter=command>{step.command}</parameter></function>"

    sessions = SweRexSessions(command_timeout_s=60)
    solved = rollout(sessions, sandbox, repo, task, TextPolicy("replay", replay))
    assert solved["resolved"] and solved["model"] == "replay"
    lazy = rollout(sessions, sandbox, repo, task, TextPolicy("lazy", lambda p: "<function=bash><parameter=command>ls"
                                                                               "</parameter></function>", max_steps=2))
    assert not lazy["resolved"] and lazy["patch"] == ""
    rows = rl_view([solved, lazy])
    assert [r["reward"] for r in rows if r["done"]] == [1.0, 0.0]
    assert all(r["reward"] == 0.0 for r in rows if not r["done"])


def test_loader_reads_swesmith_trajectory_rows_and_rejects_bad_ones(tmp_path):
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "fix it"},
            {"role": "assistant", "content": "<function=bash><parameter=command>ls</parameter></function>"},
            {"role": "user", "content": "OBSERVATION:\na.py"}]
    good = {"messages": msgs, "instance_id": "a__b.12345678.func_pm_op_swap__abcdefgh", "resolved": True,
            "model": "claude-3-7-sonnet", "traj_id": "t1", "patch": "diff --git a/a.py b/a.py\n"}
    as_string = {**good, "traj_id": "t2", "messages": json.dumps(msgs)}
    missing = {k: v for k, v in good.items() if k != "resolved"}
    broken = {**good, "traj_id": "t4", "messages": "not json"}
    f = tmp_path / "trajs.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in (good, as_string, missing, broken)) + "\n")
    rows, rejected = load_trajectories(str(f))
    assert [r["traj_id"] for r in rows] == ["t1", "t2"] and all(r["n_steps"] == 1 for r in rows)
    assert "missing fields ['resolved']" in rejected[0]["reason"] and "messages" in rejected[1]["reason"]
    assert [r["state"] for r in rl_view(rows)][0] == json.dumps(msgs[:2])


@pytest.mark.slow
def test_hrm_checkpoint_acts_as_an_agent(tiny_task, sandbox, tmp_path):
    """An (untrained) HRM checkpoint rolls out through the same loop; long transcripts are cut to its context."""
    from model import build_model
    from model.checkpoint import save_checkpoint
    from model.config import ModelConfig
    from model.tokenizer import train_tokenizer

    from datagen.swe.trajectories import hrm_policy

    train_tokenizer(["def f(x):\n    return x + 1\n", "python -m pytest -q\ngit diff\n"] * 20, 512, tmp_path / "tok")
    config = ModelConfig.preset("tiny")
    save_checkpoint(tmp_path / "ckpt", build_model(config), config, tokenizer_dir=tmp_path / "tok")
    policy = hrm_policy(tmp_path / "ckpt", max_new_tokens=24)
    policy.max_steps = 2
    repo, task = tiny_task
    row = rollout(SweRexSessions(command_timeout_s=30), sandbox, repo, task, policy)
    assert row["model"] == "hrm:ckpt" and row["resolved"] is False
    assert json.loads(row["messages"])[1]["content"] == task["problem_statement"]
