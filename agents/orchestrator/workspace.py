"""A task's repository inside a jailed session: read-only copies of the prepared repos and their test envs
are bound at /repos/<key> and /envs/<key>; a sub-task works on its own clone with the bug applied and
committed, so `git diff` is exactly the agent's fix."""

from __future__ import annotations

import re
import secrets
import shlex

from datagen.swe.repos import PASSING, PYTEST_ARGS, PreparedRepo, parse_pytest_summary, runner_command, take_nonce_shell

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # the terminal's line discipline acts on these

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


def heredoc(path: str, text: str) -> str:
    """A command that writes text to path: one quoted word, which SWE-ReX's own command parser (bashlex) takes,
    where a here-document makes it log an error."""
    text = text if text.endswith("\n") else text + "\n"
    return f"printf '%s' {shlex.quote(text)} > {shlex.quote(path)}\n"


def run_script(session, script: str, timeout_s: float | None = None):
    """Run a multi-line script in a subshell of the session (an `exit` ends only the subshell). It goes to the
    terminal as typed lines when it can (one round trip); text the terminal would mangle (long lines, control
    characters) is written into the jail first."""
    if max(map(len, script.splitlines() or [""])) < 1800 and not _CONTROL.search(script):
        return session.run("(\n" + script + "\n); cd /work", timeout_s=timeout_s)
    path = f"/tmp/.hrm-script-{secrets.token_hex(4)}.sh"
    w = session.write_file(path, script)
    return session.run(f"bash {path}; __rc=$?; rm -f {path}; cd /work; (exit $__rc)", timeout_s=timeout_s) \
        if w.status == "ok" else w


def checkout_script(task: dict, dest: str, base_patches: tuple[str, ...] = ()) -> str:
    key, d = shlex.quote(task["source_repo"]), shlex.quote(dest)
    bug = f"/tmp/{slug(task['instance_id'])}.bug"
    script = (f"rm -rf {d} && cp -R /repos/{key} {d} && cd {d} || {{ echo HRM_CHECKOUT_FAILED; exit 90; }}\n"
              + heredoc(bug, task["patch"])
              + f"git apply --whitespace=nowarn {bug} && git add -A && git commit -qm bug --no-gpg-sign "
                "|| { echo HRM_CHECKOUT_FAILED; exit 91; }\n")
    for i, patch in enumerate(p for p in base_patches if p.strip()):  # the work this sub-task depends on
        f = f"/tmp/{slug(task['instance_id'])}.dep{i}"
        script += (heredoc(f, patch) + f"git apply --whitespace=nowarn {f} && git add -A && git commit -qm dep{i} "
                   "--no-gpg-sign || { echo HRM_CHECKOUT_FAILED; exit 93; }\n")
    return script


def checkout(session, task: dict, dest: str, base_patches: tuple[str, ...] = ()) -> tuple[bool, str]:
    """Fresh clone of the task's repo at `dest` with its bug committed on top, then the patches of the sub-tasks
    it depends on (a tool fix before the code fix), each committed; (ok, output)."""
    r = run_script(session, checkout_script(task, dest, base_patches))
    return r.status == "ok" and "HRM_CHECKOUT_FAILED" not in r.output, r.output


def diff(session, dest: str) -> tuple[bool, str]:
    r = session.run(f"git -C {shlex.quote(dest)} -c color.ui=never diff --no-ext-diff")
    return r.status == "ok", (r.output + "\n") if r.output.strip() else ""


def tests_command(task: dict, repo: PreparedRepo, dest: str) -> str:
    """The repo's suite at `dest` through the shared runner (datagen.swe.repos.RUNNER); a nonce the caller
    staged with `write_nonce(session, "/tmp")` is moved in first, so only the runner's own report can pass."""
    key = task["source_repo"]
    pythonpath = ":".join(p.replace("/work", dest, 1) for p in repo.pythonpath.split(":"))
    run = shlex.join(runner_command(f"/envs/{key}/bin/python", [*PYTEST_ARGS, *repo.test_paths]))
    return f"cd {shlex.quote(dest)} && {{ {take_nonce_shell('/tmp')}PYTHONPATH={shlex.quote(pythonpath)} {run}; }}"


def tests_outcome(task: dict, status: str, output: str, nonce: str) -> dict:
    """Resolved only if every FAIL_TO_PASS and PASS_TO_PASS test passes in pytest's own summary, read from a
    runner report that ends with this run's `nonce`."""
    tests = parse_pytest_summary(output, nonce) if nonce else {}
    wanted = list(task["FAIL_TO_PASS"]) + list(task["PASS_TO_PASS"])
    failing = [t for t in wanted if tests.get(t) not in PASSING]
    return {"status": status, "resolved": bool(tests) and not failing, "n_tests": len(tests),
            "failing": failing[:20], "f2p_passed": sum(tests.get(t) in PASSING for t in task["FAIL_TO_PASS"])}
