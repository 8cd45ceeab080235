"""Attacks on the LiveCodeBench and HumanEval graders, written as the programs and answers an attacker
would submit. Every one must fail: a wrong answer graded correct is a failing test.

Each grader sees several attacks at once (one sandbox run per module fixture), next to a correct
program that must still pass; each test then checks one attack in one mode.
"""

import json
from pathlib import Path

import pytest

from evals import humaneval
from evals.lcb.grader import grade_generations
from evals.lcb.records import LcbProblem
from evals.lcb.scenarios import (grade_execution, grade_test_output, load_execution_problems,
                                      load_test_output_problems)

pytestmark = pytest.mark.slow  # the graders run the attacks in the jail

FIXTURES = Path(__file__).parents[2] / "fixtures" / "lcb"

# Write `payload` to every pipe this process holds (the result channel among them), then exit at once.
FORGE = """
import os as _os, posix as _posix
def _forge(payload):
    for fd in range(3, 256):
        try:
            if _os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):
                _posix.write(fd, payload)
        except OSError:
            pass
    _posix._exit(0)
"""

ANY_EQUAL = "class AnyEqual:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"

# The expected answer, wherever the grading process keeps it: a caller's locals, the job in memory.
STEAL = """
import gc as _gc, sys as _sys
def _steal(given):
    frame = _sys._getframe()
    while frame is not None:
        for name in ('expected', 'gt_out', 'want'):
            if name in frame.f_locals and not callable(frame.f_locals[name]):
                return frame.f_locals[name]
        frame = frame.f_back
    for obj in _gc.get_objects():
        if isinstance(obj, dict) and isinstance(obj.get('outputs'), list) and given in obj.get('inputs', []):
            return obj['outputs'][obj['inputs'].index(given)]
    return 'nothing found'
"""


def stdin_problem(qid="atk_stdin"):
    tests = [("1 2\n", "3\n"), ("4 5\n", "9\n"), ("10 20\n", "30\n")]
    return LcbProblem(qid, "t", "c", "atcoder", "abc", "2024-01-01T00:00:00", "easy", "",
                      public_tests=[{"input": i, "output": o, "testtype": "stdin"} for i, o in tests])


def call_problem(qid="atk_call"):
    tests = [("1\n2", "3"), ("4\n5", "9"), ("[1]\n[2]", "[1, 2]")]
    return LcbProblem(qid, "t", "c", "leetcode", "w", "2024-01-01T00:00:00", "easy", "",
                      public_tests=[{"input": i, "output": o, "testtype": "functional"} for i, o in tests],
                      func_name="add")


STDIN_RIGHT = "a, b = map(int, input().split())\nprint(a + b)"
CALL_RIGHT = "class Solution:\n    def add(self, a, b):\n        return a + b"

STDIN_ATTACKS = {
    "right": STDIN_RIGHT,
    "forged_result": FORGE + "_forge(b'{\"test\": 0, \"passed\": true}\\n{\"result\": \"passed\"}\\n'"
                             " b'{\"results\": [true, true, true], \"metadata\": {}}\\n')",
    "empty_results": FORGE + "_forge(b'{\"ready\": true}\\n{\"results\": [], \"metadata\": {}}\\n')",
    "patched_grader": "import sys\nm = sys.modules['__main__']\nm._stripped_lines = lambda text: ['same']\n"
                      "m._decimals = lambda line: (True, [])\nprint('wrong')",
    "stolen_expected": STEAL + "import sys\nprint(_steal(sys.stdin.read()), end='')",
    "any_equal_output": ANY_EQUAL + (
        "import sys\nclass Lines:\n    def strip(self):\n        return self\n"
        "    def split(self, sep=None):\n        return [Line()]\nclass Line(AnyEqual):\n"
        "    def strip(self):\n        return self\n"
        "sys.stdout.getvalue = lambda: Lines()\nprint('wrong')"),
}

