"""Credit per part and per role (agents/orchestrator/credit.py) on real tasks: a small package whose bugs are
validated in the jail, every credit run a jailed pytest read through the graders' runner.

The package: calc/a.py `double`, calc/b.py `inc`, calc/__init__.py reads the version from pyproject.toml.
Tests: test_a.py (test_double, test_double_zero), test_b.py (test_inc), test_ab.py (test_inc_double, which
needs both functions right). The bugs: `3 * x` in double (test_double_zero still passes), `x - 1` in inc, and
a build break (pyproject.toml loses its static version: nothing imports)."""

import difflib
import json
import shlex
import subprocess

import pytest

from agents.orchestrator.core import Orchestrator, OrchestratorConfig
from agents.orchestrator.credit import graded_patch, part_credit
from agents.orchestrator.plan import plan_task, rule_decomposition
from agents.orchestrator.pool import SessionPool
from agents.orchestrator.runners import FaultInjector, SubtaskResult, oracle_runner
from agents.orchestrator.workspace import session_options
from datagen.swe.bugs import BugCandidate
from datagen.swe.examples import reverse_patch
from datagen.swe.repos import baseline_row, parse_repo_spec, repo_from_row, run_tests
from datagen.swe.tasks import task_row, validate_bug
from resources.swerex import SweRexSessions

FILES = {
    "pyproject.toml": '[project]\nname = "calc"\nversion = "1.0.0"\n',
    "calc/__init__.py": 'import tomllib\nfrom pathlib import Path\n\n__version__ = tomllib.loads((Path(__file__)'
                        '.resolve().parents[1] / "pyproject.toml").read_text())["project"]["version"]\n',
    "calc/a.py": "def double(x):\n    return 2 * x\n",
    "calc/b.py": "def inc(x):\n    return x + 1\n",
    "tests/test_a.py": "from calc.a import double\n\n\ndef test_double():\n    assert double(3) == 6\n\n\n"
                       "def test_double_zero():\n    assert double(0) == 0\n",
    "tests/test_b.py": "from calc.b import inc\n\n\ndef test_inc():\n    assert inc(3) == 4\n",
    "tests/test_ab.py": "from calc.a import double\nfrom calc.b import inc\n\n\n"
                        "def test_inc_double():\n    assert inc(double(5)) == 11\n",
}
DOUBLE, ZERO, INC, BOTH = ("tests/test_a.py::test_double", "tests/test_a.py::test_double_zero",
                           "tests/test_b.py::test_inc", "tests/test_ab.py::test_inc_double")
ALL_TESTS = sorted([DOUBLE, ZERO, INC, BOTH])


def diff(path: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        "/dev/null" if not old else f"a/{path}", f"b/{path}"))


def edit(path: str, old: str, new: str) -> str:
    return diff(path, FILES[path], FILES[path].replace(old, new))


BUG_A = edit("calc/a.py", "2 * x", "3 * x")
BUG_B = edit("calc/b.py", "x + 1", "x - 1")
BUGGY = {"calc/a.py": FILES["calc/a.py"].replace("2 * x", "3 * x"), "calc/b.py": FILES["calc/b.py"].replace("+", "-")}


def on_bug(path: str, old: str, new: str) -> str:
    """An edit of the starting state (the code with its bugs)."""
    assert old in BUGGY[path]
    return diff(path, BUGGY[path], BUGGY[path].replace(old, new))
BUILD_BREAK = edit("pyproject.toml", 'version = "1.0.0"', 'dynamic = ["version"]')


@pytest.fixture(scope="module")
def calc(tmp_path_factory, sandbox):
    """(prepared repo, {"ab": two code bugs, "build": build break + bug in a.py}), each validated in the jail."""
    root = tmp_path_factory.mktemp("credit")
    src = root / "calc"
    for path, text in FILES.items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(text)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin", "HOME": str(root), "GIT_CONFIG_GLOBAL": "/dev/null"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "calc"]):
        subprocess.run(cmd, cwd=src, check=True, env=env, capture_output=True)
    row = baseline_row(sandbox, parse_repo_spec(str(src)), root / "work")
    assert sorted(row["passed_tests"]) == ALL_TESTS, row["output_tail"]
    repo = repo_from_row(row)
    tasks = {}
    for name, patch, files in (("ab", BUG_A + BUG_B, ["calc/a.py", "calc/b.py"]),
                               ("build", BUILD_BREAK + BUG_A, ["pyproject.toml", "calc/a.py"])):
        bug = BugCandidate(f"calc.{name}", "combine_module", patch, ",".join(files), "double+inc", "function", 2,
                           name)
        run, f2p, p2p = validate_bug(sandbox, repo, list(row["passed_tests"]), bug, 60.0)
        tasks[name] = {**task_row(repo, bug, f2p, p2p, run.wall_s, 0), "files": files, "n_files": 2}
    assert sorted(tasks["ab"]["FAIL_TO_PASS"]) == sorted([DOUBLE, INC, BOTH]) and tasks["ab"]["PASS_TO_PASS"] == [ZERO]
    assert sorted(tasks["build"]["FAIL_TO_PASS"]) == ALL_TESTS
    return repo, tasks


