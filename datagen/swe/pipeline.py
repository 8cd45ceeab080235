"""The SWE stages without Dagster: swe_repos -> swesmith_tasks, tool_use_examples -> multi_agent_scenarios
(swe_trajectories and agent_rollouts come from the agent loop: agents/rollouts.py).

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
from datagen.swe.examples import with_workflow_example


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
