"""SWE-smith task instances: procedural bugs validated in our Sandbox (no Docker), with static issue text.

Validation is SWE-smith's harness logic re-done locally: apply the bug patch to the pinned
checkout, run the suite in the jail, and compare with the clean baseline. FAIL_TO_PASS = passed
clean and fails (or vanishes) with the bug; PASS_TO_PASS = passes in both. A bug with no
FAIL_TO_PASS test changes nothing the tests can see, so it is rejected.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from datagen.swe.bugs import BugCandidate, generate_bugs
from datagen.swe.repos import PreparedRepo, TestRun, repo_from_row, run_tests
from resources.sandbox import Sandbox

# Columns of the HF `SWE-bench/SWE-smith` dataset, then ours (categorisation metadata).
HF_COLUMNS = ("instance_id", "repo", "patch", "FAIL_TO_PASS", "PASS_TO_PASS", "problem_statement", "image_name")
EXTRA_COLUMNS = ("base_commit", "bug_type", "files", "entity", "entity_kind", "complexity", "n_fail_to_pass",
                 "n_pass_to_pass", "n_files", "source", "source_repo", "validation_wall_s")


@dataclass(frozen=True)
class TaskSettings:
    seed: int = 24
    max_bugs: int = 120  # candidates per repo
    max_per_modifier: int = 20
    min_timeout_s: float = 20.0
    max_timeout_s: float = 120.0


def instance_prefix(repo: PreparedRepo) -> str:
    """`<owner>__<repo>.<commit8>` as in SWE-smith instance ids and mirror names."""
    return f"{repo.key}.{repo.commit[:8]}"


def validate_bug(sandbox: Sandbox, repo: PreparedRepo, baseline_passed: list[str], bug: BugCandidate,
                 timeout_s: float) -> tuple[TestRun, list[str], list[str]]:
    run = run_tests(sandbox, repo, bug.patch, timeout_s=timeout_s)
    if run.status not in ("ok", "failed"):
        return run, [], []
    fail_to_pass = [t for t in baseline_passed if run.tests.get(t) not in ("PASSED", "XFAIL")]
    pass_to_pass = [t for t in baseline_passed if run.tests.get(t) in ("PASSED", "XFAIL")]
    return run, fail_to_pass, pass_to_pass


def build_tasks(sandbox: Sandbox, repo_row: dict, settings: TaskSettings = TaskSettings(),
                progress=None) -> tuple[list[dict], list[dict], dict]:
    """(task rows, rejected candidates with reasons, stats) for one swe_repos row."""
    repo = repo_from_row(repo_row)
    baseline_passed = list(repo_row["passed_tests"])
    if not baseline_passed:
        raise ValueError(f"swe_repos[{repo.key}]: the clean baseline passes no test "
                         f"(status {repo_row.get('baseline_status')}); nothing can be validated")
    t0 = time.monotonic()
    bugs = generate_bugs(repo.repo_dir, instance_prefix(repo), settings.seed, settings.max_per_modifier,
                         settings.max_bugs)
    gen_s = time.monotonic() - t0
    timeout = min(settings.max_timeout_s, max(settings.min_timeout_s, 10 * float(repo_row["baseline_wall_s"])))
    done = [0]

    def check(bug: BugCandidate):
        out = validate_bug(sandbox, repo, baseline_passed, bug, timeout)
        done[0] += 1
        if progress:
            progress(done[0], len(bugs))
        return out

    t1 = time.monotonic()
    results = sandbox.map(check, bugs)
    val_s = time.monotonic() - t1
    rows, rejected = [], []
    for bug, (run, f2p, p2p) in zip(bugs, results):
        if run.status not in ("ok", "failed"):
            rejected.append({"instance_id": bug.instance_id, "reason": f"validation run {run.status}",
                             "detail": run.output_tail[-500:]})
        elif not f2p:
            rejected.append({"instance_id": bug.instance_id, "reason": "no FAIL_TO_PASS test (bug not observable)"})
        else:
            rows.append(task_row(repo, bug, f2p, p2p, run.wall_s, settings.seed))
    stats = {"repo": repo.key, "candidates": len(bugs), "tasks": len(rows), "rejected": len(rejected),
             "generate_s": round(gen_s, 2), "validate_s": round(val_s, 2), "timeout_s": timeout}
    return rows, rejected, stats


def task_row(repo: PreparedRepo, bug: BugCandidate, f2p: list[str], p2p: list[str], wall_s: float,
             seed: int) -> dict:
    prefix = instance_prefix(repo)
    row = {"instance_id": bug.instance_id, "repo": f"swesmith/{prefix}", "patch": bug.patch,
           "FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p, "image_name": "",
           "base_commit": repo.commit, "bug_type": bug.bug_type, "files": [bug.file], "entity": bug.entity,
           "entity_kind": bug.entity_kind, "complexity": bug.complexity, "n_fail_to_pass": len(f2p),
           "n_pass_to_pass": len(p2p), "n_files": 1, "source": "generated", "source_repo": repo.key,
           "validation_wall_s": wall_s}
    row["problem_statement"] = static_problem_statement(row, seed, funcs=[bug.entity])
    return row


def static_problem_statement(row: dict, seed: int, funcs: list[str] | None = None) -> str:
    """swesmith's issue_gen.get_static templates, drawn with a per-instance seeded RNG."""
    from swesmith.issue_gen import get_static as gs
    from unidiff import PatchSet

    rng = random.Random(f"{seed}:{row['instance_id']}")
    f2p = list(row["FAIL_TO_PASS"])
    fields = {"bug_type": gs.get_bug_exp(row), "f2p_single": rng.choice(f2p), "f2p_list": gs.print_list(f2p),
              "gold_files": gs.print_list([p.path for p in PatchSet(row["patch"])]),
              "gold_funcs": gs.print_list(sorted(funcs or gs.get_changed_functions(row["patch"])))}
    prompts, weights = zip(*gs.PROMPT_POOL)
    return rng.choices(prompts, weights=weights, k=1)[0].format(**fields)
