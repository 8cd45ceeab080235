"""SWE assets: swe_repos -> swesmith_tasks -> swe_trajectories, tool_use_examples -> multi_agent_scenarios.

Each body maps its config onto plain settings and calls one function in `datagen/swe/pipeline.py`.
Config defaults come from HRM_SWE_* and HRM_TOOL_USE_* settings (resources/settings.py, read when a run
builds its config); the repo list is HRM_SWE_REPOS (see datagen/swe/repos.py). Tables carry TrainingExample
columns where a row is one example; `datagen.swe.examples.training_examples` gives the finer-grained set
(per step, per turn, repair/diff_edit).
"""

import dagster as dg

from datagen.swe import pipeline
from datagen.swe.repos import configured_specs
from datagen.swe.tasks import TaskSettings
from hrm_assets.expectations import gx_check, named
from hrm_assets.metadata import table_result
from hrm_assets.versions import source_version
from resources.partitions import swe_repos as swe_repo_partitions
from resources.sandbox import Sandbox
from resources.settings import from_env, split_csv
from resources.swerex import SweRexSessions
from resources.warehouse import Warehouse

CODE_VERSION = source_version("datagen.swe.pipeline")


# --- swe_repos ----------------------------------------------------------------------------
@dg.asset(group_name="sources", kinds={"python", "git", "parquet"}, partitions_def=swe_repo_partitions,
          code_version=CODE_VERSION,
          metadata={"hrm/default_partitions": dg.MetadataValue.json([s.key for s in configured_specs()])},
          description="Pinned source repos (PyPI sdists, git, SWE-smith profiles) with a test env and a jailed "
                      "baseline test run; or a SWE-smith task dataset to load.")
def swe_repos(context: dg.AssetExecutionContext, sandbox: Sandbox, warehouse: Warehouse) -> dg.MaterializeResult:
    row = pipeline.build_swe_repo(sandbox, warehouse, context.partition_key)
    context.log.info(f"{context.partition_key}: {row['n_passed']}/{row['n_tests']} tests pass at baseline")
    refused = list(row.get("refused_requirements", []))
    if refused:
        context.log.warning(f"{context.partition_key}: requirements refused (not built on the host):\n"
                            + "\n".join(refused))
    return table_result(warehouse, "swe_repos", context.partition_key, metadata={
        "spec": row["spec"], "kind": row["kind"], "commit": row.get("commit", ""), "tests": row["n_tests"],
        "passing_tests": row["n_passed"], "baseline_wall_s": row.get("baseline_wall_s", 0.0),
        "requirements": dg.MetadataValue.json(row.get("requirements", [])),
        "refused_requirements": dg.MetadataValue.json(refused)})


# --- swesmith_tasks -----------------------------------------------------------------------
class SweTasksConfig(dg.Config):
    seed: int = from_env("HRM_SWE_SEED")
    max_bugs_per_repo: int = from_env("HRM_SWE_MAX_BUGS_PER_REPO")
    max_per_modifier: int = from_env("HRM_SWE_MAX_PER_MODIFIER")

    def to_settings(self) -> TaskSettings:
        return TaskSettings(seed=self.seed, max_bugs=self.max_bugs_per_repo, max_per_modifier=self.max_per_modifier)


@dg.asset(group_name="problems", kinds={"python", "parquet"}, partitions_def=swe_repo_partitions, deps=["swe_repos"],
          code_version=CODE_VERSION,
          check_specs=[dg.AssetCheckSpec("swesmith_tasks_gx", asset="swesmith_tasks", blocking=True)],
          description="SWE-smith procedural bugs validated in the sandbox (FAIL_TO_PASS / PASS_TO_PASS), HF "
                      "SWE-smith schema, static problem statements; or loaded SWE-smith rows.")
