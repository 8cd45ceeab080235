"""Coordination overhead of the orchestrator on real SWE-smith tasks, at 8, 16, 32 and 64 parallel agents.

Tasks: SWE-smith procedural bugs of a repository (default: a four-module demo package; --repo takes any
repo spec of datagen/swe/repos.py), validated in the jail, plus bugs of different files combined into one
task, so each task splits into parts. Each level gets a batch whose parts number at least the agent count
(tasks repeat under new ids), so every agent is busy at once; sessions are opened before the clock starts.
overhead = (orchestrator wall - critical path of agent work) / wall, with its split (agents/orchestrator/
record.py); median of --repeats clean runs, then one run with failures injected (a killed jail and a hung
agent per level) that must lose no sub-task. Human lines, then one JSON object on the last line.

    python bench/orchestrator.py [--levels 8,16,32,64] [--repeats 3] [--policy oracle] [--repo SPEC]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.orchestrator.batch import combine_tasks, write_demo_repo  # noqa: E402
from agents.orchestrator.core import Orchestrator, OrchestratorConfig  # noqa: E402
from agents.orchestrator.plan import RuleBasedPlanner  # noqa: E402
from agents.orchestrator.pool import SessionPool  # noqa: E402
from agents.orchestrator.runners import FaultInjector, episode_runner, oracle_runner  # noqa: E402
from agents.orchestrator.workspace import session_options  # noqa: E402
from datagen.swe.repos import baseline_row, parse_repo_spec, repo_from_row  # noqa: E402
from datagen.swe.tasks import TaskSettings, build_tasks  # noqa: E402
from resources.sandbox import Sandbox  # noqa: E402
from resources.swerex import SweRexSessions  # noqa: E402


def task_pool(root: Path, spec: str, sandbox) -> tuple[dict, list[dict]]:
    row = baseline_row(sandbox, parse_repo_spec(spec or write_demo_repo(root)), root / "work")
    singles, _, _ = build_tasks(sandbox, row, TaskSettings(max_bugs=40, max_per_modifier=4))
    combined = []
    for k in (2, 3):
        combined += combine_tasks(sandbox, row, singles, per_task=k, limit=6, seed=k)
    repo = repo_from_row(row)
    unique = {t["instance_id"]: t for t in combined + singles}  # two modifiers can make the same bug
    return {repo.key: repo}, list(unique.values())


def batch_for(tasks: list[dict], agents: int) -> list[dict]:
    """Tasks (repeated under new ids) until their parts number at least `agents`."""
    planner, out, parts, i = RuleBasedPlanner(), [], 0, 0
    while parts < agents:
        t = tasks[i % len(tasks)]
        copy = {**t, "instance_id": f"{t['instance_id']}.r{i // len(tasks)}"}
        parts += sum(s.kind == "fix" for s in planner.plan([copy]).subtasks)
        out.append(copy)
        i += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="8,16,32,64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--policy", default="oracle", help="oracle (the gold parts) or a model spec for the agent loop")
    ap.add_argument("--repo", default="", help="a repo spec (default: the demo package)")
    ap.add_argument("--heartbeat-timeout", type=float, default=15.0)
    ap.add_argument("--no-failures", action="store_true")
    args = ap.parse_args()
    sandbox = Sandbox(timeout_s=120, concurrency=2)
    root = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    t0 = time.monotonic()
    repos, tasks = task_pool(root, args.repo, sandbox)
    print(f"tasks: {len(tasks)} validated ({sum(len(t['files']) > 1 for t in tasks)} multi-file) "
          f"in {time.monotonic() - t0:.1f} s", flush=True)
    runner = oracle_runner if args.policy == "oracle" else episode_runner(args.policy)
    sessions = SweRexSessions(command_timeout_s=120, startup_timeout_s=60)
    levels = []
    for n in [int(x) for x in args.levels.split(",")]:
        batch = batch_for(tasks, n)
        pool = SessionPool(sessions, n, session_options(repos))
        prewarm = pool.prewarm()
        cfg = OrchestratorConfig(agents=n, heartbeat_timeout_s=args.heartbeat_timeout, test_timeout_s=180)
        runs = []
        for r in range(args.repeats):
            s = Orchestrator(pool, repos, runner, config=cfg).run(batch)["summary"]
            runs.append(s)
            print(f"  {n:3d} agents run {r + 1}: wall {s['wall_s']:.2f} s, critical path {s['critical_path_s']:.2f} s, "
                  f"overhead {s['overhead']:.1%}, split {s['split']}, resolved {s['resolved']}/{s['tasks']}, "
                  f"lost {s['lost']}", flush=True)
        failures = None
        if not args.no_failures:
            fixes = [s.id for s in RuleBasedPlanner().plan(batch).subtasks if s.kind == "fix"]
            faulty = FaultInjector(runner, kill=fixes[:1], hang=fixes[len(fixes) // 2:len(fixes) // 2 + 1])
            f = Orchestrator(pool, repos, faulty, config=cfg).run(batch)["summary"]
            failures = {"injected": [k for _, k in faulty.injected], "wall_s": f["wall_s"], "overhead": f["overhead"],
                        "resolved": f["resolved"], "tasks": f["tasks"], "lost": f["lost"], "recovered": f["recovered"],
                        "split": f["split"]}
            print(f"  {n:3d} agents with failures {failures['injected']}: wall {f['wall_s']:.2f} s, overhead "
                  f"{f['overhead']:.1%}, resolved {f['resolved']}/{f['tasks']}, lost {f['lost']}, recovered "
                  f"{f['recovered']}", flush=True)
        pool.close()
        med = sorted(runs, key=lambda s: s["overhead"])[len(runs) // 2]
        levels.append({"agents": n, "tasks": len(batch), "subtasks": med["subtasks"], "width": med["width"],
                       "wall_s": med["wall_s"], "critical_path_s": med["critical_path_s"], "overhead": med["overhead"],
                       "overhead_runs": [s["overhead"] for s in runs],
                       "wall_s_median": statistics.median(s["wall_s"] for s in runs), "split": med["split"],
                       "totals": med["totals"], "resolved": med["resolved"],
                       "lost": max(s["lost"] for s in runs), "recovered": med["recovered"],
                       "messages": med["messages"], "prewarm_s": round(prewarm, 2), "pool": med["pool"],
                       "failures": failures})
        print(f"{n} agents: overhead {med['overhead']:.1%} (median of {len(runs)}), wall {med['wall_s']:.2f} s, "
              f"critical path {med['critical_path_s']:.2f} s, sub-tasks {med['subtasks']}, sessions opened "
              f"in {prewarm:.1f} s", flush=True)
    goal = next((lv for lv in levels if lv["agents"] == 32), None)
    print(json.dumps({"bench": "orchestrator", "policy": args.policy, "repo": args.repo or "demo",
                      "cpus": os.cpu_count(), "repeats": args.repeats, "levels": levels,
                      "goal": {"overhead_below": 0.10, "at_agents": 32,
                               "met": bool(goal and goal["overhead"] < 0.10 and all(lv["lost"] == 0 for lv in levels)
                                           and all((lv["failures"] or {}).get("lost", 0) == 0 for lv in levels))}}))


if __name__ == "__main__":
    main()
