"""SWE assets: swe_repos -> swesmith_tasks -> swe_trajectories, tool_use_examples -> multi_agent_scenarios.

Each body calls one plain function in datagen/swe/. Settings come from HRM_SWE_* environment
variables (read when the code location loads); the repo list is HRM_SWE_REPOS (see datagen/swe/repos.py).
Tables carry TrainingExample columns where a row is one example; `datagen.swe.training_examples`
gives the finer-grained set (per step, per turn, repair/diff_edit).
"""


import os
import time
from collections import Counter

import dagster as dg

from datagen.swe.repos import configured_specs
from resources.sandbox import Sandbox
from resources.swerex import SweRexSessions
from resources.warehouse import Warehouse

swe_repo_partitions = dg.DynamicPartitionsDefinition(name="swe_repos")


def _env(name: str, default, kind=str):
    raw = os.environ.get(name)
    try:
        return default if raw in (None, "") else kind(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r}: expected {kind.__name__}") from None


def all_partition_rows(warehouse: Warehouse, name: str) -> list[dict]:
    """Rows of every partition, read one by one (partitions may infer different types for empty lists)."""
    return [r for p in warehouse.partitions(name) for r in warehouse.read_table(name, partition=p).to_pylist()]


def _named(result: dg.AssetCheckResult, name: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=name, passed=result.passed, metadata=result.metadata,
                               severity=dg.AssetCheckSeverity.ERROR)


# --- swe_repos ----------------------------------------------------------------------------
def build_swe_repo(sandbox: Sandbox, warehouse: Warehouse, key: str) -> dict:
    """Check out, build the env of, and baseline-test one repo partition (a dataset partition is recorded as is)."""
    from datagen.swe.repos import baseline_row, spec_for_key

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


@dg.asset(group_name="sources", kinds={"python", "git", "parquet"}, partitions_def=swe_repo_partitions,
          metadata={"hrm/default_partitions": dg.MetadataValue.json([s.key for s in configured_specs()])},
          description="Pinned source repos (PyPI sdists, git, SWE-smith profiles) with a test env and a jailed "
                      "baseline test run; or a SWE-smith task dataset to load.")
def swe_repos(context: dg.AssetExecutionContext, sandbox: Sandbox, warehouse: Warehouse) -> dg.MaterializeResult:
    row = build_swe_repo(sandbox, warehouse, context.partition_key)
    context.log.info(f"{context.partition_key}: {row['n_passed']}/{row['n_tests']} tests pass at baseline")
    refused = list(row.get("refused_requirements", []))
    if refused:
        context.log.warning(f"{context.partition_key}: requirements refused (not built on the host):\n"
                            + "\n".join(refused))
    return dg.MaterializeResult(metadata={
        "spec": row["spec"], "kind": row["kind"], "commit": row.get("commit", ""), "tests": row["n_tests"],
        "passing_tests": row["n_passed"], "baseline_wall_s": row.get("baseline_wall_s", 0.0),
        "requirements": dg.MetadataValue.json(row.get("requirements", [])),
        "refused_requirements": dg.MetadataValue.json(refused)})


# --- swesmith_tasks -----------------------------------------------------------------------
class SweTasksConfig(dg.Config):
    seed: int = _env("HRM_SWE_SEED", 24, int)
    max_bugs_per_repo: int = _env("HRM_SWE_MAX_BUGS_PER_REPO", 40, int)
    max_per_modifier: int = _env("HRM_SWE_MAX_PER_MODIFIER", 12, int)


def build_swesmith_tasks(config: SweTasksConfig, sandbox: Sandbox, warehouse: Warehouse, key: str,
                         log=None) -> dict:
    from datagen.swe.hf import load_swesmith_tasks
    from datagen.swe.tasks import TaskSettings, build_tasks

    repo_row = warehouse.read_table("swe_repos", partition=key).to_pylist()[0]
    t0 = time.monotonic()
    if repo_row["kind"] == "dataset":
        rows, rejected = load_swesmith_tasks(repo_row["spec"].split(":", 1)[1])
        stats = {"candidates": len(rows) + len(rejected), "tasks": len(rows), "rejected": len(rejected)}
    else:
        def progress(done, total):
            if log and (done % 20 == 0 or done == total):
                log.info(f"{key}: validated {done}/{total} candidate bugs")

        rows, rejected, stats = build_tasks(sandbox, repo_row, TaskSettings(
            seed=config.seed, max_bugs=config.max_bugs_per_repo, max_per_modifier=config.max_per_modifier), progress)
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


@dg.asset(group_name="problems", kinds={"python", "parquet"}, partitions_def=swe_repo_partitions, deps=["swe_repos"],
          check_specs=[dg.AssetCheckSpec("swesmith_tasks_gx", asset="swesmith_tasks", blocking=True)],
          description="SWE-smith procedural bugs validated in the sandbox (FAIL_TO_PASS / PASS_TO_PASS), HF "
                      "SWE-smith schema, static problem statements; or loaded SWE-smith rows.")
