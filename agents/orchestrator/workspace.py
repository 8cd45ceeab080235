"""A task's repository inside a jailed session: read-only copies of the prepared repos and their test envs
are bound at /repos/<key> and /envs/<key>; a sub-task works on its own clone with the bug applied and
committed, so `git diff` is exactly the agent's fix."""

from __future__ import annotations

import re
import shlex

from datagen.swe.repos import PASSING, PreparedRepo, parse_pytest_summary

GIT_ENV = {"GIT_AUTHOR_NAME": "hrm-agent", "GIT_AUTHOR_EMAIL": "agent@hrm.invalid",
           "GIT_COMMITTER_NAME": "hrm-agent", "GIT_COMMITTER_EMAIL": "agent@hrm.invalid",
           "GIT_CONFIG_NOSYSTEM": "1"}


def session_options(repos: dict[str, PreparedRepo]) -> dict:
    """`SweRexSessions.open` arguments that make every repo of a batch available in the session."""
    binds = []
    for key, repo in sorted(repos.items()):
        binds += [(repo.repo_dir, f"/repos/{key}"), (repo.env_dir, f"/envs/{key}")]
    return {"ro_binds": binds, "env": dict(GIT_ENV)}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[-80:]


def checkout(session, task: dict, dest: str) -> tuple[bool, str]:
    """Fresh clone of the task's repo at `dest` with its bug committed on top; (ok, output)."""
    bug = f"/tmp/{slug(task['instance_id'])}.bug"
    w = session.write_file(bug, task["patch"])
    if w.status != "ok":
        return False, w.output
    key, d = shlex.quote(task["source_repo"]), shlex.quote(dest)
    r = session.run(f"rm -rf {d} && cp -R /repos/{key} {d} && cd {d} && "
                    f"git apply --whitespace=nowarn {bug} && git add -A && git commit -qm bug --no-gpg-sign && cd /work")
    return r.status == "ok", r.output


def diff(session, dest: str) -> tuple[bool, str]:
    r = session.run(f"git -C {shlex.quote(dest)} -c color.ui=never diff --no-ext-diff")
    return r.status == "ok", (r.output + "\n") if r.output.strip() else ""


def run_tests(session, task: dict, repo: PreparedRepo, dest: str, timeout_s: float) -> dict:
    """The full suite of the merged result; resolved only if every FAIL_TO_PASS and PASS_TO_PASS test passes."""
    key = task["source_repo"]
    pythonpath = ":".join(p.replace("/work", dest, 1) for p in repo.pythonpath.split(":"))
    r = session.run(f"cd {shlex.quote(dest)} && PYTHONPATH={shlex.quote(pythonpath)} /envs/{key}/bin/python -m pytest "
                    f"-rA --tb=no --color=no -q -p no:cacheprovider {' '.join(map(shlex.quote, repo.test_paths))}; "
                    "cd /work", timeout_s=timeout_s)
    tests = parse_pytest_summary(r.output)
    wanted = list(task["FAIL_TO_PASS"]) + list(task["PASS_TO_PASS"])
    failing = [t for t in wanted if tests.get(t) not in PASSING]
    return {"status": r.status, "resolved": bool(tests) and not failing, "n_tests": len(tests),
            "failing": failing[:20], "f2p_passed": sum(tests.get(t) in PASSING for t in task["FAIL_TO_PASS"])}