def gold_parts(task: dict) -> list[tuple[str, str, str]]:
    """The planner's parts of the task, each fixed by the reverse of its slice of the bug."""
    return [(s.id, s.role, reverse_patch(s.part)) for s in plan_task(task, rule_decomposition(task))
            if s.kind in ("tool", "fix")]


def by_id(credit: dict) -> dict:
    return {p["subtask_id"]: p for p in credit["parts"]}


@pytest.mark.slow
def test_each_part_is_credited_with_its_own_tests_and_a_test_needing_both_is_halved(calc, sandbox):
    repo, tasks = calc
    parts = gold_parts(tasks["ab"])
    assert [p[0] for p in parts] == ["calc.ab/fix0", "calc.ab/fix1"] and "calc/a.py" in parts[0][2]
    c = part_credit(sandbox, tasks["ab"], repo, parts)
    a, b = by_id(c)["calc.ab/fix0"], by_id(c)["calc.ab/fix1"]
    assert c["status"] == "ok" and c["runs"] == 3  # all; without a = b alone; without b = a alone
    assert c["gained"] == sorted([DOUBLE, INC, BOTH]) and c["unexplained"] == []
    assert a["tests"] == sorted([DOUBLE, BOTH]) and b["tests"] == sorted([INC, BOTH])
    assert a["credit"] == b["credit"] == 1.5 and a["share"] == b["share"] == 0.5
    assert a["alone_tests"] == [DOUBLE] and b["alone_tests"] == [INC]  # the joint test: no part alone passes it
    assert c["alone_unexplained"] == [BOTH] and a["alone_share"] == round(1 / 3, 4)
    assert c["by_role"]["python_developer"]["credit"] == 3.0 and c["by_role"]["python_developer"]["share"] == 1.0
    assert c["not_applied"] == []

    one = [("calc.ab/fix0", "generalist", reverse_patch(tasks["ab"]["patch"]))]
    whole = part_credit(sandbox, tasks["ab"], repo, one)
    assert whole["runs"] == 1 and whole["status"] == "ok"  # one part: no per-part runs, all credit is its own
    assert by_id(whole)["calc.ab/fix0"]["tests"] == sorted([DOUBLE, INC, BOTH])
    assert whole["by_role"] == {"generalist": {**whole["by_role"]["generalist"], "credit": 3.0, "share": 1.0}}


@pytest.mark.slow
def test_a_tool_part_counts_like_a_fix_and_shares_the_tests_both_need(calc, sandbox):
    repo, tasks = calc
    parts = gold_parts(tasks["build"])
    assert [(p[0], p[1]) for p in parts] == [("calc.build/tool0", "build_engineer"), ("calc.build/fix0",
                                                                                     "python_developer")]
    c = part_credit(sandbox, tasks["build"], repo, parts)
    tool, fix = by_id(c)["calc.build/tool0"], by_id(c)["calc.build/fix0"]
    assert tool["ignored_files"] == [] and c["gained"] == ALL_TESTS  # pyproject.toml is the bug's file: it counts
    assert tool["tests"] == ALL_TESTS and fix["tests"] == sorted([DOUBLE, BOTH])  # nothing imports without the tool
    assert tool["credit"] == 3.0 and fix["credit"] == 1.0
    assert tool["alone_tests"] == sorted([ZERO, INC]) and fix["alone_tests"] == []
    assert c["by_role"]["build_engineer"]["share"] == 0.75 and c["by_role"]["python_developer"]["share"] == 0.25


