"""The sandboxed grader reproduces lcb_runner's verdicts and result codes."""

import json
from pathlib import Path

import pytest

from evals.lcb.grader import evaluate, grade_generations
from evals.lcb.records import LcbProblem
from evals.lcb.source import load_records

FIXTURES = Path(__file__).parents[2] / "fixtures" / "lcb"


def stdin_problem(tests, qid="p_stdin"):
    return LcbProblem(qid, "t", "c", "atcoder", "abc1", "2024-01-01T00:00:00", "easy", "",
                      public_tests=[{"input": i, "output": o, "testtype": "stdin"} for i, o in tests])


def call_problem(tests, fn="solve", qid="p_call"):
    return LcbProblem(qid, "t", "c", "leetcode", "w1", "2024-01-01T00:00:00", "easy", "",
                      public_tests=[{"input": i, "output": o, "testtype": "functional"} for i, o in tests], func_name=fn)


def grade(problem, codes, sandbox, timeout=1):
    [q] = grade_generations([problem], {problem.question_id: codes}, sandbox, timeout=timeout)
    return q


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["code_generation_plain.jsonl", "code_generation_pickled.jsonl"])
def test_fixtures_grade_as_expected(sandbox, fixture):
    problems = load_records([FIXTURES / fixture]).problems
    generations = json.loads((FIXTURES / "generations.json").read_text())
    expected = json.loads((FIXTURES / "expected_graded.json").read_text())
    out = evaluate(problems, generations, sandbox, timeout=1)
    assert {q["question_id"]: q["graded_list"] for q in out["questions"]} == expected
    assert out["pass@1"] == pytest.approx(sum(sum(v) / 5 for v in expected.values()) / 3)
    assert out["pass@5"] == 1.0
    codes = {q["question_id"]: q["results"] for q in out["questions"]}
    assert codes["abc901_a"][3] == [-3]
    assert codes["abc901_a"][4] == [-4]
    assert codes["2051_A"][4] == [-4]  # syntax error
    # method not found: lcb_runner's run_test fails to unpack grade_call_based's None
    assert codes["3901"][2] == [-4]
    meta = {q["question_id"]: q["metadata"] for q in out["questions"]}["3901"][2]
    assert meta["error_message"] == "Error during testing: cannot unpack non-iterable NoneType object"
    assert codes["3901"][1] == [False]  # call-based wrong answer is the comparison's False
    assert out["by_platform"]["leetcode"]["n"] == 1


@pytest.mark.slow
def test_stdin_semantics(sandbox):
    p = stdin_problem([("1 2\n", "3\n"), ("4 5\n", "9\n"), ("0 0\n", "0\n")])
    q = grade(p, [
        "a, b = map(int, input().split())\nprint(a + b)",
        "from sys import stdin\na, b = map(int, stdin.readline().split())\nprint(a + b)",
        "import sys\nprint(sum(map(int, sys.stdin.read().split())))",
        "import sys\nsys.stderr.write('noise' * 1000)\nprint(sum(map(int, input().split())))",
        "a, b = map(int, input().split())\nprint(a + b)\nprint()\n\n",  # trailing blank lines are stripped
        "a, b = map(int, input().split())\nprint(a + b, 'x')",
        "a, b = map(int, input().split())\nprint(f'{a + b}.0')",  # Decimal comparison: 3.0 == 3
        "import sys\nprint(sys.stdin.buffer.read())",
        "import os\nos.system('true')\nprint(3)",  # the reliability guard disables os.system
        "a, b = map(int, input().split())\nif a == 4:\n    exit()\nprint(a + b)",  # exit() ends the test, not the run
    ], sandbox)
    assert q["graded_list"] == [True, True, True, True, True, False, True, False, False, False]
    assert q["results"][5] == [-2]
    assert q["metadata"][5]["error_message"].startswith("Wrong answer at output_line_idx=0")
    assert q["results"][7] == [-4] and q["results"][8] == [-4]
    assert q["results"][9] == [True, -2]


