"""Agent assets: swesmith_tasks -> orchestrator_runs -> multi_agent_scenarios.

orchestrator_runs runs the meta-agent orchestrator (agents/orchestrator) on a few SWE-smith tasks with the
configured policy and planner, failures injected, and appends the run to its tables; multi_agent_scenarios
is rebuilt from every recorded run (datagen/swe/multi_agent.py). The checkpoint a run used (a `local:` policy)
is recorded per row and in the metadata: it cannot be an upstream asset, since the checkpoint trains on
multi_agent_scenarios.
"""

import dagster as dg

from agents.orchestrator import pipeline
from datagen.swe import multi_agent
from evals.report import wilson_interval
from hrm_assets.metadata import table_result
from hrm_assets.versions import source_version
from resources.sandbox import Sandbox
from resources.settings import from_env
from resources.swerex import SweRexSessions
from resources.warehouse import Warehouse


class OrchestratorRunsConfig(dg.Config):
    tasks: int = from_env("HRM_ORCH_TASKS")
    combined: int = from_env("HRM_ORCH_COMBINED")
    agents: int = from_env("HRM_ORCH_AGENTS")
    policy: str = from_env("HRM_ORCH_POLICY")
    planner: str = from_env("HRM_ORCH_PLANNER")
    role_policies: str = from_env("HRM_ORCH_ROLE_POLICIES")  # "role=spec,...": specialists for some roles
    failures: str = from_env("HRM_ORCH_FAILURES")
    workers: str = from_env("HRM_ORCH_WORKERS")
    role_credit: bool = from_env("HRM_ORCH_ROLE_CREDIT")

    def to_settings(self) -> pipeline.OrchestratorSettings:
        return pipeline.OrchestratorSettings(tasks=self.tasks, combined=self.combined, agents=self.agents,
                                             policy=self.policy, planner=self.planner,
                                             role_policies=pipeline.parse_role_policies(self.role_policies),
                                             failures=pipeline.parse_failures(self.failures), workers=self.workers,
                                             role_credit=self.role_credit)


@dg.asset(group_name="agents", kinds={"python", "parquet"}, deps=["swesmith_tasks"],
          code_version=source_version("agents.orchestrator.pipeline"),
          check_specs=[dg.AssetCheckSpec("orchestrator_runs_nothing_lost", asset="orchestrator_runs", blocking=True)],
          description="The meta-agent orchestrator on SWE-smith tasks: decomposition, specialist agents in jailed "
                      "sessions, git merge, full tests, injected failures recovered; every decision and message.")
def orchestrator_runs(context: dg.AssetExecutionContext, config: OrchestratorRunsConfig, sandbox: Sandbox,
                      swe_sessions: SweRexSessions, warehouse: Warehouse) -> dg.MaterializeResult:
    m = pipeline.build_orchestrator_runs(config.to_settings(), sandbox, swe_sessions, warehouse, context.log)
    low, high = wilson_interval(m["resolved"], m["tasks"])
    check = dg.AssetCheckResult(check_name="orchestrator_runs_nothing_lost", passed=m["lost"] == 0,
                                metadata={"lost": m["lost"], "lost_ids": dg.MetadataValue.json(m["lost_ids"])})
    return table_result(warehouse, "orchestrator_runs", metadata={
        "run_id": m["run_id"], "resolve_rate": round(m["resolved"] / max(1, m["tasks"]), 4),
        "resolve_rate_ci_low": round(low, 4), "resolve_rate_ci_high": round(high, 4), "tasks": m["tasks"],
        "steps_per_episode": m["steps_per_episode"], "tokens": m["tokens"], "overhead": m["overhead"],
        "wall_s": m["wall_s"], "critical_path_s": m["critical_path_s"], "lost": m["lost"],
        "recovered": m["recovered"], "agents": m["agents"], "policy": m["policy"], "checkpoint": m["checkpoint"],
        "planner": m["planner"], "injected": dg.MetadataValue.json(m["injected"]),
        "split": dg.MetadataValue.json(m["split"]), "totals": dg.MetadataValue.json(m["totals"]),
        "decisions": dg.MetadataValue.json(m["decisions"]), "messages": dg.MetadataValue.json(m["by_kind"]),
        "credit_by_role": dg.MetadataValue.json(m.get("credit_by_role", {})), "credit_runs": m.get("credit_runs", 0)},
        check_results=[check])


class ScenarioConfig(dg.Config):
    max_tasks: int = from_env("HRM_SWE_SCENARIO_MAX_TASKS")


@dg.asset(group_name="training_data", kinds={"python", "parquet"}, deps=["orchestrator_runs"],
          code_version=source_version("datagen.swe.multi_agent"),
          description="Plans the orchestrator ran and that resolved their task (decomposition, roles, dependency "
                      "graph, parallel groups, the recovery taken), one per recorded task run, by run id.")
def multi_agent_scenarios(context: dg.AssetExecutionContext, config: ScenarioConfig,
                          warehouse: Warehouse) -> dg.MaterializeResult:
    m = multi_agent.build_multi_agent(config.max_tasks, warehouse)
    return table_result(warehouse, "multi_agent_scenarios", metadata={
        "dagster/row_count": m["rows"], "runs": m["runs"], "unresolved_skipped": m["unresolved_skipped"],
        "run_ids": dg.MetadataValue.json(m["run_ids"]), "by_variant": dg.MetadataValue.json(m["by_variant"]),
        "by_decomposition": dg.MetadataValue.json(m["by_decomposition"]),
        "roles": dg.MetadataValue.json(m["roles"])})
