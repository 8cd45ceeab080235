"""Batched program runs report what one Sandbox run per program would, and a batch that breaks as a
whole falls back to single runs instead of inventing results."""

import pytest

from datagen import batch_run
from resources.programs import single_file_job

PROGRAMS = {
    "python": ["print(1 + 2)\n", "xs = [3, 1]\nprint(sorted(xs), len(xs))\n", "assert 1 == 2, 'boom ' + repr(3)\n",
               "print('partial')\nx = [1][5]\n", "def f(n):\n    return f(n)\nf(1)\n", "import sys\nsys.exit(0)\n",
               "import sys\nsys.exit(4)\n", "print('a', end='')\nprint('b')\n"],
    "javascript": ["console.log(1 + 2);\n", "console.log([1, 2], 'a', { b: 1 }, -0, null);\n",
                   "throw new Error('bad ' + 3);\n", "const xs = undefined;\nfor (const x of xs) {}\n",
                   "console.log('partial');\nnull.x;\n", "console.log(1 / 3, 2 ** 60, 'é');\n"],
}


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["python", "javascript"])
def test_batch_results_equal_single_runs(sandbox, lang):
    batch = batch_run.run_programs(sandbox, lang, PROGRAMS[lang], timeout_s=5)
    for source, got in zip(PROGRAMS[lang], batch):
        files, command = single_file_job(lang, source)
        alone = sandbox.run(command, files=files, timeout_s=20)
        assert got.ok == alone.ok, source
        if alone.ok:
            assert got.stdout == alone.stdout, source
        else:
            assert got.status == "failed" and got.error == batch_run._error_line(alone.stderr), source


@pytest.mark.slow
@pytest.mark.parametrize("lang, hang", [("python", "while True:\n    pass\n"), ("javascript", "while (true) {}\n")])
def test_a_hanging_program_times_out_alone(sandbox, lang, hang):
    programs = [PROGRAMS[lang][0], hang, PROGRAMS[lang][0]]
    runs = batch_run.run_programs(sandbox, lang, programs, timeout_s=0.5)
    assert [r.status for r in runs] == ["ok", "timeout", "ok"]
    assert runs[2].stdout == "3\n"


@pytest.mark.slow
@pytest.mark.parametrize("lang, killer", [("python", "import os\nos._exit(0)\n"),
                                          ("python", "print('[]')\nimport os\nos._exit(0)\n"),
                                          ("javascript", "process.exit(0);\n")])
def test_a_program_that_ends_the_batch_sends_every_program_to_a_single_run(sandbox, lang, killer):
    # os._exit skips the driver's report: the batch's output is missing or short, never taken as results
    programs = [PROGRAMS[lang][0], killer, PROGRAMS[lang][2]]
    runs = batch_run.run_programs(sandbox, lang, programs, timeout_s=5)
    assert runs[0].ok and runs[0].stdout == "3\n"
    assert runs[2].status == "failed"
    if lang == "javascript":  # `process` does not exist in the program's context: it fails alone too
        assert runs[1].status == "failed" and "process is not defined" in runs[1].error


def test_parse_refuses_output_that_is_not_one_result_per_program():
    assert batch_run._parse('[{"status": "ok", "stdout": "", "error": ""}]', 2) is None
    assert batch_run._parse("[]\n[]", 0) is None
    assert batch_run._parse('[{"status": "ok"}]', 1) is None
    assert batch_run._parse('[{"status": "ok", "stdout": "1\\n", "error": ""}]', 1)[0].stdout == "1\n"


def test_unknown_language_is_refused(sandbox):
    with pytest.raises(ValueError, match="no batch driver for 'cobol'"):
        batch_run.run_programs(sandbox, "cobol", ["x"])
