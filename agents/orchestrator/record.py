"""A run's record: the summary (wall, critical path, coordination overhead and its split), one row per task
(plan, decisions, attempts with their patches and resource usage, outcome) and every message.

Coordination overhead = (wall - critical path of agent work) / wall. Agent work is what agents do in their
sessions: a fix attempt from taking its session to reporting, the merge agent, and the test run of the
merged result. The critical path is the longest chain of it through the plan (per task: its slowest tool
sub-task, then its slowest fix, then its verification's agent work), counting each sub-task's final attempt. The split follows the task that
finished last: planning; dispatch (from dispatch to work starting: session, task message); messaging (from
work ending to the orchestrator taking the result); aggregation (the git merge); waiting (for a free agent,
plus what remains: failed attempts before the final one, heartbeat timeouts)."""

from __future__ import annotations

import json
import time

from agents.orchestrator.plan import domain_of


def run_record(orch, plan, planner, t_start: float, t_planned: float, t_end: float) -> dict:
    wall = t_end - t_start
    tasks = sorted(orch.tasks)
    finals = {sid: _final(atts) for sid, atts in orch.attempts.items()}
    cp, chain = 0.0, None
    for tid in tasks:
        fixes = [s for s in plan.subtasks if s.task_id == tid and s.kind == "fix"]
        tools = [s for s in plan.subtasks if s.task_id == tid and s.kind == "tool"]
        verify = next(s for s in plan.subtasks if s.task_id == tid and s.kind == "verify")
        v = finals[verify.id]
        fix_work = max((finals[f.id].work_s for f in fixes if finals[f.id]), default=0.0)
        tool_work = max((finals[f.id].work_s for f in tools if finals[f.id]), default=0.0)
        length = tool_work + fix_work + (_verify_agent_s(v) if v else 0.0)
        cp = max(cp, length)
        last = v.handled_at if v else 0.0
        if chain is None or last > chain[0]:
            slowest = max((finals[f.id] for f in fixes if finals[f.id]), key=lambda a: a.ended_at, default=None)
            tool = max((finals[f.id] for f in tools if finals[f.id]), key=lambda a: a.ended_at, default=None)
            chain = (last, slowest, v, tool)
    split = {"planning": t_planned - t_start, "dispatch": 0.0, "messaging": 0.0, "aggregation": 0.0, "waiting": 0.0}
    if chain:
        for a in (chain[3], chain[1], chain[2]):
            if a is None:
                continue
            split["dispatch"] += max(0.0, a.started_at - a.dispatched_at)
            split["messaging"] += max(0.0, a.handled_at - a.ended_at)
        if chain[2] is not None:
            split["aggregation"] += float(chain[2].merge.get("merge_s", 0.0))
    split["waiting"] = (wall - cp) - sum(v for k, v in split.items() if k != "waiting")
    terminal = {"tool": ("ok", "failed"), "fix": ("ok", "failed"), "verify": ("resolved", "unresolved", "failed")}
    lost = sorted(sid for sid, st in orch.state.items() if st not in terminal[orch.subs[sid].kind])
    resolved = sorted(s.task_id for s in plan.subtasks if s.kind == "verify" and orch.state[s.id] == "resolved")
    rows = [_task_row(orch, plan, planner, tid, finals) for tid in tasks]
    summary = {
        "run_id": orch.run_id, "planner": planner.name, "agents": orch.cfg.agents, "tasks": len(tasks),
        "subtasks": len(plan.subtasks), "width": plan.width(), "resolved": len(resolved),
        "lost": len(lost), "lost_ids": lost, "recovered": len(orch.recovered),
        "attempts": sum(len(a) for a in orch.attempts.values()),
        "wall_s": round(wall, 3), "critical_path_s": round(cp, 3),
        "overhead": round((wall - cp) / wall, 4) if wall > 0 else 0.0,
        "split": {k: round(v, 3) for k, v in split.items()},
        "totals": {"dispatch_s": round(orch.dispatch_s, 3), "bus_s": round(orch.bus.busy_s, 3),
                   "aggregation_s": round(sum(float(a.merge.get("merge_s", 0.0)) + float(a.merge.get("prepare_s", 0.0))
                                              for atts in orch.attempts.values() for a in atts), 3),
                   "agent_work_s": round(sum(a.work_s for atts in orch.attempts.values() for a in atts), 3),
                   "cpu_s": round(sum(a.cpu_s or 0.0 for atts in orch.attempts.values() for a in atts), 3)},
        "messages": len(orch.bus.log), "by_kind": _count(m.kind for m in orch.bus.log),
        "open_roles": sorted(orch.open_roles), "pool": orch.pool.stats(), "workers": orch.cfg.workers,
        "rejected_messages": len(orch.rejected),
        "decisions": dict(plan.decisions),
        **credit_summary(getattr(orch, "credit", {})),
    }
    return {"summary": summary, "rows": rows, "messages": orch.bus.records(orch.run_id),
            "recovered": list(orch.recovered), "rejected": list(orch.rejected)}


