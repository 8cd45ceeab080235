"""The orchestrator on real SWE-smith tasks: jailed sessions from a pool, git merges and test runs in the jail,
failures injected into real sessions (killed jails, hung agents, lying and sloppy agents)."""

import importlib.util
import json

import pytest

from agents.orchestrator.batch import combine_tasks, write_demo_repo
from agents.orchestrator.core import Orchestrator, OrchestratorConfig
from agents.orchestrator.pool import SessionPool
from agents.orchestrator.runners import FaultInjector, SubtaskResult, oracle_runner
from agents.orchestrator.workspace import session_options
from datagen.swe.repos import baseline_row, parse_repo_spec, repo_from_row
from datagen.swe.tasks import TaskSettings, build_tasks
from resources.swerex import SweRexSessions


@pytest.fixture(scope="module")
def batch(tmp_path_factory, sandbox):
    root = tmp_path_factory.mktemp("orch")
    row = baseline_row(sandbox, parse_repo_spec(write_demo_repo(root)), root / "work")
    singles, _, _ = build_tasks(sandbox, row, TaskSettings(max_bugs=12, max_per_modifier=2))
    combined = combine_tasks(sandbox, row, singles, per_task=2, limit=3)
    assert len(combined) == 3 and all(len(t["files"]) == 2 for t in combined)
    repo = repo_from_row(row)
    return {repo.key: repo}, combined + singles[:2]


@pytest.fixture(scope="module")
def pool(batch):
    p = SessionPool(SweRexSessions(command_timeout_s=60), 6, session_options(batch[0]))
    yield p
    p.close()


def run(pool, repos, tasks, runner, **cfg):
    merge_agent = cfg.pop("merge_agent", oracle_runner)
    orch = Orchestrator(pool, repos, runner, merge_agent=merge_agent,
                        config=OrchestratorConfig(**{"agents": 6, "heartbeat_timeout_s": 6, **cfg}))
    return orch.run(tasks)


@pytest.mark.slow
def test_oracle_resolves_every_task_through_parts_merge_and_tests_with_failures_recovered(batch, pool):
    repos, tasks = batch
    ids = [t["instance_id"] for t in tasks]
    faulty = FaultInjector(oracle_runner, kill=[f"{ids[0]}/fix0"], hang=[f"{ids[1]}/fix1"], lie=[f"{ids[2]}/fix0"],
                           sloppy=[f"{ids[0]}/fix1"], wrong=[f"{ids[3]}/fix0"])
    rec = run(pool, repos, tasks, faulty)
    s = rec["summary"]
    assert len(faulty.injected) == 5
    assert s["resolved"] == len(tasks) and s["lost"] == 0 and s["subtasks"] == 3 * 3 + 2 * 2
    rows = {r["instance_id"]: r for r in rec["rows"]}
    assert rows[ids[0]]["decomposition"] == "per_file" and rows[ids[3]]["decomposition"] == "single"
    log = {i: json.loads(rows[i]["attempt_log"]) for i in ids}

    def statuses(i, sub):
        return [a["status"] for a in log[i] if a["subtask_id"] == f"{i}/{sub}"]

    assert statuses(ids[0], "fix0") == ["error", "ok"]  # the killed jail: reassigned
    assert statuses(ids[1], "fix1")[0] == "timeout"  # the hung agent: no heartbeat, cancelled, reassigned
    assert statuses(ids[2], "fix0") == ["rejected", "ok"]  # "success" whose patch does not apply never counts
    assert statuses(ids[2], "verify") == ["rejected", "resolved"]
    assert statuses(ids[3], "fix0") == ["tests_failed", "ok"] and rows[ids[3]]["rounds"] == 2  # applies, tests fail
    assert rows[ids[0]]["conflicts"] == 1 and rows[ids[0]]["merged_by_agent"] == 1  # the sloppy part, merged by agent
    lie = next(a for a in log[ids[2]] if a["status"] == "rejected" and a["subtask_id"].endswith("fix0"))
    assert "nowhere.py" in lie["patch"]  # failed attempts keep what they produced
    kinds = {m["kind"] for m in rec["messages"]}
    assert {"task", "result", "heartbeat", "cancel"} <= kinds
    handed = [json.loads(m["payload"]) for m in rec["messages"] if m["kind"] == "task"]
    assert sum("go" not in p for p in handed) == s["attempts"]  # one task message per attempt, plus the go
    early = [a for i in ids for a in log[i] if a["early"]]  # of verifies dispatched while their parts ran
    assert early and sum("go" in p for p in handed) == len(early)
    done = [a for i in ids for a in log[i] if a["status"] == "ok"]
    assert all(a["cpu_s"] > 0 and a["peak_mb"] and a["peak_mb"] > 1 for a in done), done[0]
    for i in ids:  # the final patch is the whole fix: the reverse of the bug
        assert rows[i]["resolved"] and rows[i]["patch"].count("\n+") >= 1
    assert 0 < s["critical_path_s"] < s["wall_s"] and 0 < s["overhead"] < 1
    assert s["pool"]["reused"] > 0 and s["pool"]["opened"] < s["attempts"]  # idle sessions are reused


