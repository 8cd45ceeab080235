"""The agent loop on a real SWE-smith task in the real jail: the oracle resolves it, our checkpoint acts in it,
budgets and dead sessions end episodes cleanly, and no agent trick is counted resolved: resolution comes from
the task's FAIL_TO_PASS / PASS_TO_PASS tests run in a fresh jail."""

import json
import textwrap

import pytest

from agents.loop import AgentTask, Budget, open_session, run_episode, verify
from agents.policies import policy_from_spec
from agents.tasks import PYTEST
from agents.tools import Action, ToolBox
from datagen.swe.trajectories import rl_view

pytestmark = pytest.mark.slow  # jailed sessions running a real test suite


class Scripted:
    """A policy replaying fixed replies (then submitting)."""

    kind = "scripted"

    def __init__(self, replies, name="scripted"):
        self.replies, self.name, self.last_tokens, self.seen = list(replies), name, 7, []

    def act(self, messages):
        self.seen.append(messages[-1]["content"])
        return self.replies.pop(0) if self.replies else Action("submit", {}).render()


def episode(sessions, sandbox, task, replies, budget=Budget(max_steps=12), tools=None):
    policy = Scripted(replies)
    with open_session(sessions, sandbox, task) as s:
        ep = run_episode(policy, s, task, budget, tools=ToolBox(s, task, tools) if tools else None)
    ep.verdict = verify(sandbox, task, ep.patch)
    return ep, policy


def bash(cmd):
    return Action("bash", {"command": cmd}).render()


def edit(path, old, new):
    return Action("edit", {"path": path, "old": old, "new": new}).render()


def test_the_oracle_resolves_and_its_trajectory_is_recorded(swe_task, sandbox, sessions):
    _, row, task = swe_task
    with open_session(sessions, sandbox, task) as s:
        ep = run_episode(policy_from_spec("oracle"), s, task, Budget(max_steps=8))
    ep.verdict = verify(sandbox, task, ep.patch)
    traj = ep.to_trajectory_row()
    assert ep.status == "submitted" and traj["resolved"] and traj["policy"] == "oracle"
    assert [s.tool for s in ep.steps] == ["edit"] * (len(ep.steps) - 2) + ["run_tests", "submit"]
    assert all(ep.verdict["fail_to_pass"][t] == "PASSED" for t in row["FAIL_TO_PASS"])
    msgs = json.loads(traj["messages"])
    assert msgs[0]["role"] == "system" and msgs[1]["content"] == row["problem_statement"]
    assert {"messages", "instance_id", "resolved", "model", "traj_id", "patch"} <= set(traj)
    rl = rl_view([traj])
    assert [r["reward"] for r in rl] == [0.0] * (len(rl) - 1) + [1.0] and rl[-1]["done"]
    # the untouched bug is not resolved: the verdict comes from the tests
    assert not verify(sandbox, task, "")["resolved"]


def test_a_local_checkpoint_acts_on_a_swesmith_task_and_the_tests_decide(swe_task, sandbox, sessions, tiny_checkpoint):
    _, _, task = swe_task
    policy = policy_from_spec(f"local:{tiny_checkpoint}", max_new_tokens=24)
    assert policy_from_spec(f"local:{tiny_checkpoint}").model is policy.model  # loaded once per spec
    with open_session(sessions, sandbox, task) as s:
        ep = run_episode(policy, s, task, Budget(max_steps=3, max_wall_s=120))
    ep.verdict = verify(sandbox, task, ep.patch)
    traj = ep.to_trajectory_row()
    assert traj["policy"] == "local" and traj["model"] == f"local:{tiny_checkpoint}"
    assert ep.status in ("submitted", "budget_exhausted") and len(ep.steps) >= 1 and ep.tokens > 0
    assert all(s.tokens <= 24 for s in ep.steps)
    assert traj["eval_status"] in ("ok", "failed", "patch_failed")  # graded by a real test run
    assert set(ep.verdict["fail_to_pass"]) == set(task.fail_to_pass)
    assert traj["resolved"] == ep.verdict["resolved"]