def credit_summary(credit: dict[str, dict]) -> dict:
    """Per role over the run's tasks: tests credited (leave-one-out, 1/k for a test k parts need), the same
    from each part alone, and the tasks the role had a part in; with the jailed runs and seconds it took."""
    by_role: dict[str, dict] = {}
    for c in credit.values():
        for role, r in c.get("by_role", {}).items():
            total = by_role.setdefault(role, {"credit": 0.0, "alone_credit": 0.0, "tasks": 0})
            total["credit"] = round(total["credit"] + r["credit"], 4)
            total["alone_credit"] = round(total["alone_credit"] + r["alone_credit"], 4)
            total["tasks"] += 1
    return {"credit_by_role": dict(sorted(by_role.items())),
            "credit_runs": sum(c.get("runs", 0) for c in credit.values()),
            "credit_s": round(sum(c.get("wall_s", 0.0) for c in credit.values()), 3)}


def _final(atts):
    ok = [a for a in atts if a.status in ("ok", "resolved", "unresolved")]
    return ok[-1] if ok else (atts[-1] if atts else None)


def _verify_agent_s(a) -> float:
    return float(a.merge.get("test_s", 0.0)) + float(a.merge.get("merge_agent_s", 0.0))


def _count(items) -> dict:
    out: dict = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def _task_row(orch, plan, planner, tid: str, finals) -> dict:
    task = orch.tasks[tid]
    subs = [s for s in plan.subtasks if s.task_id == tid]
    verify = next(s for s in subs if s.kind == "verify")
    v = finals[verify.id]
    atts = [a for s in subs for a in orch.attempts[s.id]]
    merge = v.merge if v else {}
    outcome = [{**s.to_dict(), "state": orch.state[s.id], "attempts": len(orch.attempts[s.id]),
                "roles_tried": [a.role for a in orch.attempts[s.id]],
                "statuses": [a.status for a in orch.attempts[s.id]]} for s in subs]
    return {
        "run_id": orch.run_id, "instance_id": tid, "source_repo": task.get("source_repo", ""),
        "language": task.get("language") or "python", "problem_statement": task.get("problem_statement", ""),
        "bug_type": task.get("bug_type", ""), "domain": domain_of(task),
        "planner": planner.name, "decomposition": plan.decisions.get(tid, ""), "agents": orch.cfg.agents,
        "n_subtasks": len(subs), "roles": sorted({s.role for s in subs}),
        "policy": orch.runner if isinstance(orch.runner, str) else  # a process worker's policy spec
        getattr(orch.runner, "policy_name", getattr(orch.runner, "__name__", type(orch.runner).__name__)),
        "checkpoint": getattr(orch, "checkpoint", ""),
        "resolved": orch.state[verify.id] == "resolved", "rounds": orch.task_rounds[tid],
        "attempts": len(atts), "recovered": sum(1 for r in orch.recovered if r["subtask_id"] in {s.id for s in subs}),
        "conflicts": len(merge.get("conflicts", [])), "merged_by_agent": len(merge.get("by_merge_agent", [])),
        "sequential": len(merge.get("sequential", [])), "rejected_patches": sum(a.status == "rejected" for a in atts),
        "steps": sum(a.steps for a in atts), "tokens": sum(a.tokens for a in atts),
        "cpu_s": round(sum(a.cpu_s or 0.0 for a in atts), 3),
        "peak_mb": max((a.peak_mb or 0.0 for a in atts), default=0.0),
        "work_s": round(sum(a.work_s for a in atts), 3),
        "patch": v.patch if v else "", "subtasks": json.dumps(outcome),
        "role_credit": json.dumps(getattr(orch, "credit", {}).get(tid, {})),
        "attempt_log": json.dumps([a.to_dict() for a in atts]),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
