"""Per-tool decomposition of a build problem and process workers, on real tasks in the jail.

The build task: the demo package declares its version in pyproject.toml and reads it at import; a broken
declaration makes every test fail at collection, on top of a SWE-smith code bug in another file. Its plan has a
tool sub-task (build_engineer) before the code fix, then verify. Process workers: sub-tasks run in separate
processes that talk to the orchestrator over a DirectoryTransport; one dies mid-task, one sends a result for a
sub-task it was not given, one writes a malformed and a forged message."""

import json
import os

import pytest

from agents.orchestrator.batch import build_break_tasks, combine_tasks, write_packaged_demo_repo
from agents.orchestrator.core import Orchestrator, OrchestratorConfig
from agents.orchestrator.plan import RuleBasedPlanner
from agents.orchestrator.pool import SessionPool
from agents.orchestrator.runners import SubtaskResult, oracle_runner
from agents.orchestrator.workers import ProcessWorkers
from agents.orchestrator.workspace import session_options
from datagen.swe.repos import baseline_row, parse_repo_spec, repo_from_row
from datagen.swe.tasks import TaskSettings, build_tasks
from resources.swerex import SweRexSessions


@pytest.fixture(scope="module")
def packaged(tmp_path_factory, sandbox):
    root = tmp_path_factory.mktemp("orch_build")
    row = baseline_row(sandbox, parse_repo_spec(write_packaged_demo_repo(root)), root / "work")
    singles, _, _ = build_tasks(sandbox, row, TaskSettings(max_bugs=10, max_per_modifier=2))
    builds = build_break_tasks(sandbox, row, singles, limit=1)
    combined = combine_tasks(sandbox, row, [t for t in singles if "__init__" not in t["files"][0]], per_task=2,
                             limit=1)
    repo = repo_from_row(row)
    return {repo.key: repo}, row, builds, combined, singles


def _log(rec, tid):
    row = next(r for r in rec["rows"] if r["instance_id"] == tid)
    return row, json.loads(row["attempt_log"])


@pytest.mark.slow
def test_a_build_problem_is_resolved_through_its_tool_subtask_first(packaged):
    repos, row, builds, _, _ = packaged
    assert builds, "no build task validated"
    task = builds[0]
    assert set(task["FAIL_TO_PASS"]) == set(row["passed_tests"])  # nothing collects: every test fails
    assert "pyproject" in task["collection_error"] or "Error" in task["collection_error"]
    plan = RuleBasedPlanner().plan([task])
    tid = task["instance_id"]
    assert plan.decisions[tid] == "per_tool"
    assert [(s.kind, s.role) for s in plan.subtasks] == [("tool", "build_engineer"), ("fix", "python_developer"),
                                                        ("verify", "test_runner")]
    assert plan.subtasks[1].depends_on == (f"{tid}/tool0",) and plan.subtasks[0].files == ("pyproject.toml",)
    pool = SessionPool(SweRexSessions(command_timeout_s=60), 2, session_options(repos))
    try:
        rec = Orchestrator(pool, repos, oracle_runner, config=OrchestratorConfig(agents=2)).run([task])
        r, log = _log(rec, tid)
        assert r["resolved"] and rec["summary"]["lost"] == 0, r["subtasks"]
        tool = next(a for a in log if a["subtask_id"].endswith("/tool0"))
        fix = next(a for a in log if a["subtask_id"].endswith("/fix0"))
        assert tool["status"] == "ok" and "pyproject.toml" in tool["patch"] and "pyproject" not in fix["patch"]
        assert tool["handled_at"] <= fix["dispatched_at"]  # the tool fix first; the code fix on the repaired build
        assert "pyproject.toml" in r["patch"] and r["roles"] == ["build_engineer", "python_developer", "test_runner"]

        def no_build_tools(subtask, role, session, ctx):  # without the tool fix the code fix is not enough
            if subtask.kind == "tool":
                return SubtaskResult("failed", detail="no build specialist")
            return oracle_runner(subtask, role, session, ctx)

        bad = Orchestrator(pool, repos, no_build_tools, config=OrchestratorConfig(agents=2, max_attempts=1))
        r2, _ = _log(bad.run([task]), tid)
        assert not r2["resolved"]
    finally:
        pool.close()


