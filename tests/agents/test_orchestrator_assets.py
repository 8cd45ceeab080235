"""orchestrator_runs and multi_agent_scenarios materialise on real tasks; scenarios trace back to recorded runs."""

import json

import dagster as dg
import pytest

from agents.orchestrator.batch import write_demo_repo
from datagen.swe.repos import baseline_row, parse_repo_spec
from datagen.swe.tasks import TaskSettings, build_tasks
from resources.swerex import SweRexSessions
from resources.warehouse import Warehouse


@pytest.mark.slow
def test_orchestrator_runs_are_recorded_and_scenarios_are_rebuilt_from_them(tmp_path, sandbox, monkeypatch):
    from datagen.swe import training_examples
    from hrm_assets import agents

    row = baseline_row(sandbox, parse_repo_spec(write_demo_repo(tmp_path)), tmp_path / "work")
    tasks, _, _ = build_tasks(sandbox, row, TaskSettings(max_bugs=8, max_per_modifier=1))
    warehouse = Warehouse(root=str(tmp_path / "data"))
    warehouse.write_table("swe_repos", [{**row, "kind": "path"}], partition=row["key"])
    warehouse.write_table("swesmith_tasks", tasks, partition=row["key"])
    for name, value in {"HRM_ORCH_TASKS": "2", "HRM_ORCH_COMBINED": "1", "HRM_ORCH_AGENTS": "4",
                        "HRM_ORCH_FAILURES": "kill"}.items():
        monkeypatch.setenv(name, value)
    resources = {"sandbox": sandbox, "warehouse": warehouse, "swe_sessions": SweRexSessions()}
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):  # two runs, two run ids, both kept
        result = dg.materialize([agents.orchestrator_runs, agents.multi_agent_scenarios], resources=resources,
                                instance=instance, raise_on_error=False)
        assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.check_name == "orchestrator_runs_nothing_lost"
    meta = result.asset_materializations_for_node("orchestrator_runs")[0].metadata
    assert meta["resolve_rate"].value == 1.0 and meta["tasks"].value == 3 and meta["lost"].value == 0
    assert meta["resolve_rate_ci_low"].value < 1.0 and meta["recovered"].value >= 1
    assert meta["injected"].value == ["kill"] and meta["steps_per_episode"].value > 0
    assert meta["overhead"].value > 0 and set(meta["split"].value) >= {"planning", "aggregation", "waiting"}
    assert set(meta["credit_by_role"].value) == {"python_developer"} and meta["credit_runs"].value >= 3

    runs = warehouse.read_table("orchestrator_runs").to_pylist()
    run_ids = {r["run_id"] for r in runs}
    assert len(run_ids) == 2 and len(runs) == 6
    assert {r["decomposition"] for r in runs} == {"single", "per_file"}
    for r in runs:  # the credit per part: each demo part fixes its own file, whose tests need it
        credit = json.loads(r["role_credit"])
        assert credit["status"] == "ok" and credit["gained"] and not credit["unexplained"], credit
        assert all(p["tests"] for p in credit["parts"]) and set(credit["by_role"]) == {"python_developer"}
    messages = warehouse.read_table("orchestrator_messages").to_pylist()
    assert {m["run_id"] for m in messages} == run_ids
    assert {"task", "result", "heartbeat"} <= {m["kind"] for m in messages}

    scenarios = warehouse.read_table("multi_agent_scenarios").to_pylist()
    assert len(scenarios) == 6 and {s["run_id"] for s in scenarios} == run_ids
    for s in scenarios:  # every scenario is one recorded task run, not a template
        assert s["scenario_id"] == f"{s['run_id']}/{s['source_id']}" and s["derived_from"] == "orchestrator_runs"
        ran = next(r for r in runs if r["run_id"] == s["run_id"] and r["instance_id"] == s["source_id"])
        assert s["n_subtasks"] == ran["n_subtasks"] and s["decomposition"] == ran["decomposition"]
    plans = {json.dumps([x["id"] for x in json.loads(s["subtasks"])]) for s in scenarios}
    assert {'["fix0", "verify"]', '["fix0", "fix1", "verify"]'} <= plans  # plans differ with the task
    assert {s["variant"] for s in scenarios} == {"nominal", "failure_fallback"}  # the killed jail's task
    plan_examples = [e for e in training_examples(warehouse) if e.task_type == "plan"]
    assert {e.example_id for e in plan_examples} == {s["scenario_id"] for s in scenarios}
