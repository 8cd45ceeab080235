"""Forged pytest summaries: code under test tries to make a failing suite read as passing. Every grader runs
pytest through the shared runner (datagen.swe.repos.RUNNER) and reads only a report that ends with the done line
of the run's nonce; here a tiny repo with a failing test, in the real bwrap jail, carries each attack."""

import os
from pathlib import Path

import pytest

from datagen.swe.repos import (ENV_MOUNT, NONCE_FILE, PYTEST_ARGS, PreparedRepo, _summary, ensure_env, new_nonce,
                               parse_pytest_summary, repo_from_row, run_tests)
from datagen.swe.repos import test_command as runner_argv
from resources.sandbox import SandboxJob

TEST_ID = "tests/test_calc.py::test_add"
BUGGY = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
# a complete short summary as pytest would print it, claiming the failing test passed
FAKE = (f"\n=========================== short test summary info ============================\n"
        f"PASSED {TEST_ID}\n============================== 1 passed in 0.01s ===============================\n")
STEAL = ("def _stolen():\n    try:\n        with open(os.path.join(os.getcwd(), '" + NONCE_FILE + "')) as f:\n"
         "            return f.read().strip()\n    except OSError:\n        return ''\n")

ATTACKS = {
    # (a) an atexit handler prints a fake full summary after pytest's own
    "atexit_summary": "import atexit\natexit.register(lambda: print(" + repr(FAKE) + ", flush=True))\n",
    # (b) the code under test prints a fake summary and ends the process before pytest reports
    "summary_then_os_exit": ("import os, sys\n_real = add\n\ndef add(a, b):\n    sys.__stdout__.write("
                             + repr(FAKE) + ")\n    sys.__stdout__.flush()\n    os._exit(0)\n"),
    # (c) a fake summary written straight to fd 1 and 2, from a handler and from the test itself
    "raw_fd_writes": ("import atexit, os\n_fake = " + repr(FAKE.encode()) + "\n"
                      "atexit.register(lambda: (os.write(1, _fake), os.write(2, _fake)))\n"
                      "_real = add\n\ndef add(a, b):\n    os.write(1, _fake)\n    os.write(2, _fake)\n"
                      "    return _real(a, b)\n"),
    # (e) a guessed done line after the fake summary, then the process ends
    "guessed_done_line": ("import os\n_real = add\n\ndef add(a, b):\n    os.write(1, (" + repr(FAKE)
                          + " + 'HRM_PYTEST_DONE ' + '0' * 32 + '\\n').encode())\n    os._exit(0)\n"),
}


def make_repo(root: Path, extra: dict[str, str]) -> Path:
    """A tiny package: calc.py (add) and tests/test_calc.py; `extra` files are written over it."""
    repo = root / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text(BUGGY)
    (repo / "tests" / "test_calc.py").write_text(TESTS)
    for path, text in extra.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    return repo


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory) -> str:
    return str(ensure_env([], tmp_path_factory.mktemp("forgery_envs")))


def prepared(tmp_path: Path, env_dir: str, extra: dict[str, str]) -> PreparedRepo:
    return PreparedRepo(key="forgery", spec="local", repo_dir=str(make_repo(tmp_path, extra)), commit="",
                        env_dir=env_dir, pythonpath="/work")


def plain_pytest(sandbox, repo: PreparedRepo, files: dict[str, str] | None = None):
    """The old grader's run (`python -m pytest`), to show an attack is live against it."""
    job = SandboxJob(command=[f"{ENV_MOUNT}/bin/python", "-m", "pytest", *PYTEST_ARGS], files=files or {},
                     input_dir=repo.repo_dir, ro_binds=[(repo.env_dir, ENV_MOUNT)],
                     env={"PYTHONPATH": repo.pythonpath}, timeout_s=60)
    return sandbox.run_job(job)


@pytest.mark.slow
def test_the_honest_fix_passes_and_the_bug_fails(sandbox, env_dir, tmp_path):
    assert run_tests(sandbox, prepared(tmp_path / "bug", env_dir, {})).tests == {TEST_ID: "FAILED"}
    fixed = run_tests(sandbox, prepared(tmp_path / "fix", env_dir, {"calc.py": FIXED}))
    assert fixed.tests == {TEST_ID: "PASSED"} and fixed.status == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_forged_summary_never_passes(sandbox, env_dir, tmp_path, attack):
    repo = prepared(tmp_path, env_dir, {"calc.py": BUGGY + ATTACKS[attack]})
    run = run_tests(sandbox, repo)
    assert run.tests.get(TEST_ID) != "PASSED", run.output_tail
    if attack in ("atexit_summary", "raw_fd_writes"):  # live: the summary-only parse of a plain run is fooled
        assert _summary(plain_pytest(sandbox, repo).stdout) == {TEST_ID: "PASSED"}


SITECUSTOMIZE = ("import atexit, os\n" + STEAL + "_n = _stolen()\n"
                 "open('/tmp/sitecustomize-ran', 'w').write(_n)\n"
                 "atexit.register(lambda: print(" + repr(FAKE) + " + 'HRM_PYTEST_DONE ' + _n, flush=True))\n")