CALL_ATTACKS = {
    "right": CALL_RIGHT,
    "forged_result": FORGE + "class Solution:\n    def add(self, a, b):\n"
                             "        _forge(b'{\"test\": 0}\\n'\n"
                             "               b'{\"results\": [true, true, true], \"metadata\": {}}\\n')",
    "empty_results": FORGE + "class Solution:\n    def add(self, a, b):\n"
                             "        _forge(b'{\"ready\": true}\\n{\"results\": [], \"metadata\": {}}\\n')",
    "patched_grader": "import json\njson.loads = lambda *args, **kwargs: 42\n"
                      "class Solution:\n    def add(self, a, b):\n        return 42",
    "stolen_expected": STEAL + "class Solution:\n    def add(self, a, b):\n        return _steal(None)",
    "any_equal_object": ANY_EQUAL + "class Solution:\n    def add(self, a, b):\n        return AnyEqual()",
    "int_subclass": "class I(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
                    "class Solution:\n    def add(self, a, b):\n        return I(0)",
    "str_subclass": "class S(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\n"
                    "class Solution:\n    def add(self, a, b):\n        return S('wrong')",
    "list_subclass": "class L(list):\n    def __eq__(self, other):\n        return True\n"
                     "class Solution:\n    def add(self, a, b):\n        return L()",
}


@pytest.fixture(scope="module")
def lcb_graded(sandbox):
    """{(mode, attack): (graded ok, per-test results)} from one grading run of every LCB attack."""
    problems = [stdin_problem(), call_problem()]
    generations = {"atk_stdin": list(STDIN_ATTACKS.values()), "atk_call": list(CALL_ATTACKS.values())}
    out = {}
    for q in grade_generations(problems, generations, sandbox, timeout=3):
        names = STDIN_ATTACKS if q["question_id"] == "atk_stdin" else CALL_ATTACKS
        mode = "stdin" if q["question_id"] == "atk_stdin" else "call"
        for name, ok, results in zip(names, q["graded_list"], q["results"]):
            out[(mode, name)] = (ok, results)
    return out


@pytest.mark.parametrize("mode", ["stdin", "call"])
def test_lcb_right_program_still_passes_next_to_the_attacks(lcb_graded, mode):
    assert lcb_graded[(mode, "right")] == (True, [True, True, True])


@pytest.mark.parametrize("mode", ["stdin", "call"])
def test_lcb_fake_result_on_the_inherited_pipe_fails(lcb_graded, mode):
    ok, results = lcb_graded[(mode, "forged_result")]
    assert not ok and results == [-5], results


@pytest.mark.parametrize("mode", ["stdin", "call"])
def test_lcb_empty_result_list_fails(lcb_graded, mode):
    ok, results = lcb_graded[(mode, "empty_results")]
    assert not ok and results == [-5], results


@pytest.mark.parametrize("mode", ["stdin", "call"])
def test_lcb_patching_the_graders_functions_fails(lcb_graded, mode):
    ok, results = lcb_graded[(mode, "patched_grader")]
    assert not ok and results in ([-2], [False]), results


@pytest.mark.parametrize("mode", ["stdin", "call"])
def test_lcb_expected_answer_is_nowhere_in_the_programs_process(lcb_graded, mode):
    ok, results = lcb_graded[(mode, "stolen_expected")]
    assert not ok and results in ([-2], [False]), results


@pytest.mark.parametrize("attack", ["any_equal_object", "int_subclass", "str_subclass", "list_subclass"])
def test_lcb_call_results_are_compared_as_plain_data(lcb_graded, attack):
    ok, results = lcb_graded[("call", attack)]
    assert not ok and results == [False], results


def test_lcb_stdin_output_that_is_not_text_fails(lcb_graded):
    ok, results = lcb_graded[("stdin", "any_equal_output")]
    assert not ok, results


# --- HumanEval ------------------------------------------------------------------------------------
def _he(task_id):
    return next(p for p in humaneval.load_problems() if p["task_id"] == task_id)


