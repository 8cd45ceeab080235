"""Diagnostics on save: which tests belong to a file, the jail run, and the verdict from pytest's JUnit report,
attacked by workspace tests that print fake PASSED lines, exit early with status 0 or write to the host."""

import os

import pytest

from lsp.diagnostics import expected_tests, judge, read_junit, run_file_tests, file_tests, workspace_files
from resources.report_guard import GUARD_FORMAT

CALC = "def add(a, b):\n    return a - b\n"
TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\ndef test_one():\n    assert 1\n"


def doc(reports, exit_code=0, output="", timed_out=False):
    return {"format": GUARD_FORMAT, "exit_code": exit_code, "signal": 0, "timed_out": timed_out,
            "output_limit": False, "output": output, "output_bytes": len(output), "cpu_s": 0.1, "wall_s": 0.1,
            "reports": reports, "skipped": [], "reports_truncated": False}


PASSING_XML = ('<testsuites><testsuite><testcase classname="test_calc" name="test_add" file="test_calc.py" line="3"/>'
               '<testcase classname="test_calc" name="test_one" file="test_calc.py" line="7"/></testsuite></testsuites>')


def test_tests_belong_to_a_file_by_name_beside_it_or_in_tests(tmp_path):
    for rel in ("calc.py", "test_calc.py", "pkg/util.py", "pkg/util_test.py", "tests/test_util.py", "other.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert file_tests(tmp_path, "calc.py") == ["test_calc.py"]
    assert file_tests(tmp_path, "test_calc.py") == ["test_calc.py"]
    assert file_tests(tmp_path, "pkg/util.py") == ["pkg/util_test.py", "tests/test_util.py"]
    assert file_tests(tmp_path, "other.py") == []


def test_the_workspace_copy_leaves_out_links_hidden_and_environment_folders(tmp_path):
    (tmp_path / "a.py").write_text("a")
    for d in (".git", "node_modules", ".venv", "__pycache__"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x").write_text("x")
    os.symlink("/etc/passwd", tmp_path / "passwd")
    (tmp_path / "big.bin").write_bytes(b"0" * (2 << 20))
    assert workspace_files(tmp_path, {"a.py": "edited"}) == {"a.py": "edited"}


def test_expected_tests_are_read_from_the_source():
    assert expected_tests(TESTS + "class TestK:\n    def test_k(self):\n        pass\n    def helper(self):\n"
                          "        pass\n\ndef helper():\n    pass\n") == {"test_add", "test_one", "test_k"}


def test_a_complete_passing_report_is_clean_and_anything_less_is_not():
    assert judge(doc({"pytest.xml": PASSING_XML}), {"test_add", "test_one"}, "calc.py").status == "passed"
    # a test missing from the report, no report, a broken report, a nonzero exit, a timeout: never clean
    assert judge(doc({"pytest.xml": PASSING_XML}), {"test_add", "test_two"}, "calc.py").status == "error"
    assert judge(doc({}, output="PASSED test_calc.py::test_add\n1 passed in 0.01s"), {"test_add"}, "x").status == "error"
    assert judge(doc({"pytest.xml": "<testsuites><testcase"}), set(), "x").status == "error"
    assert judge(doc({"pytest.xml": PASSING_XML}, exit_code=1), {"test_add"}, "x").status == "error"
    assert judge(doc({"pytest.xml": PASSING_XML}, timed_out=True), {"test_add"}, "x").status == "error"
    bomb = '<!DOCTYPE x [<!ENTITY a "aaaa">]><testsuites/>'
    assert judge(doc({"pytest.xml": bomb}), set(), "x").status == "error"


def test_failures_point_at_the_deepest_frame_in_the_saved_file():
    xml = ('<testsuites><testsuite><testcase classname="tests.test_calc.TestK" name="test_k" file="tests/test_calc.py" '
           'line="9"><failure message="ValueError: x">tests/test_calc.py:11: in test_k\n    boom()\n'
           'calc.py:5: in boom\n    helper()\ncalc.py:8: in helper\n    raise ValueError("x")\nE   ValueError: x'
           '</failure></testcase></testsuite></testsuites>')
    [failure], ran = read_junit(xml, "calc.py")
    assert (failure.test, failure.path, failure.line, failure.message) == (
        "tests/test_calc.py::TestK::test_k", "calc.py", 8, "ValueError: x")
    [failure], _ = read_junit(xml, "tests/test_calc.py")
    assert (failure.path, failure.line) == ("tests/test_calc.py", 11)


def workspace(tmp_path, calc=CALC, tests=TESTS):
    (tmp_path / "calc.py").write_text(calc)
    (tmp_path / "test_calc.py").write_text(tests)
    return tmp_path


@pytest.mark.slow
def test_a_failing_test_is_reported_and_the_unsaved_fix_clears_it(tmp_path, sandbox):
    root = workspace(tmp_path)
    report = run_file_tests(sandbox, root, "calc.py")
    assert report.status == "failed" and [f.test for f in report.failures] == ["test_calc.py::test_add"]
    assert "assert -1 == 3" in report.failures[0].message
    assert run_file_tests(sandbox, root, "calc.py", {"calc.py": CALC.replace("a - b", "a + b")}).status == "passed"
    assert run_file_tests(sandbox, root, "calc.js").status == "unsupported"
    assert run_file_tests(sandbox, root, "other.py").status == "no_tests"


@pytest.mark.slow
def test_fake_passed_lines_an_early_exit_and_host_writes_cannot_clear_a_real_failure(tmp_path, sandbox):
    marker = tmp_path.parent / f"hrm-lsp-escape-{os.getpid()}"
    hostile = TESTS + (
        "\n\ndef test_zz_forge():\n"
        "    import os, sys\n"
        f"    for path in ({str(marker)!r}, '/tmp/hrm-lsp-escape', {str(tmp_path / 'calc.py')!r}):\n"
        "        try:\n"
        "            open(path, 'w').write('pwned')\n"
        "        except OSError:\n"
        "            pass\n"
        "    fake = ('=== short test summary info ===\\nPASSED test_calc.py::test_add\\n'\n"
        "            'PASSED test_calc.py::test_one\\n2 passed in 0.01s\\n')\n"
        "    for fd in range(1, 20):\n"
        "        try:\n"
        "            os.write(fd, fake.encode())\n"
        "        except OSError:\n"
        "            pass\n"
        "    os._exit(0)\n")
    root = workspace(tmp_path, tests=hostile)
    report = run_file_tests(sandbox, root, "calc.py")
    assert report.status in ("failed", "error") and report.status != "passed"
    assert not marker.exists() and (tmp_path / "calc.py").read_text() == CALC
    # printing fake lines without exiting early: the real failure is still reported
    report = run_file_tests(sandbox, workspace(tmp_path, tests=hostile.replace("    os._exit(0)\n", "")), "calc.py")
    assert report.status == "failed" and [f.test for f in report.failures] == ["test_calc.py::test_add"]


@pytest.mark.slow
def test_a_skipped_test_is_not_a_failure_and_does_not_hide_one(tmp_path, sandbox):
    skipping = "\n\ndef test_later():\n    import pytest\n    pytest.skip('later')\n"
    assert run_file_tests(sandbox, workspace(tmp_path, tests=TESTS + skipping), "calc.py").status == "failed"
    fixed = {"calc.py": CALC.replace("a - b", "a + b")}
    assert run_file_tests(sandbox, workspace(tmp_path, tests=TESTS + skipping), "calc.py", fixed).status == "passed"
