"""Trajectories: the SWE-smith format loader and the RL view (rollouts: tests/agents)."""

import json

from datagen.swe.trajectories import load_trajectories, rl_view


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
