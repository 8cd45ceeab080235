"""The orchestrator's pure parts: the message protocol and its transports, patch splitting, planners."""

import json

import pytest

from agents.orchestrator.plan import (ModelPlanner, RuleBasedPlanner, Subtask, parts, rule_decomposition, split_files,
                                      split_hunks, topological_levels)
from agents.protocol import Bus, DirectoryTransport, Message

TWO_FILES = ("--- a/p/a.py\n+++ b/p/a.py\n@@ -1,3 +1,3 @@\n x = 1\n-y = 2\n+y = 3\n z = 4\n@@ -20,2 +20,2 @@\n"
             " def f():\n-    return 1\n+    return 2\n"
             "diff --git a/p/b.py b/p/b.py\nindex 1..2 100644\n--- a/p/b.py\n+++ b/p/b.py\n@@ -5 +5 @@\n"
             "--- not a header\n+++ b/looks/like/one\n")


def test_messages_are_typed_and_every_one_is_recorded():
    bus = Bus()
    bus.send("task", "orchestrator", "agent-1", "t/fix0", role="python_developer", attempt=1, description="fix")
    bus.send("heartbeat", "agent-1", "orchestrator", "t/fix0", attempt=1)
    with pytest.raises(ValueError, match="lacks"):
        bus.send("result", "agent-1", "orchestrator", "t/fix0", status="ok")  # no patch, no usage
    with pytest.raises(ValueError, match="expected one of"):
        Message("gossip", "a", "b", "s")
    assert bus.receive("agent-1", 0.1).payload["role"] == "python_developer"
    assert bus.receive("orchestrator", 0.1).kind == "heartbeat"
    assert bus.receive("orchestrator", 0.01) is None
    rows = bus.records("run-1")
    assert [r["kind"] for r in rows] == ["task", "heartbeat"] and [r["seq"] for r in rows] == [1, 2]
    assert json.loads(rows[0]["payload"])["attempt"] == 1 and rows[0]["run_id"] == "run-1"


def test_directory_transport_delivers_across_instances_in_order_and_skips_partial_files(tmp_path):
    sender, receiver = Bus(DirectoryTransport(tmp_path)), DirectoryTransport(tmp_path)
    for i in range(3):
        sender.send("cancel", "orchestrator", "agent-7", f"s{i}", reason=f"r{i}")
    (tmp_path / "agent-7" / ".000000000000-1-0.json").write_text("{half")  # being written: not a message yet
    got = [receiver.get("agent-7", 0.5) for _ in range(3)]
    assert [m.subtask_id for m in got] == ["s0", "s1", "s2"] and got[2].payload == {"reason": "r2"}
    assert receiver.get("agent-7", 0.05) is None


def test_patches_split_per_file_and_per_hunk_with_or_without_git_headers():
    files = split_files(TWO_FILES)
    assert [p for p, _ in files] == ["p/a.py", "p/b.py"] and "".join(d for _, d in files) == TWO_FILES
    assert "+++ b/looks/like/one" in files[1][1]  # a removed line that looks like a header stays in its hunk
    hunks = split_hunks(files[0][1])
    assert len(hunks) == 2 and all(h.startswith("--- a/p/a.py\n+++ b/p/a.py\n@@") for h in hunks)
    task = {"instance_id": "o__r.1234abcd.x__1", "patch": TWO_FILES, "FAIL_TO_PASS": ["t::a"], "PASS_TO_PASS": []}
    assert rule_decomposition(task) == "per_file" and len(parts(task, "per_file")) == 2
    assert len(parts(task, "per_hunk")) == 3 and len(parts(task, "single")) == 1
    one_file = {**task, "patch": files[0][1]}
    assert rule_decomposition(one_file) == "per_hunk"
    assert rule_decomposition({**task, "patch": hunks[0]}) == "single"