HE_FORGE = "    return None\n" + FORGE + "_forge(b'{\"result\": \"passed\"}\\n')\n"
HE_STEAL = (
    "    import ast, gc, sys\n"
    "    frames, frame = [], sys._getframe()\n"
    "    while frame is not None:\n"
    "        frames.append(frame.f_locals)\n"
    "        frame = frame.f_back\n"
    "    for obj in frames + [o for o in gc.get_objects() if isinstance(o, dict)]:\n"
    "        values = [v for x in obj.values() for v in (x.values() if isinstance(x, dict) else [x])]\n"
    "        for text in [v for v in values if isinstance(v, str) and 'def check(' in v]:\n"
    "            for node in ast.walk(ast.parse(text[text.rindex('def check('):])):\n"
    "                if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call) and \\\n"
    "                        [ast.literal_eval(a) for a in node.left.args] == [numbers, threshold]:\n"
    "                    return ast.literal_eval(node.comparators[0])\n"
    "    return None\n")
HE_ATTACKS = {
    # HumanEval/0 has_close_elements(numbers, threshold) -> bool, checked with `== True` / `== False`
    "right": ("HumanEval/0", None),
    "forged_result": ("HumanEval/0", HE_FORGE),
    "patched_grader": ("HumanEval/0", "    return None\nimport json\n"
                                      "json.dumps = lambda *args, **kwargs: '{\"result\": \"passed\"}'\n"),
    "stolen_expected": ("HumanEval/0", HE_STEAL),
    "any_equal_object": ("HumanEval/0", "    return AnyEqual()\n" + ANY_EQUAL),
    "int_subclass": ("HumanEval/13", "    return I(0)\nclass I(int):\n    def __eq__(self, other):\n"
                                     "        return True\n    __hash__ = int.__hash__\n"),
    "str_subclass": ("HumanEval/27", "    return S('')\nclass S(str):\n    def __eq__(self, other):\n"
                                     "        return True\n    __hash__ = str.__hash__\n"),
    "list_subclass": ("HumanEval/29", "    return L()\nclass L(list):\n    def __eq__(self, other):\n"
                                      "        return True\n"),
}


@pytest.fixture(scope="module")
def humaneval_graded(sandbox):
    tasks = {tid: _he(tid) for tid, _ in HE_ATTACKS.values()}
    samples = [{"task_id": tid, "completion": c if c is not None else tasks[tid]["canonical_solution"]}
               for tid, c in HE_ATTACKS.values()]
    out = humaneval.grade_completions(list(tasks.values()), samples, sandbox)
    results = {t["task_id"]: iter(t["results"]) for t in out}
    return {name: next(results[tid]) for name, (tid, _) in HE_ATTACKS.items()}


def test_humaneval_right_completion_still_passes_next_to_the_attacks(humaneval_graded):
    assert humaneval_graded["right"] == "passed"


@pytest.mark.parametrize("attack", [a for a in HE_ATTACKS if a != "right"])
def test_humaneval_attack_fails(humaneval_graded, attack):
    assert humaneval_graded[attack] != "passed", attack


# --- test-output prediction and code execution ----------------------------------------------------------
PIPE_FORGE_EXPR = ("(lambda os: ([os.write(fd, {payload}) for fd in range(3, 256)"
                   " if os.path.exists('/proc/self/fd/%d' % fd) and os.readlink('/proc/self/fd/%d' % fd)"
                   ".startswith('pipe:')], os._exit(0)))(__import__('os'))")
ANY_EQUAL_EXPR = "type('AnyEqual', (), {'__eq__': lambda self, other: True, '__hash__': object.__hash__})()"
LIST_SUBCLASS_EXPR = "type('L', (list,), {'__eq__': lambda self, other: True})()"


def _expressions(forge_payload, patch_payload, steal):
    return {
        "right": None,
        "forged_result": PIPE_FORGE_EXPR.format(payload=forge_payload),
        "patched_grader": f"setattr(__import__('json'), 'dumps', lambda *a, **k: {patch_payload!r})",
        "stolen_expected": steal,
        "any_equal_object": ANY_EQUAL_EXPR,
        "list_subclass": LIST_SUBCLASS_EXPR,
        "or_true": "[9, 9] or True",
    }


TEST_OUTPUT_ATTACKS = _expressions(
    "b'{\"results\": [true]}\\n'", '{"results": [true]}',
    "[json.loads(d['expected']) for d in __import__('gc').get_objects() if type(d) is dict and 'expected' in d][0]")
