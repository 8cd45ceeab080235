"""The action format, the tools' contract, policies from specs and the task adapters (no jail: fast)."""

import subprocess

import pytest

from agents.loop import AgentTask
from agents.policies import OraclePolicy, policy_from_spec
from agents.tasks import file_diff, from_polyglot, from_synthetic_repair
from agents.tools import Action, ParseError, ToolBox, parse_action, system_prompt, truncate


def test_a_well_formed_action_parses_with_its_thought():
    a = parse_action("Look first.\n<function=view>\n<parameter=path>pkg/a.py</parameter>\n"
                     "<parameter=start>40</parameter>\n</function>\n")
    assert (a.tool, a.args, a.thought) == ("view", {"path": "pkg/a.py", "start": "40"}, "Look first.")


@pytest.mark.parametrize("reply,error", [
    ("I fixed it, the task is resolved.", "no action found"),
    ("<function=bash><parameter=command>ls</parameter></function><function=submit></function>", "2 actions"),
    ("<function=bash><parameter=command>ls</parameter></function>\nand then more", "text after"),
    ("<function=rm_rf></function>", "unknown tool 'rm_rf'"),
    ("<function=bash><parameter=cmd>ls</parameter></function>", "unknown parameter"),
    ("<function=edit><parameter=path>a.py</parameter><parameter=old>x</parameter></function>", "missing parameter"),
    ("<function=view><parameter=path>a.py</parameter><parameter=start>-3</parameter></function>", "whole number"),
    ("<function=search><parameter=pattern>x</parameter><parameter=name>*.py</parameter></function>", "exactly one"),
    ("<function=bash>ls<parameter=command>ls</parameter></function>", "outside <parameter"),
    ("<function=bash><parameter=command>ls</parameter><parameter=command>pwd</parameter></function>", "twice"),
    ("<function=bash><parameter=command>ls</parameter>", "no action found"),
])
def test_malformed_actions_get_a_clear_error(reply, error):
    with pytest.raises(ParseError, match=error):
        parse_action(reply)


def test_a_role_without_a_tool_cannot_call_it():
    with pytest.raises(ParseError, match="unknown tool 'bash'"):
        parse_action("<function=bash><parameter=command>ls</parameter></function>", ("view", "submit"))
    with pytest.raises(ValueError, match="include submit"):
        ToolBox(None, None, allowed=("view",))
    assert "bash(" not in system_prompt(("view", "submit")) and "view(path, start?, window?)" in system_prompt()


def test_rendered_edits_round_trip_even_with_leading_and_trailing_newlines():
    action = Action("edit", {"path": "a.py", "old": "\n    x = 1\n\n", "new": "\n    x = 2\n"}, "Fix x.")
    assert parse_action(action.render()) == action


def test_truncated_observations_say_how_much_was_left_out():
    text = "".join(f"line {i}\n" for i in range(5000))
    out = truncate(text, 400)
    assert len(out) < 600 and out.startswith("line 0") and out.rstrip().endswith("line 4999")
    assert f"of {len(text)} characters left out" in out
    assert truncate("short", 400) == "short"


def test_policy_specs():
    oracle = policy_from_spec("oracle")
    assert (oracle.name, oracle.kind) == ("oracle", "oracle")
    with pytest.raises(ValueError, match="expected local:CKPT_DIR"):
        policy_from_spec("gpt-4")
    with pytest.raises(ValueError, match="no gold patch"):
        oracle.reset(AgentTask("t", "fix", "true", [], []))


def test_the_oracle_edits_hunk_by_hunk_then_tests_and_submits():
    gold = file_diff({"m.py": "a = 1\nb = 2\n" + "pad\n" * 10 + "c = 3\n"},
                     {"m.py": "a = 1\nb = 20\n" + "pad\n" * 10 + "c = 30\n"})
    oracle = OraclePolicy()
    oracle.reset(AgentTask("t", "fix", "true", [], [], gold_patch=gold))
    replies = [oracle.act([{"role": "user", "content": "OBSERVATION:\nedited"}]) for _ in range(4)]
    assert [parse_action(r).tool for r in replies] == ["edit", "edit", "run_tests", "submit"]
    assert parse_action(replies[0]).args["new"].startswith("a = 1\nb = 20\n")
    # a refused edit switches the oracle to applying the whole patch
    oracle.reset(AgentTask("t", "fix", "true", [], [], gold_patch=gold))
    oracle.act([{"role": "user", "content": "task"}])
    fallback = parse_action(oracle.act([{"role": "user", "content": "OBSERVATION:\nerror: `old` not found"}]))
    assert fallback.tool == "bash" and "git apply" in fallback.args["command"] and gold in fallback.args["command"]
    assert [parse_action(oracle.act([{"role": "user", "content": "OBSERVATION:\nok"}])).tool for _ in range(2)] == \
        ["run_tests", "submit"]