@pytest.mark.slow
def test_a_planted_sitecustomize_is_not_imported_before_the_nonce_is_gone(sandbox, env_dir, tmp_path):
    # (d) sitecustomize.py in the repo (on PYTHONPATH) reads the nonce file and prints a matching done line
    repo = prepared(tmp_path, env_dir, {"sitecustomize.py": SITECUSTOMIZE})
    assert run_tests(sandbox, repo).tests == {TEST_ID: "FAILED"}
    nonce, files = new_nonce()  # live: a plain `python -m pytest` imports it at startup and it steals the nonce
    assert parse_pytest_summary(plain_pytest(sandbox, repo, files).stdout, nonce) == {TEST_ID: "PASSED"}


CONFTEST = ("import os\n" + STEAL + "_n = _stolen()\n\n\ndef pytest_unconfigure(config):\n"
            "    if _n:\n        print(" + repr(FAKE) + " + 'HRM_PYTEST_DONE ' + _n, flush=True)\n"
            "        os._exit(0)\n")


@pytest.mark.slow
def test_a_conftest_cannot_read_the_nonce_file(sandbox, env_dir, tmp_path):
    # (f) the nonce file is read and removed before pytest imports any conftest
    repo = prepared(tmp_path, env_dir, {"tests/conftest.py": CONFTEST})
    assert run_tests(sandbox, repo).tests == {TEST_ID: "FAILED"}


@pytest.mark.slow
def test_a_nonce_file_that_is_a_link_or_has_two_names_gives_no_done_line(sandbox, env_dir, tmp_path):
    """A planted link or hard link would keep the nonce readable after the runner removes the name."""
    repo = prepared(tmp_path, env_dir, {"calc.py": FIXED})
    for setup in (f"mv {NONCE_FILE} .n && ln -s .n {NONCE_FILE}", f"ln {NONCE_FILE} .n2"):
        nonce, files = new_nonce()
        cmd = ["sh", "-c", setup + ' && exec "$@"', "run", *runner_argv(repo)]
        result = sandbox.run_job(SandboxJob(command=cmd, files=files, input_dir=repo.repo_dir,
                                            ro_binds=[(env_dir, ENV_MOUNT)], env={"PYTHONPATH": "/work"}))
        assert "1 passed" in result.stdout and parse_pytest_summary(result.stdout, nonce) == {}, result.stderr


@pytest.mark.slow
def test_without_a_nonce_file_the_runner_reports_but_never_passes(sandbox, env_dir, tmp_path):
    """An agent running the test command reads pytest's output; no done line, so no grader can pass it."""
    repo = prepared(tmp_path, env_dir, {"calc.py": FIXED})
    result = sandbox.run_job(SandboxJob(command=runner_argv(repo), input_dir=repo.repo_dir,
                                        ro_binds=[(env_dir, ENV_MOUNT)], env={"PYTHONPATH": "/work"}))
    assert result.exit_code == 0 and f"PASSED {TEST_ID}" in result.stdout and "HRM_PYTEST_DONE" not in result.stdout


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known limit (docs/security.md): code inside the pytest process can "
                                       "still print a fake summary before the runner's done line")
def test_known_limit_an_in_process_hook_printing_after_pytests_summary(sandbox, env_dir, tmp_path):
    hook = "def pytest_unconfigure(config):\n    print(" + repr(FAKE) + ", flush=True)\n"
    repo = prepared(tmp_path, env_dir, {"tests/conftest.py": hook})
    assert run_tests(sandbox, repo).tests.get(TEST_ID) != "PASSED"


# --- the runner leaves pytest's behaviour as it was ----------------------------------------------------------
def _outcomes_both_ways(sandbox, repo: PreparedRepo) -> tuple[dict, dict]:
    plain = plain_pytest(sandbox, repo)
    return _summary(plain.stdout), run_tests(sandbox, repo).tests


@pytest.mark.slow
def test_the_runner_sees_the_same_tests_as_python_m_pytest(sandbox, env_dir, tmp_path):
    """rootdir, conftest discovery and test ids: a package imported from the repo, a conftest fixture, a
    parametrized test, a test in a subpackage."""
    extra = {"calc.py": FIXED, "tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef two():\n    return 2\n",
             "tests/test_more.py": ("import pytest\nfrom calc import add\n\n\n@pytest.mark.parametrize('x', [1, 2])\n"
                                    "def test_p(x, two):\n    assert add(x, two) == x + 2\n"),
             "tests/sub/__init__.py": "", "tests/sub/test_sub.py": "import calc\n\n\ndef test_s():\n    assert calc\n",
             "setup.cfg": "[tool:pytest]\ntestpaths = tests\n"}
    plain, runner = _outcomes_both_ways(sandbox, prepared(tmp_path, env_dir, extra))
    assert runner == plain and len(runner) == 4 and runner["tests/test_more.py::test_p[2]"] == "PASSED"


REAL = Path("/work/clone8/.hrm_data/tables/swe_repos")


@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason="no prepared swe_repos rows on this machine")
@pytest.mark.parametrize("key", ["pypi__addict", "pypi__inflection", "pypi__cachetools"])
def test_the_runner_matches_python_m_pytest_on_the_real_repos(sandbox, key):
    import pandas as pd

    part = REAL / f"part={key}" / "data.parquet"
    if not part.exists():
        pytest.skip(f"{key} not prepared")
    row = pd.read_parquet(part).to_dict("records")[0]
    repo = repo_from_row(row)
    if not (os.path.isdir(repo.repo_dir) and os.path.isdir(repo.env_dir)):
        pytest.skip(f"{key}: checkout or env missing")
    plain, runner = _outcomes_both_ways(sandbox, repo)
    assert runner == plain and len(runner) == row["n_tests"]
