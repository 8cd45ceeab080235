"""Aggregation in a jailed session: each part's patch goes on its own branch from the task's base, the
branches are merged with git one by one; a part whose patch does not apply to the base is rejected, a
conflicting one goes to the merge agent (a SubtaskRunner editing the merge so far), and failing that is
applied sequentially (`git apply --3way`). Then the full test suite runs on the result. Each part's edits
to the files the benchmark owns (tests, conftest, runner config) are left out before merging; the session's
verdict is a working answer, and a "resolved" is confirmed in a fresh jail (`confirm`).

The clean path (every patch applies and merges) is one script and one round trip to the session, the tests
included: a round trip costs about 0.1 s, the script's git work about as much."""

from __future__ import annotations

import shlex
import time

from agents.orchestrator.credit import fresh_run, graded_patch
from agents.orchestrator.workspace import checkout_script, heredoc, run_script, slug, tests_command, tests_outcome
from datagen.swe.repos import PASSING, write_nonce
from resources.sandbox import default_sandbox


def workdir(task: dict) -> str:
    return f"/work/{slug(task['instance_id'])}.merge"


def prepare(session, task: dict, dest: str) -> bool:
    """The base checkout with branch hrm-base, made while the parts are still being worked on."""
    r = run_script(session, checkout_script(task, dest) + "git branch -q -f hrm-base\necho HRM_PREPARED\n")
    return r.status == "ok" and "HRM_PREPARED" in r.output


def merge_script(task: dict, repo, dest: str, patches: list[tuple[object, str]], prepared: bool = False) -> str:
    """Check out the base (unless `prepared`), put each patch on a branch, merge them; when every patch applied
    and merged, print the diff and run the tests in the same round trip. Clock marks (in the jail) split merging
    from testing."""
    base = (f"cd {shlex.quote(dest)} && git checkout -q -f hrm-base || {{ echo HRM_CHECKOUT_FAILED; exit 92; }}"
            if prepared else checkout_script(task, dest) + "git branch -q hrm-base")
    lines = ['echo "HRM_CLOCK merge_start $(date +%s.%N)"', base, "applied=; trouble="]
    for i, (sub, patch) in enumerate(patches):
        f = f"/tmp/{slug(sub.id)}.patch"
        lines += [heredoc(f, patch),
                  f"if git checkout -q -b p{i} hrm-base && git apply --index --whitespace=nowarn {f} && "
                  f"git commit -qm p{i} --no-gpg-sign; then echo HRM_APPLIED {i}; applied=\"$applied {i}\"; "
                  f"else git checkout -q -f hrm-base; echo HRM_REJECTED {i}; trouble=1; fi"]
    lines += ["git checkout -q -f -B hrm-merge hrm-base",
              'for i in $applied; do if git merge -q --no-edit --no-gpg-sign p$i >/dev/null 2>&1; '
              'then echo HRM_MERGED $i; else git merge --abort; echo HRM_CONFLICT $i; trouble=1; fi; done',
              'echo "HRM_CLOCK merge_end $(date +%s.%N)"',
              f'[ -n "$trouble" ] || {{ echo {_DIFF}; git -c color.ui=never diff --no-ext-diff hrm-base HEAD; '
              f'echo {_TESTS}; {tests_command(task, repo, dest)}; }}']
    return "\n".join(lines) + "\n"


_DIFF, _TESTS = "HRM_MERGED_DIFF_9f1c", "HRM_TESTS_7d2e"


def verify(session, task: dict, repo, patches: list[tuple[object, str]], merge_agent=None, agent_ctx=None,
           test_timeout_s: float = 120.0, prepared: bool = False, sandbox=None):
    """A verify sub-task's work (in a thread or a worker process): merge, test, and a "resolved" confirmed in a
    fresh jail (`sandbox`, default resources.sandbox.default_sandbox()); (SubtaskResult, outcome)."""
    from agents.orchestrator.runners import SubtaskResult

    out = merge_and_test(session, task, repo, patches, merge_agent, agent_ctx, test_timeout_s, prepared)
    if out["resolved"]:
        confirm(sandbox or default_sandbox(), task, repo, out, test_timeout_s)
    tested = out["tests"].get("status") in ("ok", "failed")
    status = "ok" if "error" not in out and (tested or out["rejected"]) else "error"
    return SubtaskResult(status, out["patch"], out.get("error", "")), out


def confirm(sandbox, task: dict, repo, out: dict, timeout_s: float) -> bool:
    """The session's "resolved" checked in a fresh jail: the clean checkout, the bug and the merged patch (without
    edits to the benchmark's files), every FAIL_TO_PASS and PASS_TO_PASS test passing in the runner's own report.
    The session is shared with agents: what one left running there (or a merge agent's edit to a test) must not
    decide the verdict. Sets out["resolved"] and out["confirmed_in_fresh_jail"]; its seconds count as test time."""
    t0 = time.monotonic()
    patch, _ = graded_patch(task, out["patch"])
    try:
        run = fresh_run(sandbox, task, repo, [patch], timeout_s)
    except Exception as exc:  # the jail could not run it: not confirmed, and the run goes on
        run = {"applied": False, "report": False, "error": f"{type(exc).__name__}: {str(exc)[-200:]}"}
    tests = run.get("tests") or {}
    wanted = list(task["FAIL_TO_PASS"]) + list(task["PASS_TO_PASS"])
    ok = bool(run["applied"] and run["report"] and all(tests.get(t) in PASSING for t in wanted))
    out["resolved"] = out["confirmed_in_fresh_jail"] = ok
    out["test_s"] = round(float(out.get("test_s", 0.0)) + time.monotonic() - t0, 4)
    return ok


