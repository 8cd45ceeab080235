"""The multi-file benchmark: held-out multifile_tasks, answered with SEARCH/REPLACE blocks across files and
graded by the repository's own tests in the Sandbox.

The grader never trusts the answer: it parses the blocks on the host (evals.polyglot.edits, tolerant as
Aider's parser is), refuses empty answers, paths outside the repository, test files and files that do not exist
(or are links), applies the blocks to the buggy files, and runs the test suite in the jail on a copy of the clean
checkout with the edited files written over it, under the report guard (resources/report_guard.py): pytest
writes its JUnit XML report into a directory the guard hands back over its own channel, and the tests' output is
never read as a result, so code that prints "PASSED" lines, or a whole fake summary and exits early, gets no
pass. An answer resolves its task only when every FAIL_TO_PASS and PASS_TO_PASS test passed in that report; XFAIL
counts only for tests that were XFAIL in the task's validation.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path, PurePosixPath

from datagen.swe.multifile import LANGUAGE, TABLE, TASK_TYPE, patched_files
from datagen.swe.repos import ENV_MOUNT, repo_from_row, test_command
from evals.polyglot.edits import MalformedAnswer, apply_search_replace, parse_search_replace
from evals.report import rate_result
from evals.stats import problem
from resources.report_guard import guard_bind, guard_command, read_document
from resources.sandbox import SandboxJob

BENCHMARK, METRIC = "multi-file", "resolve_rate"
GUARD_GRACE_S = 15.0  # the jail outlives the guard's own limit by this much, so the guard can report
_TEST_NAME = ("test_", "conftest")


def is_test_path(path: str, test_files: set[str]) -> bool:
    """A test module, a conftest, anything under a tests folder, or a file the task's test ids name."""
    pure = PurePosixPath(path)
    return (path in test_files or pure.name.startswith(_TEST_NAME) or pure.name.endswith("_test.py")
            or any(part in ("test", "tests", "testing") for part in pure.parts[:-1]))


def answer_files(repo_dir: str, task_row: dict, answer: str) -> dict[str, str]:
    """path -> content after the answer's blocks, for every file the bug or the answer touches; MalformedAnswer
    (its message says why) for an answer that cannot be graded as a fix."""
    if not answer or not answer.strip():
        raise MalformedAnswer("empty answer")
    buggy = patched_files(repo_dir, task_row["patch"])
    tests = {t.split("::")[0] for t in [*task_row["FAIL_TO_PASS"], *task_row["PASS_TO_PASS"]]}
    blocks = parse_search_replace(answer, known=sorted(buggy))
    files = dict(buggy)
    root = Path(repo_dir).resolve()
    for path, _, _ in blocks:
        if is_test_path(path, tests):
            raise MalformedAnswer(f"{path} is a test file; only the code under test may change")
        if not path.endswith(".py"):  # setup.cfg, tox.ini, pyproject.toml would reconfigure pytest itself
            raise MalformedAnswer(f"{path} is not a Python source file; only the code under test may change")
        if path in files:
            continue
        target = Path(repo_dir) / path
        if target.is_symlink() or not target.is_file() or not target.resolve().is_relative_to(root):
            raise MalformedAnswer(f"{path} is not an existing file of the repository")
        files[path] = target.read_text()
    return apply_search_replace(blocks, files)


def grade_multifile(sandbox, repo_row: dict, task_row: dict, answer: str, timeout_s: float | None = None
                    ) -> tuple[bool, str]:
    """(resolved, why): the answer applied to the buggy repository, its tests run in the Sandbox."""
    repo = repo_from_row(repo_row)
    try:
        files = answer_files(repo.repo_dir, task_row, answer)
    except (MalformedAnswer, UnicodeDecodeError) as exc:
        return False, f"malformed: {exc}"
    timeout = timeout_s or min(300.0, max(30.0, 10 * float(task_row.get("validation_wall_s") or 3.0)))
    script = f'exec {shlex.join(test_command(repo))} --junitxml="$HRM_REPORT_DIR/pytest.xml"'
    limit = sandbox.max_output_bytes
    job = SandboxJob(command=guard_command(["sh", "-c", script], timeout, max_document_bytes=limit - 4096,
                                          max_output_bytes=limit),
                     files=files, input_dir=repo.repo_dir, ro_binds=[(repo.env_dir, ENV_MOUNT), guard_bind()],
                     env={"PYTHONPATH": repo.pythonpath}, timeout_s=timeout + GUARD_GRACE_S)
    result = sandbox.run_job(job)
    doc = read_document(result.stdout)
    if doc is None:
        return False, f"no report came back from the test run (jail status {result.status})"
    if doc["timed_out"]:
        return False, f"tests timed out (limit {timeout:g} s)"
    try:
        tests = junit_outcomes(doc["reports"].get("pytest.xml", ""))
    except ValueError as exc:
        return False, f"unreadable pytest report: {exc}"
    xfail_ok = set(_listed(task_row.get("xfail_tests")))
    wanted = [*task_row["FAIL_TO_PASS"], *task_row["PASS_TO_PASS"]]
    got = {t: tests.get(junit_key(t), "MISSING") for t in wanted}
    bad = [t for t in wanted if not (got[t] == "PASSED" or (got[t] == "XFAIL" and t in xfail_ok))]
    if bad:
        f2p = set(task_row["FAIL_TO_PASS"])
        which = "FAIL_TO_PASS" if any(t in f2p for t in bad) else "PASS_TO_PASS"
        return False, f"{len(bad)} tests not passing ({which}), e.g. {bad[0]}: {got[bad[0]]}"
    return True, "resolved"


