"""The SWE `resolved` verdict (the RL reward) cannot be won by ending pytest early, by editing the tests
or the test runner's configuration, or by printing test outcomes: a real task on a tiny repo, real
policy diffs, the real jail."""

import dataclasses
import importlib.util
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from datagen.swe.repos import baseline_row, parse_repo_spec, repo_from_row
from datagen.swe.tasks import TaskSettings, build_tasks
from agents.loop import verify
from agents.tasks import from_swesmith
from datagen.swe.trajectories import without_benchmark_files

pytestmark = pytest.mark.slow  # a real SWE task graded in the jail

_spec = importlib.util.spec_from_file_location("swe_tiny_repo3", Path(__file__).with_name("test_tasks.py"))
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory, sandbox):
    root = tmp_path_factory.mktemp("grading")
    row = baseline_row(sandbox, parse_repo_spec(str(_tiny.make_tiny_repo(root))), root / "work")
    tasks, _, _ = build_tasks(sandbox, row, TaskSettings(max_bugs=6))
    return repo_from_row(row), tasks[0], root


def combined_diff(tiny_task, edits: dict[str, str], fix: bool = False) -> str:
    """The diff a rollout would submit: the task's bug (reverted when `fix`) plus `edits`, from the clean commit."""
    repo, task, root = tiny_task
    work = Path(subprocess.run(["mktemp", "-d", "-p", str(root)], capture_output=True, text=True).stdout.strip())
    subprocess.run(["git", "clone", "-q", repo.repo_dir, str(work / "r")], check=True)
    r = work / "r"
    if not fix:
        subprocess.run(["git", "apply"], input=task["patch"], text=True, cwd=r, check=True)
    for path, text in edits.items():
        (r / path).parent.mkdir(parents=True, exist_ok=True)
        old = (r / path).read_text() if (r / path).exists() else ""
        (r / path).write_text(text.replace("{old}", old))
    subprocess.run(GIT + ["add", "-A"], cwd=r, check=True)
    return subprocess.run(["git", "diff", "--cached", "HEAD"], cwd=r, capture_output=True, text=True, check=True).stdout


def resolved(sandbox, tiny_task, diff: str) -> tuple[bool, str]:
    """The agent loop's verdict on a diff taken from the clean commit (so the task starts from there)."""
    repo, task, _ = tiny_task
    verdict = verify(sandbox, dataclasses.replace(from_swesmith(task, repo), setup_patch=""), diff)
    return verdict["resolved"], verdict["status"]


def _wanted(task) -> list[str]:
    return list(task["FAIL_TO_PASS"]) + list(task["PASS_TO_PASS"])


FORCE_PASS_HOOK = textwrap.dedent('''
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        report.outcome, report.longrepr = "passed", None
''')


def test_the_real_fix_resolves_and_the_bug_does_not(sandbox, tiny_task):
    assert resolved(sandbox, tiny_task, combined_diff(tiny_task, {}, fix=True))[0]
    assert not resolved(sandbox, tiny_task, combined_diff(tiny_task, {}))[0]


@pytest.mark.parametrize("attack", ["os_exit_at_import", "system_exit_at_import", "conftest_exits_zero",
                                    "conftest_forces_passes", "nested_conftest_forces_passes", "edits_the_tests",
                                    "pytest_ini_deselects", "sitecustomize_loads_a_plugin", "prints_outcomes_at_exit"])
def test_attacks_on_the_swe_verdict_do_not_resolve(sandbox, tiny_task, attack):
    repo, task, _ = tiny_task
    lib = "tinycalc/__init__.py"
    forged = "\n".join(f"PASSED {t}" for t in _wanted(task))
    tests_made_trivial = Path(repo.repo_dir, "tests/test_tinycalc.py").read_text().replace("assert ", "assert True or ")
    edits = {
        "os_exit_at_import": {lib: "{old}\nimport os\nos._exit(0)\n"},
        "system_exit_at_import": {lib: "{old}\nraise SystemExit(0)\n"},
        "conftest_exits_zero": {"conftest.py": "import os\nos._exit(0)\n"},
        "conftest_forces_passes": {"conftest.py": FORCE_PASS_HOOK},
        "nested_conftest_forces_passes": {"tests/conftest.py": FORCE_PASS_HOOK},
        "edits_the_tests": {"tests/test_tinycalc.py": tests_made_trivial},
        "pytest_ini_deselects": {"pytest.ini": "[pytest]\naddopts = -p no:python\n"},
        "sitecustomize_loads_a_plugin": {"sitecustomize.py": "import os\nos.environ['PYTEST_PLUGINS'] = 'hrmplug'\n",
                                         "hrmplug.py": FORCE_PASS_HOOK},
        "prints_outcomes_at_exit": {lib: "{old}\nimport atexit\natexit.register(lambda: print(" + json.dumps(forged)
                                         + ", flush=True))\n"},
    }[attack]
    ok, status = resolved(sandbox, tiny_task, combined_diff(tiny_task, edits))
    assert not ok, f"{attack} resolved the task ({status})"


def test_benchmark_files_are_left_out_and_named(tiny_task):
    diff = combined_diff(tiny_task, {"conftest.py": FORCE_PASS_HOOK, "tests/helpers.py": "X = 1\n",
                                     "setup.cfg": "[tool:pytest]\n", "src/sitecustomize.py": "",
                                     "x.pth": "import os\n"})
    kept, ignored = without_benchmark_files(diff, {"tests/test_tinycalc.py"})
    assert ignored == ["conftest.py", "setup.cfg", "src/sitecustomize.py", "tests/helpers.py", "x.pth"]
    assert "tinycalc/__init__.py" in kept and "conftest" not in kept


@pytest.mark.xfail(strict=True, reason="known limit: library code the tests import runs inside pytest's process "
                                       "and can rewrite pytest's own reports; no in-process grader prevents it")
def test_residual_library_code_patching_pytest_reports(sandbox, tiny_task):
    patch = textwrap.dedent('''
        import _pytest.reports as _r
        _orig = _r.TestReport.from_item_and_call
        def _forced(item, call):
            report = _orig(item, call)
            report.outcome, report.longrepr = "passed", None
            return report
        _r.TestReport.from_item_and_call = staticmethod(_forced)
    ''')
    ok, _ = resolved(sandbox, tiny_task, combined_diff(tiny_task, {"tinycalc/__init__.py": "{old}\n" + patch}))
    assert not ok
