"""Synthetic repair grading cannot be fooled from inside the candidate's process.

Each attack is a real SEARCH/REPLACE answer to a real generated repair task (Python and JavaScript),
run in the real jail; every one must grade "not fixed", and the reference fix must grade "fixed".
The attacks know every expected value (taken from the task's hidden test block), the worst case.
"""

import random
import re

import pytest

from datagen import repair_grading, synthetic
from model.edits import DIVIDER, REPLACE, SEARCH, apply_edits

TEMPLATE = next(t for t in synthetic.REPAIR_TEMPLATES if t.name == "sum_above")


def _build(sandbox, lang):
    cfg = synthetic.SyntheticConfig(timeout_s=20)
    for seed in range(20):
        rs = TEMPLATE.render(random.Random(seed), lang)
        built, reason = synthetic._build_repair(sandbox, TEMPLATE, lang, rs, random.Random(seed), cfg)
        if built is not None:
            break
    assert built is not None, reason
    pattern = r"^assert got == (.*?), 'solve" if lang == "python" else r"!== JSON\.stringify\((.*)\)\) \{$"
    expected = re.findall(pattern, built["tests"], re.M)
    assert len(expected) == len(rs.calls) == 3
    return {"lang": lang, "mutant": built["mutant"], "answer": built["answer"], "tests": built["tests"],
            "expected": expected, "calls": rs.calls}


@pytest.fixture(scope="module")
def tasks(sandbox):
    return {lang: _build(sandbox, lang) for lang in ("python", "javascript")}


@pytest.fixture(params=["python", "javascript"])
def task(request, tasks):
    return tasks[request.param]


def whole_file(task, new_source: str) -> str:
    """A SEARCH/REPLACE answer that swaps the whole mutant for `new_source`."""
    file_name = synthetic.FILE_NAMES[task["lang"]]
    return (f"{file_name}\n{SEARCH}\n{task['mutant'].rstrip(chr(10))}\n{DIVIDER}\n"
            f"{new_source.rstrip(chr(10))}\n{REPLACE}\n")


def fixed(sandbox, task, answer: str) -> bool:
    return repair_grading.repair_fixed(sandbox, task["lang"], task["mutant"], answer, task["tests"], timeout_s=20)


def _lines(values):
    return "\\n".join(values)


PY_ATTACKS = {
    "system_exit_at_import": "{mutant}\nraise SystemExit(0)\n",
    "os_exit_at_import": "{mutant}\nimport os\nos._exit(0)\n",
    "prints_expected_then_exits": "{mutant}\nprint('{lines}')\nimport sys\nsys.stdout.flush()\nraise SystemExit(0)\n",
    "prints_expected_then_os_exit": "{mutant}\nimport os\nos.write(1, b'{lines}\\n')\nos._exit(0)\n",
    "redefines_print_repr_and_os_write": (
        "{mutant}\nimport builtins, os\n_it = iter({expected!r})\n"
        "builtins.repr = lambda x: next(_it)\nbuiltins.print = lambda *a, **k: os.write(1, b'{lines}\\n')\n"
        "_w = os.write\nos.write = lambda fd, b: _w(fd, b'{lines}\\n')\n"),
    "eq_always_true": ("class _Any:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
                       "    def __repr__(self):\n        return {first!r}\n\ndef solve(xs):\n    return _Any()\n"),
    "int_subclass_eq_true": ("class _I(int):\n    def __eq__(self, other):\n        return True\n"
                             "    def __repr__(self):\n        return {first!r}\n\ndef solve(xs):\n    return _I(0)\n"),
    "raises_in_solve": "def solve(xs):\n    raise ValueError('no idea')\n",
    "raises_at_import": "{mutant}\nraise RuntimeError('boom')\n",
    "steals_stdin_and_exits": "{mutant}\nimport sys\nsys.stdin.read()\nprint('{lines}')\nraise SystemExit(0)\n",
    "closes_stdout": "{mutant}\nimport os\nos.close(1)\n",
    "solve_exits_zero": "def solve(xs):\n    import os\n    os._exit(0)\n",
}
JS_ATTACKS = {
    "process_exit_at_import": "{mutant}\nprocess.exit(0);\n",
    "prints_expected_then_exits": "{mutant}\nconsole.log('{lines}');\nprocess.exit(0);\n",
    "redefines_console_log_and_json": (
        "{mutant}\nconst _exp = {expected_js};\nlet _k = 0;\n"
        "console.log = () => process.stdout.write('{lines}\\n');\n"
        "JSON.stringify = () => 'same';\n"
        "Array.prototype.join = function () {{ return '{lines}'; }};\n"
        "String.prototype.trim = function () {{ return 'forged'; }};\n"),
    "to_json_object": ("const _e = [{expected_values}];\nlet _k = 0;\nfunction solve(xs) {{\n"
                       "  const v = _e[_k++ % _e.length];\n  return {{ toJSON() {{ return v; }} }};\n}}\n"),
    "boxed_number": "function solve(xs) {{\n  return new Number({first});\n}}\n",
    "throws_in_solve": "function solve(xs) {{\n  throw new Error('no idea');\n}}\n",
    "throws_at_import": "{mutant}\nthrow new Error('boom');\n",
    "solve_exits_zero": "function solve(xs) {{\n  process.exit(0);\n}}\n",
    "exit_handler_prints_expected": "{mutant}\nprocess.on('exit', () => console.log('{lines}'));\nprocess.exit(0);\n",
}