@pytest.mark.slow
def test_a_part_that_changes_nothing_relevant_earns_nothing(calc, sandbox):
    repo, tasks = calc
    fix_a = gold_parts(tasks["ab"])[0]
    idle = ("calc.ab/fix1", "python_developer", on_bug("calc/b.py", "x - 1\n", "x - 1\n# looked at it\n"))
    c = part_credit(sandbox, tasks["ab"], repo, [fix_a, idle])
    assert c["status"] == "ok" and c["gained"] == [DOUBLE]
    assert by_id(c)["calc.ab/fix0"]["tests"] == [DOUBLE] and by_id(c)["calc.ab/fix0"]["share"] == 1.0
    nothing = by_id(c)["calc.ab/fix1"]
    assert nothing["tests"] == [] and nothing["credit"] == 0 and nothing["alone_tests"] == []


@pytest.mark.slow
def test_a_test_two_parts_fix_each_on_its_own_is_one_no_single_part_explains(calc, sandbox):
    repo, tasks = calc
    init = FILES["calc/__init__.py"]
    again = ("calc.ab/fix1", "generalist", diff("calc/__init__.py", init, init + "\nfrom calc import a as _a\n\n"
                                                "_a.double = lambda x: 2 * x\n"))  # fixes double from elsewhere
    c = part_credit(sandbox, tasks["ab"], repo, [gold_parts(tasks["ab"])[0], again])
    assert c["status"] == "ok" and c["gained"] == [DOUBLE]
    assert c["unexplained"] == [DOUBLE] and all(p["credit"] == 0 for p in c["parts"])  # either one is enough
    assert [p["alone_tests"] for p in c["parts"]] == [[DOUBLE], [DOUBLE]] and c["parts"][1]["alone_share"] == 0.5


@pytest.mark.slow
def test_a_part_that_forges_a_pytest_summary_earns_nothing(calc, sandbox):
    """The forger writes a pytest summary claiming every test passed and exits 0 whenever double is still broken
    (when it runs alone, or without the real fix): only the runner's report, ended by the nonce, counts."""
    repo, tasks = calc
    fake = ("=" * 10 + " short test summary info " + "=" * 10 + "\n" + "".join(f"PASSED {t}\n" for t in ALL_TESTS)
            + "=" * 10 + " 4 passed in 0.01s " + "=" * 10)
    # pytest captures fd 1 while it imports: the forgery writes to every pipe or file open, pytest's saved stdout too
    forge = (f"\n\nimport os as _os, stat as _stat\nfrom calc.a import double as _double\nif _double(3) != 6:\n"
             f"    for _fd in range(1, 64):\n        try:\n"
             f"            if _stat.S_ISFIFO(_os.fstat(_fd).st_mode) or _stat.S_ISREG(_os.fstat(_fd).st_mode):\n"
             f"                _os.write(_fd, {fake + chr(10)!r}.encode())\n"
             f"        except OSError:\n            pass\n    _os._exit(0)\n")
    buggy = BUGGY["calc/b.py"]
    forger = ("calc.ab/fix1", "python_developer", diff("calc/b.py", buggy, buggy + forge))
    live = run_tests(sandbox, repo, tasks["ab"]["patch"] + forger[2])  # the forgery alone on the starting state
    assert "4 passed in 0.01s" in live.output_tail and live.status == "ok" and live.tests == {}
    c = part_credit(sandbox, tasks["ab"], repo, [gold_parts(tasks["ab"])[0], forger])
    assert c["status"] == "ok" and c["gained"] == [DOUBLE] and c["unexplained"] == c["alone_unexplained"] == []
    assert by_id(c)["calc.ab/fix0"]["tests"] == by_id(c)["calc.ab/fix0"]["alone_tests"] == [DOUBLE]
    assert by_id(c)["calc.ab/fix1"]["tests"] == by_id(c)["calc.ab/fix1"]["alone_tests"] == []

    always = ("calc.ab/fix1", "python_developer", diff("calc/b.py", buggy,
                                                       buggy + forge.replace("if _double(3) != 6", "if True")))
    c = part_credit(sandbox, tasks["ab"], repo, [gold_parts(tasks["ab"])[0], always])
    assert c["status"] == "no_report" and c["gained"] == []  # no report of the merged result: no credit at all
    assert all(p.get("credit", 0) == 0 for p in c["parts"])


