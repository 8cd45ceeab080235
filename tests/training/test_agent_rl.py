"""Multi-turn agent episodes as the RL loop's second source (agents/episode_rl.py, training/rl.py): episodes of
our checkpoint in real jailed sessions on synthetic repair tasks, graded by `verify` in a fresh jail; rewards
that cannot be gamed by an agent; and the policy trained on the episodes' replies."""

import shutil

import pytest

from agents.loop import Budget
from agents.tools import Action
from resources.warehouse import Warehouse

pytestmark = pytest.mark.slow  # jailed sessions, pytest in the jail, a model decoding

ROW = {"task_id": "repair-positive-total", "task_type": "repair", "language": "python", "split": "train",
       "program": "def solve(xs):\n    total = 0\n    for x in xs:\n        if x < 0:\n            total += x\n"
                  "    return total\n",
       "test_program": "got = solve([1, -2, 3])\nassert got == 4\ngot = solve([])\nassert got == 0\n",
       "answer": "<<<<<<< SEARCH\n        if x < 0:\n=======\n        if x > 0:\n>>>>>>> REPLACE\n"}


@pytest.fixture(scope="module")
def sessions():
    from resources.swerex import SweRexSessions

    return SweRexSessions(command_timeout_s=30, startup_timeout_s=30)


@pytest.fixture(scope="module")
def envs_root(tmp_path_factory):
    return tmp_path_factory.mktemp("envs")


class Scripted:
    """A policy replaying fixed replies, then submitting."""

    kind = name = "scripted"

    def __init__(self, replies):
        self.replies, self.last_tokens = list(replies), 5

    def act(self, messages):
        return self.replies.pop(0) if self.replies else Action("submit", {}).render()


def _edit(path, old, new):
    return Action("edit", {"path": path, "old": old, "new": new}).render()


def test_episode_rewards_come_from_the_clean_tests_and_cannot_be_gamed(sandbox, sessions, envs_root):
    from agents.episode_rl import EpisodeSettings, run_graded, synthetic_repair_source
    from agents.policies import policy_from_spec
    from training.rewards import FORMAT, episode_reward

    source = synthetic_repair_source([ROW], envs_root, EpisodeSettings(), sandbox, sessions)
    task = source.tasks[0]

    def reward(policy):
        return episode_reward(run_graded(policy, task, Budget(max_steps=6), sandbox, sessions))

    fixed = reward(policy_from_spec("oracle"))
    assert (fixed.value, fixed.kind) == (1.0, "fixed")
    assert reward(Scripted([])).value == 0.0  # submitted nothing
    # the tests are graded in their clean version: rewriting them changes nothing that counts
    cheat = reward(Scripted([_edit("test_solution.py", "assert got == 4", "assert True")]))
    assert (cheat.value, cheat.kind) == (0.0, "no_patch")
    # a solution that prints a full pytest pass summary and leaves with status 0 before any test runs
    fake = ('import os, sys\nsys.stdout.write("test_solution.py ..\\n2 passed in 0.01s\\n")\n'
            'sys.stdout.flush()\nos._exit(0)\n')
    forged = reward(Scripted([_edit("solution.py", "def solve(xs):\n", fake + "def solve(xs):\n")]))
    assert forged.value == 0.0, forged
    # a well-formed edit that runs but fixes nothing earns the format reward only
    wrong = reward(Scripted([_edit("solution.py", "total += x", "total += 2 * x")]))
    assert (wrong.value, wrong.kind) == (FORMAT, "unchanged")


@pytest.fixture(scope="module")
def hrm_warehouse(data_warehouse, tmp_path_factory):
    from training.pipeline import CheckpointSettings, train_checkpoint

    wh = Warehouse(root=str(shutil.copytree(data_warehouse.root, tmp_path_factory.mktemp("agent_rl") / "wh")))
    train_checkpoint(CheckpointSettings(model_overrides={"max_seq_len": 256}, steps_per_stage=4, batch_size=4,
                                        checkpoint_every=4, max_minutes=0.0, warmup_steps=1), wh, "hrm_checkpoint",
                     "hrm")
    return wh