def test_tools_view_search_edit_and_run_tests_in_the_jail(swe_task, sandbox, sessions):
    _, row, task = swe_task
    path = row["files"][0]
    ep, policy = episode(sessions, sandbox, task, [
        Action("view", {"path": path, "start": "2", "window": "3"}).render(),
        Action("search", {"pattern": "def clamp"}).render(),
        Action("search", {"name": "test_*.py"}).render(),
        edit(path, "return", "return"),
        edit("nope.py", "x", "y"),
        edit("notes/new.txt", "", "hello\n"),
        Action("run_tests", {}).render(),
    ])
    obs = [s.observation for s in ep.steps]
    assert obs[0].startswith(f"[{path}: lines 2-4 of") and "    2  " in obs[0] and "    5  " not in obs[0]
    assert f"./{path}:" in obs[1] and "tests/test_tinycalc.py" in obs[2]
    assert "occurs" in obs[3] and "exactly once" in obs[3] and ep.steps[3].exit_code != 0
    assert "no file nope.py" in obs[4] and obs[5].startswith("created notes/new.txt")
    assert "short test summary info" in obs[6] and "FAILED" in obs[6]
    assert "new file mode" in ep.patch and "notes/new.txt" in ep.patch and not ep.verdict["resolved"]


def test_malformed_replies_cost_steps_and_budgets_end_the_episode(swe_task, sandbox, sessions):
    _, _, task = swe_task
    # a role without bash: its bash call is as malformed as prose or an unknown tool
    ep, policy = episode(sessions, sandbox, task, ["I think it works now.", "<function=fly></function>", bash("ls")],
                         budget=Budget(max_steps=3), tools=("view", "submit"))
    assert ep.status == "budget_exhausted" and len(ep.steps) == 3 and all(s.status == "malformed" for s in ep.steps)
    assert policy.seen[1].startswith("OBSERVATION:\nerror: no action found")
    assert "unknown tool 'bash'" in ep.steps[2].observation
    ep, _ = episode(sessions, sandbox, task, [bash("true")] * 10, budget=Budget(max_steps=50, max_tokens=20))
    assert ep.status == "budget_exhausted" and len(ep.steps) == 3 and "tokens 21/20" in ep.detail
    ep, _ = episode(sessions, sandbox, task, [bash("sleep 60")], budget=Budget(max_steps=5, max_wall_s=4))
    assert ep.status == "budget_exhausted" and ep.steps[0].status == "timeout" and ep.wall_s < 20


def test_a_session_that_dies_fails_the_episode_cleanly(swe_task, sandbox, sessions):
    _, _, task = swe_task
    ep, _ = episode(sessions, sandbox, task, [bash("echo hi"), bash("kill -9 $$")])
    assert ep.status == "session_died" and ep.patch == "" and len(ep.steps) == 2
    assert not ep.verdict["resolved"]


FORCE_PASS = textwrap.dedent('''
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        outcome.get_result().outcome = "passed"
''')


def fake_pytest(task) -> str:
    """A module named pytest that prints a passing summary for every wanted test."""
    lines = "".join(f"print('PASSED {t}')\n" for t in task.fail_to_pass + task.pass_to_pass)
    return ("print('=' * 10 + ' short test summary info ' + '=' * 10)\n" + lines
            + f"print('{len(task.fail_to_pass + task.pass_to_pass)} passed in 0.01s')\n")


@pytest.mark.parametrize("attack", ["claims_resolved", "edits_the_tests", "fake_pytest_module",
                                    "conftest_forces_passes", "imperative_xfail", "deletes_the_tests",
                                    "fix_then_breaks_another_test", "fix_then_xfails_another_test"])
def test_agent_tricks_are_not_counted_resolved(swe_task, sandbox, sessions, attack):
    repo, row, task = swe_task
    lib, tests_file = row["files"][0], task.test_files[0]
    replies = {
        "claims_resolved": ["All FAIL_TO_PASS tests pass now; the task is resolved.\n<function=submit></function>"],
        "edits_the_tests": [bash(f"sed -i 's/assert /assert True or /' {tests_file}")],
        "fake_pytest_module": [edit("pytest.py", "", fake_pytest(task))],
        "conftest_forces_passes": [edit("tests/conftest.py", "", FORCE_PASS)],
        "imperative_xfail": [bash(f"printf '\\nimport pytest as _p, tinycalc as _m\\n_m.{row['entity']} = "
                                  f"lambda *a, **k: _p.xfail(\"skip\")\\n' >> {lib}")],
        "deletes_the_tests": [bash(f"git rm -q {tests_file}")],
        "fix_then_breaks_another_test": [], "fix_then_xfails_another_test": [],
    }[attack]
    if attack.startswith("fix_then"):  # the gold fix, plus a change that breaks (or xfails) a PASS_TO_PASS test
        body = "    return x" if attack == "fix_then_breaks_another_test" else '    import pytest; pytest.xfail("x")'
        replies = [bash(f"git apply <<'EOF'\n{task.gold_patch}EOF"),
                   bash(f"printf '\\ndef clamp(x, lo, hi):\\n{body}\\n' >> {lib}")]
    ep, _ = episode(sessions, sandbox, task, replies)
    assert ep.status == "submitted"
    assert not ep.verdict["resolved"], f"{attack} was counted resolved: {ep.verdict['status']}"
    if attack in ("edits_the_tests", "deletes_the_tests", "conftest_forces_passes", "fake_pytest_module"):
        assert ep.verdict["ignored_files"], ep.patch  # the benchmark's clean version was used
    if attack == "imperative_xfail":
        assert "XFAIL" in ep.verdict["fail_to_pass"].values()
    if attack == "fix_then_xfails_another_test":
        assert "XFAIL" in ep.verdict["pass_to_pass"].values()


