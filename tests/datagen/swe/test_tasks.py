"""SWE-smith tasks from a tiny local repo: specs, seeded bugs, Docker-free validation, HF rows and loader."""

import json
import subprocess
import textwrap

import pytest

from datagen.swe.bugs import generate_bugs
from datagen.swe.hf import load_swesmith_tasks
from datagen.swe.repos import (baseline_row, new_nonce, parse_pytest_summary, parse_repo_spec, repo_from_row,
                               run_tests)
from datagen.swe.tasks import TaskSettings, build_tasks, static_problem_statement

TINY_MODULE = textwrap.dedent('''
    def clamp(x, lo, hi):
        if x < lo:
            return lo
        elif x > hi:
            return hi
        return x


    def positive_total(xs):
        total = 0
        for x in xs:
            if x > 0:
                total += x
        return total


    class Stack:
        def __init__(self):
            self.items = []

        def push(self, x):
            self.items.append(x)
            return len(self.items)

        def pop(self):
            if not self.items:
                raise IndexError("pop from empty stack")
            return self.items.pop()
''')
TINY_TESTS = textwrap.dedent('''
    import pytest
    from tinycalc import Stack, clamp, positive_total

    @pytest.mark.parametrize("x,want", [(-5, 0), (5, 5), (50, 10)])
    def test_clamp(x, want):
        assert clamp(x, 0, 10) == want

    def test_positive_total():
        assert positive_total([1, -2, 3]) == 4

    def test_positive_total_empty():
        assert positive_total([]) == 0

    def test_stack():
        s = Stack()
        assert s.push(1) == 1 and s.push(2) == 2
        assert s.pop() == 2

    def test_stack_empty():
        with pytest.raises(IndexError):
            Stack().pop()
''')


def make_tiny_repo(root):
    """A pure-Python package with a pytest suite, committed to git."""
    repo = root / "tinycalc"
    (repo / "tinycalc").mkdir(parents=True)
    (repo / "tinycalc" / "__init__.py").write_text(TINY_MODULE)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_tinycalc.py").write_text(TINY_TESTS)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin", "HOME": str(root)}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "tiny"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    return repo


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, sandbox):
    root = tmp_path_factory.mktemp("swe")
    repo = make_tiny_repo(root)
    row = baseline_row(sandbox, parse_repo_spec(str(repo)), root / "work")
    return {"root": root, "row": row}


def test_repo_specs_parse():
    s = parse_repo_spec("addict==2.4.0")
    assert (s.key, s.kind, s.location, s.version) == ("pypi__addict", "pypi", "addict", "2.4.0")
    g = parse_repo_spec("git+https://github.com/mewwts/addict.git@75284f95")
    assert (g.key, g.kind, g.version) == ("mewwts__addict", "git", "75284f95")
    assert parse_repo_spec("swesmith:mewwts__addict.75284f95").key == "mewwts__addict"
    assert parse_repo_spec("dataset:/data/swesmith.jsonl").kind == "dataset"
    with pytest.raises(ValueError, match="expected NAME==VERSION"):
        parse_repo_spec("not a spec")


def test_pytest_summary_parsing():
    nonce, _ = new_nonce()
    done = f"\nHRM_PYTEST_DONE {nonce}\n"
    out = ("..F.\n=========================== short test summary info ============================\n"
           "PASSED tests/t.py::test_a\nFAILED tests/t.py::test_b[x-1] - assert 1 == 2\n"
           "ERROR tests/t.py::test_c - fixture 'db' not found\nERROR tests/u.py - ImportError\n"
           "XFAIL tests/t.py::test_d\n"
           "1 failed, 1 passed, 1 xfailed, 2 errors in 0.12s\n\n")
    assert parse_pytest_summary(out + done, nonce) == {
        "tests/t.py::test_a": "PASSED", "tests/t.py::test_b[x-1]": "FAILED",
        "tests/t.py::test_c": "ERROR", "tests/t.py::test_d": "XFAIL"}
    # lines printed by the code under test are not pytest's report
    assert parse_pytest_summary("PASSED tests/t.py::test_a\n" + done, nonce) == {}
    assert parse_pytest_summary(out + "PASSED tests/t.py::test_b[x-1]\n" + done, nonce) == {}  # after pytest
    assert parse_pytest_summary(out + "PASSED tests/t.py::test_b[x-1]\n2 passed in 0.1s\n" + done, nonce) == {}
    # the done line must end the output, once, with this run's nonce
    assert parse_pytest_summary(out, nonce) == {}
    assert parse_pytest_summary(out + done + "PASSED tests/t.py::test_b[x-1]\n", nonce) == {}
    assert parse_pytest_summary(out + done + out + done, nonce) == {}
    assert parse_pytest_summary(out + done, new_nonce()[0]) == {}
    with pytest.raises(TypeError):
        parse_pytest_summary(out + done)  # the nonce is required
    with pytest.raises(ValueError):
        parse_pytest_summary(out + done, "")
    # pytest 9 also counts unittest subTest results in its stats line
    with_subtests = out.replace("2 errors in", "2 errors, 24 subtests passed, 1 subtests failed in")
    assert parse_pytest_summary(with_subtests + done, nonce) == parse_pytest_summary(out + done, nonce) != {}