def test_file_diff_is_a_patch_git_applies(tmp_path):
    before, after = {"s.py": "def f():\n    return 1\n"}, {"s.py": "def f():\n    return 2\n", "new.py": "X = 1\n"}
    (tmp_path / "s.py").write_text(before["s.py"])
    subprocess.run(["git", "apply"], input=file_diff(before, after), text=True, cwd=tmp_path, check=True)
    assert (tmp_path / "s.py").read_text() == after["s.py"] and (tmp_path / "new.py").read_text() == "X = 1\n"


def test_polyglot_and_synthetic_rows_become_tasks(monkeypatch):
    import agents.tasks

    row = {"problem_id": "python/two-fer", "language": "python", "exercise": "two-fer", "instructions": "Say two-fer.",
           "solution_files": [{"path": "two_fer.py", "content": "def two_fer(name):\n    pass\n"}],
           "test_files": [{"path": "two_fer_test.py", "content": "from two_fer import two_fer\n"}],
           "reference_files": [{"path": "two_fer.py", "content": "def two_fer(name='you'):\n    return name\n"}]}
    task = from_polyglot(row)
    assert task.instance_id == "polyglot.python.two-fer" and task.test_files == ["two_fer_test.py"]
    assert set(task.files) == {"two_fer.py", "two_fer_test.py"} and "+    return name" in task.gold_patch
    assert task.exercise == row and "pytest" in task.test_command and "PATH" not in task.session_env()
    monkeypatch.setattr(agents.tasks, "unsupported_reason", lambda language: f"{language} toolchain missing")
    with pytest.raises(ValueError, match="rust toolchain missing"):
        from_polyglot({**row, "language": "rust", "problem_id": "rust/x"})
    synth = {"task_id": "r1", "task_type": "repair", "language": "python",
             "program": "def solve(a):\n    return a - 1\n", "test_program": "got = solve(3)\nassert got == 4\n",
             "answer": "<<<<<<< SEARCH\n    return a - 1\n=======\n    return a + 1\n>>>>>>> REPLACE\n"}
    task = from_synthetic_repair(synth, "/envs/py")
    assert "got = solve(3)" in task.files["test_solution.py"] and "+    return a + 1" in task.gold_patch


def test_a_policy_that_fails_ends_the_episode_as_error_without_a_session():
    from agents.loop import Budget, run_episode

    ep = run_episode(OraclePolicy(), None, AgentTask("t", "fix", "true", [], []), Budget())
    assert ep.status == "error" and "no gold patch" in ep.detail and ep.steps == []
    row = ep.to_trajectory_row()
    assert row["resolved"] is False and row["eval_status"] == "not verified" and row["policy"] == "oracle"


def test_agent_step_examples_show_the_prompt_a_local_policy_acts_on():
    import json

    from datagen.swe.examples import AGENT_PROMPT_CHARS, agent_prompt, from_trajectories

    msgs = [{"role": "system", "content": system_prompt()}, {"role": "user", "content": "Fix clamp. " * 40},
            {"role": "assistant", "content": Action("view", {"path": "a.py"}).render()},
            {"role": "user", "content": "OBSERVATION:\n[a.py: lines 1-80 of 3]"},
            {"role": "assistant", "content": Action("submit", {}).render()}]
    row = {"traj_id": "t", "instance_id": "i", "resolved": True, "policy": "local", "messages": json.dumps(msgs)}
    examples = from_trajectories([row])
    assert [e.prompt for e in examples] == [agent_prompt(msgs[:2]), agent_prompt(msgs[:4])]
    assert all(len(e.prompt) <= AGENT_PROMPT_CHARS and e.prompt.endswith("[assistant]\n") for e in examples)
    assert examples[1].prompt.rstrip().endswith("lines 1-80 of 3]\n\n[assistant]") and examples[1].answer == msgs[4]["content"]
    assert {e.source_asset for e in from_trajectories([{**row, "policy": "oracle"}])} == {"swe_trajectories:oracle"}
    assert from_trajectories([{**row, "resolved": False}]) == []


def test_resolve_rate_intervals_and_the_rollout_summary():
    from agents.rollouts import summary, wilson_interval

    assert wilson_interval(0, 2) == (0.0, 0.6576) and wilson_interval(2, 2) == (0.3424, 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(50, 100)
    assert abs(low - 0.4038) < 1e-3 and abs(high - 0.5962) < 1e-3
    rows = [{"resolved": True, "n_steps": 3, "tokens": 10, "episode_wall_s": 4.0, "act_s": 1.0, "status": "submitted"},
            {"resolved": False, "n_steps": 6, "tokens": 30, "episode_wall_s": 6.0, "act_s": 5.0,
             "status": "budget_exhausted"}]
    s = summary(rows)
    assert (s["episodes"], s["resolved"], s["resolve_rate"], s["steps_per_episode"], s["tokens"]) == (2, 1, 0.5, 4.5, 40)
    assert (s["wall_s"], s["overhead_s"], s["overhead_fraction"]) == (10.0, 4.0, 0.4)
    assert s["by_status"] == {"submitted": 1, "budget_exhausted": 1}