@pytest.mark.slow
def test_call_based_semantics(sandbox):
    p = call_problem([("[1, 2]\n3", "[1, 2, 3]"), ("[]\n0", "[0]"), ("[5]\n1", "[5, 1]")])
    q = grade(p, [
        "class Solution:\n    def solve(self, a, x):\n        return a + [x]",
        "def solve(a, x):\n    return tuple(a + [x])",  # module function, tuple -> list
        "class Solution:\n    def solve(self, a, x):\n        return a + [x] if x else []",
        "class Solution:\n    def solve(self, a, x):\n        return a[10]",
        "class Solution:\n    def solve(self, a, x):\n        while True:\n            pass",
        "class Solution:\n    def solve(self, a, x):\n        raise SystemExit(0)",
        "import this_module_does_not_exist\nclass Solution:\n    def solve(self, a, x):\n        return a",
    ], sandbox)
    assert q["graded_list"] == [True, True, False, False, False, False, False]
    assert q["results"][2] == [True, False]
    assert q["results"][3] == [-4] and q["metadata"][3]["error_code"] == -4
    assert q["results"][4] == [-3] and q["metadata"][4]["error_message"] == "Time Limit Exceeded"
    assert q["results"][5] == [-5]
    assert q["results"][6] == [-4] and "Error during testing" in q["metadata"][6]["error_message"]


@pytest.mark.slow
def test_ignoring_the_alarm_hits_the_global_timeout(sandbox):
    p = stdin_problem([("1\n", "1\n")])
    code = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"
    q = grade(p, [code], sandbox, timeout=1)
    assert q["results"] == [[-1]] and q["metadata"][0]["error_code"] == -1


@pytest.mark.slow
def test_unknown_question_ids_are_refused(sandbox):
    with pytest.raises(ValueError, match="unknown question ids: nope"):
        grade_generations([stdin_problem([("1\n", "1\n")])], [{"question_id": "nope", "code_list": ["x"]}], sandbox)


@pytest.mark.slow
def test_programs_have_the_recursion_headroom_they_have_under_lcb_runner(sandbox):
    # Under lcb_runner's codegen_metrics (nvidia-livecodebench 26.3) this probe reports 266 levels left
    # in a stdin program, 269 in a call-based method and 267 at module level of call-based code.
    probe = ("import sys\nsys.setrecursionlimit(300)\ndef f(k):\n    try:\n        return f(k + 1)\n"
             "    except RecursionError:\n        return k\n")
    stdin = grade(stdin_problem([("1\n", "266\n")]), [probe + "print(f(0))"], sandbox)
    call = grade(call_problem([("1", "269")], fn="depth"),
                 [probe + "class Solution:\n    def depth(self, x):\n        return f(0)",
                  probe + "R = f(0)\nclass Solution:\n    def depth(self, x):\n        return R + 2"], sandbox)
    assert stdin["graded_list"] == [True], stdin["metadata"]
    assert call["graded_list"] == [True, True], call["metadata"]


@pytest.mark.slow
def test_numpy_imports_despite_the_guard_as_in_lcb_runner(sandbox):
    # lcb_runner's worker has numpy loaded before the guard nulls os.putenv (which numpy's import calls).
    q = grade(stdin_problem([("1 2\n", "3\n")]), ["import numpy as np\nprint(int(np.sum(list(map(int, input().split())))))"],
              sandbox)
    assert q["graded_list"] == [True], q["metadata"]


def _one_batch(sandbox, items, samples):
    """Run the given items as ONE batch (one jail), as run_batches would for a larger workload; the
    jail gets the inputs, the host judges against the outputs."""
    from evals.lcb.grader import LcbCase, LcbJudge, RunnerJail

    cases = {k: LcbCase(v) for k, v in samples.items()}
    shared = {k: {"inputs": c.inputs, "fn_name": c.fn_name} for k, c in cases.items()}
    jail = RunnerJail(sandbox, None, "lcb")
    try:
        body = (f'"shared": {json.dumps(shared)}, "items": {json.dumps(items)}').encode()
        answers, _ = jail.grade(body, [LcbJudge(cases[item["shared_key"]]) for item in items],
                                [float(item["limit_s"]) for item in items])
    finally:
        jail.close()
    return answers