@pytest.mark.slow
def test_baseline_runs_the_suite_in_the_jail(tiny):
    row = tiny["row"]
    assert row["baseline_status"] == "ok"
    assert row["n_tests"] == 7 and row["n_passed"] == 7
    assert "tests/test_tinycalc.py::test_clamp[50-10]" in row["passed_tests"]
    assert len(row["commit"]) == 40


@pytest.mark.slow
def test_bugs_are_seeded_and_deterministic(tiny):
    repo = repo_from_row(tiny["row"])
    a = generate_bugs(repo.repo_dir, "local__tinycalc.abcdef12", seed=7)
    b = generate_bugs(repo.repo_dir, "local__tinycalc.abcdef12", seed=7)
    assert a and [x.to_dict() for x in a] == [x.to_dict() for x in b]
    assert all(x.file == "tinycalc/__init__.py" for x in a)  # tests are never mutated
    assert all(x.instance_id.startswith("local__tinycalc.abcdef12.func_pm_") for x in a)


@pytest.mark.slow
def test_validation_derives_fail_to_pass_and_pass_to_pass(tiny, sandbox):
    row = tiny["row"]
    rows, rejected, stats = build_tasks(sandbox, row, TaskSettings(seed=24, max_bugs=40))
    assert rows, f"no task validated: {rejected}"
    assert stats["candidates"] == len(rows) + len(rejected)
    for t in rows:
        assert t["FAIL_TO_PASS"] and set(t["FAIL_TO_PASS"]).isdisjoint(t["PASS_TO_PASS"])
        assert set(t["FAIL_TO_PASS"]) | set(t["PASS_TO_PASS"]) == set(row["passed_tests"])
        assert t["repo"] == f"swesmith/local__tinycalc.{row['commit'][:8]}"
        assert t["problem_statement"].strip()
    # the check is real: with the bug applied the F2P tests fail, without it they pass
    t = rows[0]
    bugged = run_tests(sandbox, repo_from_row(row), t["patch"])
    assert all(bugged.tests.get(x) != "PASSED" for x in t["FAIL_TO_PASS"])
    assert all(bugged.tests.get(x) == "PASSED" for x in t["PASS_TO_PASS"])
    assert all(r["reason"] for r in rejected)


@pytest.mark.slow
def test_problem_statement_is_seeded_per_instance(tiny, sandbox):
    row = {"instance_id": "local__tinycalc.abcdef12.func_pm_remove_cond__aaaa1111",
           "patch": "--- a/tinycalc/__init__.py\n+++ b/tinycalc/__init__.py\n@@ -1,2 +1,1 @@\n-a\n b\n",
           "FAIL_TO_PASS": ["tests/t.py::test_a", "tests/t.py::test_b"]}
    first = static_problem_statement(row, 24, funcs=["clamp"])
    assert first == static_problem_statement(row, 24, funcs=["clamp"])
    texts = {static_problem_statement({**row, "instance_id": row["instance_id"][:-4] + f"{i:04d}"}, 24, ["clamp"])
             for i in range(30)}
    assert len(texts) > 1  # the template varies across instances


def test_hf_loader_reads_local_files_and_rejects_bad_rows(tmp_path):
    good = {"instance_id": "mewwts__addict.75284f95.func_pm_remove_cond__ab12cd34", "repo": "swesmith/mewwts__addict.75284f95",
            "patch": "--- a/addict/addict.py\n+++ b/addict/addict.py\n@@ -1,2 +1,1 @@\n-x = 1\n y = 2\n",
            "FAIL_TO_PASS": ["test_addict.py::T::test_a"], "PASS_TO_PASS": json.dumps(["test_addict.py::T::test_b"]),
            "image_name": "swebench/swesmith.x86_64.mewwts_1776_addict.75284f95", "problem_statement": "broken"}
    bad_id = {**good, "instance_id": "no-commit-here"}
    no_f2p = {**good, "instance_id": good["instance_id"][:-2] + "ff", "FAIL_TO_PASS": []}
    f = tmp_path / "rows.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in (good, bad_id, no_f2p)) + "\n{not json\n")
    rows, rejected = load_swesmith_tasks(str(f))
    assert [r["instance_id"] for r in rows] == [good["instance_id"]]
    assert rows[0]["PASS_TO_PASS"] == ["test_addict.py::T::test_b"] and rows[0]["bug_type"] == "func_pm_remove_cond"
    assert rows[0]["files"] == ["addict/addict.py"] and rows[0]["base_commit"] == "75284f95"
    reasons = {r["where"].rsplit(":", 1)[1]: r["reason"] for r in rejected}
    assert "instance_id" in reasons["2"] and "FAIL_TO_PASS is empty" in reasons["3"] and "invalid JSON" in reasons["4"]
    with pytest.raises(FileNotFoundError):
        load_swesmith_tasks(str(tmp_path / "missing.jsonl"))
