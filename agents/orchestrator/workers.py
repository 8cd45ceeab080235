"""Agents in other processes: worker processes that consume a DirectoryTransport (`OrchestratorConfig(
workers="processes")`). Each worker opens its own jailed SWE-ReX session, says hello (a heartbeat for no
sub-task), then takes `task` messages from its mailbox: the message carries the sub-task, its task row, the
patches it builds on (and for a verify, the parts to merge), the attempt's token. It works like an in-process
agent (oracle_runner or the agent loop for a model spec; merge.verify for a verify) and sends heartbeats and
its result back over the transport. A worker that dies is seen by the orchestrator (its process exited), its
attempt goes to another worker and a fresh process takes its place; a silent one is killed with its jail.

    python -m agents.orchestrator.workers --root BUS_DIR --name worker-3 --repos repos.json [--policy oracle]

Faults for tests and the bench (`faults`: sub-task id -> fault, on its first attempt): `die` (the worker
kills itself mid-task), `hang` (sleeps in its jail, no heartbeats), `stray` (before its own work it sends an
"ok" result for another sub-task, `stray:<id>`), `garbage` (writes a malformed file and a forged message
into the orchestrator's mailbox).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agents.protocol import Bus, DirectoryTransport

ME = "orchestrator"
_ROOT = Path(__file__).resolve().parents[2]


class ProcessWorkers:
    """The orchestrator's side: spawns `size` workers, knows which are ready and busy, reaps and replaces dead
    ones (at most `max_spawns` processes in all). Plays the part of the SessionPool in the record (`stats`)."""

    def __init__(self, repos: dict, size: int, policy: str = "oracle", root: str | Path | None = None,
                 faults: dict[str, str] | None = None, merge_agent: str = "oracle", command_timeout_s: float = 120.0,
                 max_spawns: int | None = None, max_steps: int = 30):
        self.size, self.policy, self.faults, self.merge_agent = max(1, size), policy, dict(faults or {}), merge_agent
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="hrm-orch-bus-"))
        self.transport = DirectoryTransport(self.root)
        self.repos_file = self.root / "repos.json"
        self.repos_file.write_text(json.dumps({k: r.to_dict() for k, r in repos.items()}))
        self.command_timeout_s, self.max_spawns = command_timeout_s, max_spawns or 4 * self.size
        self.max_steps = max_steps
        self.live: dict[str, subprocess.Popen] = {}
        self.ready: dict[str, dict] = {}  # name -> its hello (pid, session open seconds)
        self.busy: dict[str, tuple] = {}
        self._names = itertools.count()
        self.spawned = self.died = self.killed = 0
        self.start_s = 0.0

    def spawn(self) -> str | None:
        if self.spawned >= self.max_spawns:
            return None
        name = f"worker-{next(self._names)}"
        (self.root / "logs").mkdir(exist_ok=True)
        cmd = [sys.executable, "-m", "agents.orchestrator.workers", "--root", str(self.root), "--name", name,
               "--repos", str(self.repos_file), "--policy", self.policy, "--merge-agent", self.merge_agent,
               "--faults", json.dumps(self.faults), "--parent", str(os.getpid()),
               "--command-timeout", str(self.command_timeout_s), "--max-steps", str(self.max_steps)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
        # a model's threads per worker: the machine's cores shared by the workers, not each worker taking all
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.size)))
        with open(self.root / "logs" / f"{name}.log", "ab") as log:
            self.live[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=_ROOT,
                                               start_new_session=True)  # its own group: killed with its jail
        self.spawned += 1
        return name

    def start(self, timeout_s: float = 300.0) -> float:
        """Spawn the workers and wait for every hello; the seconds it took."""
        t0 = time.monotonic()
        while len(self.live) < self.size and self.spawn():
            pass
        bus = Bus(self.transport)
        while len(self.ready) < len(self.live) and time.monotonic() - t0 < timeout_s:
            msg = bus.receive(ME, 0.2)
            if msg is not None and msg.kind == "heartbeat" and msg.subtask_id == "":
                self.hello(msg.sender, msg.payload)
            for name, code, _ in self.reap():
                raise RuntimeError(f"worker {name} exited with {code} before it was ready: "
                                   f"{(self.root / 'logs' / f'{name}.log').read_text()[-2000:]}")
        if len(self.ready) < len(self.live):
            raise TimeoutError(f"{len(self.live) - len(self.ready)} workers not ready after {timeout_s:g} s")
        self.start_s = time.monotonic() - t0
        return self.start_s

    def hello(self, name: str, payload: dict) -> bool:
        if name not in self.live or name in self.ready:
            return False
        self.ready[name] = {k: payload.get(k) for k in ("pid", "open_s", "load_s")}
        return True

    def idle(self) -> str | None:
        return next((n for n in self.live if n in self.ready and n not in self.busy), None)

    def assign(self, name: str, key: tuple) -> None:
        self.busy[name] = key

    def release(self, name: str) -> None:
        self.busy.pop(name, None)

    def can_run(self) -> bool:
        return bool(self.live) or self.spawned < self.max_spawns

    def reap(self) -> list[tuple[str, int, tuple | None]]:
        """(name, exit code, the attempt it held) of each worker that exited; each is replaced."""
        out = []
        for name, proc in list(self.live.items()):
            code = proc.poll()
            if code is None:
                continue
            self._forget(name)
            self.died += 1
            out.append((name, code, self.busy.pop(name, None)))
            self.spawn()
        return out

    def kill(self, name: str) -> None:
        proc = self.live.get(name)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self._forget(name)
        self.busy.pop(name, None)
        self.killed += 1
        self.spawn()

    def _forget(self, name: str) -> None:
        self.live.pop(name, None)
        self.ready.pop(name, None)

    def close(self) -> None:
        for name, proc in list(self.live.items()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.live.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        self.live.clear()
        if self._own_root:
            import shutil

            shutil.rmtree(self.root, ignore_errors=True)

    def stats(self) -> dict:
        return {"size": self.size, "workers": "processes", "spawned": self.spawned, "died": self.died,
                "killed": self.killed, "start_s": round(self.start_s, 3)}


# --- the worker process ----------------------------------------------------------------------------
def _runner(policy: str, max_steps: int = 30):
    from agents.orchestrator.runners import episode_runner, oracle_runner

    return oracle_runner if policy == "oracle" else episode_runner(policy, max_steps=max_steps)


def serve(root: str, name: str, repos: dict, policy: str, merge_agent: str, faults: dict, parent: int,
          command_timeout_s: float, max_steps: int = 30) -> None:
    from agents.orchestrator import merge as merge_mod
    from agents.orchestrator import pool as pool_mod
    from agents.orchestrator.plan import Subtask
    from agents.orchestrator.runners import AgentContext, SubtaskResult, oracle_runner
    from agents.orchestrator.workspace import session_options
    from datagen.swe.repos import repo_from_row
    from resources.swerex import SweRexSessions

    repos = {k: repo_from_row(r) for k, r in repos.items()}
    t_load = time.monotonic()
    runner = _runner(policy, max_steps)  # a model is loaded once per worker, before its hello
    load_s = time.monotonic() - t_load
    merger = None if merge_agent == "none" else oracle_runner if merge_agent == "oracle" else runner
    bus = Bus(DirectoryTransport(root))
    t0 = time.monotonic()
    sessions = SweRexSessions(command_timeout_s=command_timeout_s, startup_timeout_s=120)
    session = sessions.open(**session_options(repos))
    bus.send("heartbeat", name, ME, "", attempt=0, pid=os.getpid(), open_s=round(time.monotonic() - t0, 3),
             load_s=round(load_s, 3))
    while True:
        msg = bus.receive(name, 1.0)
        if msg is None:
            if os.getppid() != parent:  # the orchestrator is gone
                break
            continue
        if msg.kind != "task" or msg.sender != ME:
            continue  # a cancel needs no answer: a silent worker is killed from outside
        p = msg.payload
        sub = Subtask(**{**p["subtask"], "depends_on": tuple(p["subtask"]["depends_on"]),
                         "files": tuple(p["subtask"]["files"])})
        agent, token, n = p["agent"], p["token"], p["attempt"]

        def beat(sid=sub.id, agent=agent, token=token, n=n):
            bus.send("heartbeat", agent, ME, sid, attempt=n, token=token)

        fault = faults.get(sub.id, "") if n == 1 else ""
        if fault == "die":
            beat()
            session.run("git --version")
            os.kill(os.getpid(), signal.SIGKILL)  # mid-task: the jail goes with it (die-with-parent)
        if fault.startswith("stray:"):  # claims another sub-task's success, in its own name
            bus.send("result", agent, ME, fault.split(":", 1)[1], status="ok", patch="--- a/x\n+++ b/x\n",
                     usage={}, attempt=1, token=token)
        if fault == "garbage":
            box = Path(root) / ME
            (box / "000000000000-0-garbage.json").write_text("{not json")
            forged = {"kind": "result", "sender": agent, "recipient": ME, "subtask_id": sub.id, "seq": 0,
                      "sent_at": time.time(), "payload": {"status": "ok", "patch": "+x\n", "usage": {}, "attempt": n}}
            (box / "000000000000-0-forged.json").write_text(json.dumps(forged))  # no token: not believed
            (box / "000000000000-0-typed.json").write_text(json.dumps({**forged, "payload": "ok"}))
        beat()
        resets, pid = session.resets, pool_mod.jail_pid(session)
        pool_mod.reset_peak(session)
        cpu0, started = pool_mod.cpu_seconds(pid), time.monotonic()
        merge: dict = {}
        try:
            if fault == "hang":
                session.run("sleep 3600", timeout_s=3605)
            task = p["task"]
            if sub.kind == "verify":
                patches = [(Subtask(**{**d, "part": "", "depends_on": tuple(d["depends_on"]),
                                       "files": tuple(d["files"])}), patch) for d, patch in p["patches"]]
                result, merge = merge_mod.verify(
                    session, task, repos[task["source_repo"]], patches, merger,
                    lambda fix, workdir: (beat(), AgentContext(task, "", agent, n, heartbeat=beat,
                                                               workdir=workdir))[1], p["test_timeout_s"])
            else:
                ctx = AgentContext(task, "", agent, n, heartbeat=beat, base_patches=tuple(p["base_patches"]),
                                   request_help=lambda why: bus.send("request_help", agent, ME, sub.id, reason=why,
                                                                     attempt=n, token=token))
                result = runner(sub, p["role"], session, ctx)
        except Exception as exc:  # the agent's own failure is a result like any other
            result = SubtaskResult("error", detail=f"{type(exc).__name__}: {str(exc)[-300:]}")
        pid_now = pool_mod.jail_pid(session)
        usage = {"cpu_s": round(max(0.0, pool_mod.cpu_seconds(pid_now) - cpu0) if pid_now == pid else 0.0, 3),
                 "peak_mb": pool_mod.peak_mb(session), "wall_s": round(time.monotonic() - started, 4),
                 "pid": os.getpid()}
        bus.send("result", agent, ME, sub.id, status=result.status, patch=result.patch, usage=usage, attempt=n,
                 detail=result.detail[-500:], steps=result.steps, tokens=result.tokens, merge=merge, token=token)
        if session.resets != resets or result.status == "error":  # a broken shell is not reused
            with contextlib.suppress(Exception):
                session.close()
            session = sessions.open(**session_options(repos))
    with contextlib.suppress(Exception):
        session.close()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="an orchestrator worker process on a directory transport")
    ap.add_argument("--root", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--repos", required=True, help="a JSON file: repo key -> PreparedRepo fields")
    ap.add_argument("--policy", default="oracle")
    ap.add_argument("--merge-agent", default="oracle")
    ap.add_argument("--faults", default="{}")
    ap.add_argument("--parent", type=int, default=0)
    ap.add_argument("--command-timeout", type=float, default=120.0)
    ap.add_argument("--max-steps", type=int, default=30)
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(a.root, a.name, json.loads(Path(a.repos).read_text()), a.policy, a.merge_agent, json.loads(a.faults),
          a.parent or os.getppid(), a.command_timeout, a.max_steps)


if __name__ == "__main__":
    main()
