"""Aggregation in a jailed session: each part's patch goes on its own branch from the task's base, the
branches are merged with git one by one; a part whose patch does not apply to the base is rejected, a
conflicting one goes to the merge agent (a SubtaskRunner editing the merge so far), and failing that is
applied sequentially (`git apply --3way`). Then the full test suite runs on the result."""

from __future__ import annotations

import shlex
import time

from agents.orchestrator.workspace import checkout, diff, run_tests, slug


def merge_and_test(session, task: dict, repo, patches: list[tuple[object, str]], merge_agent=None,
                   agent_ctx=None, test_timeout_s: float = 120.0) -> dict:
    """`patches`: (fix sub-task, its patch). Returns the outcome with the seconds spent merging (git work,
    the orchestrator's aggregation), in the merge agent and in the tests (agent work)."""
    t0 = time.monotonic()
    dest = f"/work/{slug(task['instance_id'])}.merge"
    out = {"merged": [], "rejected": [], "conflicts": [], "by_merge_agent": [], "sequential": [], "unmerged": [],
           "merge_agent_s": 0.0, "test_s": 0.0, "patch": "", "resolved": False, "tests": {}}
    ok, text = checkout(session, task, dest)
    if not ok:
        out.update(error=f"checkout failed: {text[-300:]}", merge_s=round(time.monotonic() - t0, 4))
        return out
    d = shlex.quote(dest)
    script = [f"cd {d} && git branch -q hrm-base"]
    for i, (sub, patch) in enumerate(patches):
        f = f"/tmp/{slug(sub.id)}.patch"
        if session.write_file(f, patch).status != "ok":
            out["rejected"].append(sub.id)
            continue
        script.append(f"if git checkout -q -b p{i} hrm-base && git apply --whitespace=nowarn {f} && git add -A && "
                      f"git commit -qm p{i} --no-gpg-sign; then echo HRM_APPLIED {i}; else git checkout -q -f hrm-base;"
                      f" echo HRM_REJECTED {i}; fi")
    script.append("git checkout -q -f hrm-base -B hrm-merge")
    r = session.run("; ".join(script) + "; cd /work")
    applied = {int(x) for x in _marks(r.output, "HRM_APPLIED")}
    out["rejected"] += [patches[i][0].id for i in range(len(patches)) if i not in applied
                        and patches[i][0].id not in out["rejected"]]
    order = sorted(applied)
    if order:
        merges = "; ".join(f"if git merge -q --no-edit --no-gpg-sign p{i} >/dev/null 2>&1; then echo HRM_MERGED {i}; "
                           f"else git merge --abort; echo HRM_CONFLICT {i}; fi" for i in order)
        r = session.run(f"cd {d} && {merges}; cd /work")
        merged = {int(x) for x in _marks(r.output, "HRM_MERGED")}
        out["merged"] = [patches[i][0].id for i in order if i in merged]
        conflicted = [i for i in order if i not in merged]
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
    _, out["patch"] = diff_from(session, dest, "hrm-base")
    merge_s = time.monotonic() - t0 - out["merge_agent_s"]
    t1 = time.monotonic()
    out["tests"] = run_tests(session, task, repo, dest, test_timeout_s)
    out["test_s"] = round(time.monotonic() - t1, 4)
    out["resolved"] = out["tests"]["resolved"]
    out["merge_s"] = round(merge_s, 4)
    return out


def _by_agent(session, merge_agent, sub, dest: str, agent_ctx, out: dict) -> bool:
    t0 = time.monotonic()
    try:
        ctx = agent_ctx(sub, dest)
        result = merge_agent(sub, "merge_agent", session, ctx)
        if result.status != "ok":
            session.run(f"cd {shlex.quote(dest)} && git reset -q --hard && cd /work")
            return False
        r = session.run(f"cd {shlex.quote(dest)} && git add -A && git commit -qm merged-{slug(sub.id)} --no-gpg-sign;"
                        " __rc=$?; cd /work; (exit $__rc)")
        return r.status == "ok"
    finally:
        out["merge_agent_s"] = round(out["merge_agent_s"] + time.monotonic() - t0, 4)


def diff_from(session, dest: str, base: str) -> tuple[bool, str]:
    r = session.run(f"git -C {shlex.quote(dest)} -c color.ui=never diff --no-ext-diff {base} HEAD")
    return r.status == "ok", (r.output + "\n") if r.output.strip() else ""


def _marks(output: str, mark: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.startswith(mark + " ") and len(line.split()) == 2]


__all__ = ["merge_and_test", "diff"]
