"""Polyglot exercises of every language as agent tasks (agents/polyglot.py). Fast: which changes of a patch
count. Slow, per language, on a real exercise of the benchmark in the real jail with the real toolchain: the
oracle's reference resolves it with run_tests as its feedback; an agent that rewrites, deletes or adds to the
tests or the build files, or echoes a pass summary, is not resolved (while the real fix is, whatever it did to
the tests); nor is a solution that prints a pass summary and exits early, nor a wrong solution."""

import base64
import re
import shlex
from types import SimpleNamespace

import pytest

from agents.loop import Budget, open_session, run_episode, verify
from agents.polyglot import PatchRefused, solution_from_patch, verify_exercise
from agents.policies import policy_from_spec
from agents.tasks import file_diff, from_polyglot
from agents.tools import Action
from datagen.polyglot.exercise import Exercise

EX = Exercise("python", "adder", "Add.", {"adder.py": "def add(a, b):\n    pass\n", "pkg/util.py": "X = 1\n"},
              {"adder_test.py": "from adder import add\n"}, build_files={"setup.cfg": "[x]\n"})


def test_only_the_solution_files_changes_count():
    stubs = {**EX.solution_files, **EX.test_files, **EX.build_files}
    patch = file_diff(stubs, {**stubs, "adder.py": "def add(a, b):\n    return a + b\n", "adder_test.py": "",
                              "setup.cfg": "[y]\n", "conftest.py": "X = 2\n", "pkg/util.py": "X = 1\nY = 2"})
    solution, ignored = solution_from_patch(EX, patch)
    assert solution == {"adder.py": "def add(a, b):\n    return a + b\n", "pkg/util.py": "X = 1\nY = 2"}
    assert ignored == ["adder_test.py", "conftest.py", "setup.cfg"]
    deleted = {p: c for p, c in stubs.items() if p != "pkg/util.py"}
    assert solution_from_patch(EX, file_diff(stubs, deleted))[0]["pkg/util.py"] == ""
    assert solution_from_patch(EX, "") == (EX.solution_files, [])


@pytest.mark.parametrize("header", ["new file mode 120000", "rename from adder.py\nrename to adder2.py"])
def test_a_solution_file_made_a_link_or_renamed_is_refused(header):
    body = "--- /dev/null\n+++ b/adder.py\n@@ -0,0 +1 @@\n+/etc/passwd\n" if "120000" in header else ""
    patch = f"diff --git a/adder.py b/adder.py\n{header}\n{body}"
    with pytest.raises(PatchRefused):
        solution_from_patch(EX, patch.replace("b/adder.py", "b/adder2.py") if "rename" in header else patch)


def test_a_hunk_that_does_not_match_the_stub_or_a_broken_patch_fails_before_any_test_runs():
    other = {"adder.py": "def add(x, y):\n    pass\n"}
    mismatch = file_diff(other, {"adder.py": "def add(x, y):\n    return x + y\n"})
    with pytest.raises(PatchRefused, match="does not match"):
        solution_from_patch(EX, mismatch)
    task = SimpleNamespace(exercise=EX.to_row())
    broken = "diff --git a/adder.py b/adder.py\n--- a/adder.py\n+++ b/adder.py\n@@ -1,5 +1,5 @@\n x\n"
    for patch in (mismatch, broken):  # no sandbox: nothing may run
        assert verify_exercise(None, task, patch)["status"] == "patch_failed"


class Problems:
    """A warehouse holding polyglot_problems partitions only."""

    def __init__(self, rows: dict[str, list[dict]]):
        self.rows = rows

    def partitions(self, name):
        return sorted(self.rows) if name == "polyglot_problems" else []

    def read_table(self, name, partition):
        return SimpleNamespace(to_pylist=lambda: list(self.rows[partition]))


