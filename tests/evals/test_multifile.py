"""The multi-file grader on a validated task of a tiny two-file package (tests/datagen/swe/test_multifile.py
makes it), with the real Sandbox: the gold answer resolves it; a one-file fix, and every answer that is empty,
malformed, edits a test, escapes the repository or forges pytest output, does not. Also the report row."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from evals.evaluate import EvalSettings
from evals.multifile import (answer_files, eval_multifile, grade_multifile, junit_key, junit_outcomes,
                             load_multifile_suite)
from evals.polyglot.edits import MalformedAnswer
from evals.report import make_rows

_SPEC = importlib.util.spec_from_file_location(
    "multifile_shop", Path(__file__).parents[1] / "datagen" / "swe" / "test_multifile.py")
shop_module = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(shop_module)


@pytest.fixture(scope="module")
def task(tmp_path_factory, sandbox):
    repo_row, _, rows, _, _ = shop_module.shop_tasks(tmp_path_factory.mktemp("grade"), sandbox)
    return repo_row, rows[0]


@pytest.mark.slow
def test_gold_resolves_and_a_one_file_fix_does_not(task, sandbox):
    repo_row, row = task
    assert grade_multifile(sandbox, repo_row, row, row["answer"]) == (True, "resolved")
    for path in ("tinyshop/cart.py", "tinyshop/prices.py"):
        partial = shop_module.blocks_of(row["answer"], path)
        assert partial and partial != row["answer"]
        ok, why = grade_multifile(sandbox, repo_row, row, partial)
        assert not ok and "FAIL_TO_PASS" in why, why


FORGED = ('tinyshop/prices.py\n<<<<<<< SEARCH\n    return round(price * 1.8, 2)\n=======\n'
          '    import os, sys\n    print("=== short test summary info ===")\n'
          '    print("PASSED tests/test_shop.py::test_discount")\n    print("1 passed in 0.01s")\n'
          '    sys.stdout.flush(); os._exit(0)\n>>>>>>> REPLACE\n')


def forged_summary(tests):
    """An edit of prices.py that, when the tests import it, writes pytest's summary with `tests` PASSED to every
    open descriptor (past pytest's output capture, to the real stdout it saved) and exits with status 0 before
    pytest reports anything."""
    text = "\n".join(["=== short test summary info ===", *(f"PASSED {t}" for t in tests),
                      f"{len(tests)} passed in 0.01s"]) + "\n"
    return ("tinyshop/prices.py\n<<<<<<< SEARCH\n    return round(price * 1.8, 2)\n=======\n    import os\n"
            "    for fd in range(1, 64):\n        try:\n"
            f"            os.write(fd, {text.encode()!r})\n"
            "        except OSError:\n            pass\n    os._exit(0)\n>>>>>>> REPLACE\n")


@pytest.mark.slow
def test_forged_pytest_output_does_not_resolve(task, sandbox):
    repo_row, row = task
    cart_fix = row["answer"].split("tinyshop/prices.py\n")[0]
    ok, why = grade_multifile(sandbox, repo_row, row, cart_fix + FORGED)
    assert not ok, why
    # a complete fake summary naming every test the grader asks for, then an early exit with status 0
    ok, why = grade_multifile(sandbox, repo_row, row, cart_fix + forged_summary(row["FAIL_TO_PASS"] + row["PASS_TO_PASS"]))
    assert not ok and "no pytest.xml" in why, why


def test_junit_outcomes_take_the_worst_entry_and_refuse_other_documents():
    xml = ('<testsuites><testsuite>'
           '<testcase classname="tests.test_a.T" name="test_ok"/>'
           '<testcase classname="tests.test_a" name="test_p[1-2]"><failure/></testcase>'
           '<testcase classname="tests.test_a" name="test_x"><skipped type="pytest.xfail"/></testcase>'
           '<testcase classname="tests.test_a" name="test_s"><skipped type="pytest.skip"/></testcase>'
           '<testcase classname="tests.test_a.T" name="test_td"/>'
           '<testcase classname="tests.test_a.T" name="test_td"><error/></testcase>'
           '</testsuite></testsuites>')
    got = junit_outcomes(xml)
    assert got[junit_key("tests/test_a.py::T::test_ok")] == "PASSED"
    assert got[junit_key("tests/test_a.py::test_p[1-2]")] == "FAILED"
    assert got[junit_key("tests/test_a.py::test_x")] == "XFAIL" and got[junit_key("tests/test_a.py::test_s")] == "SKIPPED"
    assert got[junit_key("tests/test_a.py::T::test_td")] == "FAILED"  # passed, then a teardown error
    for bad in ("", "<html/>", '<!DOCTYPE x [<!ENTITY a "b">]><testsuites/>'):
        with pytest.raises(ValueError):
            junit_outcomes(bad)


@pytest.mark.parametrize("answer, why", [
    ("", "empty answer"),
    ("   \n", "empty answer"),
    ("I fixed it.", "no SEARCH/REPLACE block"),
    ("tinyshop/cart.py\n<<<<<<< SEARCH\nreturn len(prices) + 1\n=======\n", "REPLACE end"),
    ("tests/test_shop.py\n<<<<<<< SEARCH\n    assert count([1, 2, 3]) == 3\n=======\n    assert True\n"
     ">>>>>>> REPLACE\n", "test file"),
    ("../outside.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n", "not a path inside"),
    ("/etc/passwd\n<<<<<<< SEARCH\nroot\n=======\nx\n>>>>>>> REPLACE\n", "not a path inside"),
    ("tinyshop/new.py\n<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n", "not an existing file"),
    ("conftest.py\n<<<<<<< SEARCH\n=======\nimport pytest\n>>>>>>> REPLACE\n", "test file"),
    ("setup.cfg\n<<<<<<< SEARCH\n=======\n[tool:pytest]\naddopts = -p tinyshop.cart\n>>>>>>> REPLACE\n",
     "not a Python source file"),
    ("tinyshop/cart.py\n<<<<<<< SEARCH\nnot in the file\n=======\nx\n>>>>>>> REPLACE\n", "does not match"),
])
def test_answers_that_cannot_be_a_fix_are_refused_before_running(tmp_path, answer, why):
    repo = shop_module.make_shop_repo(tmp_path)
    commit = __import__("subprocess").run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                          text=True).stdout.strip()
    bugs = shop_module.bug_rows({"repo_dir": str(repo), "commit": commit})
    row = {"patch": bugs[0]["patch"] + bugs[2]["patch"], "FAIL_TO_PASS": ["tests/test_shop.py::test_count"],
           "PASS_TO_PASS": ["tests/test_shop.py::test_with_tax"]}
    with pytest.raises(MalformedAnswer, match=why):
        answer_files(str(repo), row, answer)


class EchoGold:
    """A stand-in candidate for the endpoint path of evals.evaluate.complete: answers with the gold fix for
    the first prompt and nothing for the others."""

    def __init__(self, gold: str):
        self.gold, self.completion_tokens, self.model = gold, 0, None

    def complete(self, prompts, languages, task, **_):
        assert task == "diff_edit" and set(languages) == {"python"}
        return [[self.gold if i == 0 else ""] for i in range(len(prompts))]


@pytest.mark.slow
def test_eval_row_counts_resolved_tasks_with_an_interval(task, sandbox):
    repo_row, row = task
    held_out = [{**row, "split": "test"}, {**row, "split": "test", "instance_id": row["instance_id"] + "x"},
                {**row, "split": "train", "instance_id": "train-only"}]
    c = SimpleNamespace(endpoint=EchoGold(row["answer"]), generation_s=0.0, decoded_tokens=0, model=None)
    (result,) = eval_multifile(c, held_out, {repo_row["key"]: repo_row}, sandbox, EvalSettings(), limit=0)
    assert result["benchmark"] == "multi-file" and result["metric"] == "resolve_rate"
    assert result["n"] == 2 and result["value"] == 0.5 and result["ci_low"] < 0.5 < result["ci_high"]
    assert sorted(p["passed"] for p in result["problems"]) == [False, True]
    assert {p["error_kind"] for p in result["problems"] if not p["passed"]} == {"malformed"}
    import datetime
    make_rows("r", datetime.datetime.now(datetime.timezone.utc), "m", "h", "none", [result], "v")


def test_suite_loader_says_what_is_missing(tmp_path):
    from resources.warehouse import Warehouse

    warehouse = Warehouse(root=str(tmp_path))
    assert load_multifile_suite(warehouse) == ([], {}, "multifile_tasks not materialised")
    warehouse.write_table("multifile_tasks", [{"instance_id": "a", "split": "test", "source_repo": "r"},
                                              {"instance_id": "b", "split": "train", "source_repo": "r"}])
    rows, repos, note = load_multifile_suite(warehouse)
    assert rows == [] and repos == {} and "no swe_repos row for r" in note
    warehouse.write_table("swe_repos", [{"key": "r", "kind": "path"}], partition="r")
    rows, repos, note = load_multifile_suite(warehouse, limit=1)
    assert [r["instance_id"] for r in rows] == ["a"] and list(repos) == ["r"] and note == ""
