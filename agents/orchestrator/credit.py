"""Credit per part and per role in a multi-agent episode: which part's patch made which test pass.

The tests that count are those PASSED on the task's starting state (the bug) plus every part's patch, and not
passing on the starting state alone. Each is credited by leave-one-out: the parts without which it stops
passing share it (1/k each of k such parts); a test that passes whichever single part is left out is one no
single part explains. The second view runs each part alone on the starting state: the tests it makes pass by
itself. Every run is a fresh jail with the clean checkout, the bug and the chosen parts' patches applied in
order, read through the graders' runner with a fresh nonce; a combination whose patches do not apply is
reported and credits nothing. Patches lose their edits to files the benchmark owns (tests, conftest, runner
config: `datagen.swe.trajectories.benchmark_owned`) before any run, except files the task's own bug touched (a
build fix repairs pyproject.toml), so a part is never credited for tests it rewrote.

Jailed runs: one for every part together, then per part one without it and one with it alone (combinations
that coincide run once: two parts cost three runs), and one of the starting state only when a test outside
FAIL_TO_PASS and PASS_TO_PASS passes at the end. A single part costs one run and takes all the credit."""

from __future__ import annotations

import secrets
import time

from datagen.swe.repos import ENV_MOUNT, PreparedRepo, new_nonce, parse_pytest_summary, test_command
from datagen.swe.trajectories import GIT_ENV, without_benchmark_files
from resources.sandbox import SandboxJob

_MARK = ".hrm_apply_mark"  # a per-run token, read and removed before the tests run: their output cannot forge it


def part_credit(sandbox, task: dict, repo: PreparedRepo, parts: list[tuple[str, str, str]],
                timeout_s: float = 120.0) -> dict:
    """`parts`: (sub-task id, role, patch against the starting state) of every final part. Returns the credit
    per part and per role, the tests no part explains and the combinations that did not apply."""
    t0 = time.monotonic()
    graded = [graded_patch(task, patch) for _, _, patch in parts]
    n = len(parts)
    every = tuple(range(n))
    views = {every: ["all"]}  # combination of parts -> the views it serves (two parts: without one = the other alone)
    for i in every if n > 1 else ():
        views.setdefault(tuple(j for j in every if j != i), []).append(f"without {parts[i][0]}")
    for i in every if n > 1 else ():
        views.setdefault((i,), []).append(f"alone {parts[i][0]}")
    combos = list(views)
    runs = dict(zip(combos, sandbox.map(lambda c: fresh_run(sandbox, task, repo, [graded[i][0] for i in c], timeout_s),
                                        combos)))
    out = {"parts": [{"subtask_id": sid, "role": role, "ignored_files": graded[i][1]}
                     for i, (sid, role, _) in enumerate(parts)],
           "runs": len(combos), "not_applied": [], "gained": [], "unexplained": [], "alone_unexplained": []}
    for c in combos:
        if runs[c]["applied"] is False:
            failed = runs[c]["failed"]
            out["not_applied"].append({"parts": [parts[i][0] for i in c], "views": views[c],
                                       "failed": parts[c[failed]][0] if failed is not None else "the task's bug"})
    final = runs[every]
    if not final["applied"]:
        return _finish(out, t0, "not_applied")
    if not final["report"]:
        return _finish(out, t0, "no_report")
    known = set(task["FAIL_TO_PASS"]) | set(task["PASS_TO_PASS"])
    if final["passed"] <= known:  # validated: FAIL_TO_PASS failed and PASS_TO_PASS passed on the starting state
        start = set(task["PASS_TO_PASS"])
    else:
        first = fresh_run(sandbox, task, repo, [], timeout_s)
        out["runs"] += 1
        if not (first["applied"] and first["report"]):
            return _finish(out, t0, "no_start_report")
        start = first["passed"]
    gained = sorted(final["passed"] - start)
    out["gained"] = gained
    credit = {i: {} for i in every}
    alone = {i: {} for i in every}
    without = [runs[tuple(j for j in every if j != i)] for i in every] if n > 1 else []
    complete = all(r["applied"] for r in without)  # a view missing: its tests are nobody's, not a guess
    for t in gained:
        if n == 1:
            needed = makers = [0]
        else:
            needed = [i for i in every if complete and t not in without[i]["passed"]]
            makers = [i for i in every if runs[(i,)]["applied"] and t in runs[(i,)]["passed"]]
        for i in needed:
            credit[i][t] = 1 / len(needed)
        for i in makers:
            alone[i][t] = 1 / len(makers)
        if not needed:
            out["unexplained"].append(t)
        if not makers:
            out["alone_unexplained"].append(t)
    for i, p in enumerate(out["parts"]):
        p.update(_tally(credit[i], len(gained)), **{f"alone_{k}": v for k, v in _tally(alone[i], len(gained)).items()})
    return _finish(out, t0, "ok")


