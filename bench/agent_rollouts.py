"""Wall time the agent assets add to a run: agent_rollouts (every configured policy) and swe_trajectories,
materialised with their default config on a scratch warehouse holding a copy of an existing warehouse's SWE
tables and its published checkpoints (the main command's, by default). JSON last line.

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


def main(argv=None) -> int:
    import dagster as dg

    from hrm_assets import swe
    from resources.partitions import agent_policies
    from resources.sandbox import default_sandbox
    from resources.settings import env_str
    from resources.swerex import default_swe_sessions
    from resources.warehouse import Warehouse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", default=env_str("HRM_DATA_DIR"), help="the warehouse to copy from")
    args = p.parse_args(argv)
    src = Path(args.source)
    with tempfile.TemporaryDirectory(prefix="hrm-agent-bench-") as tmp:
        for name in TABLES:
            shutil.copytree(src / "tables" / name, Path(tmp) / "tables" / name)
        if (src / "checkpoints").is_dir():
            for latest in (src / "checkpoints").glob("*/latest.json"):
                (Path(tmp) / "checkpoints" / latest.parent.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(latest, Path(tmp) / "checkpoints" / latest.parent.name / "latest.json")
        resources = {"sandbox": default_sandbox(), "warehouse": Warehouse(root=tmp),
                     "swe_sessions": default_swe_sessions()}
        timings, meta = {}, {}
        with dg.instance_for_test() as instance:
            for key in agent_policies.get_partition_keys():
                t0 = time.monotonic()
                run = dg.materialize([swe.agent_rollouts], partition_key=key, resources=resources, instance=instance)
                timings[f"agent_rollouts[{key}]"] = round(time.monotonic() - t0, 2)
                m = run.asset_materializations_for_node("agent_rollouts")[0].metadata
                meta[key] = {k: m[k].value for k in ("episodes", "resolved", "resolve_rate", "resolve_ci_low",
                                                     "resolve_ci_high", "steps_per_episode", "tokens", "wall_s",
                                                     "overhead_s")}
            t0 = time.monotonic()
            run = dg.materialize([swe.swe_trajectories], resources=resources, instance=instance)
            timings["swe_trajectories"] = round(time.monotonic() - t0, 2)
            m = run.asset_materializations_for_node("swe_trajectories")[0].metadata
            meta["swe_trajectories"] = {k: m[k].value for k in ("oracle", "oracle_resolved", "model_rows")}
    print(json.dumps({"timings_s": timings, "total_s": round(sum(timings.values()), 2), "metadata": meta}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
