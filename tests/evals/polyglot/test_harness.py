"""datagen/polyglot/harness.py: the files of a test run (the benchmark's own files always win), the jail job,
the CPU accounting, the sealed shared builds, and a small exercise made here run in the real jail.
The attacks on the whole evaluator are in test_evaluate_attacks.py."""

import os
import stat
import subprocess

import pytest

from datagen.polyglot import harness
from evals.polyglot.exercises import Exercise
from resources.report_guard import guard_bind

ADDER_TESTS = ("from adder import add\n\n\ndef test_small():\n    assert add(1, 2) == 3\n\n\n"
               "def test_negative():\n    assert add(-1, -2) == -3\n")


def adder(**changes) -> Exercise:
    base = dict(language="python", exercise="adder", instructions="Add two numbers.",
                solution_files={"adder.py": "def add(a, b):\n    pass\n"},
                test_files={"adder_test.py": ADDER_TESTS},
                reference_files={"adder.py": "def add(a, b):\n    return a + b\n"})
    return Exercise(**{**base, **changes})


def test_the_benchmarks_test_editor_and_build_files_override_the_candidates():
    ex = adder(editor_files={"helper.py": "HELP = 1\n"}, build_files={"setup.cfg": "[x]\n"})
    files = harness.test_workspace(ex, {"adder.py": "ok\n", "adder_test.py": "def test_x(): pass\n",
                                        "helper.py": "HELP = 2\n", "setup.cfg": "", "notes.py": "N = 1\n"})
    assert files == {"adder.py": "ok\n", "adder_test.py": ADDER_TESTS, "helper.py": "HELP = 1\n",
                     "setup.cfg": "[x]\n", "notes.py": "N = 1\n"}


def test_skipped_tests_are_enabled_in_the_run():
    js = Exercise("javascript", "adder", "Add.", {"adder.js": ""},
                  {"adder.spec.js": "test('a', () => {});\nxtest('b', () => {});\n"})
    assert harness.test_workspace(js, {})["adder.spec.js"] == "test('a', () => {});\ntest('b', () => {});\n"
    java = Exercise("java", "adder", "Add.", {"src/main/java/Adder.java": ""},
                    {"src/test/java/AdderTest.java": "@Disabled(\"later\")\n@Test\npublic void b() {}\n"})
    assert harness.test_workspace(java, {})["src/test/java/AdderTest.java"] == "@Test\npublic void b() {}\n"


@pytest.mark.parametrize("path", ["../outside.py", "/etc/passwd", "a/../../b.py", "sub\\x.py"])
def test_a_file_path_outside_the_exercise_is_refused(path):
    with pytest.raises(ValueError, match="adder: file paths outside the exercise"):
        harness.test_workspace(adder(), {path: "x = 1\n"})


def test_the_job_runs_the_guarded_script_with_the_test_limits(sandbox, tmp_path):
    runner = harness.TestRunner(sandbox, tmp_path / "cache", timeout_s=30)
    job = runner.job(adder(), {"adder.py": "def add(a, b):\n    return a + b\n"})
    assert job.command[:4] == ["python3", "-I", "-S", guard_bind()[1]] and "--" in job.command
    script = job.command[job.command.index("--") + 3]
    assert "--noconftest" in script and "adder_test.py" in script and "-p no:cacheprovider" in script
    assert guard_bind() in job.ro_binds and job.timeout_s == 30 + harness.GUARD_GRACE_S
    assert job.files["adder_test.py"] == ADDER_TESTS and job.max_processes == harness.TEST_MAX_PROCESSES
    cpp = Exercise("cpp", "adder", "Add.", {"adder.cpp": ""}, {"adder_test.cpp": ""},
                   build_files={"CMakeLists.txt": "project(adder)\n"})
    job = runner.job(cpp, {})
    assert set(job.files) == {"CMakeLists.txt", "adder/CMakeLists.txt", "adder/adder.cpp", "adder/adder_test.cpp"}
    assert "add_subdirectory(adder)" in job.files["CMakeLists.txt"] and "catchlib" not in job.files["CMakeLists.txt"]
    assert job.memory_mb == max(sandbox.memory_mb, harness.TEST_MEMORY_MB["cpp"])
    assert not (tmp_path / "cache").exists()  # no Catch main in the exercise: no shared build was attempted