def test_plans_have_a_verify_node_after_the_parts_and_a_model_planner_falls_back_to_rules():
    task = {"instance_id": "o__r.1234abcd.x__1", "patch": TWO_FILES, "FAIL_TO_PASS": ["t::a"], "PASS_TO_PASS": [],
            "bug_type": "func_pm_ctrl_invert_if"}
    plan = RuleBasedPlanner().plan([task])
    assert [s.kind for s in plan.subtasks] == ["fix", "fix", "verify"] and plan.width() == 2
    assert plan.subtasks[-1].depends_on == ("o__r.1234abcd.x__1/fix0", "o__r.1234abcd.x__1/fix1")
    assert plan.roles() == ["python_developer", "test_runner"] and "control flow" in plan.subtasks[0].description

    class Says:
        def __init__(self, text):
            self.name, self.text, self.seen = "says", text, []

        def act(self, messages):
            self.seen.append(messages[-1]["content"])
            return self.text

    chooser = ModelPlanner(Says("I would go with per_hunk here."))
    assert chooser.plan([task]).decisions[task["instance_id"]] == "per_hunk" and chooser.fallbacks == 0
    assert "hunks: 3" in chooser.policy.seen[0]
    babbler = ModelPlanner(Says("let us refactor everything"))
    assert babbler.plan([task]).decisions[task["instance_id"]] == "per_file" and babbler.fallbacks == 1


def test_dependency_cycles_and_unknown_ids_are_refused():
    a, b = Subtask("a", "t", "fix", "r", "", ("b",)), Subtask("b", "t", "fix", "r", "", ("a",))
    with pytest.raises(ValueError, match="cycle"):
        topological_levels([a, b])
    with pytest.raises(ValueError, match="unknown"):
        topological_levels([Subtask("c", "t", "fix", "r", "", ("zzz",))])


def test_files_that_are_not_messages_are_rejected_with_a_reason_and_never_delivered(tmp_path):
    bus, box = Bus(DirectoryTransport(tmp_path)), tmp_path / "orchestrator"
    bus.send("heartbeat", "w", "orchestrator", "t/fix0", attempt=1)
    good = json.loads(next(box.glob("*.json")).read_text())
    bad = {"0-a.json": "{not json", "0-b.json": json.dumps({**good, "payload": "ok"}),
           "0-c.json": json.dumps({**good, "extra": 1}), "0-d.json": json.dumps({**good, "kind": "gossip"}),
           "0-e.json": json.dumps({**good, "recipient": "someone-else"}), "0-f.json": json.dumps([1, 2]),
           "0-g.json": json.dumps({**good, "seq": "7"}), "0-h.json": json.dumps({**good, "payload": {}})}
    for name, text in bad.items():
        (box / name).write_text(text)
    got = bus.receive("orchestrator", 0.5)
    assert got.kind == "heartbeat" and got.subtask_id == "t/fix0" and bus.receive("orchestrator", 0.05) is None
    assert sorted(r["file"] for r in bus.rejected) == sorted(bad)
    assert all(r["reason"].startswith("malformed") for r in bus.rejected) and not list(box.iterdir())
    bus.send("cancel", "orchestrator", "a/../../b", "s", reason="x")  # any agent name is one mailbox
    assert [p.name for p in tmp_path.iterdir() if p.name != "orchestrator"] == ["a%2F..%2F..%2Fb"]


def test_the_orchestrator_believes_only_the_assigned_agent_with_its_token():
    from agents.orchestrator.core import Attempt, Orchestrator

    orch = Orchestrator(None, {})
    orch.subs = {s.id: s for s in RuleBasedPlanner().plan([{"instance_id": "t", "patch": TWO_FILES,
                                                             "FAIL_TO_PASS": ["x::y"], "PASS_TO_PASS": []}]).subtasks}
    att = Attempt("t/fix0", 1, "agent-a", "python_developer", 0.0, status="running")
    orch.attempts = {sid: [] for sid in orch.subs} | {"t/fix0": [att]}
    orch.procs = False
    send = orch.bus.send
    ok = dict(status="ok", patch="+x\n", usage={}, attempt=1)
    forged = [send("result", "agent-a", "orchestrator", "t/fix0", **ok),  # no token
              send("result", "agent-a", "orchestrator", "t/fix0", **ok, token="0" * 16),
              send("result", "agent-b", "orchestrator", "t/fix0", **ok, token=att.token),  # not its sub-task
              send("result", "agent-a", "orchestrator", "t/fix1", **ok, token=att.token),  # no such attempt
              send("result", "agent-a", "orchestrator", "t/nope", **ok, token=att.token),
              send("task", "agent-a", "orchestrator", "t/fix0", role="r", attempt=1, description="", token=att.token),
              send("result", "agent-a", "orchestrator", "t/fix0", **{**ok, "status": "great"}, token=att.token),
              send("result", "agent-a", "orchestrator", "t/fix0", **{**ok, "patch": ["+x"]}, token=att.token)]
    assert [orch._handle(m) for m in forged] == [0] * len(forged) and att.status == "running"
    reasons = [r["reason"] for r in orch.bus.rejected]
    assert reasons[:2] == ["wrong or missing attempt token"] * 2 and "was given to 'agent-a'" in reasons[2]
    assert "no attempt 1" in reasons[3] and "no sub-task" in reasons[4] and "do not send task" in reasons[5]
    assert reasons[6:] == ["malformed result payload"] * 2
    beat = send("heartbeat", "agent-a", "orchestrator", "t/fix0", attempt=1, token=att.token)
    assert orch._handle(beat) == 0 and att.last_beat > 0 and len(orch.bus.rejected) == 8
    assert not any(att.token in r["payload"] for r in orch.bus.records("r"))  # tokens are not kept in the record


