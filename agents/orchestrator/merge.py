"""Aggregation in a jailed session: each part's patch goes on its own branch from the task's base, the
branches are merged with git one by one; a part whose patch does not apply to the base is rejected, a
conflicting one goes to the merge agent (a SubtaskRunner editing the merge so far), and failing that is
applied sequentially (`git apply --3way`). Then the full test suite runs on the result.

The clean path is one script and one round trip (a round trip to the session costs about 0.1 s; the script
would cost ten of them as separate commands); the final diff rides along with the test run."""

from __future__ import annotations

import shlex
import time

from agents.orchestrator.workspace import checkout_script, heredoc, run_script, run_tests, slug


def merge_script(task: dict, dest: str, patches: list[tuple[object, str]]) -> str:
    lines = [checkout_script(task, dest), "git branch -q hrm-base", "applied="]
    for i, (sub, patch) in enumerate(patches):
        f = f"/tmp/{slug(sub.id)}.patch"
        lines += [heredoc(f, patch),
                  f"if git checkout -q -b p{i} hrm-base && git apply --index --whitespace=nowarn {f} && "
                  f"git commit -qm p{i} --no-gpg-sign; then echo HRM_APPLIED {i}; applied=\"$applied {i}\"; "
                  f"else git checkout -q -f hrm-base; echo HRM_REJECTED {i}; fi"]
    lines += ["git checkout -q -f -B hrm-merge hrm-base",
              'for i in $applied; do if git merge -q --no-edit --no-gpg-sign p$i >/dev/null 2>&1; '
              'then echo HRM_MERGED $i; else git merge --abort; echo HRM_CONFLICT $i; fi; done']
    return "\n".join(lines) + "\n"


def merge_and_test(session, task: dict, repo, patches: list[tuple[object, str]], merge_agent=None,
                   agent_ctx=None, test_timeout_s: float = 120.0) -> dict:
    """`patches`: (fix sub-task, its patch). Returns the outcome with the seconds spent merging (git work,
    the orchestrator's aggregation), in the merge agent and in the tests (agent work)."""
    t0 = time.monotonic()
    dest = f"/work/{slug(task['instance_id'])}.merge"
    out = {"merged": [], "rejected": [], "conflicts": [], "by_merge_agent": [], "sequential": [], "unmerged": [],
           "merge_agent_s": 0.0, "test_s": 0.0, "patch": "", "resolved": False, "tests": {}}
    r = run_script(session, merge_script(task, dest, patches))
    if r.status == "error" or "HRM_CHECKOUT_FAILED" in r.output:
        out.update(error=f"merge checkout failed: {r.output[-300:]}", merge_s=round(time.monotonic() - t0, 4))
        return out
    applied = {int(x) for x in _marks(r.output, "HRM_APPLIED")}
    merged = {int(x) for x in _marks(r.output, "HRM_MERGED")}
    out["rejected"] = [patches[i][0].id for i in range(len(patches)) if i not in applied]
    out["merged"] = [patches[i][0].id for i in sorted(merged)]
    d = shlex.quote(dest)
    for i in sorted(applied - merged):
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
    merge_s = time.monotonic() - t0 - out["merge_agent_s"]
    t1 = time.monotonic()  # the final diff rides along with the test run (one round trip)
    out["tests"] = run_tests(session, task, repo, dest, test_timeout_s,
                             before=f"git -C {d} -c color.ui=never diff --no-ext-diff hrm-base HEAD")
    diff_text = out["tests"].pop("before_output")
    out["patch"] = diff_text + "\n" if diff_text.strip() else ""
    out["test_s"] = round(time.monotonic() - t1, 4)
    out["resolved"] = out["tests"]["resolved"]
    out["merge_s"] = round(merge_s, 4)
    return out


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


def _marks(output: str, mark: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.startswith(mark + " ") and len(line.split()) == 2]
