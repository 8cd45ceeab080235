"""SWE-ReX shell sessions for agents, each shell inside the Sandbox's bubblewrap jail.

SWE-ReX's local deployment is no sandbox (host user, host files, full environment, no limits), so
with `deployment="local"` every session's bash immediately `exec`s the jail (the Sandbox's own
command line: no network, read-only toolchains, unprivileged uid, rlimits) running an interactive
bash. Closing a session kills bwrap, and with it every process started inside, background ones
included. Other deployments (docker, modal, remote) run where their config points; the container
is then the sandbox. The session's /work (the job's input_dir and files) is carried in through the
shell as a tarball and its environment exported, the same way for all three; docker also mounts the
job's read-only binds and gets its memory and process limits (modal/remote cannot mount host paths
and refuse a job that has any).

Only `run_in_session` is used: SWE-ReX's `execute`, `read_file`, `write_file` and `upload` act on
the host and are never exposed. One deployment per session, each with its own event loop, so
sessions in different threads run in parallel (SWE-ReX's async calls block their loop).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import secrets
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import dagster as dg

from resources.sandbox import Sandbox, SandboxJob, default_sandbox
from resources.settings import env_fields

T = TypeVar("T")
R = TypeVar("R")

PS1 = "SHELLPS1PREFIX"  # the prompt SWE-ReX waits for (non-local deployments)
# SWE-ReX syntax-checks each command on the host with `bash -n << 'SOUNIQUEEOF'` through a shell: a
# command holding that terminator would end the heredoc and run the rest on the host.
_HOST_HEREDOC_MARKER = "SOUNIQUEEOF"
_MAX_TTY_LINE = 2000  # a tty in canonical mode cuts input lines at 4095 bytes
DEPLOYMENTS = ("local", "docker", "modal", "remote")
_LOG = logging.getLogger("hrm.swerex")  # SWE-ReX's own loggers print every step at DEBUG


@dataclass(frozen=True)
class CommandResult:
    command: str
    output: str
    exit_code: int | None
    status: str  # ok | failed | timeout | error
    wall_s: float

    def to_dict(self) -> dict:
        return {"command": self.command, "output": self.output, "exit_code": self.exit_code,
                "status": self.status, "wall_s": self.wall_s}


class SweRexSessions(dg.ConfigurableResource):
    """Factory of jailed SWE-ReX bash sessions (`with sessions.open(...) as s: s.run("ls")`)."""

    deployment: str = "local"
    deployment_options: dict = {}  # passed to swe-rex's <Kind>DeploymentConfig (image, host, port, ...)
    auth_token: str = ""  # the remote deployment's token: set it with dg.EnvVar so the UI never shows it
    startup_timeout_s: float = 30.0  # a loaded 2-core machine needs well over SWE-ReX's 1 s default
    command_timeout_s: float = 60.0
    session_cpu_s: float = 600.0  # RLIMIT_CPU of each process in the session
    memory_mb: int = 2048
    max_processes: int = 256
    max_output_chars: int = 200_000
    workers: int = 8

    def open(self, input_dir: str | Path | None = None, files: dict | None = None,
             ro_binds: Sequence[tuple[str | Path, str]] = (), env: dict | None = None,
             sandbox: Sandbox | None = None) -> "JailedSession":
        """A started session; `input_dir` and `files` are copied into /work, the shell starts there."""
        if self.deployment not in DEPLOYMENTS:
            raise ValueError(f"SweRexSessions.deployment {self.deployment!r}: expected one of {', '.join(DEPLOYMENTS)}")
        job = SandboxJob(command=["bash", "--norc", "--noprofile", "--noediting", "-i"], files=dict(files or {}),
                         input_dir=input_dir, ro_binds=tuple(ro_binds),
                         env={"PAGER": "cat", "GIT_PAGER": "cat", **(env or {}), "PS2": "", "PS0": "",
                              "TERM": "dumb"},
                         timeout_s=self.session_cpu_s, memory_mb=self.memory_mb, max_processes=self.max_processes)
        session = JailedSession(self, job, sandbox or default_sandbox())
        session.start()
        return session

    def map(self, fn: Callable[[T], R], items: Sequence[T], workers: int | None = None) -> list[R]:
        """Apply fn (which opens its own session) to items, `workers` sessions at a time."""
        with ThreadPoolExecutor(max_workers=max(1, workers or self.workers)) as pool:
            return list(pool.map(fn, items))

    def deployment_config(self, job: SandboxJob | None = None):
        """The swe-rex deployment config for a non-local kind (constructing it starts nothing); for docker,
        with `job`'s read-only binds and limits added to the configured docker_args."""
        from swerex.deployment import config as cfg

        kinds = {"docker": cfg.DockerDeploymentConfig, "modal": cfg.ModalDeploymentConfig,
                 "remote": cfg.RemoteDeploymentConfig, "local": cfg.LocalDeploymentConfig}
        options = dict(self.deployment_options)
        if self.deployment == "remote" and self.auth_token:
            options["auth_token"] = self.auth_token
        if job is not None and self.deployment == "docker":
            binds = [a for src, dst in job.ro_binds for a in ("-v", f"{Path(src).resolve()}:{dst}:ro")]
            options["docker_args"] = [*options.get("docker_args", []), *binds,
                                      "--memory", f"{self.memory_mb}m", "--pids-limit", str(self.max_processes),
                                      "--security-opt", "no-new-privileges", "--cap-drop", "ALL"]
        elif job is not None and job.ro_binds:
            raise ValueError(f"SweRexSessions.deployment {self.deployment!r} cannot mount host paths "
                             f"({', '.join(str(d) for _, d in job.ro_binds)}): the image must provide them")
        return kinds[self.deployment](**options)


