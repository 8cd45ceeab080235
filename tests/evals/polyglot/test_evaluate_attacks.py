"""Attacks on the Polyglot evaluator, each a real answer, checkout or answers folder run through the real
evaluator in the real sandbox. Every one must fail: a pass (or a host file in the report) is a failing test.

- early exit with status 0, in every language, so that no (or not every) test runs;
- files outside the exercise's solution paths: modules that shadow the test runner, runner configuration,
  extra test files;
- forged or partial reports, and reaching for the harness's own output channel;
- symbolic links and `../` paths in a checkout or an answers folder, pointing at a root-only host file.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from evals.polyglot.evaluate import Answer, evaluate
from evals.polyglot.exercises import PINNED_COMMIT
from evals.polyglot.pipeline import clone_benchmark, select_exercises

pytestmark = pytest.mark.slow  # clones the benchmark bundle and runs the attacks in the jail

REPO_ROOT = Path(__file__).resolve().parents[3]
SECRET = "HOST_SECRET_6b1f0c_root_only"


@pytest.fixture(scope="module")
def checkout(polyglot_bundle, tmp_path_factory):
    dest = tmp_path_factory.mktemp("polyglot-attacks") / "polyglot-benchmark"
    clone_benchmark(str(polyglot_bundle), dest, PINNED_COMMIT)
    return dest


@pytest.fixture(scope="module")
def exercises(checkout):
    found, _ = select_exercises(checkout, ["cpp", "go", "java", "javascript", "python", "rust"],
                                ["bowling", "book-store", "spiral-matrix", "zipper"])
    return {ex.key: ex for ex in found}


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    """A root-only file on the host; its content must never reach a jail or a report."""
    folder = tmp_path_factory.mktemp("host-secret")
    path = folder / "shadow"
    path.write_text(f"{SECRET} is a root-only line that no language parses\n")
    path.chmod(0o600)
    return path


# --- the attacks as answers ----------------------------------------------------------------------------
def _java_with_static_block(source: str, block: str) -> str:
    return re.sub(r"(class \w+[^{]*\{)", lambda m: m.group(1) + f"\n    static {{ {block} }}\n", source, count=1)


PY_STUB_EXIT = "import os\nos._exit(0)\n"
SPIRAL_HEADER = ("#pragma once\n#include <cstdint>\n#include <vector>\nnamespace spiral_matrix {\n"
                 "std::vector<std::vector<uint32_t>> spiral_matrix(uint32_t size);\n}\n")
SPIRAL_WRONG = ("#include \"spiral_matrix.h\"\nnamespace spiral_matrix {\n"
                "std::vector<std::vector<uint32_t>> spiral_matrix(uint32_t) { return {}; }\n}\n")
FAKE_JUNIT = ('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" '
              'failures="0" skipped="0" tests="1"><testcase classname="bowling_test.BowlingTest" '
              'name="test_all_strikes_is_a_perfect_game" time="0.001" /></testsuite></testsuites>')
FAKE_DOCUMENT = json.dumps({"format": "hrm-report-guard/1", "exit_code": 0, "signal": 0, "timed_out": False,
                            "output_limit": False, "output": "", "output_bytes": 0, "cpu_s": 0.1, "wall_s": 0.1,
                            "reports": {"pytest.xml": FAKE_JUNIT}, "skipped": [], "reports_truncated": False})


def attack_answers(exercises) -> dict[str, tuple[str, dict[str, str]]]:
    """case -> (exercise key, answer files). Every answer is wrong: a stub, or code that returns nothing useful."""
    py = exercises["python/bowling"].solution_files["bowling.py"]
    js = exercises["javascript/bowling"].solution_files["bowling.js"]
    go = exercises["go/book-store"].solution_files["book_store.go"]
    java_path, = exercises["java/bowling"].solution_files
    java = exercises["java/bowling"].solution_files[java_path]
    rs = exercises["rust/book-store"].solution_files["src/lib.rs"]
    go_exit = go.replace("package bookstore\n", 'package bookstore\n\nimport "os"\n\nfunc init() { os.Exit(0) }\n', 1)
    return {
        # Ending the test process early with status 0.
        "exit/python": ("python/bowling", {"bowling.py": PY_STUB_EXIT + py}),
        "exit/javascript": ("javascript/bowling", {"bowling.js": "process.exit(0);\n" + js}),
        "exit/go-init": ("go/book-store", {"book_store.go": go_exit}),
        "exit/java-static-initialiser": ("java/bowling", {java_path: _java_with_static_block(java, "System.exit(0);")}),
        "exit/rust-in-first-test": ("rust/book-store", {"src/lib.rs": (
            "pub fn lowest_price(books: &[u32]) -> u32 {\n    let _ = books;\n    std::process::exit(0)\n}\n")}),
        "exit/rust-load-time": ("rust/book-store", {"src/lib.rs": rs + (
            "\n#[used]\n#[link_section = \".init_array\"]\npub static EXIT_AT_LOAD: extern \"C\" fn() = exit_at_load;\n"
            "pub extern \"C\" fn exit_at_load() {\n    std::process::exit(0)\n}\n")}),
        "exit/cpp-static-initialiser": ("cpp/spiral-matrix", {"spiral_matrix.h": SPIRAL_HEADER, "spiral_matrix.cpp": (
            "#include <cstdlib>\n" + SPIRAL_WRONG
            + "namespace {\nstruct ExitEarly {\n    ExitEarly() { std::exit(0); }\n} exit_early;\n}\n")}),
        "exit/cpp-_Exit": ("cpp/spiral-matrix", {"spiral_matrix.h": SPIRAL_HEADER, "spiral_matrix.cpp": (
            "#include <cstdlib>\n" + SPIRAL_WRONG + "[[maybe_unused]] static int exit_early = (std::_Exit(0), 0);\n")}),
        # Files outside the solution paths: shadowing modules, runner configuration, extra tests.
        "extra/python-shadowing-modules": ("python/bowling", {
            "bowling.py": py, "pytest.py": PY_STUB_EXIT, "unittest/__init__.py": PY_STUB_EXIT,
            "sitecustomize.py": PY_STUB_EXIT, "_pytest/__init__.py": PY_STUB_EXIT}),
        "extra/python-runner-config": ("python/bowling", {
            "bowling.py": py, "conftest.py": PY_STUB_EXIT,
            "pytest.ini": "[pytest]\naddopts = --collect-only -p no:junitxml\n",
            "pyproject.toml": "[tool.pytest.ini_options]\naddopts = '--collect-only'\n"}),
        "extra/python-pytest-toml": ("python/bowling", {
            "bowling.py": py, "pytest.toml": '[pytest]\naddopts = ["--collect-only"]\n'}),
        "extra/javascript-runner-config": ("javascript/bowling", {
            "bowling.js": js, "jest.config.json": '{"testPathIgnorePatterns": ["/"], "passWithNoTests": true}',
            "babel.config.json": '{"presets": []}', "node_modules/jest/bin/jest.js": "process.exit(0)\n",
            "extra.spec.js": "test('always', () => {});\n"}),
        "extra/go-testmain": ("go/book-store", {
            "book_store.go": go,
            "main_test.go": 'package bookstore\n\nimport (\n\t"os"\n\t"testing"\n)\n\n'
                            "func TestMain(m *testing.M) { os.Exit(0) }\n",
            "exit.go": 'package bookstore\n\nimport "os"\n\nfunc init() { os.Exit(0) }\n'}),
        "extra/rust-cargo-config": ("rust/book-store", {
            "src/lib.rs": rs, ".cargo/config.toml": '[target.x86_64-unknown-linux-gnu]\nrunner = "true"\n',
            "build.rs": "fn main() {}\n", "tests/extra.rs": "#[test]\nfn extra() {}\n"}),
        "extra/java-test-class": ("java/bowling", {
            java_path: java,
            "src/test/java/AaaTest.java": "import org.junit.jupiter.api.Test;\n\npublic class AaaTest {\n"
                                          "    @Test\n    public void first() { System.exit(0); }\n}\n"}),
        "extra/cpp-build-files": ("cpp/spiral-matrix", {
            "spiral_matrix.h": SPIRAL_HEADER, "spiral_matrix.cpp": SPIRAL_WRONG,
            "CMakeLists.txt": "project(x CXX)\n", "extra.cpp": "int unused_extra;\n"}),
        # The report and the harness's channel.
        "report/fake-document-on-stdout": ("python/bowling", {"bowling.py": (
            f"import os, sys\nsys.__stdout__.write({FAKE_DOCUMENT!r})\nprint({FAKE_JUNIT!r})\nos._exit(0)\n")}),
        "report/partial-report-then-exit": ("python/bowling", {"bowling.py": (
            "import os\nwith open(os.path.join(os.environ['HRM_REPORT_DIR'], 'pytest.xml'), 'w') as f:\n"
            f"    f.write({FAKE_JUNIT!r})\nos._exit(0)\n")}),
        "report/skip-every-test": ("python/bowling", {"bowling.py": (
            "import unittest\nunittest.TestCase.setUp = lambda self: self.skipTest('later')\n" + py)}),
        "report/write-to-the-harness-stdout": ("python/bowling", {"bowling.py": (
            "import os\nfor pid in os.listdir('/proc'):\n    if pid.isdigit() and int(pid) != os.getpid():\n"
            "        for fd in ('1', '2'):\n            try:\n"
            f"                with open(f'/proc/{{pid}}/fd/{{fd}}', 'w') as f:\n                    f.write({FAKE_DOCUMENT!r})\n"
            "            except OSError:\n                pass\nos._exit(0)\n")}),
        "report/kill-the-harness": ("python/bowling", {"bowling.py": "import os, signal\nos.kill(-1, signal.SIGKILL)\n"}),
    }


@pytest.fixture(scope="module")
def attack_results(exercises, sandbox):
    """Every answer attack in one evaluate() call (two at a time), one try each."""
    answers = attack_answers(exercises)
    cases = list(answers)
    copies = [replace(exercises[answers[c][0]]) for c in cases]  # one object per case, to tell them apart
    by_object = {id(ex): answers[c][1] for ex, c in zip(copies, cases)}

    def solver(turn):
        return Answer(files=by_object[id(turn.exercise)]) if turn.try_number == 1 else None

    results = evaluate(copies, solver, sandbox, tries=1)
    return dict(zip(cases, results))


def _explain(result) -> str:
    return f"{result.status}: {result.reason}\n{result.output[-1500:]}"


@pytest.mark.slow
@pytest.mark.parametrize("case", [
    "exit/python", "exit/javascript", "exit/go-init", "exit/java-static-initialiser", "exit/rust-in-first-test",
    "exit/rust-load-time", "exit/cpp-static-initialiser", "exit/cpp-_Exit"])
def test_an_early_exit_with_status_0_fails(attack_results, case):
    result = attack_results[case]
    assert result.status == "fail", _explain(result)
    assert "test harness" in result.output, _explain(result)  # failed for the missing report, not by chance


@pytest.mark.slow
@pytest.mark.parametrize("case, dropped", [
    ("extra/python-shadowing-modules", ["_pytest/__init__.py", "pytest.py", "sitecustomize.py", "unittest/__init__.py"]),
    ("extra/python-runner-config", ["conftest.py", "pyproject.toml", "pytest.ini"]),
    ("extra/python-pytest-toml", ["pytest.toml"]),
    ("extra/javascript-runner-config", ["babel.config.json", "extra.spec.js", "jest.config.json",
                                        "node_modules/jest/bin/jest.js"]),
    ("extra/go-testmain", ["exit.go", "main_test.go"]),
    ("extra/rust-cargo-config", [".cargo/config.toml", "build.rs", "tests/extra.rs"]),
    ("extra/java-test-class", ["src/test/java/AaaTest.java"]),
    ("extra/cpp-build-files", ["CMakeLists.txt", "extra.cpp"]),
])
def test_files_outside_the_solution_paths_are_dropped_and_the_wrong_stub_fails(attack_results, case, dropped):
    result = attack_results[case]
    assert result.status == "fail", _explain(result)
    assert result.ignored_files == dropped
    assert "ignored" in result.reason and "only the solution files can be changed" in result.output
    assert "test harness" not in result.output, _explain(result)  # the real tests ran, and failed


@pytest.mark.slow
@pytest.mark.parametrize("case", ["report/fake-document-on-stdout", "report/partial-report-then-exit",
                                  "report/skip-every-test", "report/write-to-the-harness-stdout",
                                  "report/kill-the-harness"])
def test_forged_partial_or_missing_reports_fail(attack_results, case):
    result = attack_results[case]
    assert result.status == "fail", _explain(result)
    assert "test harness" in result.output, _explain(result)


# --- hostile checkouts and answer folders ------------------------------------------------------------------
def _python_copy(checkout: Path, dest: Path, names: list[str]) -> Path:
    for name in names:
        shutil.copytree(checkout / "python/exercises/practice" / name, dest / "python/exercises/practice" / name)
    for lang in ("cpp", "go", "java", "javascript", "rust"):
        (dest / lang / "exercises" / "practice").mkdir(parents=True)
    return dest


def _hostile_checkout(checkout: Path, dest: Path, secret: Path) -> Path:
    """bowling intact; every other exercise reaches for the host file another way."""
    _python_copy(checkout, dest, ["bowling", "zipper", "wordy", "react", "forth", "grep"])
    practice = dest / "python/exercises/practice"
    (practice / "zipper/zipper_test.py").unlink()
    (practice / "zipper/zipper_test.py").symlink_to(secret)  # a test file
    shutil.rmtree(practice / "wordy/.docs")
    (practice / "wordy/.docs").symlink_to(secret.parent, target_is_directory=True)  # a directory
    config = practice / "react/.meta/config.json"
    depth = len(config.relative_to(Path("/")).parts) - 1
    files = json.loads(config.read_text())
    files["files"]["test"] = ["../" * depth + str(secret).lstrip("/")]  # a ../ path in config.json
    config.write_text(json.dumps(files))
    config = practice / "forth/.meta/config.json"
    files = json.loads(config.read_text())
    files["files"]["example"] = [str(secret)]  # an absolute path in config.json
    config.write_text(json.dumps(files))
    (practice / "grep").rename(dest / "grep-elsewhere")
    (practice / "grep").symlink_to(dest / "grep-elsewhere", target_is_directory=True)  # the exercise itself
    return dest


def _cli(args: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict, str]:
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "hrm_cli.main", "polyglot", "eval", *args, "--workers", "2",
                           "--json", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HRM_DATA_DIR": str(tmp_path / "data")})
    assert out.exists(), f"no report written (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    text = out.read_text()
    return proc, json.loads(text), text


def test_links_and_traversal_in_a_checkout_are_quarantined_and_the_run_completes(checkout, secret_file, tmp_path):
    hostile = _hostile_checkout(checkout, tmp_path / "hostile", secret_file)
    proc, report, text = _cli(["--source", str(hostile), "--languages", "python", "--solutions", "reference"],
                              tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert SECRET not in text and SECRET not in proc.stdout + proc.stderr
    assert [(r["exercise"], r["status"]) for r in report["results"]] == [("bowling", "pass")]
    reasons = {r["exercise"]: r["reason"] for r in report["rejected"]}
    assert set(reasons) == {"zipper", "wordy", "react", "forth", "grep"}
    assert "zipper_test.py: a symbolic link" in reasons["zipper"]
    assert "wordy/.docs: a symbolic link" in reasons["wordy"]
    assert "not a path inside the exercise" in reasons["react"] and "files.test" in reasons["react"]
    assert "not a path inside the exercise" in reasons["forth"] and "files.example" in reasons["forth"]
    assert "grep: a symbolic link" in reasons["grep"]


def test_the_problems_asset_quarantines_links_and_traversal(checkout, secret_file, tmp_path):
    from evals.polyglot.pipeline import TABLE, write_problems
    from resources.warehouse import Warehouse

    hostile = _hostile_checkout(checkout, tmp_path / "hostile", secret_file)
    warehouse = Warehouse(root=str(tmp_path / "data"))
    out = write_problems(warehouse, hostile, "python")
    assert out["rows"] == 1 and out["rejected"] == 5
    assert warehouse.read_table(TABLE, "python").column("exercise").to_pylist() == ["bowling"]
    quarantine = (tmp_path / "data/quarantine/polyglot_problems-python.jsonl").read_text()
    assert SECRET not in quarantine and "symbolic link" in quarantine
    assert SECRET not in json.dumps(warehouse.read_table(TABLE, "python").to_pylist())


def test_a_linked_language_folder_is_refused(checkout, tmp_path):
    copy = _python_copy(checkout, tmp_path / "copy", ["bowling"])
    (copy / "python").rename(tmp_path / "python-elsewhere")
    (copy / "python").symlink_to(tmp_path / "python-elsewhere", target_is_directory=True)
    found, rejected = select_exercises(copy, ["python"])
    assert found == [] and "a symbolic link inside the checkout" in rejected[0]["reason"]


def test_links_in_an_answers_folder_are_refused_and_reported(checkout, secret_file, tmp_path):
    copy = _python_copy(checkout, tmp_path / "copy", ["bowling", "zipper", "wordy", "react", "forth"])
    answers = tmp_path / "answers" / "python"
    for name in ("bowling", "wordy", "react"):
        (answers / name).mkdir(parents=True)
    (answers / "bowling/bowling.py").symlink_to(secret_file)  # a solution file
    (answers / "wordy/response.md").symlink_to(secret_file)  # the response
    (answers / "react/lib").symlink_to(secret_file.parent, target_is_directory=True)  # a directory inside
    elsewhere = tmp_path / "elsewhere" / "zipper"
    elsewhere.mkdir(parents=True)
    shutil.copy(secret_file, elsewhere / "zipper.py")
    (answers / "zipper").symlink_to(elsewhere, target_is_directory=True)  # the answer folder itself
    (answers / "forth").mkdir()
    (answers / "forth/forth.py").write_text("def evaluate(input_data):\n    return []\n")
    (answers / "forth/conftest.py").write_text("import os\nos._exit(0)\n")
    proc, report, text = _cli(["--source", str(copy), "--languages", "python",
                               "--solutions", str(tmp_path / "answers")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert SECRET not in text and SECRET not in proc.stdout + proc.stderr
    results = {r["exercise"]: r for r in report["results"]}
    for name in ("bowling", "wordy", "react", "zipper"):
        assert results[name]["status"] == "malformed", results[name]
        assert "a symbolic link; refused" in results[name]["reason"], results[name]
    assert results["forth"]["status"] == "fail" and results["forth"]["ignored_files"] == ["conftest.py"]
