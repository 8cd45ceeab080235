"""Multi-agent scenarios: SWE tasks and tool workflows decomposed into sub-tasks for specialist roles.

Schema (one row per scenario, consumed by the meta-agent orchestrator): `subtasks` is a JSON list of
{id, role, description, depends_on, parallel_group, tools, inputs, outputs, fallback}; `edges` the
dependency graph as [from, to] pairs; `parallel_groups` the sub-task ids that may run at once
(same topological level); variant `nominal` or `failure_fallback` (one sub-task marked to fail,
with the fallback path the orchestrator should take).
"""

from __future__ import annotations

import json

_BUG_DOMAINS = {"class": "object model", "ctrl": "control flow", "remove": "missing logic", "op": "expressions"}
_TOOL_ROLES = {"git": "git_operator", "pip": "python_packager", "npm": "node_packager", "cargo": "rust_builder", "mvn": "java_builder",
               "fs": "filesystem_operator", "make": "build_engineer", "cmake": "build_engineer"}


def _sub(id_, role, description, depends_on=(), tools=(), inputs=(), outputs=(), fallback=None) -> dict:
    return {"id": id_, "role": role, "description": description, "depends_on": list(depends_on),
            "tools": list(tools), "inputs": list(inputs), "outputs": list(outputs), "fallback": fallback}


def _finish(scenario_id, source_asset, source_id, language, domain, goal, variant, subtasks) -> dict:
    levels = topological_levels(subtasks)
    for s in subtasks:
        s["parallel_group"] = levels[s["id"]]
    groups = [[s["id"] for s in subtasks if levels[s["id"]] == g] for g in range(max(levels.values()) + 1)]
    return {"scenario_id": scenario_id, "derived_from": source_asset, "source_id": source_id, "language": language,
            "domain": domain, "goal": goal, "variant": variant,
            "roles": sorted({s["role"] for s in subtasks}), "subtasks": json.dumps(subtasks),
            "edges": json.dumps([[d, s["id"]] for s in subtasks for d in s["depends_on"]]),
            "parallel_groups": json.dumps(groups), "n_subtasks": len(subtasks), "critical_path": len(groups)}


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


def from_swe_task(task: dict) -> list[dict]:
    """Nominal and failure/fallback scenarios for one swesmith_tasks row."""
    bug = task.get("bug_type", "")
    domain = next((d for k, d in _BUG_DOMAINS.items() if f"_{k}" in bug), "general")
    files = list(task.get("files") or [])
    f2p, p2p = list(task["FAIL_TO_PASS"]), list(task["PASS_TO_PASS"])
    dev = "python_developer"
    subtasks = [
        _sub("reproduce", "test_runner", f"Run the {len(f2p)} failing test(s) and capture the failures.",
             tools=["pytest"], inputs=f2p[:10], outputs=["failure_log"]),
        _sub("locate", "code_navigator", "Find the code responsible from the issue text and the diff context.",
             tools=["grep", "sed"], inputs=["problem_statement"], outputs=["suspect_locations"]),
        _sub("fix", dev, f"Edit {', '.join(files) or 'the suspect code'} to restore the intended behaviour.",
             depends_on=["reproduce", "locate"], tools=["edit"], inputs=["failure_log", "suspect_locations"],
             outputs=["patch"]),
        _sub("verify_fail_to_pass", "test_runner", "Re-run the failing tests on the patched code.",
             depends_on=["fix"], tools=["pytest"], inputs=f2p[:10], outputs=["f2p_report"]),
        _sub("verify_pass_to_pass", "test_runner", f"Run the {len(p2p)} previously passing tests for regressions.",
             depends_on=["fix"], tools=["pytest"], outputs=["p2p_report"]),
        _sub("review", "reviewer", "Review the diff for scope and style; approve or send back.",
             depends_on=["verify_fail_to_pass", "verify_pass_to_pass"], tools=["git diff"], outputs=["decision"]),
    ]
    goal = task.get("problem_statement", "")[:1000]
    nominal = _finish(f"{task['instance_id']}.nominal", "swesmith_tasks", task["instance_id"], "python", domain,
                      goal, "nominal", subtasks)
    failing = json.loads(nominal["subtasks"])
    for s in failing:
        if s["id"] == "verify_fail_to_pass":
            s["fallback"] = {"injected_failure": "failing tests still fail after the fix",
                             "action": "retry", "retry": "fix", "max_retries": 2, "with": ["f2p_report"],
                             "then": {"action": "escalate", "role": "senior_python_developer"}}
        if s["id"] == "locate":
            s["fallback"] = {"injected_failure": "no suspect location found", "action": "reassign",
                             "role": "test_runner", "description": "bisect by running tests with tracing"}
    fallback = _finish(f"{task['instance_id']}.fallback", "swesmith_tasks", task["instance_id"], "python", domain,
                       goal, "failure_fallback", failing)
    return [nominal, fallback]


def from_tool_workflow(row: dict) -> list[dict]:
    """One scenario per workflow: each step a sub-task for the tool's specialist; recovery steps become the
    fallback of the step they repair (variant failure_fallback)."""
    steps = json.loads(row["steps"])
    role = _TOOL_ROLES.get(row["category"], "operator")
    subtasks, prev = [], None
    recovering = {}
    for s in steps:
        if s["recovers"] >= 0:
            recovering.setdefault(s["recovers"], []).append(s["index"])
    for s in steps:
        if s["recovers"] >= 0:
            continue  # folded into the fallback of the step it repairs
        sid = f"step{s['index']}"
        fallback = None
        if s["index"] in recovering:
            fallback = {"injected_failure": f"exit code {s['exit_code']}", "action": "recover",
                        "steps": [{"tool": steps[i]["tool"], "command": steps[i]["command"],
                                   "expected_effect": steps[i]["expected_effect"]} for i in recovering[s["index"]]]}
        subtasks.append(_sub(sid, role if s["tool"] not in ("ls", "grep", "cat", "find") else "inspector",
                             s["expected_effect"], depends_on=[prev] if prev else [], tools=[s["tool"]],
                             fallback=fallback))
        prev = sid
    subtasks.append(_sub("check", "verifier", "Confirm the final state.", depends_on=[prev] if prev else [],
                         tools=["bash"], inputs=[row["check"]]))
    variant = "failure_fallback" if recovering else "nominal"
    return [_finish(f"{row['workflow_id']}.{variant}", "tool_use_examples", row["workflow_id"], row["language"],
                    row["category"], row["task"], variant, subtasks)]


def build_scenarios(tasks: list[dict], workflows: list[dict], max_tasks: int = 100) -> list[dict]:
    out = []
    for task in tasks[:max_tasks]:
        out += from_swe_task(task)
    for wf in workflows:
        out += from_tool_workflow(wf)
    return out