@pytest.mark.slow
def test_agents_that_always_claim_success_with_bad_patches_resolve_nothing_and_open_the_breaker(batch, pool):
    repos, tasks = batch

    def liar(subtask, role, session, ctx):
        session.run("true")
        return SubtaskResult("ok", f"--- a/{subtask.files[0]}\n+++ b/{subtask.files[0]}\n@@ -1 +1 @@\n-nope\n+yes\n")

    rec = run(pool, repos, tasks[3:5], liar, max_attempts=3, breaker_threshold=1)
    s = rec["summary"]
    assert s["resolved"] == 0 and s["lost"] == 0 and s["open_roles"] == ["generalist", "python_developer"]
    for row in rec["rows"]:
        subs = json.loads(row["subtasks"])
        assert not row["resolved"] and row["patch"] == ""
        assert all(x["state"] in ("failed", "unresolved") for x in subs), subs
        fix = next(x for x in subs if x["kind"] == "fix")
        assert fix["roles_tried"] == ["python_developer", "generalist", ""]  # then no role may take it
    details = [a["detail"] for r in rec["rows"] for a in json.loads(r["attempt_log"])]
    assert sum("circuit open" in d for d in details) == 2


@pytest.mark.slow
def test_a_role_that_asks_for_help_trips_the_breaker_and_the_fallback_role_finishes(batch, pool):
    repos, tasks = batch

    def picky(subtask, role, session, ctx):
        if role == "python_developer":
            ctx.request_help("not my kind of bug")
            return SubtaskResult("help", detail="gave up")
        return oracle_runner(subtask, role, session, ctx)

    rec = run(pool, repos, tasks[:2], picky, max_attempts=3, breaker_threshold=2)
    s = rec["summary"]
    assert s["resolved"] == 2 and s["lost"] == 0 and s["open_roles"] == ["python_developer"]
    assert any(m["kind"] == "request_help" for m in rec["messages"])
    tried = [x["roles_tried"] for r in rec["rows"] for x in json.loads(r["subtasks"]) if x["kind"] == "fix"]
    assert all(t[-1] == "generalist" for t in tried), tried


@pytest.mark.slow
def test_without_a_merge_agent_a_conflict_falls_back_to_sequential_application_then_a_new_round(batch, pool):
    repos, tasks = batch
    tid = tasks[1]["instance_id"]
    rec = run(pool, repos, tasks[1:2], FaultInjector(oracle_runner, sloppy=[f"{tid}/fix1"]), merge_agent=None)
    row = rec["rows"][0]
    first = next(a for a in json.loads(row["attempt_log"]) if a["subtask_id"] == f"{tid}/verify")
    assert first["merge"]["conflicts"] == [f"{tid}/fix1"] and first["merge"]["by_merge_agent"] == []
    assert first["merge"]["sequential"] + first["merge"]["unmerged"] == [f"{tid}/fix1"]
    assert first["status"] == ("resolved" if first["merge"]["sequential"] else "unresolved")
    assert row["resolved"] and rec["summary"]["lost"] == 0


@pytest.mark.skipif(importlib.util.find_spec("agents.loop") is None, reason="the agent loop is not in this tree")
@pytest.mark.slow
def test_the_agent_loop_runs_as_a_subtask_runner(batch, pool):
    from agents.orchestrator.runners import episode_runner

    repos, tasks = batch
    rec = run(pool, repos, tasks[3:4], episode_runner("oracle"))
    assert rec["summary"]["lost"] == 0 and rec["rows"][0]["steps"] > 0
    assert rec["rows"][0]["resolved"], rec["rows"][0]["subtasks"]  # the oracle through the loop, slice by slice
