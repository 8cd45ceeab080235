"""The orchestrator_runs stage without Dagster: run the orchestrator on swesmith_tasks and record the run.

Tables (appended, one materialisation = one run id): `orchestrator_runs` (a row per task: plan, decisions,
attempts with patches and resource usage, outcome), `orchestrator_messages` (every message of the run).
`multi_agent_scenarios` is rebuilt from these rows (datagen/swe/multi_agent.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from agents.orchestrator.batch import combine_tasks
from agents.orchestrator.core import Orchestrator, OrchestratorConfig
from agents.orchestrator.plan import RuleBasedPlanner
from agents.orchestrator.pool import SessionPool
from agents.orchestrator.runners import FaultInjector, oracle_runner
from agents.orchestrator.workspace import session_options
from datagen.swe.repos import repo_from_row
from resources.settings import split_csv


@dataclass
class OrchestratorSettings:
    tasks: int = 2  # SWE-smith tasks per run (the first by id)
    combined: int = 1  # plus tasks made of bugs in different files, so parts run in parallel and merge
    agents: int = 4
    policy: str = "oracle"  # or a model spec for the agent loop: local:CKPT, openai:URL#MODEL
    planner: str = "rules"  # or a model spec: the meta-agent picks each task's decomposition
    # with a model policy: some roles' own specs, e.g. {"rust_developer": "local:CKPT+ADAPTER"} (a specialist)
    role_policies: dict = field(default_factory=dict)
    failures: tuple[str, ...] = ("kill",)  # injected into the first fix sub-tasks: kill, hang
    heartbeat_timeout_s: float = 20.0
    workers: str = "threads"  # or "processes": worker processes on a directory transport (workers.py)
    role_credit: bool = True  # per task: which part's (role's) patch made which test pass (credit.py)


def pick_tasks(settings: OrchestratorSettings, sandbox, warehouse) -> tuple[dict, list[dict]]:
    repos = {r["key"]: r for r in warehouse.read_partition_rows("swe_repos") if r["kind"] != "dataset"}
    tasks = sorted((t for t in warehouse.read_partition_rows("swesmith_tasks") if t["source_repo"] in repos),
                   key=lambda t: t["instance_id"])
    picked = {t["instance_id"]: t for t in tasks[:settings.tasks]}
    for key in sorted(repos):
        if len([t for t in picked.values() if len(t["files"]) > 1]) >= settings.combined:
            break
        mine = [t for t in tasks if t["source_repo"] == key]
        for t in combine_tasks(sandbox, repos[key], mine, per_task=2, limit=settings.combined):
            picked.setdefault(t["instance_id"], t)
    return {k: repo_from_row(r) for k, r in repos.items()}, list(picked.values())


def build_orchestrator_runs(settings: OrchestratorSettings, sandbox, sessions, warehouse, log=None) -> dict:
    repos, tasks = pick_tasks(settings, sandbox, warehouse)
    if not tasks:
        raise RuntimeError("orchestrator_runs: no generated swesmith_tasks to run on (is swesmith_tasks empty?)")
    runner, checkpoint = oracle_runner, ""
    if settings.policy != "oracle":
        from agents.orchestrator.runners import episode_runner

        runner = episode_runner(settings.policy, role_policies=settings.role_policies)
        checkpoint = settings.policy.split(":", 1)[1] if settings.policy.startswith("local:") else ""
    planner = RuleBasedPlanner()
    if settings.planner != "rules":
        from agents.orchestrator.plan import ModelPlanner
        from agents.policies import policy_from_spec  # the agent loop's policies

        planner = ModelPlanner(policy_from_spec(settings.planner))
    fixes = [s.id for s in RuleBasedPlanner().plan(tasks).subtasks if s.kind == "fix"]
    faults = {kind: fixes[i:i + 1] for i, kind in enumerate(settings.failures) if kind in ("kill", "hang")}
    if settings.workers == "processes":  # the policy travels as its spec; a killed jail is a dead worker there
        from agents.orchestrator.workers import ProcessWorkers

        runner = settings.policy
        pool = ProcessWorkers(repos, settings.agents, settings.policy, faults={
            ids[0]: {"kill": "die", "hang": "hang"}[kind] for kind, ids in faults.items()})
        pool.start()
    else:
        if faults:
            runner = FaultInjector(runner, **faults)
        pool = SessionPool(sessions, settings.agents, session_options(repos))
    try:
        orch = Orchestrator(pool, repos, runner, config=OrchestratorConfig(
            agents=settings.agents, heartbeat_timeout_s=settings.heartbeat_timeout_s, workers=settings.workers,
            role_credit=settings.role_credit), sandbox=sandbox)
        orch.checkpoint = checkpoint
        t0 = time.monotonic()
        record = orch.run(tasks, planner)
    finally:
        pool.close()
    s = record["summary"]
    if log:
        log.info(f"{s['run_id']}: {s['resolved']}/{s['tasks']} tasks resolved by {s['agents']} agents in "
                 f"{time.monotonic() - t0:.1f} s; overhead {s['overhead']:.1%}; lost {s['lost']}, recovered "
                 f"{s['recovered']}")
    for row in record["rows"]:
        row.update(run_overhead=s["overhead"], run_wall_s=s["wall_s"], run_lost=s["lost"])
    _append(warehouse, "orchestrator_runs", record["rows"])
    _append(warehouse, "orchestrator_messages", record["messages"])
    steps = [r["steps"] for r in record["rows"]]
    injected = [k for _, k in getattr(runner, "injected", [])] if settings.workers == "threads" else \
        [k for k in faults if k == "hang" and s["pool"]["killed"] or k == "kill" and s["pool"]["died"]]
    return {**s, "rows": len(record["rows"]), "injected": injected,
            "steps_per_episode": round(sum(steps) / max(1, sum(r["attempts"] for r in record["rows"])), 2),
            "tokens": sum(r["tokens"] for r in record["rows"]), "policy": settings.policy, "checkpoint": checkpoint}


def _append(warehouse, name: str, rows: list[dict]) -> None:
    try:
        old = warehouse.read_table(name).to_pylist()
    except FileNotFoundError:
        old = []
    # a column new in this run (role_credit) would be dropped: pyarrow takes the columns from the first row
    keys = list(dict.fromkeys(k for r in old + rows for k in r))
    warehouse.write_table(name, [{k: r.get(k) for k in keys} for r in old + rows])


def parse_role_policies(text: str) -> dict[str, str]:
    """"rust_developer=local:CKPT+ADAPTER,..." -> {role: spec}; ValueError naming a bad entry or spec."""
    from inference.specs import parse_spec

    out = {}
    for item in split_csv(text):
        role, sep, spec = item.partition("=")
        if not sep or not role.strip() or not spec.strip():
            raise ValueError(f"role policy {item!r}: expected ROLE=SPEC (e.g. rust_developer=local:CKPT+ADAPTER)")
        if spec.strip() != "oracle":
            parse_spec(spec.strip())
        out[role.strip()] = spec.strip()
    return out


def parse_failures(text: str) -> tuple[str, ...]:
    return tuple(split_csv(text))
