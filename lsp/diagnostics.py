"""Diagnostics on save: the tests that belong to a file, run in the Sandbox, judged from pytest's JUnit report.

The workspace is copied into the jail (regular files only, size-capped; links and version-control and
environment folders left out) with the editor's unsaved text of the open file, and pytest runs under
resources/report_guard.py, which hands the JUnit XML back on a channel the tested code does not hold. The
verdict never comes from the test output or the exit status alone: a file is clean only when the guard's
document came back, pytest exited 0, its report is readable, no test failed, and every test the host finds in
the test files (by parsing them, never by running them) is in the report as run without failing (passed, or
skipped as the project asks). A run that cannot be judged is a warning diagnostic, never a clean file. Python (pytest) only; other languages get one
informational diagnostic saying so.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from resources.report_guard import guard_bind, guard_command, read_document
from resources.sandbox import Sandbox, SandboxJob

SKIPPED_DIRS = {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "env", "node_modules", ".mypy_cache",
                ".pytest_cache", ".tox", "build", "dist", "target", ".idea", ".vscode"}
MAX_FILES = 2000
MAX_FILE_BYTES = 1 << 20
MAX_TOTAL_BYTES = 32 << 20
GUARD_GRACE_S = 15.0  # the jail outlives the guard's own limit, so the guard can still report a timeout
REPORT = "pytest.xml"
_FRAME = re.compile(r"^(?P<path>[^\s:][^:\n]*\.py):(?P<line>\d+): ", re.M)


@dataclass(frozen=True)
class TestFailure:
    __test__ = False  # not a pytest test class
    test: str  # "test_calc.py::test_add"
    message: str
    output: str  # the short traceback
    path: str = ""  # the workspace-relative file of the deepest frame in `focus`, "" if none
    line: int = 0  # 1-based line of that frame, 0 if unknown


@dataclass
class TestReport:
    __test__ = False
    status: str  # passed | failed | error (could not be judged) | no_tests | unsupported
    detail: str = ""  # why, for error / no_tests / unsupported; the output tail for failed
    failures: list[TestFailure] = field(default_factory=list)
    test_files: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def is_test_file(rel: str) -> bool:
    name = PurePosixPath(rel).name
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def file_tests(root: Path, rel: str) -> list[str]:
    """The workspace-relative test files of a Python file: itself if it is one, else test_<name>.py or
    <name>_test.py beside it, in a tests/ folder beside it, or in the workspace's tests/ folder."""
    path = PurePosixPath(rel)
    if is_test_file(rel):
        return [rel]
    stem = path.stem
    found = []
    for folder in (path.parent, path.parent / "tests", PurePosixPath("tests")):
        for name in (f"test_{stem}.py", f"{stem}_test.py"):
            candidate = (folder / name).as_posix()
            if candidate not in found and (root / candidate).is_file() and not (root / candidate).is_symlink():
                found.append(candidate)
    return found


def workspace_files(root: Path, overrides: dict[str, str] | None = None) -> dict[str, bytes | str]:
    """The workspace's files for the jail: relative path -> content, `overrides` (unsaved editor text) on top.
    Links, hidden, environment and build folders, and files over MAX_FILE_BYTES are left out; ValueError
    when the rest exceeds MAX_FILES or MAX_TOTAL_BYTES."""
    files: dict[str, bytes | str] = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith(".")
                             and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file() or full.stat().st_size > MAX_FILE_BYTES:
                continue
            rel = full.relative_to(root).as_posix()
            files[rel] = full.read_bytes()
            total += len(files[rel])
            if len(files) > MAX_FILES or total > MAX_TOTAL_BYTES:
                raise ValueError(f"{root}: the workspace holds more than {MAX_FILES} files or "
                                 f"{MAX_TOTAL_BYTES >> 20} MB outside links, hidden and build folders; "
                                 "open a smaller folder as the workspace")
    files.update(overrides or {})
    return files


