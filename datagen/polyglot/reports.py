"""Which tests an exercise expects, read from the benchmark's own test files, and the verdict of a test run
from its framework's report (pytest's JUnit XML, Jest's JSON, `go test -json`, libtest's log, the JUnit
console's XML, Catch's XML), never from its exit status alone.

A run passes when the test command exited 0, the report is there and readable, no test in it failed,
errored or was skipped, and every expected test appears in it as passed (by name; by count for
JavaScript, whose test titles are not always literals).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

from datagen.polyglot.exercise import Exercise

MAX_RENDERED_OUTPUT = 64 * 1024


@dataclass
class ReportCheck:
    passed: Counter  # test name -> times it passed
    failed: list[str]  # tests that failed or errored (a skipped test is neither: it is just not passed)
    problems: list[str]  # what was wrong with the report itself


# --- the benchmark's test files --------------------------------------------------------------------------
def test_sources(ex: Exercise) -> dict[str, str]:
    """The benchmark files whose tests the language's runner runs (skipped tests enabled), path -> text."""
    bench = {**ex.build_files, **ex.editor_files,
             **{p: enable_skipped_tests(ex.language, c) for p, c in ex.test_files.items()}}
    if ex.language == "go":
        keep = [p for p in bench if "/" not in p and p.endswith("_test.go")]
    elif ex.language == "java":
        keep = [p for p in bench if p.startswith("src/test/java/") and p.endswith(".java")]
    elif ex.language == "rust":
        keep = [p for p in bench if PurePosixPath(p).parent == PurePosixPath("tests") and p.endswith(".rs")]
    else:
        keep = list(ex.test_files)
    return {p: bench[p] for p in sorted(keep)}


def enable_skipped_tests(language: str, test_source: str) -> str:
    if language == "javascript":
        return re.sub(r"\bxtest\(", "test(", test_source)
    if language == "java":
        return "".join(l for l in test_source.splitlines(keepends=True) if "@Disabled" not in l)
    return test_source  # C++: EXERCISM_RUN_ALL_TESTS; Rust: --include-ignored