EXECUTION_ATTACKS = _expressions(
    "b'{\"result\": \"passed\"}\\n'", '{"result": "passed"}',
    "eval([f.frame.f_locals['job']['program'] for f in __import__('inspect').stack(0) if 'job' in f.frame.f_locals][0]"
    ".split(chr(10) + 'assert ')[-1].split(' == ')[0])")


@pytest.fixture(scope="module")
def test_output_graded(sandbox):
    """Each attack as its own instance (expected output [5, 2]), so no attack can decide another's fate."""
    from dataclasses import replace

    problem = load_test_output_problems(FIXTURES / "test_generation.jsonl")[0][0]
    instances = [replace(problem, test_id=i) for i in range(len(TEST_OUTPUT_ATTACKS))]
    outputs = {p.instance_id: [f"assert largestPairSum([1, 2, 3], 4) == {e or '[5, 2]'}"]
               for p, e in zip(instances, TEST_OUTPUT_ATTACKS.values())}
    graded = grade_test_output(instances, outputs, sandbox, extract=False)
    return {name: g["graded_list"][0] for name, g in zip(TEST_OUTPUT_ATTACKS, graded)}


@pytest.fixture(scope="module")
def execution_graded(sandbox):
    problems, _ = load_execution_problems(FIXTURES / "execution.jsonl")  # doubleAll(nums = [1, 2]) -> [2, 4]
    preds = [e or "[2, 4]" for e in EXECUTION_ATTACKS.values()]
    [graded] = grade_execution(problems[:1], {"sample_0": preds}, sandbox, extract=False)
    return dict(zip(EXECUTION_ATTACKS, graded["graded_list"]))


@pytest.mark.parametrize("attack", list(TEST_OUTPUT_ATTACKS))
def test_test_output_prediction_attack_fails(test_output_graded, attack):
    assert test_output_graded[attack] is (attack == "right"), test_output_graded


@pytest.mark.parametrize("attack", list(EXECUTION_ATTACKS))
def test_code_execution_attack_fails(execution_graded, attack):
    assert execution_graded[attack] is (attack == "right"), execution_graded


def test_execution_answers_keep_their_own_value(sandbox):
    # `5 or True` is worth 5: right where 5 is right, wrong elsewhere; an expected output that is not a
    # literal (math's inf) is evaluated in its own process.
    problems, _ = load_execution_problems(FIXTURES / "execution.jsonl")
    count = problems[1]
    inf = type(count)(**{**count.__dict__, "id": "inf", "code": "def big(x):\n    return inf",
                         "input": "big(x = 1)", "output": "inf"})
    graded = grade_execution([count, inf], {"sample_1": ["3 or True", "2 or True", "(3, 3)[0]"],
                                            "inf": ["inf", "float('inf')", "1e309", "10**400"]}, sandbox)
    assert [g["graded_list"] for g in graded] == [[True, False, True], [True, True, True, False]]


# --- one program poisons later ones in the long-lived jail -----------------------------------------------
# A package the runner would import later, in a directory the old wipe could not list (write+search, no read).
PLANT_NUMPY = """
import posix
posix.mkdir('/work/numpy')
with open('/work/numpy/__init__.py', 'w') as f:
    f.write("import sys\\nm = sys.modules['__main__']\\n"
            "m._collect_child = lambda pid, fd, limit: (__import__('os').waitpid(pid, 0), "
            "{'results': [True], 'metadata': {}})[1]\\n"
            "m.run_lcb = lambda job, send=None: {'results': [True], 'metadata': {}}\\n")
posix.chmod('/work/numpy', 0o300)
print('planted')
"""
# Files the old wipe left: a 000 directory with a module inside, files changed or added in /tmp/home,
# a FIFO and a socket in 0o300 directories, a symlink.
PLANT_FILES = """
import os, posix, socket
posix.mkdir('/work/locked')
open('/work/locked/helper_mod.py', 'w').write('raise SystemExit')
posix.chmod('/work/locked', 0)
posix.mkdir('/tmp/hidden')
posix.mkfifo('/tmp/hidden/fifo')
s = socket.socket(socket.AF_UNIX)
s.bind('/tmp/hidden/sock')
posix.chmod('/tmp/hidden', 0o300)
for root, dirs, files in os.walk('/tmp/home'):
    for name in files:
        open(os.path.join(root, name), 'a').write('# changed\\n')
    posix.chmod(root, 0o500 if root != '/tmp/home' else 0o700)
open('/tmp/home/added.py', 'w').write('x = 1')
posix.symlink('/tmp/home', '/work/link')
print('planted')
"""
CHECK_CLEAN = """
import os
home = []
for root, dirs, files in os.walk('/tmp/home'):
    for name in sorted(dirs + files):
        path = os.path.join(root, name)
        st = os.lstat(path)
        home.append((path[len('/tmp/home'):], oct(st.st_mode), open(path).read() if os.path.isfile(path) else ''))
skeleton = []
for root, dirs, files in os.walk('/opt/hrm-home'):
    for name in sorted(dirs + files):
        path = os.path.join(root, name)
        skeleton.append((path[len('/opt/hrm-home'):], open(path).read() if os.path.isfile(path) else ''))
left = sorted(os.listdir('/work')) + sorted(set(os.listdir('/tmp')) - {'home'})
same = [(p, c) for p, _, c in home] == skeleton and all(m in ('0o40755', '0o100644') for _, m, _ in home)
print('clean' if not left and same and oct(os.lstat('/tmp/home').st_mode) == '0o40755' else (left, home))
"""