def expected_tests(source: str) -> set[str]:
    """Test function names pytest would collect by default, read from the source without running it:
    module-level `test*` functions and `test*` methods of `Test*` classes. SyntaxError if it does not parse."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names.update(n.name for n in node.body
                         if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test"))
    return names


def pytest_script(test_files: list[str]) -> str:
    # -I: the interpreter ignores PYTHON* variables and the working directory; pytest then puts the test
    # folders and the workspace root (pythonpath) on the path itself. No plugins autoloaded, no ini files,
    # conftest.py files do load (a project's fixtures live there).
    return ("PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -I -B -m pytest -q -rA --tb=short --color=no "
            "-p no:cacheprovider -c /dev/null --rootdir=/work -o pythonpath=. -o junit_family=xunit1 "
            f'--junitxml="$HRM_REPORT_DIR/{REPORT}" ' + " ".join(shlex.quote(t) for t in test_files))


def run_file_tests(sandbox: Sandbox, root: str | Path, rel: str, overrides: dict[str, str] | None = None,
                   timeout_s: float = 60.0) -> TestReport:
    """Run the tests of workspace file `rel` in a jail and judge them (module docstring)."""
    root = Path(root)
    if not rel.endswith(".py"):
        return TestReport("unsupported", "test diagnostics on save run Python tests (pytest) only")
    tests = file_tests(root, rel)
    if not tests:
        return TestReport("no_tests", f"no tests found for {rel} (test_<name>.py, <name>_test.py, tests/)")
    try:
        files = workspace_files(root, overrides)
        sources = {t: _text(files[t]) for t in tests}
        expected = set().union(*(expected_tests(s) for s in sources.values()))
    except (ValueError, SyntaxError, KeyError, OSError) as exc:
        return TestReport("error", f"{type(exc).__name__}: {exc}", test_files=tests)
    limit = sandbox.max_output_bytes
    command = guard_command(["sh", "-c", pytest_script(tests)], timeout_s, max_document_bytes=limit - 4096,
                            max_output_bytes=limit)
    start = time.monotonic()
    result = sandbox.run_job(SandboxJob(command=command, files=files, ro_binds=[guard_bind()],
                                        timeout_s=timeout_s + GUARD_GRACE_S))
    wall = time.monotonic() - start
    doc = read_document(result.stdout)
    if doc is None:
        return TestReport("error", f"no result came back from the test run (jail status {result.status}): the "
                          "tests killed or stopped the runner, or it could not start. " + result.stderr[-500:],
                          test_files=tests, wall_s=wall)
    report = judge(doc, expected, rel)
    report.test_files, report.wall_s = tests, wall
    return report


def judge(doc: dict, expected: set[str], focus: str) -> TestReport:
    """The verdict of a guard document (resources/report_guard.py) holding pytest's JUnit XML; `focus` is the
    saved file, whose frames the failures point at."""
    output = doc["output"][-4000:]
    if doc["timed_out"]:
        return TestReport("error", "the tests ran out of time: " + output[-1000:])
    xml = doc["reports"].get(REPORT)
    if xml is None:
        return TestReport("error", "pytest wrote no report (it did not finish): " + output[-1500:])
    try:
        failures, ran = read_junit(xml, focus)
    except (ValueError, SyntaxError) as exc:
        return TestReport("error", f"pytest's report is not readable ({type(exc).__name__}: {str(exc)[:200]})")
    if failures:
        return TestReport("failed", output[-2000:], failures)
    missing = sorted(expected - ran)
    if missing:
        return TestReport("error", f"tests found in the test files but missing from pytest's report: "
                          f"{', '.join(missing[:5])}")
    if doc["exit_code"] != 0 or doc["signal"]:
        return TestReport("error", f"pytest exited with status {doc['exit_code']} (signal {doc['signal']}) "
                          "although its report shows no failure: " + output[-1000:])
    return TestReport("passed")


def read_junit(xml: str, focus: str) -> tuple[list[TestFailure], set[str]]:
    """(failed or errored tests, names of the tests that ran without failing: passed, skipped, xfail) from
    pytest's xunit1 JUnit XML."""
    import xml.etree.ElementTree as ET

    if re.search(r"<!(?:DOCTYPE|ENTITY)", xml, re.I):
        raise ValueError("document type declarations are not accepted")
    root = ET.fromstring(xml)
    if root.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"unexpected root element <{root.tag}>")
    failures, ran = [], set()
    for case in root.iter("testcase"):
        name = case.get("name") or ""
        outcome = next((c for c in case if c.tag in ("failure", "error")), None)
        if outcome is None:  # passed, skipped or an expected failure: it ran and did not fail
            ran.add(re.sub(r"\[.*$", "", name))
            continue
        test = _test_id(case.get("file") or "", case.get("classname") or "", name)
        text = outcome.text or ""
        path, line = _deepest_frame(text, focus)
        if not path and (case.get("file") or "") == focus and (case.get("line") or "").isdigit():
            path, line = focus, int(case.get("line")) + 1  # xunit1's line is 0-based
        failures.append(TestFailure(test, (outcome.get("message") or outcome.tag)[:500], text[-3000:], path, line))
    return failures, ran


def _test_id(file: str, classname: str, name: str) -> str:
    parts = classname.split(".")
    module = PurePosixPath(file).stem if file else ""
    inner = parts[parts.index(module) + 1:] if module in parts else []
    return "::".join([file or classname, *inner, name])


def _deepest_frame(traceback: str, focus: str) -> tuple[str, int]:
    """The last frame of the traceback that lies in `focus` (paths relative to the jail's /work)."""
    best = ("", 0)
    for m in _FRAME.finditer(traceback):
        path = m.group("path").removeprefix("/work/")
        if path == focus:
            best = (path, int(m.group("line")))
    return best


def _text(content: bytes | str) -> str:
    return content if isinstance(content, str) else content.decode("utf-8", "replace")