def swesmith_tasks(context: dg.AssetExecutionContext, config: SweTasksConfig, sandbox: Sandbox,
                   warehouse: Warehouse) -> dg.MaterializeResult:
    key = context.partition_key
    meta = pipeline.build_swesmith_tasks(config.to_settings(), sandbox, warehouse, key, context.log)
    check = gx_check(pipeline.tasks_check_frame(warehouse, key), "swesmith_tasks", lambda gxe: [
        gxe.ExpectColumnValuesToBeUnique(column="instance_id"),
        gxe.ExpectColumnValuesToMatchRegex(column="instance_id", regex=r"^[\w.-]+__[\w.-]+\.[0-9a-f]{8}\.[\w.-]+$"),
        gxe.ExpectColumnValuesToBeBetween(column="n_fail_to_pass", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="n_pass_to_pass", min_value=0),
        gxe.ExpectColumnValuesToNotBeNull(column="bug_type"),
        gxe.ExpectColumnValuesToNotBeNull(column="problem_statement"),
    ])
    return table_result(
        warehouse, "swesmith_tasks", key,
        metadata={"dagster/row_count": meta["tasks"], "candidates": meta["candidates"], "rejected": meta["rejected"],
                  "tasks_per_minute": meta["tasks_per_minute"], "fail_to_pass_median": meta["fail_to_pass_median"],
                  "by_bug_type": dg.MetadataValue.json(meta["by_bug_type"]),
                  "by_file": dg.MetadataValue.json(meta["by_file"]),
                  "rejections": dg.MetadataValue.json(meta["rejections"])},
        check_results=[named(check, "swesmith_tasks_gx")])


# --- swe_trajectories ---------------------------------------------------------------------
class SweTrajectoriesConfig(dg.Config):
    tasks_per_repo: int = from_env("HRM_SWE_TRAJ_TASKS_PER_REPO")
    workers: int = from_env("HRM_SWE_TRAJ_WORKERS")  # rollouts run tests: about the core count
    load_from: str = from_env("HRM_SWE_TRAJECTORIES")  # local SWE-smith trajectory files or an HF dataset name
    hrm_checkpoint: str = from_env("HRM_SWE_AGENT_CHECKPOINT")  # also roll out this HRM checkpoint as an agent

    def to_settings(self) -> pipeline.TrajectorySettings:
        return pipeline.TrajectorySettings(tasks_per_repo=self.tasks_per_repo, workers=self.workers,
                                           load_from=self.load_from, hrm_checkpoint=self.hrm_checkpoint)


@dg.asset(group_name="training_data", kinds={"python", "parquet"}, deps=["swesmith_tasks"], code_version=CODE_VERSION,
          description="Agent trajectories (SWE-smith format): scripted expert (and HRM) rollouts in jailed SWE-ReX "
                      "sessions, loaded SWE-smith trajectories; RL view in table swe_trajectories_rl.")
def swe_trajectories(context: dg.AssetExecutionContext, config: SweTrajectoriesConfig, sandbox: Sandbox,
                     swe_sessions: SweRexSessions, warehouse: Warehouse) -> dg.MaterializeResult:
    meta = pipeline.build_swe_trajectories(config.to_settings(), sandbox, swe_sessions, warehouse, context.log)
    if meta["collected"] and meta["resolved_collected"] == 0:
        raise RuntimeError(f"swe_trajectories: no collected episode resolved its task ({meta})")
    return table_result(warehouse, "swe_trajectories", metadata={"dagster/row_count": meta["rows"], **{
        k: (dg.MetadataValue.json(v) if isinstance(v, dict) else v) for k, v in meta.items() if k != "rows"}})


# --- tool_use_examples --------------------------------------------------------------------
class ToolUseConfig(dg.Config):
    seed: int = from_env("HRM_TOOL_USE_SEED")
    variants: int = from_env("HRM_TOOL_USE_VARIANTS")  # seeded variants of each workflow
    only: str = from_env("HRM_TOOL_USE_ONLY")  # comma-separated workflow names (default: all)

    def to_settings(self) -> pipeline.ToolUseSettings:
        return pipeline.ToolUseSettings(seed=self.seed, variants=self.variants, only=split_csv(self.only))


@dg.asset(group_name="training_data", kinds={"python", "parquet"}, code_version=CODE_VERSION,
          check_specs=[dg.AssetCheckSpec("tool_use_examples_complete", asset="tool_use_examples", blocking=False)],
          description="Multi-step CLI workflows (git, pip, npm, cargo, fs, make, cmake; error-recovery variants) "
                      "executed in the sandbox and kept only if their final-state check passes.")
def tool_use_examples(context: dg.AssetExecutionContext, config: ToolUseConfig, sandbox: Sandbox,
                      warehouse: Warehouse) -> dg.MaterializeResult:
    meta = pipeline.build_tool_use(config.to_settings(), sandbox, warehouse)
    check = dg.AssetCheckResult(check_name="tool_use_examples_complete", passed=meta["rejected"] == 0,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"rejections": dg.MetadataValue.json(meta["rejections"])})
    return table_result(
        warehouse, "tool_use_examples",
        metadata={"dagster/row_count": meta["rows"], "rejected": meta["rejected"],
                  "by_category": dg.MetadataValue.json(meta["by_category"]),
                  "by_variant": dg.MetadataValue.json(meta["by_variant"])}, check_results=[check])
