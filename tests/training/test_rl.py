"""hrm_rl_checkpoint end to end on a tiny model: GRPO steps with rewards from the jail, a new checkpoint
published with its curves, a re-materialisation with nothing changed reusing the run, and the report's
`hrm-rl` candidate loading it."""

import shutil

import dagster as dg
import pytest

from resources.swerex import SweRexSessions
from resources.warehouse import Warehouse

RUN = {"steps": 2, "prompts_per_step": 2, "group_size": 3, "envs": 4, "lr": 1e-3, "eval_tasks": 2,
       "max_minutes": 0.0, "task_types": "exec_predict,repair",
       "agent_tasks_per_step": 1, "agent_group_size": 2, "agent_max_steps": 2, "agent_max_new_tokens": 16}


@pytest.fixture
def hrm_warehouse(data_warehouse, tmp_path, one_torch_thread):
    from training.pipeline import CheckpointSettings, train_checkpoint

    wh = Warehouse(root=str(shutil.copytree(data_warehouse.root, tmp_path / "wh")))
    train_checkpoint(CheckpointSettings(model_overrides={"max_seq_len": 256}, steps_per_stage=4, batch_size=4,
                                        checkpoint_every=4, max_minutes=0.0, warmup_steps=1), wh, "hrm_checkpoint",
                     "hrm")
    return wh


def _materialize(wh, sandbox):
    from hrm_assets import training as tr

    result = dg.materialize([tr.hrm_rl_checkpoint], run_config={"ops": {"hrm_rl_checkpoint": {"config": RUN}}},
                            instance=dg.DagsterInstance.ephemeral(),
                            resources={"warehouse": wh, "sandbox": sandbox,
                                       "swe_sessions": SweRexSessions(command_timeout_s=30, startup_timeout_s=30)})
    assert result.success
    return result.asset_materializations_for_node("hrm_rl_checkpoint")[0].metadata


def _history(wh) -> list[dict]:
    import json
    from pathlib import Path

    run_dir = Path(wh.latest_checkpoint("hrm_rl_checkpoint")["run_dir"])
    return json.loads((run_dir / "rl.json").read_text())["history"]


@pytest.mark.slow
def test_rl_trains_publishes_and_reuses_a_finished_run(hrm_warehouse, sandbox):
    from evals.pipeline import load_candidate

    wh = hrm_warehouse
    parent = wh.latest_checkpoint("hrm_checkpoint")["weights_sha256"]
    meta = _materialize(wh, sandbox)
    published = wh.latest_checkpoint("hrm_rl_checkpoint")
    assert published["parent_sha256"] == parent
    # a 4-step model rarely earns a reward; with no group holding different rewards there is nothing to learn
    signal = sum(h["groups_with_signal"] + h["agent_groups_with_signal"] for h in _history(wh))
    assert (published["weights_sha256"] != parent) == (signal > 0)
    assert meta["steps"].value == 2 and meta["parent_hash"].value == parent[:12]
    assert meta["kl_last_step"].value >= 0 and meta["entropy_last_step"].value > 0
    assert {"reward_first_step", "reward_last_step", "samples_per_s", "train_tasks"} <= set(meta)
    if meta["validation_tasks"].value:  # the held-out curve's tasks (the validation split)
        assert {"heldout_exec_predict_before", "heldout_exec_predict_after"} <= set(meta)
    assert "data:image/png;base64,iVBOR" in meta["curves"].value  # the PNG itself, inline
    history = meta["reward_by_task_type"].value
    assert [h["step"] for h in history] == [1, 2] and all(set(h) >= {"exec_predict", "repair", "agent_episode"}
                                                          for h in history)
    # the second source: 2 steps x 1 agent task x 2 episodes in jailed sessions, graded by verify
    assert meta["agent_episodes"].value == 4 and [h["step"] for h in meta["agent_by_step"].value] == [1, 2]
    assert sum(h["agent_replies"] for h in meta["agent_by_step"].value) >= 4

    again = _materialize(wh, sandbox)  # nothing changed: the finished run is reused, not trained again
    assert again["checkpoint_hash"].value == meta["checkpoint_hash"].value
    assert wh.latest_checkpoint("hrm_rl_checkpoint")["created_at"] == published["created_at"]

    candidate = load_candidate(wh, "hrm-rl")
    assert candidate.checkpoint_hash == published["weights_sha256"][:12] and candidate.quantization == "none"


@pytest.mark.slow
def test_the_loop_updates_the_policy_when_rewards_differ(hrm_warehouse, tmp_path):
    """With a reward that tells samples apart (here: the parity of the answer's length), every step has signal,
    the weights move and the KL to the start grows; the overlapped and the plain loop both run."""
    from training.rewards import Reward
    from training.rl import RLSettings, train_rl

    wh = hrm_warehouse
    parent = wh.latest_checkpoint("hrm_checkpoint")
    rows = wh.read_table("synthetic_tasks").to_pylist()
    for overlap in (True, False):
        settings = RLSettings(steps=2, prompts_per_step=2, group_size=4, envs=2, lr=1e-3, eval_tasks=1,
                              task_types=("exec_predict",), max_minutes=0.0, overlap=overlap, temperature=1.5)
        out = train_rl(parent["checkpoint_dir"], rows, None, tmp_path / f"rl-{overlap}", settings,
                       reward=lambda task, text: Reward(float(len(text) % 2), "parity"))
        assert out["weights_sha256"] != parent["weights_sha256"] and out["steps"] == 2
        assert all(h["groups_with_signal"] > 0 for h in out["history"]) and out["history"][-1]["kl"] > 0
        assert out["samples"] == 2 * 2 * 4 and out["history"][0]["reward_kinds"].keys() == {"parity"}


def test_the_held_out_curve_takes_its_tasks_across_templates():
    from training.rl import across_templates

    tasks = [{"template": t, "i": i} for t in ("arith", "loop", "char") for i in range(5)]
    picked = across_templates(tasks, 7)
    assert [t["template"] for t in picked] == ["arith", "loop", "char"] * 2 + ["arith"]
    assert across_templates(tasks[:2], 5) == tasks[:2] and across_templates([], 3) == []