def test_unsupported_reason_is_none_where_the_toolchain_runs():
    assert harness.unsupported_reason("python") is None
    for language in ("cpp", "go", "java", "javascript", "rust"):
        reason = harness.unsupported_reason(language)
        assert reason is None or language in reason or "jars" in reason or "jest" in reason
    with pytest.raises(ValueError, match="unknown language"):
        harness.unsupported_reason("cobol")


def test_cpu_seconds_are_split_from_the_scripts_own_output():
    proc = subprocess.run(["sh", "-c", harness._accounted("echo out; echo err >&2; (exit 4)")],
                          capture_output=True, text=True)
    assert proc.returncode == 4 and proc.stdout == "out\nerr\n"
    rest, cpu = harness.split_cpu_seconds(proc.stderr)
    assert rest == "" and cpu is not None and cpu >= 0
    assert harness.split_cpu_seconds("0m1.50s 0m0.25s\n1m2.00s 0m0.25s\n") == ("", 64.0)
    assert harness.split_cpu_seconds("no times here\n") == ("no times here\n", None)


@pytest.mark.slow
def test_a_shared_build_is_sealed_and_reused_and_a_failed_one_leaves_nothing(sandbox, tmp_path):
    runner = harness.TestRunner(sandbox, tmp_path / "cache")
    built = runner._build_shared("demo-1", {"in.txt": "warm\n"}, "cat in.txt > /cache/out.txt && mkdir /cache/d")
    assert built == tmp_path / "cache" / "demo-1" and (built / "out.txt").read_text() == "warm\n"
    for path in (built, built / "d", built / "out.txt"):
        mode = path.stat().st_mode
        assert not mode & (stat.S_IWGRP | stat.S_IWOTH), oct(mode)
        if os.geteuid() == 0:
            assert path.stat().st_uid == 0
    assert runner.shared_builds["demo-1"]["status"] == "ok"
    again = harness.TestRunner(sandbox, tmp_path / "cache")
    assert again._build_shared("demo-1", {"in.txt": "other\n"}, "exit 1") == built and not again.shared_builds
    assert runner._build_shared("broken-1", {}, "echo partial > /cache/x; exit 3") is None
    assert runner.shared_builds["broken-1"]["status"] == "failed"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["demo-1"]  # no staging folder is left


@pytest.mark.slow
def test_a_small_exercise_passes_with_its_reference_and_fails_otherwise(sandbox, tmp_path):
    runner = harness.TestRunner(sandbox, tmp_path / "cache", timeout_s=20)
    ex = adder()
    passed = runner.run(ex, ex.reference_files)
    assert passed.status == "pass" and "2 passed" in passed.output and passed.cpu_s is not None
    stub = runner.run(ex, ex.solution_files)
    assert stub.status == "fail" and "test_small" in stub.output
    # the candidate replaces the tests with trivial ones: the benchmark's tests run anyway
    trivial = runner.run(ex, {"adder.py": "def add(a, b):\n    return 0\n",
                              "adder_test.py": "def test_small():\n    pass\n"})
    assert trivial.status == "fail"
    # exits with status 0 before pytest reports: no report, no pass
    early = runner.run(ex, {"adder.py": "import os\nos._exit(0)\n"})
    assert early.status == "fail"
    hang = harness.TestRunner(sandbox, tmp_path / "cache", timeout_s=2).run(
        ex, {"adder.py": "import time\ntime.sleep(60)\n"})
    assert hang.status == "timeout" and "Tests timed out! (limit 2 s)" in hang.output