@pytest.mark.slow
def test_a_part_that_rewrites_the_tests_is_not_credited_for_them(calc, sandbox):
    """The cheat rewrites test_b.py to expect the bug and adds a conftest.py that reports every test passed;
    both are files the benchmark owns, left out of every credit run."""
    repo, tasks = calc
    conftest = ("import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
                "    out = yield\n    out.get_result().outcome = 'passed'\n")
    cheat = ("calc.ab/fix1", "python_developer", edit("tests/test_b.py", "== 4", "== 2") + diff("conftest.py", "",
                                                                                                 conftest))
    kept, ignored = graded_patch(tasks["ab"], cheat[2])
    assert kept == "" and ignored == ["conftest.py", "tests/test_b.py"]
    c = part_credit(sandbox, tasks["ab"], repo, [gold_parts(tasks["ab"])[0], cheat])
    assert c["gained"] == [DOUBLE] and by_id(c)["calc.ab/fix1"]["tests"] == []
    assert by_id(c)["calc.ab/fix1"]["ignored_files"] == ["conftest.py", "tests/test_b.py"]


def test_only_the_benchmarks_files_leave_a_patch_and_the_bugs_own_files_stay():
    task = {"patch": BUILD_BREAK + BUG_A, "FAIL_TO_PASS": [DOUBLE], "PASS_TO_PASS": [INC]}
    mixed = reverse_patch(BUILD_BREAK) + edit("tests/test_b.py", "== 4", "== 2") + diff("setup.cfg", "", "[x]\n")
    kept, ignored = graded_patch(task, mixed)
    assert ignored == ["setup.cfg", "tests/test_b.py"] and kept.count("+++ ") == 1 and "pyproject.toml" in kept
    assert graded_patch(task, "not a patch\n") == (None, [])  # a part that is no diff does not apply
    assert graded_patch(task, "") == ("", [])


def test_a_run_that_adds_a_column_keeps_it_when_appended_to_an_older_table(tmp_path):
    from agents.orchestrator.pipeline import _append
    from resources.warehouse import Warehouse

    wh = Warehouse(root=str(tmp_path))
    wh.write_table("orchestrator_runs", [{"run_id": "old", "resolved": True}])
    _append(wh, "orchestrator_runs", [{"run_id": "new", "resolved": True, "role_credit": "{}"}])
    assert wh.read_table("orchestrator_runs").to_pylist() == [
        {"run_id": "old", "resolved": True, "role_credit": None},
        {"run_id": "new", "resolved": True, "role_credit": "{}"}]


@pytest.mark.slow
def test_parts_that_do_not_apply_together_are_reported_and_credit_nothing(calc, sandbox):
    repo, tasks = calc
    fix_a, fix_b = gold_parts(tasks["ab"])
    rival = ("calc.ab/fix2", "generalist", on_bug("calc/a.py", "3 * x", "x + x"))  # the same line as fix_a
    c = part_credit(sandbox, tasks["ab"], repo, [fix_a, fix_b, rival])
    assert c["status"] == "not_applied" and c["gained"] == [] and c["runs"] == 7
    assert all(p.get("credit", 0) == 0 and p.get("tests", []) == [] for p in c["parts"])
    failed = {tuple(x["parts"]): x["failed"] for x in c["not_applied"]}
    assert failed == {("calc.ab/fix0", "calc.ab/fix1", "calc.ab/fix2"): "calc.ab/fix2",
                      ("calc.ab/fix0", "calc.ab/fix2"): "calc.ab/fix2"}
    assert next(x for x in c["not_applied"] if len(x["parts"]) == 3)["views"] == ["all"]

    garbage = ("calc.ab/fix1", "python_developer", "--- a/calc/b.py\n+++ b/calc/b.py\n@@ -9,2 +9,2 @@\n-zz\n+yy\n")
    c = part_credit(sandbox, tasks["ab"], repo, [fix_a, garbage])
    assert c["status"] == "not_applied" and all(p.get("credit", 0) == 0 for p in c["parts"])
    assert {x["failed"] for x in c["not_applied"]} == {"calc.ab/fix1"}


