"""git_tasks: real merge conflicts between two validated bug fixes of a tiny repo (real git, real Sandbox), the
answer format, and commit messages from the Polyglot benchmark's real history."""

import json
import subprocess
import textwrap

import pytest

from datagen import git_tasks as gt

MODULE = textwrap.dedent('''
    def normalize(values, lo, hi):
        out = []
        for v in values:
            if v < lo:
                v = lo
            if v > hi:
                v = hi
            out.append(v)
        return out


    def total(values):
        return sum(values)
''').lstrip()
TESTS = textwrap.dedent('''
    from rangekit import normalize, total

    def test_low():
        assert normalize([-5], 1, 10) == [1]

    def test_high():
        assert normalize([50], 0, 10) == [10]

    def test_mid():
        assert normalize([5], 0, 10) == [5]

    def test_total():
        assert total([1, 2]) == 3
''').lstrip()
# two bugs on adjacent lines: fixed on separate branches, git cannot merge them
BUG_A = MODULE.replace("            v = lo\n", "            v = 0\n")
BUG_B = MODULE.replace("        if v > hi:\n", "        if v < hi:\n")
BUG_FAR = MODULE.replace("    return sum(values)\n", "    return sum(values) + 1\n")
PATH = "rangekit/__init__.py"


def git_env(root):
    return {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
            "PATH": "/usr/bin:/bin", "HOME": str(root), "GIT_CONFIG_GLOBAL": "/dev/null"}


def make_repo(root):
    repo = root / "rangekit"
    (repo / "rangekit").mkdir(parents=True)
    (repo / PATH).write_text(MODULE)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_rangekit.py").write_text(TESTS)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "rangekit"]):
        subprocess.run(cmd, cwd=repo, check=True, env=git_env(root))
    return repo


def bug_patch(buggy: str) -> str:
    from agents.tasks import file_diff

    return file_diff({PATH: MODULE}, {PATH: buggy})


def build_fixture(root, sandbox):
    """(swe_repos row, swesmith-style task rows validated in the jail) of the tiny repo."""
    from datagen.swe.bugs import BugCandidate
    from datagen.swe.repos import baseline_row, parse_repo_spec, repo_from_row
    from datagen.swe.tasks import task_row, validate_bug

    row = baseline_row(sandbox, parse_repo_spec(str(make_repo(root))), root / "work")
    repo = repo_from_row(row)
    tasks = []
    for name, buggy, entity in (("a", BUG_A, "normalize"), ("b", BUG_B, "normalize"), ("far", BUG_FAR, "total")):
        bug = BugCandidate(f"{repo.key}.{name}", "hand", bug_patch(buggy), PATH, entity, "function", 1, name)
        _, f2p, p2p = validate_bug(sandbox, repo, row["passed_tests"], bug, 30)
        assert f2p, name
        tasks.append(task_row(repo, bug, f2p, p2p, 0.1, 0))
    return row, tasks


@pytest.fixture(scope="module")
def fixture(tmp_path_factory, sandbox):
    return build_fixture(tmp_path_factory.mktemp("git_tasks"), sandbox)


# --- quick: the answer format ----------------------------------------------------------------------------
CONFLICTED = "a\n<<<<<<< HEAD\nx = 1\n=======\nx = 2\n>>>>>>> fix-b\nb\n"


def test_split_conflicts_and_gold_pieces():
    segments, conflicts = gt.split_conflicts(CONFLICTED)
    assert segments == ["a\n", "b\n"] and conflicts == [("x = 1\n", "x = 2\n")]
    assert gt.gold_pieces(CONFLICTED, "a\nx = 3\ny\nb\n") == ["x = 3\ny\n"]
    assert gt.gold_pieces(CONFLICTED, "z\nx = 3\nb\n") is None


def test_apply_resolution_accepts_blocks_and_refuses_bad_answers():
    files = {"pkg/m.py": CONFLICTED}
    assert gt.apply_resolution(files, "ok:\n--- RESOLVE pkg/m.py #1\nx = 3\n--- END\n") == {"pkg/m.py": "a\nx = 3\nb\n"}
    assert gt.apply_resolution(files, "--- FILE pkg/m.py\nwhole\n--- END\n") == {"pkg/m.py": "whole\n"}
    rst = '--- FILE pkg/m.py\n"""Title\n=======\n"""\n--- END\n'  # an underline is no conflict marker
    assert gt.apply_resolution(files, rst) == {"pkg/m.py": '"""Title\n=======\n"""\n'}
    bad = {"": "empty", "just prose": "no `", "--- RESOLVE pkg/m.py #2\nx\n--- END\n": "no conflict #2",
           "--- RESOLVE ../m.py #1\nx\n--- END\n": "plain relative", "--- FILE /etc/passwd\nx\n--- END\n": "plain relative",
           "--- FILE tests/test_m.py\nx\n--- END\n": "test or test-runner", "--- FILE other.py\nx\n--- END\n": "not a conflicted",
           "--- RESOLVE pkg/m.py #1\n<<<<<<< HEAD\nx\n--- END\n": "markers left",
           "--- FILE pkg/m.py\n" + CONFLICTED + "--- END\n": "markers left",
           "--- RESOLVE pkg/m.py #1\nx\n": "no `--- END`"}
    for answer, why in bad.items():
        with pytest.raises(ValueError, match=why):
            gt.apply_resolution(files, answer)