@pytest.mark.slow
def test_a_generation_cannot_touch_the_next_one_in_its_batch(sandbox):
    shared = {"p": {"inputs": ["1\n"], "outputs": ["clean\n"], "fn_name": None}}
    leave_daemon = ("import posix, time\nif posix.fork() == 0:\n    time.sleep(0.5)\n"
                    "    open('/tmp/left-behind', 'w').write('x')\n    posix._exit(0)\nprint('clean')")
    forge = ("import posix\nppid = posix.getppid()\nfor fd in range(64):\n    try:\n"
             "        f = posix.open(f'/proc/{ppid}/fd/{fd}', posix.O_WRONLY)\n"
             "        posix.write(f, b'm 3 {\"test\": 0, \"out\": \"clean\"}\\nx 3 {\"wall_s\": 0}\\n')\n"
             "    except OSError:\n        pass\nprint('clean')")
    check = "import time, posix\ntime.sleep(1.0)\nprint('clean' if not posix.path.exists('/tmp/left-behind') else 'dirty')"
    check = check.replace("posix.path", "__import__('os').path")
    items = [{"shared_key": "p", "code": c, "timeout": 3, "limit_s": 10} for c in (leave_daemon, forge, check, "print('x')")]
    answers = _one_batch(sandbox, items, shared)
    assert answers[0]["results"] == [True] and answers[1]["results"] == [True]
    assert answers[2]["results"] == [True], answers[2]  # the daemon was killed before it could write
    assert answers[3]["results"] == [-2]  # not overwritten by the forged line


@pytest.mark.slow
def test_files_a_generation_writes_are_gone_before_the_next_one(sandbox):
    # A module planted in the working directory (first on sys.path) or /tmp must not reach later programs.
    shared = {"p": {"inputs": ["1\n"], "outputs": ["clean\n"], "fn_name": None}}
    plant = ("import os\nopen('helper_mod.py', 'w').write(\"print('planted')\\nraise SystemExit\")\n"
             "os.makedirs('/tmp/home/pkg', exist_ok=True)\nopen('/tmp/home/pkg/x', 'w').write('x')\n"
             "open('/tmp/note', 'w').write('x')\nprint('clean')")
    use = ("import os\ntry:\n    import helper_mod\nexcept ImportError:\n    pass\n"
           "left = {'helper_mod.py', 'note', 'pkg'} & set(os.listdir('.') + os.listdir('/tmp') + os.listdir('/tmp/home'))\n"
           "print('clean' if not left else left)")
    items = [{"shared_key": "p", "code": c, "timeout": 3, "limit_s": 10} for c in (plant, use)]
    answers = _one_batch(sandbox, items, shared)
    assert answers[0]["results"] == [True] and answers[1]["results"] == [True], answers


@pytest.mark.slow
def test_a_program_that_kills_its_runner_only_fails_itself(sandbox):
    p = stdin_problem([("1\n", "1\n")])
    killer = "import posix, signal\nposix.kill(posix.getppid(), signal.SIGKILL)\nprint(1)"
    q = grade(p, ["print(1)", killer, "print(1)", "print(2)"], sandbox)
    assert q["graded_list"] == [True, True, True, False] or q["results"][1] == [-5]
    assert q["graded_list"][0] and q["graded_list"][2] and not q["graded_list"][3]


@pytest.mark.slow
def test_a_runner_killed_mid_batch_costs_only_its_killer(sandbox):
    # 40 generations make batches of 3; the killer's batch mates are graded again, one per jail.
    p = stdin_problem([("1\n", "1\n")])
    killer = "import posix, signal\nposix.kill(posix.getppid(), signal.SIGKILL)\nprint(1)"
    codes = ["print(1)"] * 19 + [killer] + ["print(1)", "print(2)"] * 10
    q = grade(p, codes, sandbox)
    assert q["results"][19] == [-5] and "runner died" in q["metadata"][19]["error"]
    assert q["graded_list"][:19] == [True] * 19 and q["graded_list"][20:] == [True, False] * 10


@pytest.mark.slow
def test_a_stopped_runner_costs_one_item_limit_not_the_batch(sandbox):
    import time

    p = stdin_problem([("1\n", "1\n")])
    stopper = "import posix, signal\nposix.kill(posix.getppid(), signal.SIGSTOP)\nprint(1)"
    codes = ["print(1)"] * 64 + [stopper] + ["print(1)"] * 65  # batches of 8: 56 s of limits each
    start = time.monotonic()
    q = grade(p, codes, sandbox)  # timeout 1: each generation's limit is (1 + 1) * 1 + 5 = 7 s
    took = time.monotonic() - start
    assert q["results"][64] == [-1] and q["graded_list"] == [True] * 64 + [False] + [True] * 65
    assert took < 30, took  # twice one item's limit plus slack, not the sum of its batch's limits