def expected_tests(language: str, sources: dict[str, str]) -> Counter:
    """Expected test names (JavaScript: the single key "*" with the number of tests). Tests the run leaves
    out on purpose are not expected: Catch's hidden or preprocessed-out cases, Rust tests behind a cargo
    feature, Go files behind a build constraint, Java tests still @Disabled (outside the listed test files),
    JavaScript's `xit`."""
    names: list[str] = []
    for text in sources.values():
        if language == "python":
            names += re.findall(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(test_\w*)[ \t]*\(", text, re.M)
        elif language == "go":
            code = _strip_comments(text, "go")
            if not _go_build_satisfied(text):
                continue  # needs a build tag the run does not set
            names += re.findall(r"^func[ \t]+((?:Test|Fuzz)\w*)[ \t]*\([ \t]*\w+[ \t]+\*testing\.[TF][ \t]*\)",
                                code, re.M)
            names += _go_examples(text)
        elif language == "java":
            names += _java_tests(_strip_comments(text, "java"))
        elif language == "rust":
            names += _rust_tests(_strip_comments(text, "rust"))
        elif language == "cpp":
            names += _catch_tests(_preprocess(_strip_comments(text, "cpp"), {"EXERCISM_RUN_ALL_TESTS"}))
        elif language == "javascript":
            names += ["*"] * len(re.findall(r"(?<![\w$.])(?:test|it)\s*\(", _strip_comments(text, "javascript")))
        else:
            raise ValueError(f"unknown language {language!r}")
    return Counter(n for n in names if n)


_TOKENS = {
    # comments become blanks (newlines kept); string literals stay (names live in them)
    "cpp": r'(?P<s>"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\')|(?P<c>//[^\n]*|/\*.*?\*/)',
    "java": r'(?P<s>"""[\s\S]*?"""|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\')|(?P<c>//[^\n]*|/\*.*?\*/)',
    "go": r'(?P<s>`[^`]*`|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\')|(?P<c>//[^\n]*|/\*.*?\*/)',
    "javascript": r'(?P<s>`(?:\\.|[^`\\])*`|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\')|(?P<c>//[^\n]*|/\*.*?\*/)',
    "rust": r'(?P<s>b?r(?P<h>#*)"[\s\S]*?"(?P=h)|b?"(?:\\.|[^"\\])*"|b?\'(?:\\.|[^\'\\\n])\')|(?P<c>//[^\n]*|/\*.*?\*/)',
}


def _strip_comments(text: str, language: str) -> str:
    def blank(m: re.Match) -> str:
        if m.group("c") is None:
            # Rust: strings become empty, so braces in them do not count as blocks
            return '""' if language == "rust" else m.group(0)
        return " " + "\n" * m.group(0).count("\n")

    return re.sub(_TOKENS[language], blank, text, flags=re.S)


def _next_name(text: str, start: int, pattern: str) -> str:
    m = re.compile(pattern).search(text, start)
    return m.group(1) if m else ""


def _java_tests(code: str) -> list[str]:
    names = []
    for m in re.finditer(r"@Test\b", code):
        head = max(code.rfind(c, 0, m.start()) for c in ";{}")
        name = re.compile(r"\bvoid\s+(\w+)\s*\(").search(code, m.end())
        if name and "@Disabled" not in code[head + 1:name.start()]:
            names.append(name.group(1))
    return names


def _rust_tests(code: str) -> list[str]:
    """#[test] functions, except those (or whose module) sit behind a cargo feature, which is off."""
    names, scopes, depth = [], [], 0  # scopes: depths of feature-gated modules
    test = gated = False
    for m in re.finditer(r"#\[\s*(test|cfg\s*\((?:[^\[\]]|\[[^\]]*\])*\))\s*\]|\bmod\s+\w+\s*\{|\bfn\s+(\w+)|[{};]",
                         code):
        token = m.group(0)
        if m.group(1) == "test":
            test = True
        elif m.group(1):
            gated = gated or ("feature" in m.group(1) and not re.match(r"cfg\s*\(\s*not\b", m.group(1)))
        elif token.startswith("mod"):
            depth += 1
            if gated:
                scopes.append(depth)
            test = gated = False
        elif m.group(2):
            if test and not gated and not scopes:
                names.append(m.group(2))
            test = gated = False
        elif token == "}":
            while scopes and scopes[-1] >= depth:
                scopes.pop()
            depth -= 1
        else:
            depth += token == "{"
            test = gated = False
    return names


def _preprocess(code: str, defined: set[str]) -> str:
    """Lines the C preprocessor keeps, for the #if/#ifdef/#ifndef/#else/#endif forms the tests use."""
    out, active = [], [True]
    for line in code.splitlines():
        directive = re.match(r"\s*#\s*(ifdef|ifndef|if|elif|else|endif)\b(.*)", line)
        if not directive:
            if all(active):
                out.append(line)
            continue
        kind, rest = directive.groups()
        if kind in ("ifdef", "ifndef"):
            active.append((rest.strip() in defined) == (kind == "ifdef"))
        elif kind == "if":
            m = re.fullmatch(r"\s*(!?)\s*defined\s*\(?\s*(\w+)\s*\)?\s*", rest)
            active.append(((m.group(2) in defined) != bool(m.group(1))) if m else True)
        elif kind in ("else", "elif") and len(active) > 1:
            active[-1] = not active[-1] if kind == "else" else True
        elif kind == "endif" and len(active) > 1:
            active.pop()
    return "\n".join(out)


def _catch_tests(code: str) -> list[str]:
    """TEST_CASE names (adjacent literals joined), except hidden ones (a tag starting with `.` or `!hide`)."""
    names = []
    literal = r'"(?:\\.|[^"\\\n])*"'
    for m in re.finditer(rf"\bTEST_CASE\s*\(\s*((?:{literal}\s*)+)(?:,\s*((?:{literal}\s*)+))?", code):
        name = "".join(_c_unescape(x[1:-1]) for x in re.findall(literal, m.group(1)))
        tags = "".join(x[1:-1] for x in re.findall(literal, m.group(2) or ""))
        if not re.search(r"\[(?:\.|!hide\]|hide\])", tags):
            names.append(name)
    return names


_GO_TRUE_TAGS = {"linux", "amd64", "arm64", "unix", "gc"}


def _go_build_satisfied(text: str) -> bool:
    """Whether the file's `//go:build` line holds with no extra tags (Go toolchain tags only); a line it
    cannot read counts as satisfied, so its tests are expected."""
    m = re.search(r"^//go:build\s+(.+)$", text, re.M)
    if not m:
        return True
    tokens = re.findall(r"\|\||&&|!|\(|\)|[\w.]+|\S", m.group(1))

    def parse(i: int, level: int) -> tuple[bool, int]:  # level 0: ||, 1: &&, 2: ! and atoms
        if level == 2:
            if i < len(tokens) and tokens[i] == "!":
                value, i = parse(i + 1, 2)
                return not value, i
            if i < len(tokens) and tokens[i] == "(":
                value, i = parse(i + 1, 0)
                if i >= len(tokens) or tokens[i] != ")":
                    raise ValueError("unbalanced")
                return value, i + 1
            if i < len(tokens) and re.fullmatch(r"[\w.]+", tokens[i]):
                return tokens[i] in _GO_TRUE_TAGS or tokens[i].startswith("go1."), i + 1
            raise ValueError("unexpected token")
        value, i = parse(i, level + 1)
        op = "||" if level == 0 else "&&"
        while i < len(tokens) and tokens[i] == op:
            right, i = parse(i + 1, level + 1)
            value = (value or right) if level == 0 else (value and right)
        return value, i

    try:
        value, end = parse(0, 0)
    except (ValueError, RecursionError):
        return True
    return value if end == len(tokens) else True


def _go_examples(text: str) -> list[str]:
    """Go runs an Example only when its body ends with an `// Output:` comment."""
    out = []
    for m in re.finditer(r"^func[ \t]+(Example\w*)[ \t]*\(\)", text, re.M):
        end = re.compile(r"^}", re.M).search(text, m.end())
        body = text[m.end():end.start() if end else len(text)]
        if re.search(r"//\s*(?:Unordered output|Output):", body):
            out.append(m.group(1))
    return out


def _c_unescape(literal: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), literal)


# --- reading the reports -------------------------------------------------------------------------------------
def read_reports(language: str, reports: dict[str, str]) -> ReportCheck:
    check = ReportCheck(Counter(), [], [])
    reader = {"python": _junit_xml, "java": _junit_xml, "javascript": _jest_json, "go": _go_json,
              "rust": _libtest_log, "cpp": _catch_xml}[language]
    wanted = {"python": ("pytest.xml",), "java": ("junit/",), "javascript": ("jest.json",),
              "go": ("go-test.json",), "rust": (".libtest.log",), "cpp": ("catch.xml",)}[language]
    files = {name: text for name, text in reports.items() if any(w in name for w in wanted)}
    if language == "java":
        files = {n: t for n, t in files.items() if n.endswith(".xml") and PurePosixPath(n).name.startswith("TEST-")}
    if not files:
        check.problems.append("no test report was written")
    for name, text in sorted(files.items()):
        try:
            reader(text, check)
        except (ValueError, SyntaxError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            check.problems.append(f"{name} is not a readable report ({type(exc).__name__}: {str(exc)[:200]})")
    return check


def _xml_root(text: str):
    import xml.etree.ElementTree as ET

    if re.search(r"<!(?:DOCTYPE|ENTITY)", text, re.I):
        raise ValueError("document type declarations are not accepted")
    return ET.fromstring(text)


def _junit_xml(text: str, check: ReportCheck) -> None:
    """pytest's --junitxml and the JUnit console's legacy reports: <testcase name=...> with failure,
    error or skipped children."""
    root = _xml_root(text)
    cases = list(root.iter("testcase"))
    if root.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"unexpected root element <{root.tag}>")
    for case in cases:
        name = re.sub(r"[(\[].*$", "", case.get("name") or "")
        outcomes = {child.tag for child in case}
        if outcomes & {"failure", "error"}:
            check.failed.append(name)
        elif "skipped" not in outcomes:
            check.passed[name] += 1


def _jest_json(text: str, check: ReportCheck) -> None:
    doc = json.loads(text)
    if type(doc) is not dict or type(doc.get("testResults")) is not list:
        raise ValueError("no testResults list")
    for suite in doc["testResults"]:
        if suite.get("status") == "failed":
            check.failed.append(f"test suite {str(suite.get('name', '?'))[-80:]}")
        for test in suite.get("assertionResults") or []:
            if test.get("status") == "passed":
                check.passed["*"] += 1
            elif test.get("status") == "failed":
                check.failed.append(str(test.get("fullName") or test.get("title")))


def _go_json(text: str, check: ReportCheck) -> None:
    """`go test -json` events: the last pass/fail/skip action of each top-level test; the package must pass."""
    final: dict[str, str] = {}
    package_passed = False
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        action, test = event.get("Action"), event.get("Test")
        if action not in ("pass", "fail", "skip"):
            continue
        if not test:
            package_passed = package_passed or action == "pass"
            if action == "fail":
                check.failed.append(f"package {event.get('Package')}")
        elif "/" not in test:
            final[test] = action
    for test, action in final.items():
        if action == "pass":
            check.passed[test] += 1
        elif action == "fail":
            check.failed.append(test)
    if not package_passed:
        check.problems.append("go test reported no passing package")


def _libtest_log(text: str, check: ReportCheck) -> None:
    """libtest's --logfile: one `ok|failed|ignored <path::name>` line per test."""
    for line in text.splitlines():
        outcome, _, name = line.partition(" ")
        if outcome not in ("ok", "failed", "ignored"):
            raise ValueError(f"unexpected line {line[:80]!r}")
        short = name.rsplit("::", 1)[-1]
        if outcome == "ok":
            check.passed[short] += 1
        elif outcome == "failed":
            check.failed.append(name)


def _catch_xml(text: str, check: ReportCheck) -> None:
    root = _xml_root(text)
    if root.tag != "Catch":
        raise ValueError(f"unexpected root element <{root.tag}>")
    if root.find("OverallResults") is None:
        raise ValueError("the report is not complete (no OverallResults)")
    for case in root.iter("TestCase"):
        result = case.find("OverallResult")
        name = case.get("name") or ""
        if result is not None and result.get("success") == "true":
            check.passed[name] += 1
        else:
            check.failed.append(name)  # failed, or the run ended inside it


# --- the verdict ---------------------------------------------------------------------------------------
def judge(language: str, sources: dict[str, str], doc: dict, timeout_s: float) -> tuple[str, str]:
    """(status, output for the report and the solver) of one test run, from the guard's document."""
    output = render_output(language, doc)
    if doc["timed_out"]:
        return "timeout", output + f"\nTests timed out! (limit {timeout_s:g} s)\n"
    if doc["output_limit"]:
        return "fail", output + "\n[sandbox: output_limit]\n"
    if doc["exit_code"] != 0:
        return "fail", output
    problem = report_problem(language, sources, doc)
    if problem:
        return "fail", output + f"\n[test harness: {problem}]\n"
    return "pass", output


def report_problem(language: str, sources: dict[str, str], doc: dict) -> str | None:
    """Why the report does not show every expected test passing, or None when it does."""
    if doc["reports_truncated"]:
        return "the test report was too large to check"
    check = read_reports(language, doc["reports"])
    if check.problems:
        return "; ".join(check.problems) + " (did the test process exit before its test framework finished?)"
    if check.failed:
        return f"the test report shows {len(check.failed)} tests not passing: {', '.join(check.failed[:5])}"
    expected = expected_tests(language, sources)
    missing = expected - check.passed
    if missing:
        n, total = sum(missing.values()), sum(expected.values())
        names = "" if language == "javascript" else f" (e.g. {', '.join(sorted(missing)[:5])})"
        return (f"{n} of the {total} expected tests are not in the test report{names}; "
                "the tests did not all run (did the test process exit early?)")
    return None


def render_output(language: str, doc: dict) -> str:
    """The run's output as a person reads it: Go's text rebuilt from its events, Catch's failures listed."""
    output = doc["output"]
    if language == "go":
        text = doc["reports"].get("go-test.json", "")
        lines = []
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if type(event) is dict and event.get("Action") in ("output", "build-output") and type(event.get("Output")) is str:
                lines.append(event["Output"])
        output = _cut(output + "".join(lines))
    elif language == "cpp" and doc["exit_code"] != 0:
        output = _cut(output + _catch_failures(doc["reports"].get("catch.xml", "")))
    return output


def _catch_failures(text: str) -> str:
    try:
        root = _xml_root(text)
    except (ValueError, SyntaxError):
        return ""
    lines = []
    for case in root.iter("TestCase"):
        result = case.find("OverallResult")
        if result is not None and result.get("success") == "true":
            continue
        lines.append(f"\nFAILED: {case.get('name')}\n")
        for node in case.iter():
            if node.tag == "Expression" and node.get("success") == "false":
                original = (node.findtext("Original") or "").strip()
                expanded = (node.findtext("Expanded") or "").strip()
                lines.append(f"  {node.get('filename', '')}:{node.get('line', '')}: {node.get('type', '')}"
                             f"( {original} ) with expansion: {expanded}\n")
            elif node.tag in ("Exception", "FatalErrorCondition"):
                lines.append(f"  {node.tag}: {(node.text or '').strip()}\n")
    return "".join(lines)


def _cut(text: str) -> str:
    if len(text) <= MAX_RENDERED_OUTPUT:
        return text
    half = MAX_RENDERED_OUTPUT // 2
    return text[:half] + "\n[... output cut ...]\n" + text[-half:]