def test_a_committed_fix_counts_and_a_removed_repository_fails_the_episode(swe_task, sandbox, sessions):
    _, _, task = swe_task
    committed, _ = episode(sessions, sandbox, task, [bash(f"git apply <<'EOF'\n{task.gold_patch}EOF"),
                                                     bash("git commit -qam 'fix' && git log --oneline | head -3")])
    assert committed.verdict["resolved"] and committed.patch.startswith("diff --git")
    gone, _ = episode(sessions, sandbox, task, [bash(f"git apply <<'EOF'\n{task.gold_patch}EOF"), bash("rm -rf .git")])
    assert gone.status == "error" and "could not read the patch" in gone.detail and not gone.verdict["resolved"]


def test_a_real_fix_that_also_touches_the_tests_is_graded_on_the_restored_tests(swe_task, sandbox, sessions):
    _, _, task = swe_task
    ep, _ = episode(sessions, sandbox, task, [bash(f"git apply <<'EOF'\n{task.gold_patch}EOF"),
                                              bash(f"echo '# note' >> {task.test_files[0]}")])
    assert ep.verdict["resolved"] and ep.verdict["ignored_files"] == [task.test_files[0]]


def test_a_file_task_with_no_listed_tests_needs_every_collected_test_to_pass(swe_task, sandbox, sessions):
    env = swe_task[0].env_dir
    task = AgentTask("file.task", "Make add add.", PYTEST,
                     [], [], files={"calc.py": "def add(a, b):\n    return a - b\n",
                                    "test_calc.py": "from calc import add\n\ndef test_add():\n    assert add(2, 2) == 4\n\n"
                                                    "def test_zero():\n    assert add(0, 0) == 0\n"},
                     env_dir=str(env), env={"PYTHONPATH": "/work"}, test_files=["test_calc.py"])
    fixed, _ = episode(sessions, sandbox, task, [edit("calc.py", "a - b", "a + b")])
    assert fixed.verdict["resolved"] and set(fixed.verdict["tests"]) == {"test_calc.py::test_add", "test_calc.py::test_zero"}
    # the fix for one case, the other skipped: not every collected test passed
    skipped, _ = episode(sessions, sandbox, task, [edit("calc.py", "    return a - b", "    if a == 0:\n"
                                                        "        import pytest; pytest.skip('x')\n    return a + b")])
    assert not skipped.verdict["resolved"] and skipped.verdict["tests"]["test_calc.py::test_add"] == "PASSED"


def test_a_polyglot_exercise_runs_with_its_test_feedback_loop(sandbox, sessions, polyglot_bundle,
                                                              tmp_path_factory):
    """A real Python exercise of the benchmark: the stub fails its tests, the oracle's reference passes them (every
    language, and the tricks: tests/agents/test_polyglot.py)."""
    from agents.tasks import from_polyglot
    from evals.polyglot.exercises import PINNED_COMMIT, exercise_dirs, read_exercise
    from evals.polyglot.pipeline import clone_benchmark

    dest = tmp_path_factory.mktemp("polyglot") / "polyglot-benchmark"
    clone_benchmark(str(polyglot_bundle), dest, PINNED_COMMIT)
    folder = next(d for d in exercise_dirs(dest, "python") if d.name == "grep")
    task = from_polyglot(read_exercise(folder, "python", dest).to_row())
    with open_session(sessions, sandbox, task) as s:
        ep = run_episode(policy_from_spec("oracle"), s, task, Budget(max_steps=8))
    assert ep.status == "submitted" and verify(sandbox, task, ep.patch)["resolved"]
    tests_step = next(st for st in ep.steps if st.tool == "run_tests")
    assert "passed" in tests_step.observation and "short test summary info" in tests_step.observation
    stub = verify(sandbox, task, "")
    assert not stub["resolved"] and stub["status"] == "failed" and "FAILED" in stub["output_tail"]