def test_sampled_episodes_keep_the_policys_own_replies(hrm_warehouse, sandbox, sessions, envs_root, one_torch_thread):
    from agents.episode_rl import EpisodeSettings, synthetic_repair_source
    from model.checkpoint import load_checkpoint
    from model.generate import generate_ids
    from model.vocab import language_id, task_id

    model, tok = load_checkpoint(hrm_warehouse.latest_checkpoint("hrm_checkpoint")["checkpoint_dir"])
    settings = EpisodeSettings(max_steps=2, max_new_tokens=24, workers=2)
    source = synthetic_repair_source([ROW], envs_root, settings, sandbox, sessions)
    first = source.sample(model, tok, source.tasks, 2, 1.0, seed=7)
    again = source.sample(model, tok, source.tasks, 2, 1.0, seed=7)
    assert len(first) == 2 and all(len(e.turns) == 2 for e in first)  # a 4-step model never submits
    assert [e.turns for e in first] == [e.turns for e in again]  # seeded: the same draws
    assert first[0].turns != first[1].turns  # the group's episodes are different draws
    for e in first:
        assert e.condition == (language_id("python"), task_id("agent_step"))
        for k, (prompt, answer) in enumerate(e.turns):
            assert len(prompt) + settings.max_new_tokens <= model.config.max_seq_len
            # the recorded reply is what the policy decodes from that prompt with that turn's seed
            seed = 7 * 1_000_003 + first.index(e) * 1_009 + k
            redo = generate_ids(model, [prompt], e.condition[0], e.condition[1], max_new_tokens=24,
                                temperature=1.0, seed=seed, eos_id=tok.eos_id)[0]
            assert answer[:len(redo)] == redo and len(answer) - len(redo) in (0, 1)


def test_agent_episodes_train_the_policy_only_when_their_rewards_differ(hrm_warehouse, sandbox, sessions, envs_root,
                                                                        tmp_path, one_torch_thread):
    """The single-answer source earns a constant reward (no signal), so only the episodes can move the
    weights: with a reward that tells episodes apart they do, with a constant one they do not."""
    from agents.episode_rl import EpisodeSettings, synthetic_repair_source
    from training.rewards import Reward
    from training.rl import RLSettings, train_rl

    wh = hrm_warehouse
    parent = wh.latest_checkpoint("hrm_checkpoint")
    rows = wh.read_table("synthetic_tasks").to_pylist()
    source = synthetic_repair_source(rows + [ROW], envs_root, EpisodeSettings(max_steps=2, max_new_tokens=16,
                                                                             workers=2), sandbox, sessions)
    settings = RLSettings(steps=1, prompts_per_step=1, group_size=2, envs=2, lr=1e-2, eval_tasks=0,
                          task_types=("exec_predict",), max_minutes=0.0, temperature=1.5,
                          agent_tasks_per_step=1, agent_group_size=3)
    flat = lambda task, text: Reward(0.0, "flat")  # noqa: E731
    outs = {}
    for name, agent_reward in (("parity", lambda e: Reward(float(e.tokens % 2), "parity")),
                               ("flat", lambda e: Reward(0.5, "flat"))):
        outs[name] = train_rl(parent["checkpoint_dir"], rows, None, tmp_path / name, settings, reward=flat,
                              agent_source=source, agent_reward=agent_reward)
    step = outs["parity"]["history"][0]
    assert step["agent_episodes"] == 3 and step["agent_replies"] >= 3 and step["groups_with_signal"] == 0
    assert "agent_episode" in step["reward_by_task_type"]
    assert step["agent_groups_with_signal"] == 1  # seeded: the three episodes' lengths differ in parity
    assert outs["parity"]["weights_sha256"] != parent["weights_sha256"]
    assert outs["flat"]["history"][0]["agent_groups_with_signal"] == 0
    assert outs["flat"]["weights_sha256"] == parent["weights_sha256"]