def merge_and_test(session, task: dict, repo, patches: list[tuple[object, str]], merge_agent=None,
                   agent_ctx=None, test_timeout_s: float = 120.0, prepared: bool = False) -> dict:
    """`patches`: (fix sub-task, its patch). Returns the outcome with the seconds spent merging (git work, the
    orchestrator's aggregation: measured in the jail, plus any conflict handling), in the merge agent and in the
    tests (agent work: the rest of the verification's wall time)."""
    t0 = time.monotonic()
    dest = workdir(task)
    out = {"merged": [], "rejected": [], "conflicts": [], "by_merge_agent": [], "sequential": [], "unmerged": [],
           "merge_agent_s": 0.0, "test_s": 0.0, "merge_s": 0.0, "patch": "", "resolved": False, "tests": {},
           "ignored_files": []}
    # the tests and runner config are graded in their clean versions: a part's edits to them never merge
    cleaned = []
    for sub, patch in patches:
        kept, ignored = graded_patch(task, patch)
        out["ignored_files"] += ignored
        cleaned.append((sub, patch if kept is None else kept))  # unparseable: git apply rejects it below
    patches = cleaned
    nonce = write_nonce(session, "/tmp")  # moved into dest by tests_command, read by the runner
    r = run_script(session, merge_script(task, repo, dest, patches, prepared), timeout_s=test_timeout_s + 60)
    if r.status in ("error", "timeout") or "HRM_CHECKOUT_FAILED" in r.output or "merge_end" not in r.output:
        out.update(error=f"merge failed ({r.status}): {r.output[-300:]}", merge_s=round(time.monotonic() - t0, 4))
        return out
    clock = _clock(r.output)
    merge_s = clock["merge_end"] - clock["merge_start"]
    applied = {int(x) for x in _marks(r.output, "HRM_APPLIED")}
    merged = {int(x) for x in _marks(r.output, "HRM_MERGED")}
    out["rejected"] = [patches[i][0].id for i in range(len(patches)) if i not in applied]
    out["merged"] = [patches[i][0].id for i in sorted(merged)]
    if out["rejected"]:  # the parts go back to agents; testing now would be wasted
        out.update(merge_s=round(merge_s, 4), test_s=round(time.monotonic() - t0 - merge_s, 4),
                   tests={"status": "skipped", "resolved": False})
        return out
    if _TESTS in r.output:
        before, _, tests_out = r.output.partition(_TESTS)
        diff_text = before.partition(_DIFF)[2].split("HRM_CLOCK")[0].strip("\n")
    else:  # conflicts: merge agent or sequential application, then diff and tests
        t1 = time.monotonic()
        _resolve_conflicts(session, dest, patches, sorted(applied - merged), merge_agent, agent_ctx, out)
        nonce = write_nonce(session, "/tmp")
        r = session.run(f"echo {_DIFF}; git -C {shlex.quote(dest)} -c color.ui=never diff --no-ext-diff hrm-base HEAD;"
                        f" echo {_TESTS}; {tests_command(task, repo, dest)}; cd /work", timeout_s=test_timeout_s)
        before, _, tests_out = r.output.partition(_TESTS)
        diff_text = before.partition(_DIFF)[2].strip("\n")
        merge_s += time.monotonic() - t1 - out["merge_agent_s"]
    out["patch"] = diff_text + "\n" if diff_text.strip() else ""
    out["tests"] = tests_outcome(task, r.status, tests_out, nonce)
    out["resolved"] = out["tests"]["resolved"]
    out["merge_s"] = round(merge_s, 4)
    out["test_s"] = round(time.monotonic() - t0 - merge_s - out["merge_agent_s"], 4)
    return out


def _resolve_conflicts(session, dest, patches, conflicted, merge_agent, agent_ctx, out) -> None:
    d = shlex.quote(dest)
    for i in conflicted:
        sub = patches[i][0]
        out["conflicts"].append(sub.id)
        if merge_agent is not None and _by_agent(session, merge_agent, sub, dest, agent_ctx, out):
            out["by_merge_agent"].append(sub.id)
            continue
        f = f"/tmp/{slug(sub.id)}.patch"
        s = session.run(f"cd {d} && git apply --3way --whitespace=nowarn {f} && git add -A && "
                        f"git commit -qm seq{i} --no-gpg-sign; __rc=$?; cd /work; (exit $__rc)")
        if s.status == "ok":
            out["sequential"].append(sub.id)
        else:
            session.run(f"cd {d} && git reset -q --hard && cd /work")
            out["unmerged"].append(sub.id)


def _by_agent(session, merge_agent, sub, dest: str, agent_ctx, out: dict) -> bool:
    t0 = time.monotonic()
    try:
        result = merge_agent(sub, "merge_agent", session, agent_ctx(sub, dest))
        if result.status != "ok":
            session.run(f"cd {shlex.quote(dest)} && git reset -q --hard && cd /work")
            return False
        r = session.run(f"cd {shlex.quote(dest)} && git add -A && git commit -qm merged-{slug(sub.id)} --no-gpg-sign;"
                        " __rc=$?; cd /work; (exit $__rc)")
        return r.status == "ok"
    finally:
        out["merge_agent_s"] = round(out["merge_agent_s"] + time.monotonic() - t0, 4)


def _clock(output: str) -> dict[str, float]:
    marks = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "HRM_CLOCK":
            try:
                marks[parts[1]] = float(parts[2])
            except ValueError:
                pass
    return marks


def _marks(output: str, mark: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.startswith(mark + " ") and len(line.split()) == 2]