def junit_key(node_id: str) -> tuple[str, str]:
    """(classname, name) under which pytest's JUnit report files the test `node_id` (pytest's own mangling:
    the file path dotted without .py, then the classes; the name keeps its parameters)."""
    path, bracket, params = node_id.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def junit_outcomes(xml_text: str) -> dict[tuple[str, str], str]:
    """(classname, name) -> PASSED, FAILED, XFAIL or SKIPPED from pytest's --junitxml report (the worst outcome
    where a test has several entries, as a teardown error adds one); ValueError for anything but such a report."""
    import xml.etree.ElementTree as ET

    if not xml_text.strip():
        raise ValueError("no pytest.xml in the report directory")
    if re.search(r"<!(?:DOCTYPE|ENTITY)", xml_text, re.I):
        raise ValueError("document type declarations are not accepted")
    root = ET.fromstring(xml_text)
    if root.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"unexpected root element <{root.tag}>")
    rank = {"PASSED": 0, "XFAIL": 1, "SKIPPED": 2, "FAILED": 3}
    out: dict[tuple[str, str], str] = {}
    for case in root.iter("testcase"):
        tags = {child.tag: child for child in case}
        if "failure" in tags or "error" in tags:
            outcome = "FAILED"
        elif "skipped" in tags:
            outcome = "XFAIL" if tags["skipped"].get("type") == "pytest.xfail" else "SKIPPED"
        else:
            outcome = "PASSED"
        key = (case.get("classname") or "", case.get("name") or "")
        if rank[outcome] >= rank.get(out.get(key, "PASSED"), 0):
            out[key] = outcome
    return out


def _listed(value) -> list:
    if isinstance(value, str):
        return json.loads(value) if value.strip() else []
    return list(value or [])


def _error_kind(why: str) -> str:
    return "malformed" if why.startswith("malformed") else ("tests_failed" if "not passing" in why else "run_failed")


def eval_multifile(c, rows: list[dict], repos: dict[str, dict], sandbox, s, limit: int = 0,
                   max_new_tokens: int | None = None) -> list[dict]:
    """resolve_rate of candidate `c` on held-out multi-file tasks (greedy, one sample), with its Wilson
    interval and per-problem results; [] when there is no task."""
    from evals.evaluate import complete

    chosen = sorted((r for r in rows if r.get("split") == "test" and r["source_repo"] in repos),
                    key=lambda r: r["instance_id"])[:limit or None]
    if not chosen:
        return []
    budget = max_new_tokens or 2 * s.repair_max_new_tokens
    if getattr(c, "model", None) is not None:
        budget = min(budget, c.model.config.max_seq_len // 2)
    answers = complete(c, [r["prompt"] for r in chosen], [LANGUAGE] * len(chosen), TASK_TYPE,
                       max_new_tokens=budget, batch_size=s.batch_size, seed=s.seed)
    graded = sandbox.map(lambda pair: grade_multifile(sandbox, repos[pair[0]["source_repo"]], pair[0], pair[1][0]),
                         list(zip(chosen, answers)))
    problems = [problem(r["instance_id"], ok, _error_kind(why)) for r, (ok, why) in zip(chosen, graded)]
    resolved = sum(p["passed"] for p in problems)
    return [{**rate_result(BENCHMARK, METRIC, resolved / len(problems), len(problems)), "problems": problems}]


def load_multifile_suite(warehouse, limit: int = 0) -> tuple[list[dict], dict[str, dict], str]:
    """(held-out task rows, swe_repos rows by key, a note saying what is missing) from the warehouse."""
    if not warehouse.has_table(TABLE):
        return [], {}, f"{TABLE} not materialised"
    rows = [r for r in warehouse.read_table(TABLE).to_pylist() if r.get("split") == "test"]
    repos = {}
    for key in sorted({r["source_repo"] for r in rows}):
        if warehouse.has_table("swe_repos", partition=key):
            repos[key] = warehouse.read_table("swe_repos", partition=key).to_pylist()[0]
    missing = sorted({r["source_repo"] for r in rows} - set(repos))
    rows = sorted((r for r in rows if r["source_repo"] in repos), key=lambda r: r["instance_id"])[:limit or None]
    note = "" if rows else f"{TABLE} has no held-out task"
    if missing:
        note = (note + "; " if note else "") + f"no swe_repos row for {', '.join(missing)}"
    return rows, repos, note
