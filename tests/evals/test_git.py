"""The git graders: a conflict resolution passes only when the tests in the Sandbox say so (known-good gold,
known-bad one-sided, malformed and hostile answers), and the commit-message metric (ROUGE-L F1)."""

import importlib.util
import json
from pathlib import Path

import pytest

from datagen import git_tasks as gt
from evals import git as eg

_spec = importlib.util.spec_from_file_location("git_tasks_fixture",
                                               Path(__file__).parents[1] / "datagen" / "test_git_tasks.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


@pytest.fixture(scope="module")
def conflict(tmp_path_factory, sandbox):
    """(swe_repos row, a validated conflict row) of the tiny repo."""
    repo_row, tasks = fx.build_fixture(tmp_path_factory.mktemp("git_eval"), sandbox)
    rows, _, _ = gt.build_conflict_rows(sandbox, repo_row, tasks, gt.GitTaskSettings())
    assert len(rows) == 1
    return repo_row, {**rows[0], "split": "test"}


def side(row, name):
    return gt.format_resolution(fx.PATH, gt.gold_pieces(json.loads(row["conflicted_files"])[fx.PATH],
                                                         json.loads(row[name])[fx.PATH]))


FAKE_SUMMARY = ("=== short test summary info ===\\n" + "".join(
    f"PASSED tests/test_rangekit.py::test_{t}\\n" for t in ("low", "high", "mid", "total")) + "=== 4 passed in 0.01s ===\\n")


@pytest.mark.slow
def test_gold_passes_and_bad_answers_fail(conflict, sandbox):
    repo_row, row = conflict
    ok, why = eg.grade_resolution(sandbox, repo_row, row, row["answer"])
    assert ok, why
    buggy = fx.BUG_A  # bug A left in, whatever the answer prints
    bad = {
        "ours only": side(row, "ours_files"),
        "theirs only": side(row, "theirs_files"),
        "markers left": f"--- FILE {fx.PATH}\n{json.loads(row['conflicted_files'])[fx.PATH]}--- END\n",
        "test file edited": "--- FILE tests/test_rangekit.py\ndef test_low():\n    pass\n--- END\n" + row["answer"],
        "conftest added": "--- FILE conftest.py\nimport os\n--- END\n" + row["answer"],
        "path ../x": "--- FILE ../x.py\nx = 1\n--- END\n",
        "absolute path": f"--- FILE /work/{fx.PATH}\nx = 1\n--- END\n",
        "empty": "",
        "fake PASSED printed at import": f"--- FILE {fx.PATH}\nprint('{FAKE_SUMMARY}')\n{buggy}--- END\n",
        "fake summary printed at exit": f"--- FILE {fx.PATH}\nimport atexit\natexit.register(print, '{FAKE_SUMMARY}')\n"
                                        f"{buggy}--- END\n",
        "fake summary then exit": f"--- FILE {fx.PATH}\nimport sys\nsys.stdout.write('{FAKE_SUMMARY}')\nsys.stdout.flush()\n"
                                  f"import os\nos._exit(0)\n{buggy}--- END\n",
        "fake summary on every fd": f"--- FILE {fx.PATH}\nimport os\nfor fd in range(1, 30):\n    try:\n"
                                    f"        os.write(fd, b'{FAKE_SUMMARY}HRM_PYTEST_DONE\\n')\n    except OSError:\n"
                                    f"        pass\nos._exit(0)\n{buggy}--- END\n",
    }
    for name, answer in bad.items():
        ok, why = eg.grade_resolution(sandbox, repo_row, row, answer)
        assert not ok, f"{name}: {why}"




def test_error_kinds():
    assert eg._error_kind("rejected: empty answer") == "no_answer"
    assert eg._error_kind("rejected: m.py: conflict markers left") == "markers_left"
    assert eg._error_kind("rejected: path '../x' is not") == "bad_answer"
    assert eg._error_kind("1 FAIL_TO_PASS and 0 PASS_TO_PASS tests not passing") == "tests_fail"


def test_commit_message_metric_scores_the_human_message_one_and_an_unrelated_one_low():
    from evals.text_metrics import rouge_l

    human = "docs: Add README with Exercism exercise track sources and credits"
    assert rouge_l(human, human)["f1"] == 1.0
    assert rouge_l("Fix off-by-one in the cache eviction loop", human)["f1"] < 0.2


class _Echo:
    """A stand-in endpoint candidate: answers each prompt with a fixed function of it (no model needed)."""

    def __init__(self, answer):
        self.answer, self.completion_tokens = answer, 0

    def complete(self, prompts, languages, task, **kw):
        return [[self.answer(p, task)] for p in prompts]


def _candidate(answer):
    from evals.evaluate import Candidate

    return Candidate("echo", None, None, endpoint=_Echo(answer))


@pytest.mark.slow  # evals.evaluate imports the model stack (~1.5 s)
def test_eval_commit_messages_report_row():
    from evals.evaluate import EvalSettings
    from evals.report import make_rows  # noqa: F401 (the row shape it validates)

    rows = [{"kind": "commit_message", "split": "test", "prompt": f"diff {i}", "language": "none",
             "answer": "Fix the parser" if i else "Add docs", "example_id": f"c{i}"} for i in range(3)]
    got = eg.eval_commit_messages(_candidate(lambda p, t: "Fix the parser"), rows, EvalSettings(bootstrap_resamples=50))
    assert len(got) == 1 and got[0]["benchmark"] == "git-commits" and got[0]["metric"] == "message_rouge_l"
    assert got[0]["n"] == 3 and abs(got[0]["value"] - 2 / 3) < 1e-9 and len(got[0]["problems"]) == 3
    assert got[0]["ci_low"] <= got[0]["value"] <= got[0]["ci_high"]


@pytest.mark.slow
def test_eval_git_conflicts_report_row(conflict, sandbox):
    from evals.evaluate import EvalSettings

    repo_row, row = conflict
    bad = {**row, "example_id": row["example_id"] + ".copy"}
    answers = {row["prompt"]: row["answer"]}
    c = _candidate(lambda p, t: answers.get(p, "") if t == "diff_edit" else "")
    got = eg.eval_git_conflicts(c, [row, {**bad, "prompt": "other"}], {repo_row["key"]: repo_row}, sandbox,
                                EvalSettings())
    assert got[0]["benchmark"] == "git-conflicts" and got[0]["metric"] == "resolve_rate"
    assert got[0]["n"] == 2 and got[0]["value"] == 0.5 and 0 < got[0]["ci_low"] < 0.5 < got[0]["ci_high"]
    assert [p["passed"] for p in got[0]["problems"]] == [True, False]
    assert got[0]["problems"][1]["error_kind"] == "no_answer"


@pytest.mark.slow  # parquet round trip (~1 s with pyarrow's import)
def test_load_git_suite_reads_the_test_split(tmp_path):
    from resources.warehouse import Warehouse

    wh = Warehouse(root=str(tmp_path))
    assert eg.load_git_suite(wh) == ([], {}, "git_tasks not materialised")
    base = {"files": "[]", "FAIL_TO_PASS": [], "PASS_TO_PASS": [], "prompt": "p", "answer": "a"}
    wh.write_table("git_tasks", [{**base, "kind": "conflict", "split": "test", "repo": "r1", "example_id": "x"},
                                 {**base, "kind": "commit_message", "split": "train", "repo": "h", "example_id": "y"}])
    rows, repos, note = eg.load_git_suite(wh)
    assert [r["example_id"] for r in rows] == ["x"] and repos == {}
    assert "swe_repos partitions missing for r1" in note and "no held-out commit message" in note
