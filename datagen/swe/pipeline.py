"""The SWE stages without Dagster: swe_repos -> swesmith_tasks -> swe_trajectories, tool_use_examples ->
multi_agent_scenarios.

Each `build_*` reads its inputs from the warehouse, writes its table (rejections to the quarantine) and
returns the numbers its asset reports.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from datagen.swe.hf import load_swesmith_tasks
from datagen.swe.repos import baseline_row, repo_from_row, spec_for_key
from datagen.swe.tasks import TaskSettings, build_tasks
from datagen.swe.tool_use import build_tool_use_examples
from datagen.swe.examples import with_trajectory_example, with_workflow_example
from datagen.swe.trajectories import ScriptedExpert, hrm_policy, load_trajectories, rl_view, rollout


# --- swe_repos ----------------------------------------------------------------------------
def build_swe_repo(sandbox, warehouse, key: str) -> dict:
    """Check out, build the env of, and baseline-test one repo partition (a dataset partition is recorded as is)."""
    spec = spec_for_key(key)
    if spec.kind == "dataset":
        row = {"key": key, "spec": spec.text, "kind": "dataset", "baseline_status": "not a repository",
               "n_tests": 0, "n_passed": 0}
    else:
        row = baseline_row(sandbox, spec, warehouse.path("swe"))
        if row["n_passed"] == 0:
            raise RuntimeError(f"swe_repos[{key}]: the clean test suite passed no test in the sandbox "
                               f"(status {row['baseline_status']}); output tail:\n{row['output_tail']}")
    warehouse.write_table("swe_repos", [row], partition=key)
    return row


# --- swesmith_tasks -----------------------------------------------------------------------
def build_swesmith_tasks(settings: TaskSettings, sandbox, warehouse, key: str, log=None) -> dict:
    """Validated SWE-smith bugs of one repo partition (or the rows of a `dataset:` partition)."""
    repo_row = warehouse.read_table("swe_repos", partition=key).to_pylist()[0]
    t0 = time.monotonic()
    if repo_row["kind"] == "dataset":
        rows, rejected = load_swesmith_tasks(repo_row["spec"].split(":", 1)[1])
        stats = {"candidates": len(rows) + len(rejected), "tasks": len(rows), "rejected": len(rejected)}
    else:
        def progress(done, total):
            if log and (done % 20 == 0 or done == total):
                log.info(f"{key}: validated {done}/{total} candidate bugs")

        rows, rejected, stats = build_tasks(sandbox, repo_row, settings, progress)
    if not rows:
        raise RuntimeError(f"swesmith_tasks[{key}]: no task survived validation ({stats}); "
                           f"see the quarantine file for reasons")
    warehouse.write_table("swesmith_tasks", rows, partition=key)
    warehouse.write_quarantine("swesmith_tasks", rejected, partition=key)
    minutes = max(time.monotonic() - t0, 1e-6) / 60
    return {**stats, "tasks_per_minute": round(len(rows) / minutes, 1),
            "candidates_per_minute": round(stats["candidates"] / minutes, 1),
            "by_bug_type": dict(Counter(r["bug_type"] for r in rows)),
            "by_file": dict(Counter(f for r in rows for f in r["files"])),
            "fail_to_pass_median": sorted(r["n_fail_to_pass"] for r in rows)[len(rows) // 2],
            "rejections": dict(Counter(r["reason"] for r in rejected))}


def tasks_check_frame(warehouse, key: str):
    frame = warehouse.read_table("swesmith_tasks", partition=key).to_pandas()
    return frame[["instance_id", "bug_type", "n_fail_to_pass", "n_pass_to_pass", "problem_statement"]]


# --- swe_trajectories ---------------------------------------------------------------------
@dataclass
class TrajectorySettings:
    tasks_per_repo: int = 2
    workers: int = 2  # rollouts run tests: about the core count
    load_from: str = ""  # local SWE-smith trajectory files or an HF dataset name
    hrm_checkpoint: str = ""  # also roll out this HRM checkpoint as an agent


def build_swe_trajectories(settings: TrajectorySettings, sandbox, sessions, warehouse, log=None) -> dict:
    """Roll out the scripted expert (and an HRM checkpoint) on each repo's first tasks; add loaded ones."""
    repos = {r["key"]: r for r in warehouse.read_partition_rows("swe_repos") if r["kind"] != "dataset"}
    tasks = [t for t in warehouse.read_partition_rows("swesmith_tasks") if t["source_repo"] in repos]
    picked, per_repo = [], Counter()
    for t in sorted(tasks, key=lambda t: t["instance_id"]):
        if per_repo[t["source_repo"]] < settings.tasks_per_repo:
            per_repo[t["source_repo"]] += 1
            picked.append(t)
    policies = [ScriptedExpert()]
    if settings.hrm_checkpoint:
        policies.append(hrm_policy(settings.hrm_checkpoint))
    jobs = [(t, p) for t in picked for p in policies]

    def run(job):
        task, policy = job
        row = rollout(sessions, sandbox, repo_from_row(repos[task["source_repo"]]), task, policy)
        if log:
            log.info(f"{task['instance_id']} [{policy.name}]: resolved={row['resolved']} in {row['wall_s']} s")
        return row

    rows = sessions.map(run, jobs, workers=settings.workers)
    rejected = []
    if settings.load_from:
        loaded, rejected = load_trajectories(settings.load_from)
        rows += loaded
    if not rows:
        raise RuntimeError("swe_trajectories: no trajectory collected or loaded (is swesmith_tasks empty?)")
    rows = [with_trajectory_example(r) for r in rows]
    warehouse.write_table("swe_trajectories", rows)
    warehouse.write_table("swe_trajectories_rl", rl_view(rows))
    warehouse.write_quarantine("swe_trajectories", rejected)
    collected = [r for r in rows if r["source"] == "collected"]
    return {"rows": len(rows), "collected": len(collected), "loaded": len(rows) - len(collected),
            "resolved_collected": sum(r["resolved"] for r in collected), "rejected": len(rejected),
            "by_model": dict(Counter(r["model"] for r in rows))}


# --- tool_use_examples --------------------------------------------------------------------
@dataclass
class ToolUseSettings:
    seed: int = 0
    variants: int = 1  # seeded variants of each workflow
    only: tuple[str, ...] = ()  # workflow names (default: all)


def build_tool_use(settings: ToolUseSettings, sandbox, warehouse) -> dict:
    """Run every tool-use workflow in the sandbox; keep those whose final-state check passes."""
    kept, rejected = build_tool_use_examples(sandbox, settings.seed, settings.variants, list(settings.only) or None)
    if not kept:
        raise RuntimeError(f"tool_use_examples: no workflow passed its final-state check "
                           f"(first failures: {[r['reason'] for r in rejected[:3]]})")
    warehouse.write_table("tool_use_examples", [with_workflow_example(r) for r in kept])
    warehouse.write_quarantine("tool_use_examples", rejected)
    return {"rows": len(kept), "rejected": len(rejected), "by_category": dict(Counter(r["category"] for r in kept)),
            "by_variant": dict(Counter(r["variant"] for r in kept)),
            "rejections": {r["workflow_id"]: r["reason"] for r in rejected}}
