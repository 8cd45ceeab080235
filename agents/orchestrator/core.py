"""The orchestrator: dispatch a plan's sub-tasks to agents, follow them through the message bus, and recover.
Agents are threads of this process, each with a jailed session from a SessionPool (`workers="threads"`), or
worker processes consuming a DirectoryTransport (`workers="processes"`, agents/orchestrator/workers.py): the
same messages, the same checks.

Every message an agent sends must come from the agent the attempt was given to and carry the attempt's
token (handed out with the task); anything else (a result for a sub-task the sender was not given, a forged
or malformed message) is rejected with its reason (`rejected` in the record) and changes nothing.

Recovery: an attempt that reports failure, asks for help, errors, or stops sending heartbeats for
`heartbeat_timeout_s` (its jail is then killed) is given to a new agent, up to `max_attempts`; a role
whose attempts fail `breaker_threshold` times in a row is opened (circuit breaker) and its sub-tasks go
to the fallback role. A verify sub-task merges the fix patches and runs the tests; a patch that does not
apply sends its sub-task back, failing tests send the whole task back once per attempt left. Every attempt,
patch and message is kept in the record, whatever its fate; a sub-task with no final state is `lost`.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from agents.orchestrator import pool as pool_mod
from agents.orchestrator import merge as merge_mod
from agents.orchestrator.credit import part_credit
from agents.orchestrator.plan import Plan, RuleBasedPlanner, Subtask
from agents.orchestrator.runners import AgentContext, SubtaskResult, oracle_runner
from agents.protocol import Bus
from resources.sandbox import default_sandbox

ME = "orchestrator"
FALLBACK_ROLES = {"test_runner": "generalist"}  # any *_developer or *_engineer falls back to generalist too
AGENT_KINDS = ("heartbeat", "result", "request_help")
STATUSES = ("ok", "failed", "error", "timeout", "help")


@dataclass
class Attempt:
    subtask_id: str
    attempt: int
    agent: str
    role: str
    ready_at: float
    dispatched_at: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0
    handled_at: float = 0.0
    last_beat: float = 0.0
    status: str = "running"
    detail: str = ""
    patch: str = ""
    cpu_s: float = 0.0
    peak_mb: float | None = None
    steps: int = 0
    tokens: int = 0
    merge: dict = field(default_factory=dict)  # verify attempts: the merge-and-test outcome
    early: bool = False  # a verify dispatched before its parts were done (it prepares, then waits for the go)
    worker: str = ""  # the worker process that ran it (process workers)
    token: str = field(default_factory=lambda: secrets.token_hex(8), repr=False)

    @property
    def work_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("token")
        d["work_s"] = round(self.work_s, 4)
        return d


@dataclass
class OrchestratorConfig:
    agents: int = 8
    heartbeat_timeout_s: float = 20.0
    max_attempts: int = 3
    breaker_threshold: int = 3
    test_timeout_s: float = 120.0
    deadline_s: float = 1800.0
    poll_s: float = 0.02
    workers: str = "threads"  # or "processes": agents are worker processes on a DirectoryTransport
    role_credit: bool = True  # after the run: which part's patch made which test pass (credit.py)


class Orchestrator:
    def __init__(self, pool, repos: dict, runner=oracle_runner, merge_agent=oracle_runner,
                 config: OrchestratorConfig = OrchestratorConfig(), bus: Bus | None = None, run_id: str = "",
                 sandbox=None):
        self.pool, self.repos, self.runner, self.merge_agent, self.cfg = pool, repos, runner, merge_agent, config
        self.sandbox = sandbox  # for the credit runs; None: resources.sandbox.default_sandbox()
        self.credit: dict[str, dict] = {}
        if config.workers not in ("threads", "processes"):
            raise ValueError(f"workers={config.workers!r}: expected threads or processes")
        self.procs = config.workers == "processes"
        if self.procs and not hasattr(pool, "transport"):
            raise ValueError("workers='processes' needs a ProcessWorkers pool (agents/orchestrator/workers.py)")
        self.bus = bus or (Bus(pool.transport) if self.procs else Bus())
        self.run_id = run_id or f"orch-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"

    # --- the run ---------------------------------------------------------------------------------
    def run(self, tasks: list[dict], planner=None) -> dict:
        t_start = time.monotonic()
        planner = planner or RuleBasedPlanner()
        self.tasks = {t["instance_id"]: t for t in tasks}
        if len(self.tasks) != len(tasks):
            raise ValueError("tasks with the same instance_id: each would overwrite the other's record")
        plan: Plan = planner.plan(tasks)
        self.plan, self.subs = plan, plan.by_id()
        t_planned = time.monotonic()
        self.attempts: dict[str, list[Attempt]] = {i: [] for i in self.subs}
        self.state = {i: "pending" for i in self.subs}  # pending|running|ok|failed|resolved|unresolved
        self.ready_since = {i: t_planned for i in self.subs if not self.subs[i].depends_on}
        self.role_failures: dict[str, int] = {}
        self.open_roles: set[str] = set()
        self.task_rounds = {t: 1 for t in self.tasks}
        self.sessions: dict[tuple[str, int], object] = {}
        self.cancels: dict[tuple[str, int], threading.Event] = {}
        self.dispatch_s = 0.0
        self.recovered: list[dict] = []
        self.waiting: dict[str, Attempt] = {}  # verify attempts dispatched early, waiting for their parts
        self.rejected = self.bus.rejected  # messages refused, with the reason
        running = 0
        deadline = t_start + self.cfg.deadline_s
        with ThreadPoolExecutor(max_workers=max(1, self.cfg.agents)) as agents:
            while time.monotonic() < deadline:
                ready = self._ready()
                if running == 0 and not ready and not self._done():
                    break  # stuck: nothing runs, nothing can start; what is left is reported as lost
                for sid in ready + self._early_verifies():
                    if running >= self.cfg.agents:
                        break
                    t0 = time.monotonic()
                    running += self._dispatch(agents, sid)
                    self.dispatch_s += time.monotonic() - t0
                self._release_waiting()
                if running == 0 and self._done():
                    break
                msg = self.bus.receive(ME, self.cfg.poll_s)
                while msg is not None:
                    running -= self._handle(msg)
                    msg = self.bus.receive(ME, 0)
                running -= self._check_heartbeats()
                if self.procs:
                    running -= self._check_workers()
                    if running == 0 and not self.pool.can_run():
                        break  # no worker left and none may start: what is left is reported as lost
            for ev in self.cancels.values():  # whatever still runs past the deadline is stopped
                ev.set()
            for key in list(self.sessions):
                pool_mod.kill_jail(self.sessions[key])
            if self.procs:
                for att in [a for atts in self.attempts.values() for a in atts if a.status == "running"]:
                    self.pool.kill(att.worker)
        t_end = time.monotonic()
        self.credit = self._role_credit() if self.cfg.role_credit else {}
        return self._record(plan, planner, t_start, t_planned, t_end)

    def _ready(self) -> list[str]:
        ready = []
        for sid, state in self.state.items():
            deps = self.subs[sid].depends_on
            if state != "pending" or not all(self.state[d] in ("ok", "failed") for d in deps):
                continue
            if self.subs[sid].kind == "verify" and all(self.state[d] == "failed" for d in deps):  # nothing to merge
                self.state[sid] = "unresolved"
                continue
            ready.append(sid)
        return sorted(ready, key=lambda s: (self.subs[s].kind != "verify", self.subs[s].kind != "tool",
                                            self.ready_since.get(s, 0), s))

    def _early_verifies(self) -> list[str]:
        """Verify sub-tasks whose parts are all done or under way: given an idle agent, they check out the base
        while the last parts finish (speculative preparation; the merge then waits for the go). Threads only."""
        if self.procs:
            return []
        return sorted(sid for sid, st in self.state.items() if st == "pending" and self.subs[sid].kind == "verify"
                      and all(self.state[d] in ("ok", "running") for d in self.subs[sid].depends_on)
                      and any(self.state[d] == "running" for d in self.subs[sid].depends_on))

    def _release_waiting(self) -> None:
        for sid, att in list(self.waiting.items()):
            if att.status != "running":
                self.waiting.pop(sid)
            elif all(self.state[d] in ("ok", "failed") for d in self.subs[sid].depends_on):
                self.waiting.pop(sid)
                self.bus.send("task", ME, att.agent, sid, role=att.role, attempt=att.attempt,
                              description="the parts are done: merge and test", go=True)

    def _done(self) -> bool:
        return all(s in ("failed", "resolved", "unresolved") or (self.subs[i].kind != "verify" and s == "ok")
                   for i, s in self.state.items())

    def _role(self, sub: Subtask) -> str | None:
        role = sub.role
        seen = set()
        while role in self.open_roles and role not in seen:
            seen.add(role)
            role = FALLBACK_ROLES.get(role, "generalist" if role.endswith(("_developer", "_engineer")) else None)
            if role is None:
                return None
        return None if role in self.open_roles else role

    def _dispatch(self, agents, sid: str) -> int:
        """Start an attempt; how many agents that set running (0 when no role may take it)."""
        sub = self.subs[sid]
        role = self._role(sub)
        worker = self.pool.idle() if self.procs and role is not None else ""
        if worker is None:
            return 0  # every worker process is busy or starting: it stays pending
        n = len(self.attempts[sid]) + 1
        now = time.monotonic()
        att = Attempt(sid, n, f"{worker + ':' if worker else ''}{role}#{sid}#{n}", role or "",
                      self.ready_since.get(sid, now), dispatched_at=now, last_beat=now, worker=worker)
        self.attempts[sid].append(att)
        if role is None:  # every role that could do it is open: recorded as failed, not dropped
            att.status, att.detail = "failed", f"circuit open for {sub.role} and its fallbacks"
            self.state[sid] = "failed"
            self.bus.send("result", ME, ME, sid, status="failed", patch="", usage={}, attempt=n, note=att.detail)
            self._unblock(sid)
            return 0
        self.state[sid] = "running"
        if self.procs:  # the whole sub-task travels in the message: the worker has nothing else
            self.pool.assign(worker, (sid, n))
            self.bus.send("task", ME, worker, sid, role=role, attempt=n, description=sub.description, agent=att.agent,
                          token=att.token, subtask={**sub.to_dict(), "part": sub.part}, task=self.tasks[sub.task_id],
                          base_patches=self._base_patches(sub), patches=[[p[0].to_dict(), p[1]] for p in
                                                                          self._patches(sub)]
                          if sub.kind == "verify" else [], test_timeout_s=self.cfg.test_timeout_s)
            return 1
        cancel = threading.Event()
        self.cancels[(sid, n)] = cancel
        self.bus.send("task", ME, att.agent, sid, role=role, attempt=n, description=sub.description)
        if sub.kind == "verify" and not all(self.state[d] in ("ok", "failed") for d in sub.depends_on):
            att.early = True
            self.waiting[sid] = att
        agents.submit(self._agent, sub, att, cancel)
        return 1

    # --- one agent (a worker thread) ----------------------------------------------------------------
    def _agent(self, sub: Subtask, att: Attempt, cancel: threading.Event) -> None:
        session, resets, result, usage, merge = None, 0, SubtaskResult("error", detail="no session"), {}, {}
        try:
            session = self.pool.acquire(timeout_s=self.cfg.deadline_s)
            resets = session.resets
            self.sessions[(sub.id, att.attempt)] = session
            pool_mod.reset_peak(session)
            pid, att.started_at = pool_mod.jail_pid(session), time.monotonic()
            cpu0 = pool_mod.cpu_seconds(pid)
            self._beat(sub, att)
            if sub.kind == "verify":
                result, merge = self._verify(sub, att, session, cancel)
            else:
                ctx = self._ctx(sub, att, cancel)
                result = self.runner(sub, att.role, session, ctx)
            att.ended_at = time.monotonic()
            usage = {"cpu_s": round(max(0.0, pool_mod.cpu_seconds(pool_mod.jail_pid(session)) - cpu0)
                                    if pool_mod.jail_pid(session) == pid else pool_mod.cpu_seconds(pid), 3),
                     "peak_mb": pool_mod.peak_mb(session), "wall_s": round(att.work_s, 4)}
        except Exception as exc:  # the agent's own failure is a result like any other
            att.ended_at = att.ended_at or time.monotonic()
            result = SubtaskResult("error", detail=f"{type(exc).__name__}: {str(exc)[-300:]}")
        finally:
            self.sessions.pop((sub.id, att.attempt), None)
            if session is not None:
                healthy = not cancel.is_set() and result.status != "error" and session.resets == resets
                self.pool.release(session, healthy=healthy)
        self.bus.send("result", att.agent, ME, sub.id, status=result.status, patch=result.patch, usage=usage,
                      attempt=att.attempt, detail=result.detail[-500:], steps=result.steps, tokens=result.tokens,
                      merge=merge, token=att.token)

    def _ctx(self, sub: Subtask, att: Attempt, cancel: threading.Event, workdir: str = "") -> AgentContext:
        return AgentContext(self.tasks[sub.task_id], self.run_id, att.agent, att.attempt,
                            heartbeat=lambda: self._beat(sub, att),
                            request_help=lambda reason: self.bus.send("request_help", att.agent, ME, sub.id,
                                                                      reason=reason, attempt=att.attempt,
                                                                      token=att.token),
                            cancelled=cancel, workdir=workdir,
                            base_patches=() if workdir else tuple(self._base_patches(sub)))

    def _base_patches(self, sub: Subtask) -> list[str]:
        """The final patches of the tool sub-tasks it depends on: a code fix starts from the repaired build."""
        return [self._final(d).patch for d in sub.depends_on
                if self.subs[d].kind == "tool" and self.state[d] == "ok"] if sub.kind != "verify" else []

    def _patches(self, sub: Subtask) -> list[tuple[Subtask, str]]:
        return [(self.subs[d], self._final(d).patch) for d in sub.depends_on if self.state[d] == "ok"]

    def _beat(self, sub: Subtask, att: Attempt) -> None:
        self.bus.send("heartbeat", att.agent, ME, sub.id, attempt=att.attempt, token=att.token)

    def _verify(self, sub: Subtask, att: Attempt, session, cancel) -> tuple[SubtaskResult, dict]:
        task = self.tasks[sub.task_id]
        prepared, prepare_s = False, 0.0
        if att.early:
            t0 = time.monotonic()
            prepared = merge_mod.prepare(session, task, merge_mod.workdir(task))
            prepare_s = time.monotonic() - t0
            while True:  # alive while it waits: heartbeats, until the orchestrator's go (or a cancel)
                self._beat(sub, att)
                msg = self.bus.receive(att.agent, self.cfg.heartbeat_timeout_s / 3)
                if cancel.is_set() or (msg is not None and msg.kind == "cancel"):
                    return SubtaskResult("error", detail="cancelled while waiting for its parts"), {}
                if msg is not None and msg.kind == "task" and msg.payload.get("go"):
                    break
            att.dispatched_at = att.started_at = time.monotonic()  # the go is its real start
        def merge_ctx(fix: Subtask, workdir: str) -> AgentContext:
            self._beat(sub, att)
            return self._ctx(fix, att, cancel, workdir)

        result, out = merge_mod.verify(session, task, self.repos[task["source_repo"]], self._patches(sub),
                                       self.merge_agent, merge_ctx, self.cfg.test_timeout_s, prepared,
                                       sandbox=self.sandbox)
        out["prepare_s"] = round(prepare_s, 4)
        self._beat(sub, att)
        return result, out

    def _final(self, sid: str) -> Attempt:
        return next(a for a in reversed(self.attempts[sid]) if a.status == "ok")

    # --- messages ------------------------------------------------------------------------------------
    def _handle(self, msg) -> int:
        """Apply one message; returns how many running attempts it ended."""
        sid = msg.subtask_id
        n = msg.payload.get("attempt", 0)
        if msg.sender == ME and msg.recipient == ME and (msg.sender, msg.seq, msg.sent_at) in self.bus._sent:
            return 0  # the orchestrator's own note (a sub-task no role may take)
        if self.procs and msg.kind == "heartbeat" and sid == "" and n == 0 and self.pool.hello(msg.sender,
                                                                                               msg.payload):
            return 0  # a worker process is up, its session open
        att = next((a for a in self.attempts.get(sid, []) if a.attempt == n), None)
        why = self._refuse(msg, att)
        if why:
            self.bus.reject(msg, why)
            return 0
        if att.status != "running":
            return 0  # late news from an attempt already given up (kept in the bus log)
        if msg.kind == "heartbeat":
            att.last_beat = time.monotonic()
            return 0
        if msg.kind == "request_help":
            att.detail = f"asked for help: {msg.payload['reason']}"
            return 0
        if msg.kind != "result":
            return 0
        att.handled_at = time.monotonic()
        p = msg.payload
        att.patch, att.steps, att.tokens = p["patch"], p.get("steps", 0), p.get("tokens", 0)
        att.detail = att.detail or str(p.get("detail", ""))
        att.cpu_s, att.peak_mb = p["usage"].get("cpu_s", 0.0), p["usage"].get("peak_mb")
        if self.procs:  # the worker's clock: its work ended when it sent the result, after wall_s of work
            att.ended_at = att.handled_at - max(0.0, time.time() - msg.sent_at)
            att.started_at = att.ended_at - float(p["usage"].get("wall_s", 0.0))
            self.pool.release(att.worker)
        att.ended_at = att.ended_at or att.handled_at
        self.cancels.pop((sid, n), None)
        sub = self.subs[sid]
        if sub.kind == "verify":
            self._verified(sub, att, p["status"], p.get("merge") or {})
        elif p["status"] == "ok" and p["patch"].strip():
            att.status = "ok"
            self.state[sid] = "ok"
            self._succeeded(att.role)
            self._unblock(sid)
        else:
            att.status = "failed" if p["status"] == "ok" else p["status"]  # "success" without a patch is a failure
            if p["status"] == "ok":
                att.detail = "reported success with an empty patch"
            self._retry(sub, att)
        return 1

    def _refuse(self, msg, att: Attempt | None) -> str:
        """Why a message may not be believed ('' when it may)."""
        if msg.kind not in AGENT_KINDS:
            return f"agents do not send {msg.kind} messages"
        if msg.subtask_id not in self.subs:
            return f"no sub-task {msg.subtask_id!r} in this run"
        if att is None:
            return f"sub-task {msg.subtask_id} has no attempt {msg.payload.get('attempt')!r}"
        if msg.sender != att.agent:
            return f"sent by {msg.sender!r}: attempt {att.attempt} of {msg.subtask_id} was given to {att.agent!r}"
        if msg.payload.get("token") != att.token:
            return "wrong or missing attempt token"
        p = msg.payload
        if msg.kind == "result" and (p["status"] not in STATUSES or not isinstance(p["patch"], str)
                                     or not isinstance(p["usage"], dict) or not isinstance(p.get("merge") or {}, dict)
                                     or not all(isinstance(p.get(k, 0), int) for k in ("steps", "tokens"))):
            return "malformed result payload"
        return ""

    def _verified(self, sub: Subtask, att: Attempt, status: str, merge: dict) -> None:
        att.merge = {k: v for k, v in merge.items() if k != "patch"}
        if status != "ok":
            att.status = status
            self._retry(sub, att)
            return
        if merge.get("rejected"):  # a part whose patch did not apply to the base goes back to an agent
            att.status = "rejected"
            for fid in merge["rejected"]:
                bad = self._final(fid)
                bad.status = "rejected"
                self._failed(bad.role)  # the role's agent claimed a success it did not have
                self._send_back(fid, "its patch does not apply to the task's base")
            self.state[sub.id] = "pending"
            return
        if merge["resolved"] and merge.get("confirmed_in_fresh_jail") is not True:  # merge.confirm decides
            merge = att.merge = {**att.merge, "resolved": False}
            att.detail = "the session said resolved; the fresh jail did not confirm it"
        if merge["resolved"]:
            att.status, self.state[sub.id] = "resolved", "resolved"
            self._succeeded(att.role)
            return
        fixes = [d for d in sub.depends_on if self.state[d] in ("ok", "failed")]
        if self.task_rounds[sub.task_id] < self.cfg.max_attempts:  # the tests fail: the whole task goes back
            self.task_rounds[sub.task_id] += 1
            att.status = "unresolved"
            for fid in fixes:
                if self.state[fid] == "ok":
                    self._final(fid).status = "tests_failed"
                self._send_back(fid, "the merged result fails the tests", force=True)
            self.state[sub.id] = "pending"
            return
        att.status, self.state[sub.id] = "unresolved", "unresolved"

    def _send_back(self, sid: str, why: str, force: bool = False) -> None:
        if len(self.attempts[sid]) < self.cfg.max_attempts or force:
            self.state[sid] = "pending"
            self.ready_since[sid] = time.monotonic()
            self.recovered.append({"subtask_id": sid, "after_attempt": len(self.attempts[sid]), "why": why})
        else:
            self.state[sid] = "failed"

    def _failed(self, role: str) -> None:
        self.role_failures[role] = self.role_failures.get(role, 0) + 1
        if self.role_failures[role] >= self.cfg.breaker_threshold:
            self.open_roles.add(role)

    def _retry(self, sub: Subtask, att: Attempt) -> None:
        self._failed(att.role)
        if len(self.attempts[sub.id]) < self.cfg.max_attempts:
            self.state[sub.id] = "pending"
            self.ready_since[sub.id] = time.monotonic()
            self.recovered.append({"subtask_id": sub.id, "after_attempt": att.attempt, "why": att.status})
        else:
            self.state[sub.id] = "failed"
            self._unblock(sub.id)

    def _succeeded(self, role: str) -> None:
        self.role_failures[role] = 0

    def _unblock(self, sid: str) -> None:
        now = time.monotonic()
        for other in self.subs.values():
            if sid in other.depends_on and all(self.state[d] in ("ok", "failed") for d in other.depends_on):
                self.ready_since[other.id] = now

    def _check_heartbeats(self) -> int:
        ended, now = 0, time.monotonic()
        for sid, atts in self.attempts.items():
            att = atts[-1] if atts else None
            limit = self.cfg.heartbeat_timeout_s + (self.cfg.test_timeout_s if self.subs[sid].kind == "verify" else 0)
            if att is None or att.status != "running" or now - att.last_beat <= limit:
                continue
            att.status, att.detail = "timeout", f"no heartbeat for {now - att.last_beat:.1f} s"
            att.ended_at = att.handled_at = now
            self.bus.send("cancel", ME, att.worker or att.agent, sid, reason=att.detail)
            ev = self.cancels.pop((sid, att.attempt), None)
            if ev is not None:
                ev.set()
            session = self.sessions.get((sid, att.attempt))
            if session is not None:
                pool_mod.kill_jail(session)  # the hung command dies with its jail; the agent thread returns
            if self.procs:
                self.pool.kill(att.worker)  # its process group, its jail with it; a fresh worker replaces it
            self._retry(self.subs[sid], att)
            ended += 1
        return ended

    def _check_workers(self) -> int:
        """Worker processes that died: their attempt fails now (no need to wait for the heartbeat timeout) and
        goes to another worker; a fresh process replaces the dead one."""
        ended = 0
        for name, code, key in self.pool.reap():
            att = next((a for a in self.attempts.get(key[0], []) if a.attempt == key[1]), None) if key else None
            if att is None or att.status != "running":
                continue
            att.status, att.detail = "error", f"worker process {name} died (exit code {code})"
            att.ended_at = att.handled_at = time.monotonic()
            self._retry(self.subs[att.subtask_id], att)
            ended += 1
        return ended

    def _role_credit(self) -> dict[str, dict]:
        """Per task whose merged result was tested: the credit of each final part (credit.py); a failure
        there is recorded, never raised."""
        sandbox = self.sandbox or default_sandbox()
        out = {}
        for sub in (s for s in self.plan.subtasks if s.kind == "verify"):
            done = [a for a in self.attempts[sub.id] if a.status in ("resolved", "unresolved")]
            if not done or done[-1].merge.get("tests", {}).get("status") not in ("ok", "failed"):
                continue  # the merged result was never tested
            task = self.tasks[sub.task_id]
            parts = [(d, self._final(d).role, self._final(d).patch) for d in sub.depends_on if self.state[d] == "ok"]
            try:
                out[sub.task_id] = part_credit(sandbox, task, self.repos[task["source_repo"]], parts,
                                               self.cfg.test_timeout_s)
            except Exception as exc:
                out[sub.task_id] = {"status": "error", "error": f"{type(exc).__name__}: {str(exc)[-300:]}"}
        return out

    # --- the record ----------------------------------------------------------------------------------
    def _record(self, plan: Plan, planner, t_start: float, t_planned: float, t_end: float) -> dict:
        from agents.orchestrator.record import run_record

        return run_record(self, plan, planner, t_start, t_planned, t_end)