class JailedSession:
    """One bash session; `run` keeps state (cwd, env) between commands like a terminal."""

    def __init__(self, owner: SweRexSessions, job: SandboxJob, sandbox: Sandbox):
        self.owner, self.sandbox = owner, sandbox
        # A prompt of its own per session, so output that merely prints SWE-ReX's fixed prompt cannot end a
        # command early; the shell gets it with the first letter as an octal escape (\110 = H), so the exec
        # command line that SWE-ReX echoes never contains the prompt itself.
        self.prompt = "HRMPS1" + secrets.token_hex(8)
        self.job = dataclasses.replace(job, env={**job.env, "PS1": "\\110" + self.prompt[1:]})
        self._loop = asyncio.new_event_loop()
        self._deployment = None
        self._jail_cm = None
        self.startup_s = 0.0
        self.resets = 0

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        from swerex.deployment.local import LocalDeployment
        from swerex.runtime.abstract import BashAction, CreateBashSessionRequest

        t0 = time.monotonic()
        if self.owner.deployment == "local":
            # A new session would take the pty away from the jailed bash, and Ctrl-C (the only way to
            # stop a timed-out command and keep the session) with it. Pushing keystrokes into the pty
            # (TIOCSTI) is denied by the jail's seccomp filter.
            self._jail_cm = self.sandbox.jail_argv(self.job, new_session=False)
            argv = self._jail_cm.__enter__()
            self._deployment = LocalDeployment(logger=_LOG)
        else:
            argv = None
            self.prompt = PS1
            self._deployment = self.owner.deployment_config(self.job).get_deployment()
        try:
            self._call(self._deployment.start())
            self._call(self._deployment.runtime.create_session(
                CreateBashSessionRequest(startup_timeout=self.owner.startup_timeout_s)))
            if argv is not None:
                self._deployment.runtime.sessions["default"]._ps1 = self.prompt  # swe-rex 1.4.0 BashSession
                self._call(self._deployment.runtime.run_in_session(BashAction(
                    command="exec " + shlex.join(argv), is_interactive_command=True, expect=[self.prompt],
                    timeout=self.owner.startup_timeout_s)))
                self.run("cd /work && stty -echo 2>/dev/null; true", timeout_s=self.owner.startup_timeout_s)
            else:
                self._carry_in()
        except BaseException:
            self.close()
            raise
        self.startup_s = round(time.monotonic() - t0, 4)

    def close(self) -> None:
        try:
            if self._deployment is not None:
                with contextlib.suppress(Exception):
                    self._call(self._deployment.stop())
        finally:
            self._deployment = None
            if self._jail_cm is not None:
                self._jail_cm.__exit__(None, None, None)
                self._jail_cm = None
            if not self._loop.is_closed():
                self._loop.close()

    def __enter__(self) -> "JailedSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- commands ---------------------------------------------------------------------------
    def run(self, command: str, timeout_s: float | None = None) -> CommandResult:
        """Run one command line; on timeout the command is interrupted (Ctrl-C) and, if the shell does
        not come back, the whole jail is killed and restarted (state is then lost: `resets` counts it)."""
        from swerex.exceptions import BashIncorrectSyntaxError, CommandTimeoutError
        from swerex.runtime.abstract import BashAction, BashInterruptAction

        timeout = float(timeout_s or self.owner.command_timeout_s)
        if _HOST_HEREDOC_MARKER in command:
            return CommandResult(command, f"refused: the command contains {_HOST_HEREDOC_MARKER}", None, "error", 0.0)
        t0 = time.monotonic()
        if max(map(len, command.splitlines() or [""])) > _MAX_TTY_LINE:
            staged = self._stage("/tmp/.hrm_cmd", command)
            if staged is not None:
                return staged
            return self.run(". /tmp/.hrm_cmd; __hrm_rc=$?; rm -f /tmp/.hrm_cmd; (exit $__hrm_rc)", timeout_s)
        try:
            obs = self._call(self._deployment.runtime.run_in_session(
                BashAction(command=command, timeout=timeout, check="silent")))
        except BashIncorrectSyntaxError as exc:
            return CommandResult(command, f"bash syntax error: {str(exc)[-500:]}", 2, "failed",
                                 round(time.monotonic() - t0, 4))
        except CommandTimeoutError:
            try:
                self._call(self._deployment.runtime.run_in_session(BashInterruptAction(timeout=1.0, n_retry=2)))
                # When Ctrl-C was too slow SWE-ReX suspends and kills the job; bash then reports it ("[1]+
                # Killed ...") at the next prompt: let a no-op take that notice, not the caller's next command.
                self._call(self._deployment.runtime.run_in_session(BashAction(command="true", timeout=5.0,
                                                                              check="silent")))
            except Exception:
                self._restart()
            return CommandResult(command, f"timeout after {timeout:g} s (command stopped)", None, "timeout",
                                 round(time.monotonic() - t0, 4))
        except Exception as exc:  # the shell died (e.g. `exit`, or a resource limit killed it)
            self._restart()
            return CommandResult(command, f"session error: {type(exc).__name__}: {str(exc)[-300:]}", None, "error",
                                 round(time.monotonic() - t0, 4))
        output = obs.output.replace("\r", "").replace(self.prompt, "")
        if len(output) > self.owner.max_output_chars:
            output = output[: self.owner.max_output_chars] + f"\n[output truncated at {self.owner.max_output_chars} chars]"
        code = obs.exit_code
        status = "ok" if code == 0 else ("failed" if code is not None else "error")
        return CommandResult(command, output.strip("\n"), code, status, round(time.monotonic() - t0, 4))

    def write_file(self, path: str, content: str) -> CommandResult:
        """Write a file inside the jail (through the shell, never the host-side SWE-ReX file API)."""
        t0 = time.monotonic()
        failed = self._stage(path, content)
        return failed or CommandResult(f"write {path}", "", 0, "ok", round(time.monotonic() - t0, 4))

    def _stage(self, path: str, text: str | bytes, binary: bool = False) -> CommandResult | None:
        """Write text (or bytes) to a jail path in base64 chunks that fit a terminal line; a failure result or
        None."""
        data = base64.b64encode(text if binary else text.encode()).decode()
        tmp = shlex.quote(path + ".b64")
        chunks = [data[i:i + _MAX_TTY_LINE - 100] for i in range(0, len(data), _MAX_TTY_LINE - 100)] or [""]
        for i, chunk in enumerate(chunks):
            r = self.run(f"printf '%s' '{chunk}' {'>' if i == 0 else '>>'} {tmp}")
            if r.status != "ok":
                return r
        r = self.run(f"base64 -d {tmp} > {shlex.quote(path)}; __hrm_rc=$?; rm -f {tmp}; (exit $__hrm_rc)")
        return None if r.status == "ok" else r

    # --- internals --------------------------------------------------------------------------
    def _carry_in(self) -> None:
        """A non-local session's /work (the job's input_dir and files) and environment, through the shell."""
        failed = self._stage("/tmp/.hrm_work.tgz", _work_tarball(self.job), binary=True)
        if failed is None:
            exports = [f"export {k}={shlex.quote(v)}" for k, v in self.job.env.items()
                       if k not in _PROMPT_VARS and k.isidentifier()]
            failed = self.run("mkdir -p /work && tar -xzf /tmp/.hrm_work.tgz -C /work && rm -f /tmp/.hrm_work.tgz"
                              " && cd /work" + "".join(f" && {e}" for e in exports),
                              timeout_s=self.owner.startup_timeout_s)
            failed = None if failed.status == "ok" else failed
        if failed is not None:
            raise RuntimeError(f"could not carry the job's files into the {self.owner.deployment} session: "
                               f"{failed.output[-300:]}")

    def _restart(self) -> None:
        self.resets += 1
        self.close()
        self._loop = asyncio.new_event_loop()
        self.start()

    def _call(self, coro):
        return self._loop.run_until_complete(coro)