def _clean_problem(qid, n_tests=1):
    return LcbProblem(qid, "t", "c", "atcoder", "abc", "2024-01-01T00:00:00", "easy", "",
                      public_tests=[{"input": "\n", "output": "clean\n", "testtype": "stdin"}] * n_tests)


def _in_one_jail(programs):
    """Grade each program as its own batch, in order, in ONE long-lived jail (one worker)."""
    from resources.sandbox import Sandbox

    problems = [_clean_problem(f"poison{i}") for i in range(len(programs))]
    out = grade_generations(problems, {p.question_id: [code] for p, code in zip(problems, programs)},
                            Sandbox(concurrency=1, timeout_s=30), timeout=3)
    return [(q["graded_list"][0], q["results"][0], q["metadata"][0]) for q in out]


def test_a_planted_package_cannot_hijack_the_runner_for_later_programs():
    wrong = "import numpy\nprint('wrong')"
    graded = _in_one_jail([PLANT_NUMPY, wrong, wrong, CHECK_CLEAN])
    assert [ok for ok, _, _ in graded] == [False, False, False, True], graded


def test_files_a_program_leaves_with_odd_permissions_are_gone_before_the_next_one():
    graded = _in_one_jail([PLANT_FILES, CHECK_CLEAN, CHECK_CLEAN])
    assert [ok for ok, _, _ in graded] == [False, True, True], graded


# System V shared memory and message queues, and a POSIX message queue, outlive the processes that made
# them: a message from one program to a later one in the same jail.
IPC_PLANT = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget(4242, 4096, 0o1000 | 0o600)
libc.msgget(4243, 0o1000 | 0o600)
try:
    ctypes.CDLL('librt.so.1').mq_open(b'/lcb-leak', 0o100 | 0o2, 0o600, None)
except OSError:
    pass
print('planted')
"""
IPC_CHECK = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
left = [libc.shmget(4242, 0, 0) != -1, libc.msgget(4243, 0) != -1]
try:
    left.append(ctypes.CDLL('librt.so.1').mq_open(b'/lcb-leak', 0o2) != -1)
except OSError:
    pass
print('clean' if not any(left) else left)
"""


def test_ipc_objects_a_program_leaves_are_gone_before_the_next_one():
    graded = _in_one_jail([IPC_PLANT, IPC_CHECK])
    assert [ok for ok, _, _ in graded] == [False, True], graded


def test_a_jail_that_cannot_be_restored_is_replaced():
    # A directory chain longer than PATH_MAX: the runner cannot check it, says so, and a fresh jail
    # grades the next program. The program's own result stands.
    deep = ("import posix\nfd = posix.open('/work', posix.O_RDONLY)\nfor _ in range(40):\n"
            "    posix.mkdir('d' * 250, dir_fd=fd)\n    fd = posix.open('d' * 250, posix.O_RDONLY, dir_fd=fd)\n"
            "print('clean')")
    stamp = "print(open('/proc/1/stat').read().split()[21])"
    graded = _in_one_jail([stamp, deep, CHECK_CLEAN, stamp])
    assert graded[1][0] and graded[2][0], graded
    assert graded[0][2]["output"] != graded[3][2]["output"], "the jail was not replaced"


