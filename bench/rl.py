"""RL throughput at several environment counts: the same GRPO steps (training/rl.py) from a warehouse's
published hrm_checkpoint on its synthetic_tasks, graded by 8, 32 and 64 jailed environments at once. Per level:
samples/s, the median step's split (sampling, grading, update, waiting for grading) and the environment
utilisation (graders' busy seconds / (environments x grading wall)). A weak model's repairs mostly do not
apply and never reach the jail, so each level also grades `--gold` reference repairs (each one a jailed run)
with the same environments: the environments' own throughput. With `--agent-tasks N`, each step also runs
N x `--agent-group` multi-turn agent episodes (agents/episode_rl.py) in jailed sessions, min(envs, episodes) at
once: their episodes/s and seconds per step are reported too. JSON last line.

    .venv/bin/python bench/rl.py [--data .hrm_data] [--levels 8,32,64] [--steps 3] [--agent-tasks 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def grade_gold(rows: list[dict], envs: int, n: int) -> dict:
    """The reference answers of n training repair tasks graded by `envs` environments at once."""
    from concurrent.futures import ThreadPoolExecutor

    from resources.sandbox import default_sandbox
    from training.rewards import RepairRewards

    tasks = [r for r in rows if r["split"] == "train" and r["task_type"] == "repair"][:n]
    rewards = RepairRewards(default_sandbox().with_concurrency(envs))

    def timed(task):
        t0 = time.perf_counter()
        return rewards(task, task["answer"]).value, time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=envs) as pool:
        out = list(pool.map(timed, tasks))
    wall = time.perf_counter() - t0
    return {"gold_graded": len(out), "gold_rewarded_1": sum(v == 1.0 for v, _ in out),
            "gold_runs_per_s": round(len(out) / wall, 2), "gold_wall_s": round(wall, 2),
            "gold_env_utilisation": round(sum(s for _, s in out) / (envs * wall), 4)}


def agent_source(wh, args, envs: int, sandbox):
    """The RL loop's agent-episode source over the warehouse's synthetic repairs, min(envs, episodes) at once."""
    from agents.episode_rl import EpisodeSettings, synthetic_repair_source
    from resources.swerex import default_swe_sessions

    settings = EpisodeSettings(max_steps=args.agent_max_steps, workers=min(envs, args.agent_tasks * args.agent_group))
    return synthetic_repair_source(wh.read_table("synthetic_tasks").to_pylist(), wh.path("swe") / "envs", settings,
                                   sandbox, default_swe_sessions())


def main(argv=None) -> int:
    from resources.sandbox import default_sandbox
    from resources.settings import env_str
    from resources.warehouse import Warehouse
    from training.rl import RLSettings, train_rl

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=env_str("HRM_DATA_DIR"), help="warehouse with hrm_checkpoint and synthetic_tasks")
    p.add_argument("--levels", default="8,32,64", help="environment counts")
    p.add_argument("--steps", type=int, default=3, help="RL steps per level (the first is not in the median)")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--tasks", default="exec_predict,repair")
    p.add_argument("--gold", type=int, default=128, help="reference repairs graded per level (0: none)")
    p.add_argument("--agent-tasks", type=int, default=0, help="agent tasks per step run as episode groups (0: none)")
    p.add_argument("--agent-group", type=int, default=4)
    p.add_argument("--agent-max-steps", type=int, default=3)
    args = p.parse_args(argv)
    wh = Warehouse(root=args.data)
    parent = wh.latest_checkpoint("hrm_checkpoint")
    rows = wh.read_table("synthetic_tasks").to_pylist()
    levels = []
    for envs in [int(x) for x in args.levels.split(",")]:
        settings = RLSettings(steps=args.steps, prompts_per_step=args.prompts, group_size=args.group, envs=envs,
                              eval_tasks=0, max_minutes=0.0, task_types=tuple(args.tasks.split(",")),
                              agent_tasks_per_step=args.agent_tasks, agent_group_size=args.agent_group)
        sandbox = default_sandbox().with_concurrency(envs)
        source = agent_source(wh, args, envs, sandbox) if args.agent_tasks else None
        with tempfile.TemporaryDirectory(prefix="hrm-rl-bench-") as tmp:
            t0 = time.monotonic()
            out = train_rl(parent["checkpoint_dir"], rows, sandbox, Path(tmp) / "ckpt", settings,
                           agent_source=source)
            wall = time.monotonic() - t0
        gold = grade_gold(rows, envs, args.gold) if args.gold else {}
        steady = out["history"][1:] or out["history"]  # the first step also waits for the first grading

        def median(key: str) -> float:
            return round(statistics.median(h[key] for h in steady), 3)

        levels.append({"envs": envs, "steps": out["steps"], "samples": out["samples"], "wall_s": round(wall, 2),
                       "samples_per_s": round(out["samples"] / wall, 3),
                       "step_s": median("step_s"), "sample_s": median("sample_s"), "grade_s": median("grade_s"),
                       "update_s": median("update_s"), "wait_for_grading_s": median("wait_for_grading_s"),
                       "env_utilisation": median("env_utilisation"),
                       "reward": round(statistics.mean(h["reward"] for h in out["history"]), 4), **gold})
        if source is not None:
            levels[-1].update(agent_episodes=sum(h["agent_episodes"] for h in out["history"]),
                              agent_s=median("agent_s"),
                              agent_episodes_per_s=round(statistics.median(h["agent_episodes"] / h["agent_s"]
                                                                           for h in steady), 3),
                              agent_replies=sum(h["agent_replies"] for h in out["history"]),
                              agent_reward=round(statistics.mean(h["agent_reward"] for h in out["history"]), 4))
        print(json.dumps(levels[-1]), flush=True)
    print(json.dumps({"bench": "rl", "checkpoint": parent["weights_sha256"][:12], "params": parent.get("params"),
                      "prompts_per_step": args.prompts, "group_size": args.group, "task_types": args.tasks,
                      "levels": levels,
                      "note": "samples and grading overlap (next step sampled while this one is graded); "
                              "utilisation is busy grader seconds / (envs x grading wall)"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
