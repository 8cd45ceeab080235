"""datagen/polyglot/reports.py: which tests each language's test files expect, and the verdict read from the
framework's report. A report that leaves an expected test out, is forged, incomplete or not a report
fails; only every expected test passing passes."""

import json

import pytest

from datagen.polyglot import reports
from evals.polyglot.exercises import Exercise

PY_TESTS = {"bowling_test.py": "import unittest\n\nclass T(unittest.TestCase):\n    def test_one(self):\n        pass\n\n"
                               "    # def test_commented(self):\n    async def test_two(self):\n        pass\n"}


def doc(reports_: dict, exit_code: int = 0, **changes) -> dict:
    """A report guard document as the jail hands it back."""
    return {"exit_code": exit_code, "timed_out": False, "output_limit": False, "output": "ran\n",
            "reports": reports_, "reports_truncated": False, **changes}


def junit(*cases: tuple[str, str]) -> str:
    body = "".join(f'<testcase name="{name}">{"" if outcome == "ok" else f"<{outcome}/>"}</testcase>'
                   for name, outcome in cases)
    return f'<?xml version="1.0"?><testsuites><testsuite name="s">{body}</testsuite></testsuites>'


# --- expected tests ------------------------------------------------------------------------------------
def test_python_expects_every_test_function_but_not_commented_ones():
    assert reports.expected_tests("python", PY_TESTS) == {"test_one": 1, "test_two": 1}


def test_go_expects_tests_and_examples_with_output_but_not_files_behind_a_build_tag():
    plain = ("package x\n\nimport \"testing\"\n\nfunc TestA(t *testing.T) {}\n// func TestHidden(t *testing.T) {}\n"
             "func FuzzB(f *testing.F) {}\nfunc helper(t *testing.T) {}\n"
             "func ExampleC() {\n\tprintln(1)\n\t// Output: 1\n}\nfunc ExampleNoOutput() {\n}\n")
    tagged = "//go:build integration\n\npackage x\n\nfunc TestTagged(t *testing.T) {}\n"
    linux = "//go:build linux && !windows\n\npackage x\n\nfunc TestLinux(t *testing.T) {}\n"
    expected = reports.expected_tests("go", {"a_test.go": plain, "b_test.go": tagged, "c_test.go": linux})
    assert expected == {"TestA": 1, "FuzzB": 1, "ExampleC": 1, "TestLinux": 1}


def test_java_leaves_out_disabled_tests():
    code = ("class T {\n  @Test\n  public void a() {}\n  @Disabled(\"x\")\n  @Test\n  public void b() {}\n"
            "  /* @Test public void c() {} */\n  @Test public void d() {}\n}\n")
    assert reports.expected_tests("java", {"T.java": code}) == {"a": 1, "d": 1}


def test_rust_leaves_out_tests_behind_a_cargo_feature():
    code = ('#[test]\nfn a() { let s = "}"; }\n#[test]\n#[cfg(feature = "extra")]\nfn b() {}\n'
            '#[cfg(feature = "x")]\nmod gated {\n    #[test]\n    fn c() {}\n}\n#[test]\n#[ignore]\nfn d() {}\n'
            '#[cfg(not(feature = "x"))]\n#[test]\nfn e() {}\n')
    assert reports.expected_tests("rust", {"tests/t.rs": code}) == {"a": 1, "d": 1, "e": 1}


def test_catch_leaves_out_hidden_and_preprocessed_out_cases():
    code = ('TEST_CASE("first " "part") {}\nTEST_CASE("hidden", "[.]") {}\n#if defined(EXERCISM_RUN_ALL_TESTS)\n'
            'TEST_CASE("all") {}\n#endif\n#ifdef NOT_DEFINED\nTEST_CASE("never") {}\n#endif\n// TEST_CASE("gone")\n')
    assert reports.expected_tests("cpp", {"t.cpp": code}) == {"first part": 1, "all": 1}


def test_javascript_counts_tests_because_titles_are_not_always_literals():
    code = "describe('x', () => {\n  test('a', () => {});\n  it(`b ${1}`, () => {});\n  // test('c')\n  xit('d');\n});\n"
    assert reports.expected_tests("javascript", {"x.spec.js": code}) == {"*": 2}


def test_test_sources_are_the_files_the_runner_runs():
    ex = Exercise("go", "x", "Do it.", {"x.go": ""}, {"x_test.go": "package x\n"},
                  build_files={"go.mod": "module x\n", "cases_test.go": "package x\n", "sub/y_test.go": ""})
    assert list(reports.test_sources(ex)) == ["cases_test.go", "x_test.go"]


# --- the verdict -------------------------------------------------------------------------------------------
def test_every_expected_test_passing_passes():
    status, output = reports.judge("python", PY_TESTS, doc({"pytest.xml": junit(("test_one", "ok"),
                                                                                 ("test_two[1]", "ok"))}), 60)
    assert (status, output) == ("pass", "ran\n")


