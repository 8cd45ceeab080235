"""SWE assets: swe_repos -> swesmith_tasks -> swe_trajectories, agent_rollouts (per policy), tool_use_examples ->
multi_agent_scenarios.

Each body maps its config onto plain settings and calls one function in `datagen/swe/pipeline.py` (the rollouts:
`agents/rollouts.py`). Config defaults come from HRM_SWE_*, HRM_AGENT_* and HRM_TOOL_USE_* settings
(resources/settings.py, read when a run builds its config); the repo list is HRM_SWE_REPOS (see
datagen/swe/repos.py), the agent_rollouts partitions HRM_AGENT_POLICIES. `datagen.swe.examples.training_examples`
gives the finer-grained TrainingExample set (per step, per turn, repair/diff_edit).
"""

import dagster as dg

from agents import rollouts
from datagen.swe import pipeline
from datagen.swe.repos import configured_specs
from datagen.swe.tasks import TaskSettings
from hrm_assets.expectations import gx_check, named, publish_if_passed
from hrm_assets.metadata import as_metadata, table_result
from hrm_assets.versions import source_version
from resources.partitions import agent_policies
from resources.partitions import swe_repos as swe_repo_partitions
from resources.sandbox import Sandbox
from resources.settings import from_env, split_csv
from resources.swerex import SweRexSessions
from resources.warehouse import Warehouse

CODE_VERSION = source_version("datagen.swe.pipeline")
ROLLOUTS_VERSION = source_version("agents.rollouts")


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
def swesmith_tasks(context: dg.AssetExecutionContext, config: SweTasksConfig, sandbox: Sandbox, warehouse: Warehouse):
    key = context.partition_key
    with warehouse.staging("swesmith_tasks", key):
        meta = pipeline.build_swesmith_tasks(config.to_settings(), sandbox, warehouse, key, context.log)
        check = gx_check(pipeline.tasks_check_frame(warehouse, key), "swesmith_tasks", lambda gxe: [
            gxe.ExpectColumnValuesToBeUnique(column="instance_id"),
            gxe.ExpectColumnValuesToMatchRegex(column="instance_id",
                                               regex=r"^[\w.-]+__[\w.-]+\.[0-9a-f]{8}\.[\w.-]+$"),
            gxe.ExpectColumnValuesToBeBetween(column="n_fail_to_pass", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="n_pass_to_pass", min_value=0),
            gxe.ExpectColumnValuesToNotBeNull(column="bug_type"),
            gxe.ExpectColumnValuesToNotBeNull(column="problem_statement"),
        ])
    yield from publish_if_passed(
        warehouse, "swesmith_tasks", named(check, "swesmith_tasks_gx"), key,
        metadata={"dagster/row_count": meta["tasks"], "candidates": meta["candidates"], "rejected": meta["rejected"],
                  "tasks_per_minute": meta["tasks_per_minute"], "fail_to_pass_median": meta["fail_to_pass_median"],
                  "by_bug_type": dg.MetadataValue.json(meta["by_bug_type"]),
                  "by_file": dg.MetadataValue.json(meta["by_file"]),
                  "rejections": dg.MetadataValue.json(meta["rejections"])})


# --- swe_trajectories ---------------------------------------------------------------------
class SweTrajectoriesConfig(dg.Config):
    tasks_per_repo: int = from_env("HRM_SWE_TRAJ_TASKS_PER_REPO")
    workers: int = from_env("HRM_SWE_TRAJ_WORKERS")  # rollouts run tests: about the core count
    load_from: str = from_env("HRM_SWE_TRAJECTORIES")  # local SWE-smith trajectory files or an HF dataset name
    include_rollouts: bool = True  # fold in the models' rows agent_rollouts left in the warehouse

    def to_settings(self) -> rollouts.TrajectorySettings:
        return rollouts.TrajectorySettings(tasks_per_repo=self.tasks_per_repo, workers=self.workers,
                                           load_from=self.load_from,
                                           include_rollouts=self.include_rollouts)


@dg.asset(group_name="training_data", kinds={"python", "parquet"}, code_version=ROLLOUTS_VERSION,
          deps=[dg.AssetDep("swesmith_tasks", partition_mapping=dg.AllPartitionMapping())],
          check_specs=[dg.AssetCheckSpec("oracle_resolves_its_tasks", asset="swe_trajectories", blocking=False)],
          description="Agent trajectories (SWE-smith format + a `policy` column): the oracle's demonstrations rolled "
                      "out through the agent loop in jailed sessions, the models' rows from agent_rollouts, loaded "
                      "SWE-smith trajectories; resolution from the task's tests in a fresh jail. RL view in table "
                      "swe_trajectories_rl.")
