"""Coordination overhead of the orchestrator on real tasks, at 8, 16, 32 and 64 parallel agents.

Tasks: SWE-smith procedural bugs of a repository (default: a four-module demo package; --repo takes any
repo spec of datagen/swe/repos.py), validated in the jail, plus bugs of different files combined into one
task, so each task splits into parts; and Aider Polyglot's Python exercises (--polyglot, the shared bundle by
default) as repository tasks whose fix is the reference solution. Each level gets a batch whose parts (tasks
repeat under new ids) number exactly the agents, so every agent is busy at once and none waits; sessions are
opened before the clock starts. overhead = (orchestrator wall - critical path of agent work) / wall, with its
split (agents/orchestrator/record.py); median of --repeats clean runs, then one run with failures injected (a
killed jail and a hung agent per level) that must lose no sub-task. Human lines, then one JSON object on the
last line.

--workers processes runs every agent as a worker process on a directory transport (agents/orchestrator/
workers.py; the workers open their sessions before the clock starts; the failure run uses fresh workers, one
of which dies mid-task and one hangs). --policy local:CKPT runs the agent loop with a checkpoint (loaded once per
process; --max-steps bounds each episode). --build-tasks N adds N build problems (a broken pyproject.toml on
top of a code bug, planned per_tool) from the packaged demo package, which then replaces the demo package.

    python bench/orchestrator.py [--levels 8,16,32,64] [--repeats 3] [--policy oracle|local:CKPT] [--repo SPEC]
                                 [--workers threads|processes] [--build-tasks 0] [--max-steps 30]
                                 [--polyglot BUNDLE] [--polyglot-exercises 12]
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

from agents.orchestrator.batch import (build_break_tasks, combine_tasks, write_demo_repo,  # noqa: E402
                                       write_packaged_demo_repo)
from agents.orchestrator.core import Orchestrator, OrchestratorConfig  # noqa: E402
from agents.orchestrator.plan import RuleBasedPlanner  # noqa: E402
from agents.orchestrator.pool import SessionPool  # noqa: E402
from agents.orchestrator.runners import FaultInjector, episode_runner, oracle_runner  # noqa: E402
from agents.orchestrator.workers import ProcessWorkers  # noqa: E402
from agents.orchestrator.workspace import session_options  # noqa: E402
from datagen.swe.repos import baseline_row, parse_repo_spec, repo_from_row  # noqa: E402
from datagen.swe.tasks import TaskSettings, build_tasks  # noqa: E402
from resources.sandbox import Sandbox  # noqa: E402
from resources.swerex import SweRexSessions  # noqa: E402


def task_pool(root: Path, spec: str, sandbox, build_tasks_n: int = 0) -> tuple[dict, list[dict]]:
    demo = write_packaged_demo_repo(root) if build_tasks_n else write_demo_repo(root)
    row = baseline_row(sandbox, parse_repo_spec(spec or demo), root / "work")
    singles, _, _ = build_tasks(sandbox, row, TaskSettings(max_bugs=40, max_per_modifier=4))
    singles = [t for t in singles if not any(f.endswith("__init__.py") for f in t["files"])]
    combined = []
    for k in (2, 3):
        combined += combine_tasks(sandbox, row, singles, per_task=k, limit=6, seed=k)
    builds = build_break_tasks(sandbox, row, singles, limit=build_tasks_n) if build_tasks_n else []
    repo = repo_from_row(row)
    unique = {t["instance_id"]: t for t in builds + combined + singles}  # two modifiers can make the same bug
    return {repo.key: repo}, list(unique.values())


def polyglot_pool(root: Path, bundle: str, sandbox, limit: int) -> tuple[dict, list[dict]]:
    """Aider Polyglot's Python exercises as repository tasks: one repo holds every exercise at its reference
    solution (the clean state); an exercise's task is the diff that puts its stub back, validated like a
    SWE-smith bug (its tests fail with the stub, the others still pass), so fixing it is writing the solution."""
    import subprocess

    from datagen.swe.bugs import BugCandidate
    from datagen.swe.tasks import instance_prefix, task_row, validate_bug
    from evals.polyglot.pipeline import open_checkout, select_exercises

    checkout, commit = open_checkout(bundle, root / "polyglot")
    exercises, _ = select_exercises(checkout, ["python"], commit=commit)
    repo_dir = root / "polyglot-python"
    for ex in exercises[:limit]:
        for name, text in {**ex.test_files, **ex.solution_files, **ex.reference_files}.items():
            (repo_dir / ex.exercise / name).parent.mkdir(parents=True, exist_ok=True)
            (repo_dir / ex.exercise / name).write_text(text)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo_dir, env=env, check=True, capture_output=True, text=True).stdout

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", f"polyglot python reference solutions ({commit[:12]})")
    row = baseline_row(sandbox, parse_repo_spec(str(repo_dir)), root / "work")
    repo = repo_from_row(row)
    bugs = []
    for ex in exercises[:limit]:
        for name, text in ex.solution_files.items():
            (repo_dir / ex.exercise / name).write_text(text)
        patch = git("diff")
        git("checkout", "-q", "--", ".")
        if patch:
            bugs.append(BugCandidate(f"{instance_prefix(repo)}.polyglot_stub__{ex.exercise.replace('-', '_')}",
                                     "polyglot_stub", patch, f"{ex.exercise}/{next(iter(ex.solution_files))}",
                                     ex.exercise, "exercise", 1, ex.instructions[:200]))
    passed = list(row["passed_tests"])
    results = sandbox.map(lambda b: validate_bug(sandbox, repo, passed, b, 120.0), bugs)
    tasks = [task_row(repo, b, f2p, p2p, run.wall_s, 0) for b, (run, f2p, p2p) in zip(bugs, results)
             if run.status in ("ok", "failed") and f2p]
    return {repo.key: repo}, tasks


def batch_for(tasks: list[dict], agents: int) -> list[dict]:
    """Tasks (repeated under new ids) whose parts number exactly `agents` where the sizes allow: every agent
    busy at once, no part queued behind them."""
    planner, out, parts, i = RuleBasedPlanner(), [], 0, 0
    while parts < agents and i < 20 * len(tasks):
        t = tasks[i % len(tasks)]
        copy = {**t, "instance_id": f"{t['instance_id']}.r{i // len(tasks)}"}
        n = sum(s.kind == "fix" for s in planner.plan([copy]).subtasks)
        i += 1
        if parts + n <= agents:
            parts += n
            out.append(copy)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="8,16,32,64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--policy", default="oracle", help="oracle (the gold parts) or a model spec for the agent loop")
    ap.add_argument("--repo", default="", help="a repo spec (default: the demo package)")
    ap.add_argument("--heartbeat-timeout", type=float, default=15.0)
    ap.add_argument("--no-failures", action="store_true")
    ap.add_argument("--polyglot", default=str(Path(__file__).resolve().parents[2] / "shared" / "mirrors" /
                                              "polyglot-benchmark.bundle"),
                    help="Aider Polyglot bundle or checkout: its Python exercises join the tasks ('' for none)")
    ap.add_argument("--polyglot-exercises", type=int, default=12)
    ap.add_argument("--workers", choices=("threads", "processes"), default="threads")
    ap.add_argument("--build-tasks", type=int, default=0, help="build problems (per_tool plans) in the pool")
    ap.add_argument("--max-steps", type=int, default=30, help="steps per episode for a model policy")
    args = ap.parse_args()
    sandbox = Sandbox(timeout_s=120, concurrency=2)
    root = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    t0 = time.monotonic()
    repos, tasks = task_pool(root, args.repo, sandbox, args.build_tasks)
    print(f"SWE-smith tasks: {len(tasks)} validated ({sum(len(t['files']) > 1 for t in tasks)} multi-file) "
          f"in {time.monotonic() - t0:.1f} s", flush=True)
    n_polyglot = 0
    if args.polyglot and Path(args.polyglot).exists():
        t1 = time.monotonic()
        more_repos, exercises = polyglot_pool(root, args.polyglot, sandbox, args.polyglot_exercises)
        repos.update(more_repos)
        n_polyglot = len(exercises)
        tasks = [t for pair in zip(tasks, exercises) for t in pair] + tasks[len(exercises):] + exercises[len(tasks):]
        print(f"Polyglot Python exercises: {n_polyglot} validated in {time.monotonic() - t1:.1f} s", flush=True)
    procs = args.workers == "processes"
    t1 = time.monotonic()
    runner = args.policy if procs else oracle_runner if args.policy == "oracle" else \
        episode_runner(args.policy, max_steps=args.max_steps)
    load_s = time.monotonic() - t1
    sessions = SweRexSessions(command_timeout_s=120, startup_timeout_s=60)
    levels = []
    for n in [int(x) for x in args.levels.split(",")]:
        batch = batch_for(tasks, n)
        if procs:
            pool = ProcessWorkers(repos, n, args.policy, command_timeout_s=120, max_steps=args.max_steps)
            prewarm = pool.start(timeout_s=600)
        else:
            pool = SessionPool(sessions, n, session_options(repos))
            prewarm = pool.prewarm()
        cfg = OrchestratorConfig(agents=n, heartbeat_timeout_s=args.heartbeat_timeout, test_timeout_s=180,
                                 workers=args.workers, role_credit=False)  # credit runs after the clock: not timed
        runs = []
        for r in range(args.repeats):
            rec = Orchestrator(pool, repos, runner, config=cfg).run(batch)
            s = {**rec["summary"], "steps": sum(r["steps"] for r in rec["rows"]),
                 "tokens": sum(r["tokens"] for r in rec["rows"])}
            runs.append(s)
            print(f"  {n:3d} agents run {r + 1}: wall {s['wall_s']:.2f} s, critical path {s['critical_path_s']:.2f} s, "
                  f"overhead {s['overhead']:.1%}, split {s['split']}, resolved {s['resolved']}/{s['tasks']}, "
                  f"lost {s['lost']}", flush=True)
        failures = None
        if not args.no_failures:
            fixes = [s.id for s in RuleBasedPlanner().plan(batch).subtasks if s.kind == "fix"]
            if procs:  # fresh workers that know their faults: one dies mid-task, one hangs
                pool.close()
                pool = ProcessWorkers(repos, n, args.policy, command_timeout_s=120, max_steps=args.max_steps,
                                      faults={fixes[0]: "die", fixes[len(fixes) // 2]: "hang"})
                pool.start(timeout_s=600)
                faulty = runner
            else:
                faulty = FaultInjector(runner, kill=fixes[:1], hang=fixes[len(fixes) // 2:len(fixes) // 2 + 1])
            f = Orchestrator(pool, repos, faulty, config=cfg).run(batch)["summary"]
            injected = [k for _, k in faulty.injected] if not procs else \
                [f"die (workers died: {f['pool']['died']})", f"hang (workers killed: {f['pool']['killed']})"]
            failures = {"injected": injected, "wall_s": f["wall_s"], "overhead": f["overhead"],
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
                       "steps": med["steps"], "tokens": med["tokens"], "attempts": med["attempts"],
                       "rejected_messages": max(s["rejected_messages"] for s in runs),
                       "decompositions": {d: list(med["decisions"].values()).count(d)
                                          for d in sorted(set(med["decisions"].values()))},
                       "failures": failures})
        print(f"{n} agents: overhead {med['overhead']:.1%} (median of {len(runs)}), wall {med['wall_s']:.2f} s, "
              f"critical path {med['critical_path_s']:.2f} s, sub-tasks {med['subtasks']}, sessions opened "
              f"in {prewarm:.1f} s", flush=True)
    goal = next((lv for lv in levels if lv["agents"] == 32), None)
    print(json.dumps({"bench": "orchestrator", "policy": args.policy, "repo": args.repo or "demo",
                      "workers": args.workers, "build_tasks": sum(t["bug_type"].startswith("build_") for t in tasks),
                      "policy_load_s": round(load_s, 2), "polyglot_exercises": n_polyglot,
                      "cpus": os.cpu_count(), "repeats": args.repeats, "levels": levels,
                      "goal": {"overhead_below": 0.10, "at_agents": 32,
                               "met": bool(goal and goal["overhead"] < 0.10 and all(lv["lost"] == 0 for lv in levels)
                                           and all((lv["failures"] or {}).get("lost", 0) == 0 for lv in levels))}}))


if __name__ == "__main__":
    main()