def test_a_synthetic_repair_task_is_resolved_by_its_fix_only(swe_task, sandbox, sessions):
    from agents.tasks import from_synthetic_repair

    row = {"task_id": "repair-positive-total", "task_type": "repair", "language": "python",
           "program": "def solve(xs):\n    total = 0\n    for x in xs:\n        if x < 0:\n            total += x\n"
                      "    return total\n",
           "test_program": "got = solve([1, -2, 3])\nassert got == 4\ngot = solve([])\nassert got == 0\n",
           "answer": "<<<<<<< SEARCH\n        if x < 0:\n=======\n        if x > 0:\n>>>>>>> REPLACE\n"}
    task = from_synthetic_repair(row, swe_task[0].env_dir)
    with open_session(sessions, sandbox, task) as s:
        ep = run_episode(policy_from_spec("oracle"), s, task, Budget(max_steps=6))
    assert verify(sandbox, task, ep.patch)["resolved"]
    assert not verify(sandbox, task, "")["resolved"]
    hardcoded, _ = episode(sessions, sandbox, task, [edit("test_solution.py", "assert got == 4", "assert True")])
    assert not hardcoded.verdict["resolved"] and hardcoded.verdict["ignored_files"] == ["test_solution.py"]


def test_an_openai_endpoint_policy_acts_through_hrm_serve(swe_task, sandbox, sessions, tiny_checkpoint):
    """`openai:` specs talk to any chat endpoint; here our own server over the tiny checkpoint."""
    from inference.engine import BatchEngine
    from inference.server import BackgroundServer, create_app
    from model.checkpoint import load_checkpoint

    model, tok = load_checkpoint(tiny_checkpoint)
    engine = BatchEngine(model, tok, max_batch=2, max_queue=4)
    try:
        with BackgroundServer(create_app(engine, tok, "hrm")) as base_url:
            policy = policy_from_spec(f"openai:{base_url}#hrm", max_new_tokens=16)
            assert (policy.kind, policy.name) == ("openai", f"openai:{base_url}#hrm")
            with open_session(sessions, sandbox, swe_task[2]) as s:
                ep = run_episode(policy, s, swe_task[2], Budget(max_steps=2, max_wall_s=120))
    finally:
        engine.close()
    assert ep.status == "budget_exhausted" and len(ep.steps) == 2 and 0 < ep.tokens <= 32, (ep.status, ep.detail)
    assert ep.to_trajectory_row()["policy"] == "openai"
    # the served checkpoint answers as the local one does (same prompt, greedy)
    local = policy_from_spec(f"local:{tiny_checkpoint}", max_new_tokens=16)
    local.reset(swe_task[2])
    assert [s.action for s in ep.steps][0] == local.act(ep.messages[:2])


def test_an_xfail_counts_only_where_the_clean_files_xfail_too(swe_task, sandbox, sessions):
    tests = ("import pytest\nfrom calc import add, sub\n\ndef test_add():\n    assert add(2, 2) == 4\n\n"
             "@pytest.mark.xfail(reason='known')\ndef test_known():\n    assert sub(1, 1) == 1\n\n"
             "def test_sub():\n    assert sub(3, 1) == 2\n")
    task = AgentTask("xfail.task", "Make add add.", PYTEST,
                     ["test_calc.py::test_add"], ["test_calc.py::test_known", "test_calc.py::test_sub"],
                     files={"calc.py": "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n",
                            "test_calc.py": tests}, env_dir=swe_task[0].env_dir, env={"PYTHONPATH": "/work"},
                     test_files=["test_calc.py"])
    fixed = verify(sandbox, task, file_patch(task, "return a - b\n\n\ndef sub", "return a + b\n\n\ndef sub"))
    assert fixed["resolved"] and fixed["pass_to_pass"]["test_calc.py::test_known"] == "XFAIL"
    hidden = verify(sandbox, task, file_patch(task, "return a - b\n\n\ndef sub(a, b):\n    return a - b",
                                              "return a + b\n\n\ndef sub(a, b):\n    import pytest; pytest.xfail('x')"))
    assert not hidden["resolved"] and hidden["pass_to_pass"]["test_calc.py::test_sub"] == "XFAIL"


def file_patch(task, old, new):
    from agents.tasks import file_diff

    return file_diff({"calc.py": task.files["calc.py"]}, {"calc.py": task.files["calc.py"].replace(old, new)})


def test_a_task_whose_session_cannot_start_becomes_an_error_row(swe_task, sandbox, sessions):
    import dataclasses

    from agents.rollouts import RolloutSettings, rollout_rows

    broken = dataclasses.replace(swe_task[2], setup_patch="not a patch\n")
    rows = rollout_rows("oracle", [broken, swe_task[2]], RolloutSettings(workers=1), sandbox, sessions)
    assert [(r["status"], r["resolved"]) for r in rows] == [("error", False), ("submitted", True)]
    assert "setup patch does not apply" in rows[0]["detail"] and rows[0]["eval_status"] == "not verified"
