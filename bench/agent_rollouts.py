"""Wall time the agent assets add to a run: the functions the asset bodies call (agent_rollouts for every
configured policy, swe_trajectories) with their default settings, on a scratch warehouse holding a copy of an
existing warehouse's SWE tables (and polyglot_problems, for HRM_AGENT_POLYGLOT) and its published checkpoints
(the main command's, by default). JSON last line.

    .venv/bin/python bench/agent_rollouts.py [--from .hrm_data]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TABLES = ("swe_repos", "swesmith_tasks")
OPTIONAL_TABLES = ("polyglot_problems",)  # read when HRM_AGENT_POLYGLOT asks for exercises


def main(argv=None) -> int:
    from agents import rollouts
    from resources.partitions import agent_policies
    from resources.sandbox import default_sandbox
    from resources.settings import env_str, split_csv, value
    from resources.swerex import default_swe_sessions
    from resources.warehouse import Warehouse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", default=env_str("HRM_DATA_DIR"), help="the warehouse to copy from")
    args = p.parse_args(argv)
    src = Path(args.source)
    settings = rollouts.RolloutSettings(
        tasks=value("HRM_AGENT_TASKS"), max_steps=value("HRM_AGENT_MAX_STEPS"), max_tokens=value("HRM_AGENT_MAX_TOKENS"),
        max_wall_s=value("HRM_AGENT_MAX_WALL_S"), max_new_tokens=value("HRM_AGENT_MAX_NEW_TOKENS"),
        workers=value("HRM_SWE_TRAJ_WORKERS"), polyglot_languages=split_csv(value("HRM_AGENT_POLYGLOT")),
        polyglot_per_language=value("HRM_AGENT_POLYGLOT_PER_LANGUAGE"))
    demos = rollouts.TrajectorySettings(tasks_per_repo=value("HRM_SWE_TRAJ_TASKS_PER_REPO"),
                                        workers=value("HRM_SWE_TRAJ_WORKERS"))
    with tempfile.TemporaryDirectory(prefix="hrm-agent-bench-") as tmp:
        for name in TABLES + tuple(n for n in OPTIONAL_TABLES if (src / "tables" / n).is_dir()):
            shutil.copytree(src / "tables" / name, Path(tmp) / "tables" / name)
        for latest in (src / "checkpoints").glob("*/latest.json"):
            (Path(tmp) / "checkpoints" / latest.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(latest, Path(tmp) / "checkpoints" / latest.parent.name / "latest.json")
        sandbox, sessions, warehouse = default_sandbox(), default_swe_sessions(), Warehouse(root=tmp)
        timings, meta = {}, {}
        for key in agent_policies.get_partition_keys():
            t0 = time.monotonic()
            m = rollouts.build_agent_rollouts(settings, key, sandbox, sessions, warehouse)
            timings[f"agent_rollouts[{key}]"] = round(time.monotonic() - t0, 2)
            meta[key] = {k: m[k] for k in ("episodes", "resolved", "resolve_rate", "resolve_ci_low", "resolve_ci_high",
                                           "steps_per_episode", "tokens", "wall_s", "overhead_s", "by_status",
                                           "by_source")}
        t0 = time.monotonic()
        m = rollouts.build_swe_trajectories(demos, sandbox, sessions, warehouse)
        timings["swe_trajectories"] = round(time.monotonic() - t0, 2)
        meta["swe_trajectories"] = {k: m[k] for k in ("oracle", "oracle_resolved", "model_rows")}
    print(json.dumps({"timings_s": timings, "total_s": round(sum(timings.values()), 2), "metadata": meta}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