_PROMPT_VARS = ("PS0", "PS1", "PS2", "TERM")  # the session's own shell settings, not the job's environment


def _work_tarball(job: SandboxJob) -> bytes:
    """A gzipped tar of what the jail's /work would hold: `input_dir`'s tree, then `files` over it."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if job.input_dir is not None:
            root = Path(job.input_dir)
            for path in sorted(root.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
        for name, content in job.files.items():
            data = content if isinstance(content, bytes) else str(content).encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def default_swe_sessions(**overrides) -> SweRexSessions:
    """Sessions with settings from HRM_SWEREX_* environment variables (HRM_SWEREX_DEPLOYMENT_OPTIONS is JSON)."""
    import json

    fields = SweRexSessions.model_fields
    env = {name: json.loads(raw) if fields[name].annotation is dict else raw
           for name, raw in env_fields("HRM_SWEREX_", [f for f in fields if f != "auth_token"]).items()}
    if "auth_token" in env.get("deployment_options", {}):
        raise ValueError("HRM_SWEREX_DEPLOYMENT_OPTIONS holds an auth_token, which the Dagster UI would show: "
                         "set HRM_SWEREX_AUTH_TOKEN instead")
    if env_fields("HRM_SWEREX_", ["auth_token"]):
        env["auth_token"] = dg.EnvVar("HRM_SWEREX_AUTH_TOKEN")  # resolved in the run, shown by name only
    return SweRexSessions(**{**env, **overrides})