def test_a_build_or_dependency_patch_is_planned_per_tool_with_the_tool_fixes_first():
    deps = "--- a/requirements.txt\n+++ b/requirements.txt\n@@ -1 +1 @@\n-attrs==23.1\n+atrs==23.1\n"
    build = "--- a/setup.cfg\n+++ b/setup.cfg\n@@ -1 +1 @@\n-packages = p\n+packages = q\n"
    task = {"instance_id": "t", "patch": deps + build + TWO_FILES, "FAIL_TO_PASS": ["x::y"], "PASS_TO_PASS": []}
    plan = RuleBasedPlanner().plan([task])
    assert plan.decisions["t"] == "per_tool"
    assert [(s.id, s.role) for s in plan.subtasks] == [
        ("t/tool0", "deps_engineer"), ("t/tool1", "build_engineer"), ("t/fix0", "python_developer"),
        ("t/fix1", "python_developer"), ("t/verify", "test_runner")]
    assert all(s.depends_on == ("t/tool0", "t/tool1") for s in plan.subtasks if s.kind == "fix")
    assert plan.subtasks[-1].depends_on == ("t/tool0", "t/tool1", "t/fix0", "t/fix1")
    assert "collection" in plan.subtasks[0].description and plan.subtasks[0].part == deps
    assert topological_levels(plan.subtasks) == {"t/tool0": 0, "t/tool1": 0, "t/fix0": 1, "t/fix1": 1, "t/verify": 2}
    only_build = RuleBasedPlanner().plan([{**task, "patch": build}])
    assert [s.kind for s in only_build.subtasks] == ["tool", "verify"]
    from agents.orchestrator.roles import ROLES, tools_for

    assert set(ROLES) >= {"deps_engineer", "build_engineer"} and "submit" in tools_for("build_engineer")


def test_the_merged_trees_tests_count_only_with_the_runners_done_line():
    """tests_outcome reads pytest's summary only when the shared runner's done line for this run's nonce ends it;
    tests_command moves the staged nonce in and runs the runner (python -I), never `python -m pytest`."""
    from agents.orchestrator.workspace import tests_command, tests_outcome
    from datagen.swe.repos import PreparedRepo, new_nonce

    task = {"source_repo": "r", "FAIL_TO_PASS": ["t.py::test_a"], "PASS_TO_PASS": []}
    nonce, _ = new_nonce()
    fake = "=== short test summary info ===\nPASSED t.py::test_a\n=== 1 passed in 0.01s ===\n"
    assert tests_outcome(task, "ok", fake + f"HRM_PYTEST_DONE {nonce}\n", nonce)["resolved"]
    assert not tests_outcome(task, "ok", fake, nonce)["resolved"]  # printed after pytest, or no runner
    assert not tests_outcome(task, "ok", fake + f"HRM_PYTEST_DONE {new_nonce()[0]}\n", nonce)["resolved"]
    assert not tests_outcome(task, "ok", fake + f"HRM_PYTEST_DONE {nonce}\n", "")["resolved"]  # no nonce written
    cmd = tests_command(task, PreparedRepo("r", "s", "/x", "c", "/e"), "/work/d.merge")
    assert "mv -f -- /tmp/.hrm_pytest_nonce ./.hrm_pytest_nonce" in cmd and "/envs/r/bin/python -I -c" in cmd
    assert "-m pytest" not in cmd