def test_humaneval_completions_start_clean_after_one_poisoned_the_jail():
    from resources.sandbox import Sandbox

    task = _he("HumanEval/13")  # greatest_common_divisor(a, b)
    plant = ("    import posix\n    if not posix.access('/work/locked', 0):\n        posix.mkdir('/work/locked')\n"
             "        open('/work/locked/helper_mod.py', 'w').write('x = 1')\n        posix.chmod('/work/locked', 0)\n"
             "        open('/tmp/home/added', 'w').write('x')\n"
             "    import math\n    return math.gcd(a, b)\n")
    check = ("    import math, os\n    clean = not os.listdir('/work') and os.listdir('/tmp') == ['home']\n"
             "    return math.gcd(a, b) if clean and 'added' not in os.listdir('/tmp/home') else -1\n")
    out = humaneval.grade_completions([task], {task["task_id"]: [plant, check, check]},
                                      Sandbox(concurrency=1, timeout_s=30))
    assert out[0]["results"] == ["passed"] * 3, out


def test_a_completion_that_stops_or_kills_the_process_it_was_forked_from_fails_alone():
    # The candidate's parent is the zygote that forks every candidate of the jail: the runner checks it
    # after each program and replaces it, so later completions are graded as usual.
    from resources.sandbox import Sandbox

    task = _he("HumanEval/13")
    right = task["canonical_solution"]
    attacks = [f"    import posix, signal\n    posix.kill(posix.getppid(), signal.{sig})\n    return 0\n"
               for sig in ("SIGKILL", "SIGSTOP", "SIGTERM")]
    completions = [attacks[0], right, attacks[1], right, attacks[2], right]
    out = humaneval.grade_completions([task], {task["task_id"]: completions}, Sandbox(concurrency=1, timeout_s=30))
    assert out[0]["graded_list"] == [False, True] * 3, out


# --- one crafted generation must not abort a grading run ---------------------------------------------
CRAFTED = {
    "non_numeric_results": b'{"results": ["x", null, {}], "metadata": {}}\n',
    "results_not_a_list": b'{"results": 5, "metadata": {}}\n',
    "invalid_utf8": b'{"test": 0, "out": "\xff\xfe6"}\n',
    "deep_nesting": b'{"test": 0, "out": ' + b"[" * 200_000 + b"\n",
    "huge_int": b'{"test": 0, "out": 1' + b"0" * 20_000 + b"}\n",
    "nan_results": b'{"results": [NaN], "global_timeout": NaN}\n',
    "out_of_order": b'{"test": 2, "out": "6"}\n',
    "one_result_for_many_tests": b'{"test": 0, "out": "6\\n"}\n',
    "wrong_types": b'{"test": true, "out": ["6"]}\n',
    "unknown_tag": b'{"test": 0, "value": {"zz": 1}}\n',
    "second_ready": b'{"ready": true}\n',
}


def test_crafted_generations_are_runner_errors_and_the_run_completes(tmp_path, capsys, sandbox):
    from hrm_cli.main import main

    right = "n = int(input())\nprint(sum(map(int, input().split())))"
    generations = [{"question_id": "abc901_a",
                    "code_list": [right] + [FORGE + f"_forge({payload!r})" for payload in CRAFTED.values()]}]
    gens = tmp_path / "gens.json"
    gens.write_text(json.dumps(generations))
    out = tmp_path / "graded.json"
    assert main(["lcb", "grade", "--problems", str(FIXTURES / "code_generation_plain.jsonl"), "--generations",
                 str(gens), "--timeout", "2", "--workers", "2", "--json", str(out)]) == 0
    [q] = json.loads(out.read_text())["questions"]
    assert q["graded_list"] == [True] + [False] * len(CRAFTED)
    assert q["results"][1:] == [[-5]] * len(CRAFTED), dict(zip(CRAFTED, q["results"][1:]))
