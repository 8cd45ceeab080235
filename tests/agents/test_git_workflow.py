"""The model-driven git workflow end to end in a jailed session over a real git repo: branch, commit with a
written message, rebase onto an updated main, a conflict resolved by the writer and kept only when the tests
pass (aborted otherwise, the branch unchanged), and the PR description from `git diff main...feature`."""

import importlib.util
import json
import shlex
import subprocess
from pathlib import Path

import pytest

from agents.git_workflow import GoldWriter, ModelWriter, run_git_workflow, suite_passes
from datagen.swe.repos import ENV_MOUNT, PYTEST_ARGS, ensure_env, new_nonce, runner_command
from datagen.swe.trajectories import GIT_ENV

_spec = importlib.util.spec_from_file_location("git_tasks_fixture_agents",
                                               Path(__file__).parents[1] / "datagen" / "test_git_tasks.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

BOTH_BUGS = fx.BUG_A.replace("        if v > hi:\n", "        if v < hi:\n")
TEST_COMMAND = shlex.join(runner_command(f"{ENV_MOUNT}/bin/python", list(PYTEST_ARGS)))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """(a git repo whose main has both bugs, the pytest environment)."""
    root = tmp_path_factory.mktemp("git_workflow")
    repo = fx.make_repo(root)
    (repo / fx.PATH).write_text(BOTH_BUGS)
    subprocess.run(["git", "commit", "-qam", "two bugs"], cwd=repo, check=True, env=fx.git_env(root))
    return repo, ensure_env([], root / "envs")


def open_session(sessions, sandbox, workspace):
    repo, env = workspace
    return sessions.open(input_dir=repo, ro_binds=[(env, ENV_MOUNT)], sandbox=sandbox,
                         env={"PATH": f"{ENV_MOUNT}/bin:/usr/bin:/bin", "PYTHONPATH": "/work",
                              "PYTHONDONTWRITEBYTECODE": "1", **GIT_ENV})


def test_tests_pass_reads_only_pytests_summary():
    nonce, _ = new_nonce()
    out = "=== short test summary info ===\nPASSED t.py::test_a\n=== 1 passed in 0.01s ===\n"
    done = f"HRM_PYTEST_DONE {nonce}\n"
    assert suite_passes(out + done, nonce) == (True, {"t.py::test_a": "PASSED"})
    assert suite_passes(out + "PASSED t.py::test_b\n" + done, nonce)[0] is False
    assert suite_passes(out, nonce)[0] is False  # no done line: not the runner's own report
    assert suite_passes(out + done, "")[0] is False  # no nonce written: never passes
    assert suite_passes("", nonce)[0] is False


def _run(session, writer):
    return run_git_workflow(session, writer, feature="fix-low", change={fx.PATH: fx.BUG_B},
                            main_update={fx.PATH: fx.BUG_A}, test_command=TEST_COMMAND,
                            update_message="Fix the upper bound in normalize")


@pytest.mark.slow
def test_gold_writer_rebases_through_a_conflict_the_tests_accept(workspace, sessions, sandbox):
    writer = GoldWriter({"commit_message": "Fix the lower bound in normalize",
                         "resolution": f"--- FILE {fx.PATH}\n{fx.MODULE}--- END\n",  # both fixes
                         "pr_description": "Clamp values below lo to lo; tested with test_low."})
    with open_session(sessions, sandbox, workspace) as session:
        rec = _run(session, writer)
        assert rec.outcome == "rebased" and rec.resolution_status == "kept", rec.to_dict()
        assert rec.conflict_files == [fx.PATH] and "<<<<<<<" in writer.prompts["resolution"]
        assert rec.tests and all(o == "PASSED" for o in rec.tests.values())
        assert session.run(f"cat {fx.PATH}").output + "\n" == fx.MODULE
        assert session.run("git log --format=%s main..fix-low").output == "Fix the lower bound in normalize"
        assert session.run("git log --format=%s -1 main").output == "Fix the upper bound in normalize"
        assert rec.pr_description.startswith("Clamp values") and "diff --git" in writer.prompts["pr_description"]
        assert "Fix the lower bound" in writer.prompts["pr_description"]
        assert [s.name for s in rec.steps][:5] == ["branch", "diff", "commit", "update_main", "update_main"]


@pytest.mark.slow
def test_a_one_sided_resolution_fails_the_tests_and_the_rebase_is_aborted(workspace, sessions, sandbox):
    with open_session(sessions, sandbox, workspace) as session:
        class OursOnly(GoldWriter):
            def write(self, kind, prompt):
                if kind == "resolution":
                    return f"--- RESOLVE {fx.PATH} #1\n            v = 0\n        if v > hi:\n--- END\n"
                return "Fix it"

        rec = _run(session, OursOnly({}))
        assert rec.outcome == "aborted" and rec.resolution_status == "tests_failed", rec.to_dict()
        assert session.run("git status --porcelain").output == ""  # no rebase in progress, nothing left over
        assert session.run(f"git show fix-low:{fx.PATH}").output + "\n" == fx.BUG_B  # the branch as it was
        assert session.run("git rev-parse --abbrev-ref HEAD").output == "fix-low"


FORGERY = ("\nimport atexit, os\ntry:\n    _n = open('.hrm_pytest_nonce').read().strip()\nexcept OSError:\n    _n = '0' * 32\n"
           "atexit.register(lambda: os.write(1, ('=== short test summary info ===\\nPASSED tests/t.py::test_a\\n'\n"
           "                                     '=== 1 passed in 0.01s ===\\nHRM_PYTEST_DONE ' + _n + '\\n').encode()))\n")


@pytest.mark.slow
def test_a_resolution_that_forges_the_pytest_summary_is_not_kept(workspace, sessions, sandbox):
    """A one-sided resolution whose module prints a whole passing summary (and a done line with whatever nonce
    it can find) at exit: the runner never runs atexit handlers and removed the nonce file before the import."""
    writer = GoldWriter({"commit_message": "Fix it", "resolution": f"--- FILE {fx.PATH}\n{fx.BUG_A}{FORGERY}--- END\n",
                         "pr_description": "x"})
    with open_session(sessions, sandbox, workspace) as session:
        rec = _run(session, writer)
        assert rec.outcome == "aborted" and rec.resolution_status == "tests_failed", rec.to_dict()
        assert session.run("ls -a | grep -c hrm_pytest_nonce").output.strip() == "0"  # the runner removed it


@pytest.mark.slow
def test_a_real_tiny_model_drives_the_workflow_and_the_tests_decide(workspace, sessions, sandbox, tiny_checkpoint):
    writer = ModelWriter(f"local:{tiny_checkpoint}", max_new_tokens=24)
    with open_session(sessions, sandbox, workspace) as session:
        rec = _run(session, writer)
    assert rec.outcome in ("rebased", "aborted") and rec.commit_message, rec.to_dict()
    assert rec.conflict_files == [fx.PATH]
    # its text is not a resolution the tests accept, so the rebase is aborted
    assert rec.resolution_status in ("rejected", "tests_failed") and rec.outcome == "aborted"
    assert [s.name for s in rec.steps][-1] == "pr"


@pytest.mark.slow
def test_the_workflow_on_a_git_tasks_conflict_row(tmp_path, sessions, sandbox):
    from agents.git_workflow import conflict_workflow
    from datagen import git_tasks as gt

    repo_row, tasks = fx.build_fixture(tmp_path, sandbox)
    rows, _, _ = gt.build_conflict_rows(sandbox, repo_row, tasks, gt.GitTaskSettings())
    row = rows[0]
    gold = GoldWriter({"commit_message": "Fix the lower bound",
                       "resolution": gt.format_files(json.loads(row["resolved_files"]))})
    rec = conflict_workflow(sessions, sandbox, repo_row, row, gold)
    assert rec.outcome == "rebased" and rec.resolution_status == "kept", rec.to_dict()
    assert rec.conflict_files == [fx.PATH] and set(rec.tests) >= set(row["FAIL_TO_PASS"])
    ours = GoldWriter({"resolution": gt.format_files(json.loads(row["ours_files"]))})
    rec = conflict_workflow(sessions, sandbox, repo_row, row, ours)
    assert rec.outcome == "aborted" and rec.resolution_status == "tests_failed"