def _tally(tests: dict[str, float], total: int) -> dict:
    score = sum(tests.values())
    return {"tests": sorted(tests), "credit": round(score, 4), "share": round(score / total, 4) if total else 0.0}


def _finish(out: dict, t0: float, status: str) -> dict:
    by_role: dict[str, dict] = {}
    for p in out["parts"]:
        r = by_role.setdefault(p["role"], {"parts": [], "tests": set(), "credit": 0.0, "share": 0.0,
                                           "alone_credit": 0.0, "alone_share": 0.0})
        r["parts"].append(p["subtask_id"])
        r["tests"] |= set(p.get("tests", []))
        for k in ("credit", "share", "alone_credit", "alone_share"):
            r[k] = round(r[k] + p.get(k, 0.0), 4)
    out["by_role"] = {role: {**r, "tests": sorted(r["tests"])} for role, r in sorted(by_role.items())}
    out.update(status=status, wall_s=round(time.monotonic() - t0, 3))
    return out


def graded_patch(task: dict, patch: str) -> tuple[str | None, list[str]]:
    """(the patch without its edits to files the benchmark owns, the paths left out); None when it does not
    parse. Files the task's bug changed stay: repairing them is the task."""
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError

    if not patch.strip():
        return "", []
    try:
        bug_files = {pf.path for pf in PatchSet(task["patch"])}
        files = PatchSet(patch)
    except UnidiffParseError:
        return None, []
    if not files:
        return None, []
    owned = {t.split("::")[0] for t in list(task["FAIL_TO_PASS"]) + list(task["PASS_TO_PASS"])}
    return without_benchmark_files(patch, owned, editable=bug_files)


def fresh_run(sandbox, task: dict, repo: PreparedRepo, patches: list[str | None], timeout_s: float) -> dict:
    """The repo's suite in a fresh jail on the clean checkout + the task's bug + `patches` in order:
    {applied (False when one did not apply), failed (its index), report (the runner's own report was read),
    tests (test id -> outcome), passed (test ids PASSED)}."""
    if any(p is None for p in patches):
        return {"applied": False, "failed": next(i for i, p in enumerate(patches) if p is None), "report": False,
                "passed": set()}
    nonce, files = new_nonce()
    mark = secrets.token_hex(8)
    files.update({_MARK: mark, ".hrm_bug.patch": task["patch"]})
    script = (f"read -r m < {_MARK}; rm -f {_MARK}; git apply --whitespace=nowarn .hrm_bug.patch || "
              f"{{ echo \"HRM_SETUP_FAILED $m\"; exit 96; }}; ")
    for i, patch in enumerate(patches):
        if patch.strip():
            files[f".hrm_part{i}.patch"] = patch
            script += (f"git apply --whitespace=nowarn .hrm_part{i}.patch || "
                       f"{{ echo \"HRM_PART_FAILED $m {i}\"; exit 97; }}; ")
    script += 'rm -f .hrm_bug.patch .hrm_part*.patch; unset m; exec "$@"'
    job = SandboxJob(command=["sh", "-c", script, "part-credit", *test_command(repo)], files=files,
                     input_dir=repo.repo_dir, ro_binds=[(repo.env_dir, ENV_MOUNT)],
                     env={"PYTHONPATH": repo.pythonpath, **GIT_ENV}, timeout_s=timeout_s)
    result = sandbox.run_job(job)
    lines = result.stdout.splitlines()
    failed = next((int(line.split()[2]) for line in lines
                   if line.startswith(f"HRM_PART_FAILED {mark} ") and len(line.split()) == 3), None)
    if failed is not None or f"HRM_SETUP_FAILED {mark}" in lines:
        return {"applied": False, "failed": failed, "report": False, "passed": set()}
    tests = parse_pytest_summary(result.stdout, nonce)
    return {"applied": True, "failed": None, "report": bool(tests), "tests": tests,
            "passed": {t for t, outcome in tests.items() if outcome == "PASSED"}}
