"""The agent loop: a policy acts through tools in a jailed session until it submits or a budget runs out;
`verify` then decides, in a fresh jail, whether the task is resolved.

The episode's patch is the session repo's diff against the task's starting state. Resolution never comes
from the agent: `verify` starts from the clean task files, applies the task's starting state and the patch
without the files the benchmark owns (tests, conftest, runner config, modules shadowing pytest: the clean
versions stay), runs the task's test command, and reads outcomes only from pytest's own summary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass, field

from agents.polyglot import session_binds, verify_exercise
from agents.tools import TOOL_NAMES, ParseError, ToolBox, system_prompt
from datagen.swe.repos import ENV_MOUNT, PASSING, final_stats, new_nonce, parse_pytest_summary
from datagen.swe.trajectories import GIT_ENV, without_benchmark_files
from resources.sandbox import SandboxJob

STATUSES = ("submitted", "budget_exhausted", "session_died", "error")
_PATH = f"{ENV_MOUNT}/bin:/usr/local/bin:/usr/bin:/bin"
# pyc files would enter `git add -A` as binary diffs that `git apply` refuses
_NO_PYC = ":(exclude,glob)**/__pycache__/**"


@dataclass
class AgentTask:
    instance_id: str
    problem_statement: str
    test_command: str  # a shell command run in /work: the run_tests tool and `verify`
    fail_to_pass: list[str]  # pytest ids; with pass_to_pass empty too, every collected test must pass
    pass_to_pass: list[str]
    repo_dir: str = ""  # a host checkout copied into /work
    files: dict[str, str] = field(default_factory=dict)  # written into /work (over repo_dir)
    setup_patch: str = ""  # applied and committed on top: the task's starting state (e.g. the bug)
    env_dir: str = ""  # a host environment bound read-only at ENV_MOUNT
    env: dict[str, str] = field(default_factory=dict)
    test_files: list[str] = field(default_factory=list)  # paths whose clean versions grade the task
    gold_patch: str = ""  # the reference fix against the starting state (the oracle's, demonstrations only)
    language: str = "python"
    source: str = "swesmith"
    timeout_s: float = 120.0
    exercise: dict | None = None  # a polyglot_problems row: graded by the Polyglot harness (agents/polyglot.py)

    def session_env(self) -> dict[str, str]:
        # without an environment of its own, the jail's PATH (every toolchain) stays
        path = {"PATH": _PATH} if self.env_dir else {}
        return {**path, "PYTHONDONTWRITEBYTECODE": "1", **GIT_ENV, **self.env}


@dataclass(frozen=True)
class Budget:
    max_steps: int = 20
    max_tokens: int = 20_000  # tokens the policy generates over the episode
    max_wall_s: float = 600.0


@dataclass
class Step:
    action: str  # the policy's reply as written
    tool: str  # the parsed tool, or "" when the reply did not parse
    observation: str
    exit_code: int | None
    status: str  # ok | failed | timeout | error | malformed
    tokens: int
    wall_s: float
    act_s: float = 0.0  # of wall_s, the time the policy took to reply

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Episode:
    task: AgentTask
    policy: str  # the policy's name (the spec, or "oracle")
    policy_kind: str
    messages: list[dict]
    steps: list[Step] = field(default_factory=list)
    patch: str = ""
    status: str = "error"
    detail: str = ""
    wall_s: float = 0.0
    verdict: dict | None = None  # set by the caller from `verify`

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.steps)

    def to_trajectory_row(self) -> dict:
        """A SWE-smith trajectories row (messages, instance_id, resolved, model, traj_id, patch) plus ours."""
        v = self.verdict or {}
        digest = hashlib.sha1(json.dumps(self.messages).encode()).hexdigest()[:8]
        return {"traj_id": f"{self.task.instance_id}.{self.policy_kind}.{digest}",
                "instance_id": self.task.instance_id, "model": self.policy, "policy": self.policy_kind,
                "resolved": bool(v.get("resolved")), "patch": self.patch, "messages": json.dumps(self.messages),
                "steps": json.dumps([s.to_dict() for s in self.steps]), "n_steps": len(self.steps),
                "tokens": self.tokens, "status": self.status, "detail": self.detail,
                "eval_status": v.get("status", "not verified"), "task_source": self.task.source,
                "language": self.task.language, "wall_s": round(self.wall_s, 3),
                "verify_wall_s": v.get("wall_s", 0.0)}


# --- the session ------------------------------------------------------------------------------
def open_session(sessions, sandbox, task: AgentTask):
    """A started jailed session at the task's starting state: /work a git repo, the clean files tagged
    hrm-base, the setup patch committed on top and tagged hrm-start."""
    binds = [(task.env_dir, ENV_MOUNT)] if task.env_dir else []
    if task.exercise is not None and getattr(sessions, "deployment", "local") in ("local", "docker"):
        binds += session_binds(sandbox, task)  # modal and remote sessions cannot mount host folders
    session = sessions.open(input_dir=task.repo_dir or None, files=task.files, ro_binds=binds,
                            env=task.session_env(), sandbox=sandbox)
    try:
        r = session.run("[ -d .git ] || { git init -q && git add -A && git commit -qm 'task files'; } && "
                        "git tag hrm-base")
        if r.status != "ok":
            raise RuntimeError(f"{task.instance_id}: could not make /work a git repo: {r.output[-500:]}")
        if task.setup_patch:
            if session.write_file("/tmp/.hrm_setup.patch", task.setup_patch).status != "ok":
                raise RuntimeError(f"{task.instance_id}: could not stage the setup patch in the session")
            r = session.run("git apply /tmp/.hrm_setup.patch && rm /tmp/.hrm_setup.patch && "
                            "git commit -qam 'task state'")
            if r.status != "ok":
                raise RuntimeError(f"{task.instance_id}: the setup patch does not apply: {r.output[-500:]}")
        session.run("git tag hrm-start")  # the patch is taken against this, whatever the agent commits
    except BaseException:
        session.close()
        raise
    return session


def session_patch(session) -> tuple[str | None, str]:
    """(every change since the starting state, new files and commits included, or None; the shell's output)."""
    r = session.run(f"git add -A -- . '{_NO_PYC}' && git diff --cached hrm-start", timeout_s=60)
    if r.status != "ok":
        return None, r.output[-300:]
    return (r.output.strip("\n") + "\n" if r.output.strip() else ""), ""


# --- the loop ---------------------------------------------------------------------------------
def run_episode(policy, session, task: AgentTask, budget: Budget, tools: ToolBox | None = None,
                instructions: str = "") -> Episode:
    """Act until the policy submits or a budget (steps, generated tokens, wall clock) runs out. A reply that
    does not parse gets the parse error as its observation and counts as a step; a session whose shell
    died (it was restarted, so its state is gone) ends the episode as session_died with no patch."""
    tools = tools or ToolBox(session, task)
    t0 = time.monotonic()
    start = (f"{instructions.strip()}\n\n" if instructions.strip() else "") + task.problem_statement
    messages = [{"role": "system", "content": system_prompt(tools.allowed)}, {"role": "user", "content": start}]
    ep = Episode(task, policy.name, policy.kind, messages)
    resets = getattr(session, "resets", 0)
    try:
        if hasattr(policy, "reset"):
            policy.reset(task)
        while True:
            left = budget.max_wall_s - (time.monotonic() - t0)
            if len(ep.steps) >= budget.max_steps or ep.tokens >= budget.max_tokens or left <= 0:
                ep.status = "budget_exhausted"
                ep.detail = (f"steps {len(ep.steps)}/{budget.max_steps}, tokens {ep.tokens}/{budget.max_tokens}, "
                             f"wall {time.monotonic() - t0:.1f}/{budget.max_wall_s:g} s")
                break
            s0 = time.monotonic()
            reply = policy.act(list(messages))
            act_s = round(time.monotonic() - s0, 4)
            tokens = int(getattr(policy, "last_tokens", 0) or 0)
            messages.append({"role": "assistant", "content": reply})
            try:
                action = tools.parse(reply)
            except ParseError as exc:
                ep.steps.append(Step(reply, "", f"error: {exc}", None, "malformed", tokens,
                                     round(time.monotonic() - s0, 4), act_s))
                messages.append({"role": "user", "content": f"OBSERVATION:\nerror: {exc}"})
                continue
            left = budget.max_wall_s - (time.monotonic() - t0)
            observation, code, status = tools.run(action, timeout_s=max(1.0, min(left, task.timeout_s)))
            ep.steps.append(Step(reply, action.tool, observation, code, status, tokens, round(time.monotonic() - s0, 4),
                                 act_s))
            if getattr(session, "resets", 0) != resets:
                ep.status, ep.detail = "session_died", f"the shell died at step {len(ep.steps)}: {observation[-300:]}"
                break
            if action.tool == "submit":
                ep.status = "submitted"
                break
            messages.append({"role": "user", "content": "OBSERVATION:\n" + observation
                             + (f"\n[exit code {code}]" if code not in (0, None) else "")
                             + ("\n[timed out]" if status == "timeout" else "")})
        if ep.status != "session_died":
            patch, why = session_patch(session)
            if getattr(session, "resets", 0) != resets:
                ep.status, ep.detail, patch = "session_died", "the shell died while reading the patch", ""
            elif patch is None:  # e.g. the agent removed .git: no patch, so nothing can resolve
                ep.status, ep.detail, patch = "error", f"could not read the patch: {why}", ""
            ep.patch = patch
    except Exception as exc:  # the policy or the session broke: the episode fails, nothing hangs
        ep.status, ep.detail = "error", f"{type(exc).__name__}: {str(exc)[-500:]}"
    ep.wall_s = time.monotonic() - t0
    return ep


# --- resolution ---------------------------------------------------------------------------------
def verify(sandbox, task: AgentTask, patch: str) -> dict:
    """Run the task's tests in a fresh jail on the clean task files + starting state + `patch` (without the
    files the benchmark owns). resolved: every FAIL_TO_PASS and PASS_TO_PASS test PASSED in pytest's own
    summary, or XFAIL where it is XFAIL on the clean files too (the code under test can call pytest.xfail());
    with both lists empty, at least one test ran and nothing but passed tests were counted. A Polyglot
    exercise is graded by the evaluator's harness instead (`agents.polyglot.verify_exercise`)."""
    from unidiff.errors import UnidiffParseError

    if task.exercise is not None:
        return verify_exercise(sandbox, task, patch)
    owned = set(task.test_files) | {t.split("::")[0] for t in task.fail_to_pass + task.pass_to_pass}
    try:
        kept, ignored = without_benchmark_files(patch, owned)
    except UnidiffParseError as exc:
        return _verdict(task, "patch_unparseable", {}, 0.0, [], str(exc))
    status, tests, wall_s, tail = _run_tests(sandbox, task, task.setup_patch, kept)
    wanted = task.fail_to_pass + task.pass_to_pass
    xfail_ok = set()
    if any(tests.get(t) == "XFAIL" for t in wanted):
        clean = _run_tests(sandbox, task, "", "")[1]
        xfail_ok = {t for t in wanted if clean.get(t) == "XFAIL"}
    return _verdict(task, status, tests, wall_s, ignored, tail, xfail_ok)


def _run_tests(sandbox, task: AgentTask, setup_patch: str, patch: str) -> tuple[str, dict[str, str], float, str]:
    """(status, test id -> outcome, wall seconds, output tail) of the task's tests on its clean files + patches."""
    nonce, nonce_files = new_nonce()  # the test command is the shared runner: it reads and removes the nonce
    files = {**task.files, **nonce_files, ".hrm_setup.patch": setup_patch, ".hrm_agent.patch": patch}
    script = ("apply() { [ -s \"$1\" ] || return 0; git apply --whitespace=nowarn \"$1\"; }; "
              "apply .hrm_setup.patch || { echo HRM_SETUP_FAILED; exit 96; }; "
              "apply .hrm_agent.patch || { echo HRM_PATCH_FAILED; exit 97; }; "
              "rm -f .hrm_setup.patch .hrm_agent.patch; " + task.test_command)
    binds = [(task.env_dir, ENV_MOUNT)] if task.env_dir else []
    result = sandbox.run_job(SandboxJob(command=["bash", "-c", script], files=files, input_dir=task.repo_dir or None,
                                        ro_binds=binds, env=task.session_env(), timeout_s=task.timeout_s))
    if result.exit_code in (96, 97) and ("HRM_SETUP_FAILED" in result.stdout or "HRM_PATCH_FAILED" in result.stdout):
        return ("setup_failed" if result.exit_code == 96 else "patch_failed"), {}, result.wall_s, result.stderr[-1000:]
    tests = parse_pytest_summary(result.stdout, nonce)
    if tests and not (task.fail_to_pass or task.pass_to_pass) and not _only_passed(final_stats(result.stdout, nonce)):
        tests = {**tests, "(skipped or deselected tests)": "SKIPPED"}  # every collected test must pass
    return result.status, tests, result.wall_s, result.stdout[-1500:] + result.stderr[-500:]


def _only_passed(stats: str) -> bool:
    """pytest's final stats line counts nothing but passed tests (no skipped, xfailed, deselected, ...)."""
    counts = re.findall(r"(\d+) ([a-z]+)", stats.split(" in ")[0])
    return bool(counts) and all(word == "passed" for _, word in counts)


def _verdict(task: AgentTask, status: str, tests: dict[str, str], wall_s: float, ignored: list[str],
             tail: str, xfail_ok: set[str] = frozenset()) -> dict:
    f2p = {t: tests.get(t, "MISSING") for t in task.fail_to_pass}
    p2p = {t: tests.get(t, "MISSING") for t in task.pass_to_pass}
    if status not in ("ok", "failed"):
        resolved = False
    elif f2p or p2p:
        resolved = all(o == "PASSED" or (o == "XFAIL" and t in xfail_ok) for t, o in (*f2p.items(), *p2p.items()))
    else:
        resolved = bool(tests) and all(o in PASSING for o in tests.values())
    return {"resolved": resolved, "status": status, "fail_to_pass": f2p, "pass_to_pass": p2p,
            "tests": tests if not (f2p or p2p) else {}, "ignored_files": ignored, "wall_s": wall_s,
            "output_tail": tail}
