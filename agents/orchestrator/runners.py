"""What one agent does with one sub-task: a `SubtaskRunner` is any callable
`(subtask, role, session, ctx) -> SubtaskResult`. `oracle_runner` applies the reverse of the sub-task's slice
of the bug patch in the jailed session and reports the diff; `episode_runner` runs a policy through the agent
loop (agents.loop, imported when used); `FaultInjector` wraps a runner with real failures for tests and the
bench (a killed jail, a hung agent, a success report with a wrong patch)."""

from __future__ import annotations

import shlex
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

from agents.orchestrator import pool as pool_mod
from agents.orchestrator.plan import Subtask
from agents.orchestrator.workspace import checkout, diff, slug
from datagen.swe.repos import runner_command


@dataclass
class SubtaskResult:
    status: str  # ok | failed | error | timeout | help
    patch: str = ""
    detail: str = ""
    steps: int = 0
    tokens: int = 0


@dataclass
class AgentContext:
    task: dict
    run_id: str
    agent: str
    attempt: int
    heartbeat: Callable[[], None] = lambda: None
    request_help: Callable[[str], None] = lambda reason: None
    cancelled: threading.Event = field(default_factory=threading.Event)
    workdir: str = ""  # set for a merge agent: edit this tree (the merge so far) in place
    base_patches: tuple[str, ...] = ()  # the final patches of the sub-tasks this one depends on (tool fixes)


class SubtaskRunner(Protocol):
    def __call__(self, subtask: Subtask, role: str, session, ctx: AgentContext) -> SubtaskResult: ...


def oracle_runner(subtask: Subtask, role: str, session, ctx: AgentContext) -> SubtaskResult:
    dest = ctx.workdir or f"/work/{slug(subtask.id)}"
    steps = 0
    if not ctx.workdir:
        ok, out = checkout(session, ctx.task, dest, ctx.base_patches)
        steps += 1
        if not ok:
            return SubtaskResult("error", detail=f"checkout failed: {out[-500:]}", steps=steps)
        ctx.heartbeat()
    part = f"/tmp/{slug(subtask.id)}.part"
    w = session.write_file(part, subtask.part)
    r = session.run(f"git -C {shlex.quote(dest)} apply -R --whitespace=nowarn {part}") if w.status == "ok" else w
    steps += 2
    if r.status != "ok":
        return SubtaskResult("failed", detail=f"the fix does not apply here: {r.output[-500:]}", steps=steps)
    ctx.heartbeat()
    ok, patch = diff(session, dest)
    return SubtaskResult("ok" if ok and patch else "failed", patch, "" if ok else patch[-500:], steps + 1)


def episode_runner(policy_spec: str, max_steps: int = 30, max_tokens: int = 20000, max_wall_s: float = 600.0,
                   instructions: dict[str, str] | None = None, tools: dict[str, tuple] | None = None,
                   role_policies: dict[str, str] | None = None):
    """A SubtaskRunner that runs `policy_spec` (oracle, local:CKPT, openai:URL#MODEL) through the agent loop
    with the role's instructions and tool subset; the episode works on a checkout like the oracle's.
    `role_policies` gives some roles their own spec (e.g. `rust_developer`: `local:CKPT+ADAPTER`, a
    specialist adapter); the other roles run `policy_spec`."""
    from agents.loop import AgentTask, Budget, run_episode  # the agent loop; heavy and optional
    from agents.policies import policy_from_spec
    from agents.tools import ToolBox

    from agents.orchestrator.roles import ROLES, instructions_for, tools_for

    policy = policy_from_spec(policy_spec)
    policies = {policy_spec: policy}

    def run(subtask: Subtask, role: str, session, ctx: AgentContext) -> SubtaskResult:
        # a role's spec from role_policies, else the role's own policy, else policy_spec
        spec = (role_policies or {}).get(role) or getattr(ROLES.get(role), "policy", None) or policy_spec
        if spec not in policies:
            policies[spec] = policy_from_spec(spec)
        dest = ctx.workdir or f"/work/{slug(subtask.id)}"
        if not ctx.workdir:
            ok, out = checkout(session, ctx.task, dest, ctx.base_patches)
            if not ok:
                return SubtaskResult("error", detail=f"checkout failed: {out[-500:]}")
        # the loop's patch is every change since the tag hrm-start: here, since the checkout's last commit
        session.run(f"cd {shlex.quote(dest)} && git tag -f hrm-start >/dev/null")
        task = _agent_task(ctx.task, subtask)
        allowed = (tools or {}).get(role) or tools_for(role)
        box = ToolBox(session, task, **({"allowed": allowed} if allowed else {}))
        episode = run_episode(_Beating(policies[spec], ctx.heartbeat), session, task,
                              Budget(max_steps, max_tokens, max_wall_s), tools=box,
                              instructions=(instructions or {}).get(role) or instructions_for(role))
        ctx.heartbeat()
        patch = episode.patch
        status = "ok" if patch and episode.status == "submitted" else "failed"
        return SubtaskResult(status, patch, episode.status, len(episode.steps), episode.tokens)

    run.policy_name = getattr(policy, "name", policy_spec)
    return run