def test_agent_rollouts_take_the_first_exercises_of_the_languages_asked_for(monkeypatch):
    import agents.tasks
    from agents.rollouts import pick_polyglot_tasks

    warehouse = Problems({language: [Exercise(language, name, "Do.", {"a.x": ""}, {"t.x": ""}).to_row()
                                     for name in ("b", "a", "c")] for language in ("go", "rust")})
    warnings = []
    monkeypatch.setattr(agents.tasks, "unsupported_reason", lambda language: "no rustc" if language == "rust" else None)
    picked = pick_polyglot_tasks(warehouse, ("all",), 2, log=type("Log", (), {"warning": warnings.append})())
    assert [t.instance_id for t in picked] == ["polyglot.go.a", "polyglot.go.b"] and "no rustc" in warnings[0]
    assert [t.language for t in pick_polyglot_tasks(warehouse, ("go", "java"), 1)] == ["go"]
    assert pick_polyglot_tasks(warehouse, (), 1) == []


# --- real exercises in the real jail -------------------------------------------------------------
# language -> (exercise, (old, new): a change of the reference that leaves it wrong but building)
CASES = {
    "cpp": ("diamond", ('return {"A"};', 'return {"B"};')),
    "go": ("crypto-square", ('cols[numCols-i-1] += " "', 'cols[numCols-i-1] += ""')),
    "java": ("house", ('"malt",', '"salt",')),
    "javascript": ("triangle", ("return s1 === s2 || s1 === s3 || s2 === s3;", "return s1 === s2 || s2 === s3;")),
    "python": ("grep", ("line = line.lower()", "line = line.upper()")),
    "rust": ("accumulate", ("for val in values {", "for val in values.into_iter().skip(1) {")),
}


def fake_tests(language: str, path: str, text: str) -> str:
    """A test file that passes whatever the solution does."""
    if language == "go":
        package = re.search(r"^package (\w+)", text, re.M).group(1)
        return f"package {package}\n\nimport \"testing\"\n\nfunc TestOK(t *testing.T) {{}}\n"
    if language == "java":
        name = path.rsplit("/", 1)[-1].removesuffix(".java")
        return (f"import org.junit.jupiter.api.Test;\n\npublic class {name} {{\n"
                "    @Test\n    public void ok() {}\n}\n")
    if language == "cpp":
        return text[:text.index("#endif") + len("#endif")] + '\n\nTEST_CASE("ok") {}\n'
    return {"javascript": "test('ok', () => {});\n", "rust": "#[test]\nfn ok() {}\n",
            "python": "def test_ok():\n    pass\n"}[language]


def fake_pass(language: str, text: str) -> str:
    """The solution file printing a pass summary and ending the test process with status 0 before any test."""
    if language == "go":
        return re.sub(r"^(package \w+\n)", "\\1\nimport (\n\thrmfmt \"fmt\"\n\thrmos \"os\"\n)\n\nfunc init() {\n"
                      "\thrmfmt.Println(\"PASS\\nok\")\n\thrmos.Exit(0)\n}\n", text, count=1, flags=re.M)
    if language == "java":
        exit_early = '\n    static { System.out.println("[ 14 tests successful ]"); System.exit(0); }\n'
        return text.replace("{", "{" + exit_early, 1)
    if language == "cpp":
        return text + ("#include <cstdio>\n#include <cstdlib>\n[[maybe_unused]] static const int hrm_ok = "
                       "(std::puts(\"All tests passed\"), std::exit(0), 0);\n")
    if language == "rust":
        return ("pub fn map<F, T, U>(_values: Vec<T>, _f: F) -> Vec<U> where F: FnMut(T) -> U {\n"
                "    println!(\"test result: ok. 12 passed; 0 failed\");\n    std::process::exit(0)\n}\n")
    return {"javascript": "console.log('Tests: 19 passed, 19 total');\nprocess.exit(0);\n",
            "python": "import os\nprint('25 passed')\nos._exit(0)\n"}[language] + text


class Scripted:
    kind, name, last_tokens = "scripted", "scripted", 0

    def __init__(self, replies):
        self.replies = list(replies)

    def act(self, messages):
        return self.replies.pop(0) if self.replies else Action("submit", {}).render()


