"""Git benchmarks on the held-out `git_tasks` rows: merge conflicts resolved by the model and graded by the
repository's tests in the Sandbox (`git-conflicts`, resolve_rate), and commit messages scored against the
human message by ROUGE-L F1 (`git-commits`, message_rouge_l; evals/text_metrics.py).

A resolution passes only if its answer parses (datagen.git_tasks.apply_resolution: RESOLVE/FILE blocks for
the task's conflicted files only, no test or runner file, no path outside the repository, no conflict marker
left) and, with the resolved files written over the clean checkout, every FAIL_TO_PASS and PASS_TO_PASS test
passes in pytest's own summary (output printed after pytest's final line voids the run).
"""

from __future__ import annotations

import json

from datagen.git_tasks import TABLE, apply_resolution, run_with_files, verdict
from datagen.swe.repos import PreparedRepo, repo_from_row
from evals.report import rate_result
from evals.stats import problem
from evals.text_metrics import rouge_l, rouge_l_result

CONFLICT_BENCHMARK, COMMIT_BENCHMARK = "git-conflicts", "git-commits"


def grade_resolution(sandbox, repo_row: dict | PreparedRepo, task_row: dict, answer: str,
                     timeout_s: float = 120.0) -> tuple[bool, str]:
    """(passed, why) of one answer to a conflict task."""
    repo = repo_row if isinstance(repo_row, PreparedRepo) else repo_from_row(repo_row)
    conflicted = json.loads(task_row["conflicted_files"])
    try:
        resolved = apply_resolution(conflicted, answer)
    except ValueError as exc:
        return False, f"rejected: {exc}"
    tests = run_with_files(sandbox, repo, resolved, timeout_s)
    return verdict(tests, list(task_row["FAIL_TO_PASS"]), list(task_row["PASS_TO_PASS"]))


def _error_kind(why: str) -> str:
    if why.startswith("rejected: empty") or why.startswith("rejected: no `"):
        return "no_answer"
    if "markers left" in why:
        return "markers_left"
    if why.startswith("rejected"):
        return "bad_answer"
    return "tests_fail" if "not passing" in why else "no_summary"


def eval_git_conflicts(c, rows: list[dict], repos: dict[str, dict], sandbox, s, limit: int = 0,
                       max_new_tokens: int = 256, timeout_s: float = 120.0) -> list[dict]:
    """resolve_rate on the held-out conflict rows (greedy, one answer each) with its Wilson interval."""
    from evals.evaluate import complete

    rows = [r for r in rows if r["kind"] == "conflict" and r["split"] == "test" and r["repo"] in repos]
    rows = rows[:limit or None]
    if not rows:
        return []
    texts = complete(c, [r["prompt"] for r in rows], [r["language"] for r in rows], "diff_edit",
                     max_new_tokens=max_new_tokens, batch_size=s.batch_size, seed=s.seed)
    graded = sandbox.map(lambda rt: grade_resolution(sandbox, repos[rt[0]["repo"]], rt[0], rt[1][0], timeout_s),
                         list(zip(rows, texts)))
    problems = [problem(r["example_id"], ok, _error_kind(why)) for r, (ok, why) in zip(rows, graded)]
    passed = sum(p["passed"] for p in problems)
    return [{**rate_result(CONFLICT_BENCHMARK, "resolve_rate", passed / len(problems), len(problems)),
             "problems": problems}]


def eval_commit_messages(c, rows: list[dict], s, limit: int = 0, max_new_tokens: int = 64) -> list[dict]:
    """message_rouge_l: mean ROUGE-L F1 of the greedy message against the human one, bootstrap interval."""
    from evals.evaluate import complete

    rows = [r for r in rows if r["kind"] == "commit_message" and r["split"] == "test"][:limit or None]
    if not rows:
        return []
    texts = complete(c, [r["prompt"] for r in rows], [r["language"] for r in rows], "plan",
                     max_new_tokens=max_new_tokens, batch_size=s.batch_size, seed=s.seed)
    scored = {r["example_id"]: rouge_l(t[0], r["answer"])["f1"] for r, t in zip(rows, texts)}
    return [rouge_l_result(COMMIT_BENCHMARK, "message_rouge_l", scored, resamples=s.bootstrap_resamples, seed=s.seed)]


def load_git_suite(warehouse, limit: int = 0) -> tuple[list[dict], dict[str, dict], str]:
    """(the test rows of git_tasks, swe_repos rows by key for their repos, a note when something is missing)."""
    try:
        rows = [r for r in warehouse.read_table(TABLE).to_pylist() if r["split"] == "test"]
    except FileNotFoundError:
        return [], {}, f"{TABLE} not materialised"
    conflicts = [r for r in rows if r["kind"] == "conflict"][:limit or None]
    commits = [r for r in rows if r["kind"] == "commit_message"][:limit or None]
    repos, missing = {}, set()
    for key in sorted({r["repo"] for r in conflicts}):
        try:
            repos[key] = warehouse.read_table("swe_repos", partition=key).to_pylist()[0]
        except (FileNotFoundError, IndexError):
            missing.add(key)
    notes = []
    if missing:
        notes.append(f"swe_repos partitions missing for {', '.join(sorted(missing))}: their conflicts are skipped")
    if not conflicts:
        notes.append(f"{TABLE} has no held-out conflict")
    if not commits:
        notes.append(f"{TABLE} has no held-out commit message")
    return conflicts + commits, repos, "; ".join(notes)