@pytest.mark.slow
def test_one_jail_serves_many_batches_and_each_starts_clean():
    from evals.lcb.grader import LcbCase, LcbJudge, run_batches
    from resources.sandbox import Sandbox

    # Wrong answers report their output: when the jail's init started, and whether a file is left.
    shared = {f"p{j}": {"inputs": ["1\n"], "outputs": ["-\n"], "fn_name": None} for j in range(4)}
    code = ("import os\nleft = os.path.exists('planted.py')\nopen('planted.py', 'w').write('')\n"
            "print(open('/proc/1/stat').read().split()[21], left)")
    items = [{"shared_key": f"p{j}", "code": code, "timeout": 3, "limit_s": 10, "n_tests": 1} for j in range(4)]
    cases = {k: LcbCase(v) for k, v in shared.items()}
    answers = run_batches(Sandbox(concurrency=1, timeout_s=30), "lcb", items,
                          {k: {"inputs": c.inputs, "fn_name": c.fn_name} for k, c in cases.items()},
                          judge=lambda i: LcbJudge(cases[items[i]["shared_key"]]))
    outputs = [a["metadata"]["output"].split() for a in answers]
    assert len({start for start, _ in outputs}) == 1, outputs  # four batches, one jail
    assert [left for _, left in outputs] == ["False"] * 4


def test_batches_hold_one_problem_each_costliest_first():
    from evals.lcb.grader import MAX_CHUNK, plan_batches

    items = [{"shared_key": f"light{i // 4}", "n_tests": 3} for i in range(400)]
    items += [{"shared_key": f"heavy{i // 20}", "n_tests": 15} for i in range(40)]
    batches = plan_batches(items, n_workers=2)
    assert sorted(i for b in batches for i in b) == list(range(440))
    for b in batches:
        assert len({items[i]["shared_key"] for i in b}) == 1 and len(b) <= MAX_CHUNK
    assert {items[b[0]]["shared_key"] for b in batches[:6]} == {"heavy0", "heavy1"}  # 20 each: 3 batches
    assert len(plan_batches(items[:8], n_workers=2)) == 8  # little work: one generation per batch


def test_results_cross_as_plain_data_with_exact_types():
    import collections
    import enum
    from fractions import Fraction

    from evals.lcb.jail_runner import Malformed, Opaque, decode_message, decode_value, encode_value

    class Color(enum.IntEnum):
        RED = 3

    def round_trip(value):
        return decode_value(decode_message(json.dumps({"v": encode_value(value)}).encode())["v"])

    for value in [None, True, 3, -0.0, float("inf"), "x\ud800", [1, (2, 3)], {(1, 2): {4}}, frozenset({5}),
                  b"\x00", 1 + 2j, 10 ** 5000, Fraction(1, 3)]:
        back = round_trip(value)
        assert back == value and type(back) is type(value), value
    assert round_trip([(1, 2)]) != [[1, 2]]  # lcb_runner's `==` tells a tuple from a list, so do we
    assert type(round_trip(Color.RED)) is int and type(round_trip(collections.Counter("ab"))) is dict
    assert isinstance(round_trip(object()), Opaque) and round_trip(object()) != round_trip(object())
    for forged in [b'{"v": {"zz": 1}}', b'{"v": {"s": [[1]]}}', b'{"v": 1' + b"0" * 5000 + b"}", b"\xff",
                   b"[" * 100_000, b'{"v": {"n": "12"}}', b'["not an object"]']:
        with pytest.raises(Malformed):
            decode_value(decode_message(forged)["v"])


@pytest.mark.slow
def test_call_based_values_compare_as_lcb_runner_compares_them(sandbox):
    p = call_problem([("1", "[[1, 2]]"), ("2", "0.5"), ("3", "3")], fn="f")
    q = grade(p, [
        "def f(x):\n    return [[1, 2]] if x == 1 else 0.5 if x == 2 else 3",
        "def f(x):\n    return [(1, 2)]",  # a nested tuple is not a list, under lcb_runner too
        "from fractions import Fraction\nimport numpy as np\n"
        "def f(x):\n    return ([[1, 2]], Fraction(1, 2), np.int64(3))[x - 1]",
        "def f(x):\n    return 10 ** 60000",  # lcb_runner: the wrong answer's str() raises, so -4 follows
    ], sandbox)
    assert q["results"][:3] == [[True, True, True], [False], [True, True, True]], q["metadata"]
    assert q["results"][3] == [False, -4] and "Exceeds the limit" in q["metadata"][3]["error"]
