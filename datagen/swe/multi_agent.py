"""Multi-agent scenarios from recorded orchestrator runs: each resolved task of a run is one scenario, its
plan as the orchestrator ran it (decomposition, roles, dependency graph, parallel groups) and the recovery
it actually needed, traceable to the run (`run_id`, `scenario_id` = `<run_id>/<instance_id>`).

Schema: `subtasks` is a JSON list of {id, role, description, depends_on, parallel_group, tools, inputs,
outputs, fallback}; `fallback` is null or what the orchestrator did when an attempt failed
({action: reassign, roles_tried, statuses}); `edges` the graph as [from, to] pairs; `parallel_groups` the
ids per topological level; variant `nominal` (no attempt failed) or `failure_fallback`. The decision columns
(decomposition, agents, planner, policy, checkpoint, resolved, attempts, overhead) are the meta-agent's
training signal: which decomposition, which roles and how many agents solved the task.
"""

from __future__ import annotations

import json

_TOOLS = {"tool": ["bash", "edit", "run_tests"], "fix": ["bash", "edit", "git diff"], "verify": ["git merge", "pytest"]}


def topological_levels(subtasks: list[dict]) -> dict[str, int]:
    """Level of each sub-task (0 = no dependencies); raises on unknown ids or cycles."""
    by_id = {s["id"]: s for s in subtasks}
    levels: dict[str, int] = {}
    visiting: set[str] = set()

    def level(i: str) -> int:
        if i in levels:
            return levels[i]
        if i not in by_id:
            raise ValueError(f"sub-task depends on unknown id {i!r}")
        if i in visiting:
            raise ValueError(f"dependency cycle through sub-task {i!r}")
        visiting.add(i)
        levels[i] = 1 + max((level(d) for d in by_id[i]["depends_on"]), default=-1)
        visiting.discard(i)
        return levels[i]

    for s in subtasks:
        level(s["id"])
    return levels


def scenario_from_run(row: dict) -> dict:
    """One orchestrator_runs row (a task in a run) as a scenario."""
    prefix = row["instance_id"] + "/"
    ran = json.loads(row["subtasks"])
    subtasks = []
    for s in ran:
        retried = len(s["statuses"]) > 1
        subtasks.append({
            "id": s["id"].removeprefix(prefix), "role": s["role"], "description": s["description"],
            "depends_on": [d.removeprefix(prefix) for d in s["depends_on"]], "tools": _TOOLS.get(s["kind"], []),
            "inputs": list(s.get("files") or []), "outputs": ["patch"] if s["kind"] in ("fix", "tool") else ["test_report"],
            "fallback": {"action": "reassign", "roles_tried": s["roles_tried"], "statuses": s["statuses"]}
            if retried else None})
    levels = topological_levels(subtasks)
    for s in subtasks:
        s["parallel_group"] = levels[s["id"]]
    groups = [[s["id"] for s in subtasks if levels[s["id"]] == g] for g in range(max(levels.values()) + 1)]
    variant = "failure_fallback" if any(s["fallback"] for s in subtasks) else "nominal"
    return {"scenario_id": f"{row['run_id']}/{row['instance_id']}", "run_id": row["run_id"],
            "derived_from": "orchestrator_runs", "source_id": row["instance_id"], "language": row["language"],
            "domain": row.get("domain") or "general", "goal": (row.get("problem_statement") or "")[:1000],
            "variant": variant, "roles": sorted({s["role"] for s in subtasks}), "subtasks": json.dumps(subtasks),
            "edges": json.dumps([[d, s["id"]] for s in subtasks for d in s["depends_on"]]),
            "parallel_groups": json.dumps(groups), "n_subtasks": len(subtasks), "critical_path": len(groups),
            "decomposition": row["decomposition"], "agents": row["agents"], "planner": row["planner"],
            "policy": row["policy"], "checkpoint": row.get("checkpoint", ""), "resolved": row["resolved"],
            "attempts": row["attempts"], "overhead": float(row.get("run_overhead") or 0.0)}


def build_scenarios(run_rows: list[dict], max_tasks: int = 100) -> tuple[list[dict], dict]:
    """Scenarios of the newest resolved task runs (a plan that did not resolve its task teaches nothing good);
    and counts of what was left out."""
    newest = sorted(run_rows, key=lambda r: (r.get("created_at", ""), r["run_id"]), reverse=True)
    kept = [r for r in newest if r["resolved"]][:max_tasks]
    return [scenario_from_run(r) for r in kept], {"runs": len({r["run_id"] for r in run_rows}),
                                                  "unresolved_skipped": sum(not r["resolved"] for r in run_rows)}


def build_multi_agent(max_tasks: int, warehouse) -> dict:
    """Rebuild the multi_agent_scenarios table from the orchestrator_runs table."""
    from datagen.swe.examples import with_plan_example

    try:
        runs = warehouse.read_table("orchestrator_runs").to_pylist()
    except FileNotFoundError:
        raise RuntimeError("multi_agent_scenarios: no orchestrator run recorded yet (materialise orchestrator_runs)")
    scenarios, counts = build_scenarios(runs, max_tasks)
    if not scenarios:
        raise RuntimeError(f"multi_agent_scenarios: no recorded orchestrator run resolved its task ({counts})")
    rows = [with_plan_example(r) for r in scenarios]
    warehouse.write_table("multi_agent_scenarios", rows)
    by = {}
    for r in rows:
        by.setdefault(r["variant"], 0)
        by[r["variant"]] += 1
    return {"rows": len(rows), **counts, "by_variant": by, "run_ids": sorted({r["run_id"] for r in rows}),
            "roles": sorted({role for r in rows for role in r["roles"]}),
            "by_decomposition": {d: sum(r["decomposition"] == d for r in rows) for d in
                                 sorted({r["decomposition"] for r in rows})}}