class _Beating:
    """The policy, with the agent's heartbeat before each reply: a long episode stays visibly alive."""

    def __init__(self, policy, beat):
        self._policy, self._beat = policy, beat

    def act(self, messages):
        self._beat()
        return self._policy.act(messages)

    def __getattr__(self, name):
        return getattr(self._policy, name)


def _agent_task(task: dict, subtask: Subtask):
    """The agent loop's task for one sub-task: its slice of the fix is the oracle's gold patch (the part is the
    bug slice, applied in reverse by the oracle runner)."""
    from agents.loop import AgentTask
    from datagen.swe.examples import reverse_patch

    f2p, p2p = list(task["FAIL_TO_PASS"]), list(task["PASS_TO_PASS"])
    return AgentTask(instance_id=f"{task['instance_id']}#{subtask.id}",
                     problem_statement=f"{subtask.description}\n\n{task.get('problem_statement', '')}",
                     test_command=shlex.join(runner_command("python", ["-rA", "-q", "-p", "no:cacheprovider", *f2p])),
                     fail_to_pass=f2p, pass_to_pass=p2p, gold_patch=reverse_patch(subtask.part),
                     source="orchestrator")


class FaultInjector:
    """Wraps a runner; on the listed sub-tasks' first attempt: `kill` kills the agent's jail halfway, `hang`
    sleeps in the jail without heartbeats, `lie` reports success with a patch that does not apply,
    `wrong` reports success with a patch that applies but leaves the bug, `sloppy` adds an edit that
    conflicts with the task's other parts."""

    def __init__(self, runner, kill=(), hang=(), lie=(), wrong=(), sloppy=(), hang_s: float = 3600):
        self.runner, self.hang_s = runner, hang_s
        self.faults = {**{i: "kill" for i in kill}, **{i: "hang" for i in hang}, **{i: "lie" for i in lie},
                       **{i: "wrong" for i in wrong}, **{i: "sloppy" for i in sloppy}}
        self.injected: list[tuple[str, str]] = []

    def __call__(self, subtask: Subtask, role: str, session, ctx: AgentContext) -> SubtaskResult:
        fault = self.faults.get(subtask.id) if ctx.attempt == 1 and not ctx.workdir else None
        if fault is None:
            return self.runner(subtask, role, session, ctx)
        self.injected.append((subtask.id, fault))
        if fault == "hang":
            session.run(f"sleep {self.hang_s:g}", timeout_s=self.hang_s + 5)
            return SubtaskResult("error", detail="woke up after hanging")
        if fault == "kill":
            session.run("true")
            pool_mod.kill_jail(session)
            r = session.run("git status")  # the shell is gone: the session reports an error and restarts
            return SubtaskResult("error", detail=f"session lost: {r.output[-200:]}")
        result = self.runner(subtask, role, session, ctx)
        if fault == "lie":
            return SubtaskResult("ok", "diff --git a/nowhere.py b/nowhere.py\n--- a/nowhere.py\n+++ b/nowhere.py\n"
                                       "@@ -1 +1 @@\n-x = 1\n+x = 2\n", "claims success")
        if fault == "wrong":
            dest = f"/work/{slug(subtask.id)}"
            session.run(f"git -C {dest} checkout -q -- . && echo '# looked at it' >> "
                        f"{shlex.quote(dest + '/' + subtask.files[0])}")
            ok, patch = diff(session, dest)
            return SubtaskResult("ok", patch, "claims success")
        if fault == "sloppy":  # does every part of the task, each added line with a comment: conflicts with the others
            import dataclasses

            whole = self.runner(dataclasses.replace(subtask, part=ctx.task["patch"]), role, session, ctx)
            lines = [ln + "  # fixed" if ln.startswith("+") and not ln.startswith("+++") and ln[1:].strip() else ln
                     for ln in whole.patch.splitlines()]
            return SubtaskResult(whole.status, "\n".join(lines) + "\n", "sloppy", whole.steps)
        return result