@pytest.mark.slow
def test_process_workers_run_subtasks_and_survive_death_strays_and_forgeries(packaged):
    repos, _, builds, combined, singles = packaged
    tasks = combined + builds + [t for t in singles if len(t["files"]) == 1 and "__init__" not in t["files"][0]][:1]
    ids = [t["instance_id"] for t in tasks]
    faults = {f"{ids[0]}/fix0": "die", f"{ids[0]}/fix1": f"stray:{ids[2]}/fix0", f"{ids[1]}/tool0": "garbage"}
    workers = ProcessWorkers(repos, 3, faults=faults, command_timeout_s=60)
    try:
        workers.start()
        assert len({w["pid"] for w in workers.ready.values()}) == 3
        orch = Orchestrator(workers, repos, "oracle", config=OrchestratorConfig(agents=3, workers="processes",
                                                                               heartbeat_timeout_s=30))
        rec = orch.run(tasks)
    finally:
        workers.close()
    s = rec["summary"]
    assert s["resolved"] == len(tasks) and s["lost"] == 0, rec["rows"]
    assert s["workers"] == "processes" and s["pool"]["died"] == 1 and s["pool"]["spawned"] == 4
    _, log0 = _log(rec, ids[0])
    died = [a for a in log0 if a["subtask_id"] == f"{ids[0]}/fix0"]
    assert [a["status"] for a in died] == ["error", "ok"] and "died" in died[0]["detail"]
    assert died[0]["worker"] != died[1]["worker"]  # reassigned to another worker
    reasons = [r["reason"] for r in rec["rejected"]]
    assert any("was given to" in r or "has no attempt" in r for r in reasons), reasons  # the stray result
    assert sum(r.startswith("malformed") for r in reasons) == 2 and "wrong or missing attempt token" in reasons
    _, log2 = _log(rec, ids[2])
    assert all(a["patch"] != "--- a/x\n+++ b/x\n" for a in log2)  # the stray claim never became a result
    heartbeats = [m for m in rec["messages"] if m["kind"] == "heartbeat" and m["sender"] != "orchestrator"]
    assert heartbeats and all(":" in m["sender"] or m["subtask_id"] == "" for m in heartbeats)
    pids = {json.loads(m["payload"])["usage"].get("pid") for m in rec["messages"] if m["kind"] == "result"
            and m["sender"].startswith("worker-")}
    assert len(pids - {None}) >= 2 and os.getpid() not in pids  # the work ran in other processes


@pytest.mark.slow
def test_orchestrator_runs_on_process_workers_recover_a_dead_and_a_hung_worker(packaged, sandbox, tmp_path):
    from agents.orchestrator import pipeline
    from resources.warehouse import Warehouse

    repos, row, builds, _, singles = packaged
    wh = Warehouse(root=str(tmp_path / "data"))
    wh.write_table("swe_repos", [{**row, "kind": "path"}], partition=row["key"])
    plain = [{k: v for k, v in t.items() if k not in ("failure", "collection_error")} for t in builds + singles]
    wh.write_table("swesmith_tasks", plain, partition=row["key"])
    m = pipeline.build_orchestrator_runs(pipeline.OrchestratorSettings(
        tasks=2, combined=1, agents=3, failures=("kill", "hang"), heartbeat_timeout_s=8, workers="processes"),
        sandbox, None, wh)
    rows = wh.read_table("orchestrator_runs").to_pylist()
    assert m["workers"] == "processes" and m["resolved"] == m["tasks"] == 2 and m["lost"] == 0  # a build task
    # (two files) counts as the run's combined task
    assert m["injected"] == ["kill", "hang"] and m["pool"]["died"] == 1 and m["pool"]["killed"] == 1
    assert "per_tool" in {r["decomposition"] for r in rows} and all(r["policy"] == "oracle" for r in rows)
    statuses = [a["status"] for r in rows for a in json.loads(r["attempt_log"])]
    assert "timeout" in statuses and "error" in statuses  # the hung worker and the dead one, both recovered