@pytest.mark.slow
def test_the_orchestrators_record_holds_each_tasks_credit_per_part_and_role(calc, sandbox):
    repo, tasks = calc
    repos = {repo.key: repo}
    pool = SessionPool(SweRexSessions(command_timeout_s=60), 3, session_options(repos))
    try:
        wrong = FaultInjector(oracle_runner, wrong=["calc.ab/fix1"])  # its first patch leaves the bug: a new round
        rec = Orchestrator(pool, repos, wrong, config=OrchestratorConfig(agents=3), sandbox=sandbox).run(
            [tasks["ab"], tasks["build"]])
        off = Orchestrator(pool, repos, oracle_runner, config=OrchestratorConfig(agents=3, role_credit=False),
                           sandbox=sandbox).run([tasks["ab"]])
    finally:
        pool.close()
    rows = {r["instance_id"]: r for r in rec["rows"]}
    assert all(r["resolved"] for r in rows.values()) and wrong.injected == [("calc.ab/fix1", "wrong")]
    ab, build = json.loads(rows["calc.ab"]["role_credit"]), json.loads(rows["calc.build"]["role_credit"])
    assert by_id(ab)["calc.ab/fix0"]["tests"] == sorted([DOUBLE, BOTH])  # the final patches, not the wrong one
    assert by_id(ab)["calc.ab/fix1"]["tests"] == sorted([INC, BOTH])
    tool = by_id(build)["calc.build/tool0"]
    assert tool["role"] == "build_engineer" and tool["credit"] == 3
    s = rec["summary"]
    assert s["credit_by_role"] == {"build_engineer": {"credit": 3.0, "alone_credit": 2.0, "tasks": 1},
                                   "python_developer": {"credit": 4.0, "alone_credit": 2.0, "tasks": 2}}
    assert s["credit_runs"] == 6 and s["credit_s"] > 0
    assert off["rows"][0]["role_credit"] == "{}" and off["summary"]["credit_by_role"] == {}


# --- the orchestrator's verdict cannot be fooled by its agents -------------------------------------------------
def _orchestrate(calc, sandbox, runner, agents: int) -> dict:
    repo, tasks = calc
    repos = {repo.key: repo}
    pool = SessionPool(SweRexSessions(command_timeout_s=60), agents, session_options(repos))
    try:
        return Orchestrator(pool, repos, runner, config=OrchestratorConfig(agents=agents, max_attempts=2,
                                                                           role_credit=False),
                            sandbox=sandbox).run([tasks["ab"]])
    finally:
        pool.close()


@pytest.mark.slow
def test_parts_that_rewrite_the_tests_do_not_resolve_the_task(calc, sandbox):
    """Parts that leave the bugs and instead pass every test through the tests themselves and a conftest.py
    hook: before their edits were left out of the merge, the session's suite passed and the task counted
    resolved."""
    hook = ("import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
            "    outcome = yield\n    report = outcome.get_result()\n    report.outcome = 'passed'\n")

    def cheat(subtask, role, session, ctx):
        if subtask.id.endswith("fix0"):
            patch = diff("conftest.py", "", hook) + edit("tests/test_ab.py", "== 11", "== 16")
        else:
            patch = edit("tests/test_b.py", "== 4", "== 2")
        return SubtaskResult("ok", patch)

    rec = _orchestrate(calc, sandbox, cheat, agents=2)
    row = rec["rows"][0]
    assert not row["resolved"] and rec["summary"]["resolved"] == 0
    verify = [a for a in json.loads(row["attempt_log"]) if a["subtask_id"].endswith("verify")]
    assert verify and all(not a["merge"].get("resolved") for a in verify)
    assert {"conftest.py", "tests/test_ab.py", "tests/test_b.py"} <= set(verify[0]["merge"]["ignored_files"])


@pytest.mark.slow
def test_what_an_agent_leaves_running_in_a_shared_session_does_not_resolve_the_task(calc, sandbox):
    """One agent (so the verify reuses its session) fixes a.py, "fixes" b.py with a comment, and leaves a loop
    running that repairs b.py in whatever merge checkout appears. The session's suite passes; the fresh jail,
    on the merged commits alone, does not confirm it."""
    from agents.orchestrator.merge import workdir

    task = calc[1]["ab"]
    fix = "while :; do for f in {}/calc/b.py; do [ -f \"$f\" ] && sed -i 's/x - 1/x + 1/' \"$f\"; done; " \
          "sleep 0.01; done".format(workdir(task))

    def lingering(subtask, role, session, ctx):
        if not subtask.id.endswith("fix1"):
            return oracle_runner(subtask, role, session, ctx)
        session.run(f"nohup sh -c {shlex.quote(fix)} >/dev/null 2>&1 &")
        return SubtaskResult("ok", on_bug("calc/b.py", "x - 1", "x - 1  # fixed"))

    rec = _orchestrate(calc, sandbox, lingering, agents=1)
    row = rec["rows"][0]
    verify = [a for a in json.loads(row["attempt_log"]) if a["subtask_id"].endswith("verify")]
    assert not row["resolved"] and rec["summary"]["resolved"] == 0
    said = [a["merge"] for a in verify if a["merge"].get("confirmed_in_fresh_jail") is not None]
    assert said, "the session never reported the task resolved: the attack did not take effect"
    assert all(m["confirmed_in_fresh_jail"] is False for m in said)