@pytest.mark.parametrize("cases, problem", [
    ((("test_one", "ok"),), "1 of the 2 expected tests are not in the test report (e.g. test_two)"),
    ((("test_one", "ok"), ("test_two", "skipped")), "1 of the 2 expected tests are not in the test report"),
    ((("test_one", "ok"), ("test_two", "failure")), "shows 1 tests not passing: test_two"),
    ((("test_one", "ok"), ("test_two", "error")), "shows 1 tests not passing: test_two"),
    ((("test_one", "ok"), ("test_one", "ok")), "1 of the 2 expected tests are not in the test report"),
])
def test_a_report_without_every_expected_test_passing_fails(cases, problem):
    status, output = reports.judge("python", PY_TESTS, doc({"pytest.xml": junit(*cases)}), 60)
    assert status == "fail" and problem in output


@pytest.mark.parametrize("document, status, says", [
    (doc({}, exit_code=1), "fail", "ran\n"),
    (doc({}, timed_out=True), "timeout", "Tests timed out! (limit 60 s)"),
    (doc({}, output_limit=True), "fail", "[sandbox: output_limit]"),
    (doc({}, reports_truncated=True), "fail", "the test report was too large to check"),
    (doc({}), "fail", "no test report was written"),
    (doc({"pytest.xml": "<testsuites><testsuite>"}), "fail", "pytest.xml is not a readable report (ParseError"),
    (doc({"pytest.xml": "<html><testcase name='test_one'/><testcase name='test_two'/></html>"}), "fail",
     "unexpected root element <html>"),
    (doc({"pytest.xml": '<!DOCTYPE x [<!ENTITY a "test_one">]><testsuites><testcase name="&a;"/></testsuites>'}),
     "fail", "document type declarations are not accepted"),
    (doc({"other.xml": junit(("test_one", "ok"), ("test_two", "ok"))}), "fail", "no test report was written"),
])
def test_exit_status_limits_and_unreadable_reports_fail(document, status, says):
    got, output = reports.judge("python", PY_TESTS, document, 60)
    assert got == status and says in output


def test_a_zero_exit_alone_never_passes():
    assert reports.report_problem("python", PY_TESTS, doc({})) == (
        "no test report was written (did the test process exit before its test framework finished?)")


def test_go_needs_the_package_to_pass_and_takes_each_tests_last_action():
    sources = {"x_test.go": "package x\n\nfunc TestA(t *testing.T) {}\nfunc TestB(t *testing.T) {}\n"}
    events = [{"Action": "run", "Test": "TestA"}, {"Action": "output", "Test": "TestA", "Output": "=== RUN TestA\n"},
              {"Action": "fail", "Test": "TestA"}, {"Action": "pass", "Test": "TestA"},
              {"Action": "pass", "Test": "TestB/sub"}, {"Action": "pass", "Test": "TestB"}]
    lines = "\n".join(json.dumps(e) for e in events)
    assert reports.judge("go", sources, doc({"go-test.json": lines}), 60)[0] == "fail"  # no package pass
    status, output = reports.judge("go", sources, doc({"go-test.json": lines + '\n{"Action": "pass"}\n'}), 60)
    assert status == "pass" and "=== RUN TestA" in output
    failing = lines + '\n{"Action": "fail", "Test": "TestB"}\n{"Action": "pass"}\n'
    assert reports.judge("go", sources, doc({"go-test.json": failing}), 60)[0] == "fail"


def test_libtest_catch_jest_and_junit_console_reports():
    rust = {"tests/t.rs": "#[test]\nfn a() {}\n#[test]\nfn b() {}\n"}
    assert reports.judge("rust", rust, doc({"t.libtest.log": "ok t::a\nok t::b\n"}), 60)[0] == "pass"
    forged = reports.judge("rust", rust, doc({"t.libtest.log": "ok t::a\nok t::b\ntest result: ok\n"}), 60)
    assert forged[0] == "fail" and "unexpected line" in forged[1]
    cpp = {"t.cpp": 'TEST_CASE("a") {}\n'}
    good = '<Catch><Group><TestCase name="a"><OverallResult success="true"/></TestCase></Group><OverallResults/></Catch>'
    assert reports.judge("cpp", cpp, doc({"catch.xml": good}), 60)[0] == "pass"
    cut = good.replace("<OverallResults/>", "")
    assert "the report is not complete" in reports.judge("cpp", cpp, doc({"catch.xml": cut}), 60)[1]
    js = {"a.spec.js": "test('a', () => {});\ntest('b', () => {});\n"}
    jest = {"testResults": [{"status": "passed", "assertionResults": [{"status": "passed"}, {"status": "passed"}]}]}
    assert reports.judge("javascript", js, doc({"jest.json": json.dumps(jest)}), 60)[0] == "pass"
    jest["testResults"][0]["assertionResults"].pop()
    assert reports.judge("javascript", js, doc({"jest.json": json.dumps(jest)}), 60)[0] == "fail"
    java = {"src/test/java/T.java": "class T { @Test public void a() {} }\n"}
    xml = junit(("a()", "ok"))
    assert reports.judge("java", java, doc({"junit/TEST-junit-jupiter.xml": xml}), 60)[0] == "pass"
    assert reports.judge("java", java, doc({"junit/other.xml": xml}), 60)[0] == "fail"  # not a TEST-*.xml report


def test_long_output_is_cut_in_the_middle():
    assert reports._cut("short") == "short"
    text = "a" * reports.MAX_RENDERED_OUTPUT + "b" * reports.MAX_RENDERED_OUTPUT
    cut = reports._cut(text)
    assert cut == "a" * (len(text) // 4) + "\n[... output cut ...]\n" + "b" * (len(text) // 4)