def swe_trajectories(context: dg.AssetExecutionContext, config: SweTrajectoriesConfig, sandbox: Sandbox,
                     swe_sessions: SweRexSessions, warehouse: Warehouse) -> dg.MaterializeResult:
    meta = rollouts.build_swe_trajectories(config.to_settings(), sandbox, swe_sessions, warehouse, context.log)
    if meta["oracle"] and meta["oracle_resolved"] == 0:
        raise RuntimeError(f"swe_trajectories: the oracle resolved none of its {meta['oracle']} tasks: the tasks or "
                           f"the grader are broken ({meta['oracle_unresolved']})")
    check = dg.AssetCheckResult(check_name="oracle_resolves_its_tasks", passed=not meta["oracle_unresolved"],
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"unresolved": dg.MetadataValue.json(meta["oracle_unresolved"])})
    return table_result(warehouse, "swe_trajectories", check_results=[check], metadata={
        "dagster/row_count": meta["rows"], **as_metadata({k: v for k, v in meta.items() if k != "rows"})})


# --- agent_rollouts -----------------------------------------------------------------------
class AgentRolloutsConfig(dg.Config):
    tasks: int = from_env("HRM_AGENT_TASKS")
    max_steps: int = from_env("HRM_AGENT_MAX_STEPS")
    max_tokens: int = from_env("HRM_AGENT_MAX_TOKENS")
    max_wall_s: float = from_env("HRM_AGENT_MAX_WALL_S")
    max_new_tokens: int = from_env("HRM_AGENT_MAX_NEW_TOKENS")
    workers: int = from_env("HRM_SWE_TRAJ_WORKERS")
    polyglot: str = from_env("HRM_AGENT_POLYGLOT")  # comma-separated languages or "all"; empty: none
    polyglot_per_language: int = from_env("HRM_AGENT_POLYGLOT_PER_LANGUAGE")
    repo_map_tokens: int = from_env("HRM_AGENT_REPO_MAP_TOKENS")

    def to_settings(self) -> rollouts.RolloutSettings:
        return rollouts.RolloutSettings(tasks=self.tasks, max_steps=self.max_steps, max_tokens=self.max_tokens,
                                        max_wall_s=self.max_wall_s, max_new_tokens=self.max_new_tokens,
                                        workers=self.workers, polyglot_languages=tuple(split_csv(self.polyglot)),
                                        polyglot_per_language=self.polyglot_per_language,
                                        repo_map_tokens=self.repo_map_tokens)


_CHECKPOINT_DEPS = sorted({rollouts.CHECKPOINT_KEYS[k] for k in agent_policies.get_partition_keys()
                           if k in rollouts.CHECKPOINT_KEYS})


@dg.asset(group_name="agents", kinds={"python", "parquet"}, partitions_def=agent_policies,
          code_version=ROLLOUTS_VERSION,
          deps=[dg.AssetDep("swesmith_tasks", partition_mapping=dg.AllPartitionMapping()),
                dg.AssetDep("polyglot_problems", partition_mapping=dg.AllPartitionMapping()), *_CHECKPOINT_DEPS],
          description="Episodes of one policy (partition: oracle, or the latest hrm / baseline checkpoint as a "
                      "local: policy) on the first SWE-smith tasks, plus the Polyglot exercises of the languages "
                      "in HRM_AGENT_POLYGLOT, each in a jailed session with bash, view, search, edit, run_tests "
                      "and submit; resolved by the task's tests in a fresh jail. Table agent_rollouts (SWE-smith "
                      "trajectory rows), RL view agent_rollouts_rl.")
def agent_rollouts(context: dg.AssetExecutionContext, config: AgentRolloutsConfig, sandbox: Sandbox,
                   swe_sessions: SweRexSessions, warehouse: Warehouse) -> dg.MaterializeResult:
    key = context.partition_key
    meta = rollouts.build_agent_rollouts(config.to_settings(), key, sandbox, swe_sessions, warehouse, context.log)
    context.log.info(f"agent_rollouts[{key}]: {meta['resolved']}/{meta['episodes']} resolved "
                     f"(95 % CI {meta['resolve_ci_low']}-{meta['resolve_ci_high']})")
    return table_result(warehouse, "agent_rollouts", key, metadata={
        "dagster/row_count": meta["episodes"],
        **as_metadata(meta)})


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