def test_stable_split_and_held_out_pairs():
    assert gt.stable_split("x", 30, 1) == gt.stable_split("x", 30, 1)
    assert {gt.stable_split(str(i), 30) for i in range(50)} == {"train", "test"}
    rows = [{"split": "test", "bug_a": "1", "bug_b": "2"}, {"split": "train", "bug_a": "2", "bug_b": "3"},
            {"split": "train", "bug_a": "4", "bug_b": "5"}]
    kept, leaked = gt.held_out_whole(rows)
    assert kept == [rows[0], rows[2]] and leaked == [rows[1]]


@pytest.mark.slow  # three real git repos (~0.6-1 s)
def test_make_conflict_keeps_only_real_conflicts():
    conflict, why = gt.make_conflict(MODULE, PATH, bug_patch(BUG_A), bug_patch(BUG_B))
    assert why == "" and gt.has_markers(conflict.conflicted)
    assert conflict.ours == BUG_B and conflict.theirs == BUG_A and conflict.resolved == MODULE
    pieces = gt.gold_pieces(conflict.conflicted, MODULE)
    assert gt.apply_resolution({PATH: conflict.conflicted}, gt.format_resolution(PATH, pieces)) == {PATH: MODULE}
    assert gt.make_conflict(MODULE, PATH, bug_patch(BUG_A), bug_patch(BUG_FAR)) == (None, "git merges the two fixes cleanly")


def test_outcomes_need_the_done_line_with_the_nonce_right_after_pytest():
    from datagen.swe.repos import new_nonce, parse_pytest_summary

    (n1, _), (n2, _) = new_nonce(), new_nonce()
    summary = "=== short test summary info ===\nPASSED t.py::test_a\n=== 1 passed in 0.01s ===\n"
    assert parse_pytest_summary(summary + f"\nHRM_PYTEST_DONE {n1}\n", n1) == {"t.py::test_a": "PASSED"}
    assert parse_pytest_summary(summary + f"HRM_PYTEST_DONE {n2}\n", n1) == {}  # a forged done line
    assert parse_pytest_summary(summary, n1) == {}  # the process did not get to the end
    assert parse_pytest_summary(summary + "HRM_PYTEST_DONE x\n" + summary + f"HRM_PYTEST_DONE {n1}\n", n1) == {}
    assert parse_pytest_summary(summary + f"late print\nHRM_PYTEST_DONE {n1}\n", n1) == {}


# --- slow: the Sandbox decides ----------------------------------------------------------------------------
@pytest.mark.slow
def test_conflict_rows_are_validated_in_the_sandbox(fixture, sandbox):
    repo_row, tasks = fixture
    rows, rejected, stats = gt.build_conflict_rows(sandbox, repo_row, tasks, gt.GitTaskSettings(max_gap_lines=3))
    # the file is short, so every pair is a candidate; git merges the pairs with the far bug cleanly
    assert stats["candidate_pairs"] == 3 and len(rows) == 1, (stats, rejected)
    assert [r["reason"] for r in rejected] == ["git merges the two fixes cleanly"] * 2
    row = rows[0]
    assert row["kind"] == "conflict" and row["task_type"] == "diff_edit" and row["n_conflicts"] == 1
    assert set(row["FAIL_TO_PASS"]) == {t for t in tasks[0]["FAIL_TO_PASS"]} | set(tasks[1]["FAIL_TO_PASS"])
    assert "tests/test_rangekit.py::test_total" in row["PASS_TO_PASS"]
    assert "<<<<<<< HEAD" in row["prompt"] and ">>>>>>> fix-b" in row["prompt"]
    assert gt.apply_resolution(json.loads(row["conflicted_files"]), row["answer"]) == {PATH: MODULE}


@pytest.mark.slow
def test_commit_rows_from_the_polyglot_history(polyglot_bundle, tmp_path):
    rows, failed = gt.build_commit_rows([str(polyglot_bundle)], tmp_path, gt.GitTaskSettings(max_diff_chars=500))
    assert not failed and len(rows) == 4  # five commits, the root has no parent
    docs = next(r for r in rows if r["answer"].startswith("docs:"))
    assert docs["task_type"] == "plan" and docs["prompt"].count("diff --git") >= 1 and "README" in docs["prompt"]
    assert all(len(r["prompt"]) < 800 for r in rows)  # the diff is cut to the budget
    assert {r["split"] for r in rows} <= {"train", "test"}
    assert [r["split"] for r in rows] == [r["split"] for r in gt.build_commit_rows(
        [str(polyglot_bundle)], tmp_path, gt.GitTaskSettings(max_diff_chars=500))[0]]


def test_with_conflicts_but_none_held_out_the_smallest_hash_goes_to_test_and_its_bugs_leave_train():
    from datagen.git_tasks import hold_out_one_conflict

    def row(a, b, split="train"):
        return {"kind": "conflict", "split": split, "example_id": f"git-conflict.{a}+{b}", "bug_a": a, "bug_b": b}

    commit = {"kind": "commit_message", "split": "train", "example_id": "git-commit.x"}
    rows = [row("r.1", "2"), row("r.1", "3"), row("r.4", "5"), commit]
    kept, leaked = hold_out_one_conflict([dict(r) for r in rows])
    test = [r for r in kept if r["split"] == "test"]
    assert len(test) == 1 and commit in kept
    shared = {test[0]["bug_a"], test[0]["bug_b"]}
    assert all({r["bug_a"], r["bug_b"]}.isdisjoint(shared) for r in kept if r["kind"] == "conflict" and r["split"] == "train")
    assert len(kept) + len(leaked) == len(rows)
    already = [row("r.1", "2", "test"), row("r.4", "5")]
    assert hold_out_one_conflict(already) == (already, [])
    assert hold_out_one_conflict([commit]) == ([commit], [])