def _attack_source(task, template: str) -> str:
    expected = task["expected"]
    return template.format(mutant=task["mutant"], lines=_lines(expected), expected=expected, first=expected[0],
                           expected_js="[" + ", ".join(f"'{e}'" for e in expected) + "]",
                           expected_values=", ".join(expected))


@pytest.mark.slow
@pytest.mark.parametrize("lang,attack", [("python", a) for a in PY_ATTACKS] + [("javascript", a) for a in JS_ATTACKS])
def test_attacks_on_repair_grading_are_not_fixes(sandbox, tasks, lang, attack):
    task = tasks[lang]
    answer = whole_file(task, _attack_source(task, (PY_ATTACKS if lang == "python" else JS_ATTACKS)[attack]))
    assert apply_edits(task["mutant"], answer) != task["mutant"]
    assert not fixed(sandbox, task, answer), f"{task['lang']} attack {attack} graded as a fix"


@pytest.mark.slow
def test_the_reference_fix_passes_and_non_fixes_fail(sandbox, task):
    assert fixed(sandbox, task, task["answer"])
    assert fixed(sandbox, task, whole_file(task, apply_edits(task["mutant"], task["answer"])))
    assert not fixed(sandbox, task, "no edit")
    assert not fixed(sandbox, task, whole_file(task, task["mutant"]))  # the bug left in place


@pytest.mark.slow
def test_the_verdict_says_why(sandbox, task):
    ok, why = repair_grading.repair_verdict(sandbox, task["lang"], task["mutant"], whole_file(task, task["mutant"]),
                                            task["tests"], timeout_s=20)
    assert not ok and "returned" in why and "expected" in why
    ok, why = repair_grading.repair_verdict(sandbox, task["lang"], task["mutant"],
                                            whole_file(task, _attack_source(task, PY_ATTACKS["os_exit_at_import"]
                                                                            if task["lang"] == "python" else
                                                                            JS_ATTACKS["process_exit_at_import"])),
                                            task["tests"], timeout_s=20)
    assert not ok and "expected 3 results" in why


def test_repair_cases_round_trip_the_test_block():
    calls, expected = ["[1, 2]", '"kiwi"', "7"], ["3", "'x'", "[1, (2,), {'a': None}]"]
    python_block = synthetic.test_block("python", calls, expected)
    assert repair_grading.repair_cases("python", python_block) == list(zip(calls, expected))
    js_expected = ["3", '"x"', '[1,[2],{"a":null}]']
    assert repair_grading.repair_cases("javascript", synthetic.test_block("javascript", calls, js_expected)) == \
        list(zip(calls, js_expected))
    with pytest.raises(ValueError):
        repair_grading.repair_cases("python", "print('not a test block')\n")