def bash(command: str) -> str:
    return Action("bash", {"command": command}).render()


def write(path: str, text: str) -> str:
    return bash(f"printf %s {base64.b64encode(text.encode()).decode()} | base64 -d > {shlex.quote(path)}")


@pytest.fixture(scope="module")
def benchmark(polyglot_bundle, tmp_path_factory):
    from evals.polyglot.exercises import PINNED_COMMIT
    from evals.polyglot.pipeline import clone_benchmark

    dest = tmp_path_factory.mktemp("agent_polyglot") / "polyglot-benchmark"
    clone_benchmark(str(polyglot_bundle), dest, PINNED_COMMIT)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("language", sorted(CASES))
def test_an_exercise_is_resolved_by_its_solution_and_by_no_trick(language, benchmark, sandbox, sessions):
    from datagen.polyglot.harness import unsupported_reason
    from evals.polyglot.exercises import read_exercise

    if unsupported_reason(language):
        pytest.skip(unsupported_reason(language))
    name, (old, new) = CASES[language]
    task = from_polyglot(read_exercise(benchmark / language / "exercises" / "practice" / name, language,
                                       benchmark).to_row())
    ex = Exercise.from_row(task.exercise)
    budget = Budget(max_steps=10, max_wall_s=300)

    with open_session(sessions, sandbox, task) as s:
        oracle = run_episode(policy_from_spec("oracle"), s, task, budget)
    assert oracle.status == "submitted" and verify(sandbox, task, oracle.patch)["resolved"], oracle.detail
    feedback = next(st for st in oracle.steps if st.tool == "run_tests")
    assert feedback.exit_code == 0 and feedback.observation.strip(), feedback.observation[-500:]

    # the tests rewritten to pass, the others deleted, a build file edited, a pass summary echoed
    first, *others = sorted(ex.test_files)
    tricks = [write(first, fake_tests(language, first, ex.test_files[first]))]
    tricks += [bash(f"rm -f {' '.join(map(shlex.quote, others))}")] if others else []
    tricks += [bash(f"echo >> {shlex.quote(sorted(ex.build_files)[0])}")] if ex.build_files else []
    tricks += [Action("run_tests", {}).render(), bash("echo 'test result: ok. 12 passed; 0 failed'; echo PASS")]
    with open_session(sessions, sandbox, task) as s:
        cheat = run_episode(Scripted(tricks), s, task, budget)
    if language != "rust":  # the Rust stub does not compile; elsewhere the rewritten tests pass in the session
        assert next(st for st in cheat.steps if st.tool == "run_tests").exit_code == 0
    verdict = verify(sandbox, task, cheat.patch)
    assert not verdict["resolved"] and first in verdict["ignored_files"], verdict
    assert verify(sandbox, task, cheat.patch + task.gold_patch)["resolved"]  # the fix counts on the restored tests
    no_tests = {p: c for p, c in task.files.items() if p not in ex.test_files}  # nothing left to fail locally
    verdict = verify(sandbox, task, file_diff(task.files, no_tests))
    assert not verdict["resolved"] and set(ex.test_files) <= set(verdict["ignored_files"]), verdict

    target = sorted(ex.solution_files)[0]
    early = file_diff(ex.solution_files, {**ex.solution_files, target: fake_pass(language, ex.solution_files[target])})
    early_verdict = verify(sandbox, task, early)
    assert not early_verdict["resolved"] and early_verdict["status"] == "failed", early_verdict
    wrong_file = next(p for p, c in ex.reference_files.items() if old in c)
    wrong = {**ex.solution_files, **{p: ex.reference_files[p] for p in ex.solution_files if p in ex.reference_files},
             wrong_file: ex.reference_files[wrong_file].replace(old, new)}
    wrong_verdict = verify(sandbox, task, file_diff(ex.solution_files, wrong))
    assert not wrong_verdict["resolved"] and wrong_verdict["status"] == "failed", wrong_verdict