def swesmith_tasks(context: dg.AssetExecutionContext, config: SweTasksConfig, sandbox: Sandbox,
                   warehouse: Warehouse) -> dg.MaterializeResult:
    from hrm_assets.expectations import gx_check

    meta = build_swesmith_tasks(config, sandbox, warehouse, context.partition_key, context.log)
    frame = warehouse.read_table("swesmith_tasks", partition=context.partition_key).to_pandas()
    check = gx_check(frame[["instance_id", "bug_type", "n_fail_to_pass", "n_pass_to_pass", "problem_statement"]],
                     "swesmith_tasks", lambda gxe: [
        gxe.ExpectColumnValuesToBeUnique(column="instance_id"),
        gxe.ExpectColumnValuesToMatchRegex(column="instance_id", regex=r"^[\w.-]+__[\w.-]+\.[0-9a-f]{8}\.[\w.-]+$"),
        gxe.ExpectColumnValuesToBeBetween(column="n_fail_to_pass", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="n_pass_to_pass", min_value=0),
        gxe.ExpectColumnValuesToNotBeNull(column="bug_type"),
        gxe.ExpectColumnValuesToNotBeNull(column="problem_statement"),
    ])
    return dg.MaterializeResult(
        metadata={"dagster/row_count": meta["tasks"], "candidates": meta["candidates"], "rejected": meta["rejected"],
                  "tasks_per_minute": meta["tasks_per_minute"], "fail_to_pass_median": meta["fail_to_pass_median"],
                  "by_bug_type": dg.MetadataValue.json(meta["by_bug_type"]),
                  "by_file": dg.MetadataValue.json(meta["by_file"]),
                  "rejections": dg.MetadataValue.json(meta["rejections"])},
        check_results=[_named(check, "swesmith_tasks_gx")])


# --- swe_trajectories ---------------------------------------------------------------------
class SweTrajectoriesConfig(dg.Config):
    tasks_per_repo: int = _env("HRM_SWE_TRAJ_TASKS_PER_REPO", 2, int)
    workers: int = _env("HRM_SWE_TRAJ_WORKERS", 2, int)  # rollouts run tests: about the core count
    load_from: str = _env("HRM_SWE_TRAJECTORIES", "")  # local SWE-smith trajectory files or an HF dataset name
    hrm_checkpoint: str = _env("HRM_SWE_AGENT_CHECKPOINT", "")  # also roll out this HRM checkpoint as an agent


def build_swe_trajectories(config: SweTrajectoriesConfig, sandbox: Sandbox, sessions: SweRexSessions,
                           warehouse: Warehouse, log=None) -> dict:
    from datagen.swe.repos import repo_from_row
    from datagen.swe.trajectories import ScriptedExpert, hrm_policy, load_trajectories, rl_view, rollout
    from datagen.swe.training import with_trajectory_example

    repos = {r["key"]: r for r in all_partition_rows(warehouse, "swe_repos") if r["kind"] != "dataset"}
    tasks = [t for t in all_partition_rows(warehouse, "swesmith_tasks") if t["source_repo"] in repos]
    picked, per_repo = [], Counter()
    for t in sorted(tasks, key=lambda t: t["instance_id"]):
        if per_repo[t["source_repo"]] < config.tasks_per_repo:
            per_repo[t["source_repo"]] += 1
            picked.append(t)
    policies = [ScriptedExpert()]
    if config.hrm_checkpoint:
        policies.append(hrm_policy(config.hrm_checkpoint))
    jobs = [(t, p) for t in picked for p in policies]

    def run(job):
        task, policy = job
        row = rollout(sessions, sandbox, repo_from_row(repos[task["source_repo"]]), task, policy)
        if log:
            log.info(f"{task['instance_id']} [{policy.name}]: resolved={row['resolved']} in {row['wall_s']} s")
        return row

    rows = sessions.map(run, jobs, workers=config.workers)
    rejected = []
    if config.load_from:
        loaded, rejected = load_trajectories(config.load_from)
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


@dg.asset(group_name="training_data", kinds={"python", "parquet"}, deps=["swesmith_tasks"],
          description="Agent trajectories (SWE-smith format): scripted expert (and HRM) rollouts in jailed SWE-ReX "
                      "sessions, loaded SWE-smith trajectories; RL view in table swe_trajectories_rl.")
def swe_trajectories(context: dg.AssetExecutionContext, config: SweTrajectoriesConfig, sandbox: Sandbox,
                     swe_sessions: SweRexSessions, warehouse: Warehouse) -> dg.MaterializeResult:
    meta = build_swe_trajectories(config, sandbox, swe_sessions, warehouse, context.log)
    if meta["collected"] and meta["resolved_collected"] == 0:
        raise RuntimeError(f"swe_trajectories: no collected episode resolved its task ({meta})")
    return dg.MaterializeResult(metadata={"dagster/row_count": meta["rows"], **{
        k: (dg.MetadataValue.json(v) if isinstance(v, dict) else v) for k, v in meta.items() if k != "rows"}})


# --- tool_use_examples --------------------------------------------------------------------
class ToolUseConfig(dg.Config):
    seed: int = _env("HRM_TOOL_USE_SEED", 0, int)
    variants: int = _env("HRM_TOOL_USE_VARIANTS", 1, int)  # seeded variants of each workflow
    only: str = _env("HRM_TOOL_USE_ONLY", "")  # comma-separated workflow names (default: all)


def build_tool_use(config: ToolUseConfig, sandbox: Sandbox, warehouse: Warehouse) -> dict:
    from datagen.swe.tool_use import build_tool_use_examples
    from datagen.swe.training import with_workflow_example

    only = [w.strip() for w in config.only.split(",") if w.strip()] or None
    kept, rejected = build_tool_use_examples(sandbox, config.seed, config.variants, only)
    if not kept:
        raise RuntimeError(f"tool_use_examples: no workflow passed its final-state check "
                           f"(first failures: {[r['reason'] for r in rejected[:3]]})")
    warehouse.write_table("tool_use_examples", [with_workflow_example(r) for r in kept])
    warehouse.write_quarantine("tool_use_examples", rejected)
    return {"rows": len(kept), "rejected": len(rejected), "by_category": dict(Counter(r["category"] for r in kept)),
            "by_variant": dict(Counter(r["variant"] for r in kept)),
            "rejections": {r["workflow_id"]: r["reason"] for r in rejected}}


@dg.asset(group_name="training_data", kinds={"python", "parquet"},
          check_specs=[dg.AssetCheckSpec("tool_use_examples_complete", asset="tool_use_examples", blocking=False)],
          description="Multi-step CLI workflows (git, pip, npm, cargo, fs, make, cmake; error-recovery variants) "
                      "executed in the sandbox and kept only if their final-state check passes.")
def tool_use_examples(context: dg.AssetExecutionContext, config: ToolUseConfig, sandbox: Sandbox,
                      warehouse: Warehouse) -> dg.MaterializeResult:
    meta = build_tool_use(config, sandbox, warehouse)
    check = dg.AssetCheckResult(check_name="tool_use_examples_complete", passed=meta["rejected"] == 0,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"rejections": dg.MetadataValue.json(meta["rejections"])})
    return dg.MaterializeResult(
        metadata={"dagster/row_count": meta["rows"], "rejected": meta["rejected"],
                  "by_category": dg.MetadataValue.json(meta["by_category"]),
                  "by_variant": dg.MetadataValue.json(meta["by_variant"])}, check_results=[check])


# --- multi_agent_scenarios ----------------------------------------------------------------
class ScenarioConfig(dg.Config):
    max_tasks: int = _env("HRM_SWE_SCENARIO_MAX_TASKS", 60, int)


def build_multi_agent(config: ScenarioConfig, warehouse: Warehouse) -> dict:
    from datagen.swe.multi_agent import build_scenarios
    from datagen.swe.training import with_plan_example

    by_id = {t["instance_id"]: t for t in all_partition_rows(warehouse, "swesmith_tasks")}  # a task may be loaded twice
    tasks = [by_id[k] for k in sorted(by_id)]
    workflows = warehouse.read_table("tool_use_examples").to_pylist()
    rows = [with_plan_example(r) for r in build_scenarios(tasks, workflows, config.max_tasks)]
    warehouse.write_table("multi_agent_scenarios", rows)
    return {"rows": len(rows), "by_variant": dict(Counter(r["variant"] for r in rows)),
            "by_source": dict(Counter(r["derived_from"] for r in rows)),
            "roles": sorted({role for r in rows for role in r["roles"]})}


@dg.asset(group_name="training_data", kinds={"python", "parquet"}, deps=["swesmith_tasks", "tool_use_examples"],
          description="Tasks decomposed into sub-tasks for specialist roles, with a dependency graph, parallel "
                      "groups and failure/fallback variants (input for the meta-agent orchestrator).")
def multi_agent_scenarios(context: dg.AssetExecutionContext, config: ScenarioConfig,
                          warehouse: Warehouse) -> dg.MaterializeResult:
    meta = build_multi_agent(config, warehouse)
    return dg.MaterializeResult(metadata={"dagster/row_count": meta["rows"],
                                          "by_variant": dg.MetadataValue.json(meta["by_variant"]),
                                          "by_source": dg.MetadataValue.json(meta["by_source"]),
                                          "roles": dg.MetadataValue.json(meta["roles"])})
