"""The one way this project runs untrusted code: a bubblewrap jail.

Layout of a run (as root): `bwrap` builds the jail (read-only /usr and toolchains, no network,
own PID/IPC/UTS namespaces, size-capped tmpfs for /work and /tmp, cleared environment), then
`setpriv` drops to an unprivileged uid of its own (one per concurrent slot, so RLIMIT_NPROC is
really counted) with no capabilities, then `prlimit` sets CPU, data, file-size, process and
open-file limits. Killing bwrap kills the namespace's init, which takes every descendant with it,
including ones that called setsid. Without root, bwrap runs in a user namespace instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence, TypeVar

import dagster as dg
from pydantic import PrivateAttr

from resources.toolchains import all_toolchains

STATUSES = ("ok", "failed", "timeout", "memory", "output_limit", "error")
SLOT_DIR = Path(os.environ.get("HRM_SANDBOX_SLOT_DIR", "/tmp/hrm-sandbox-slots"))
MAX_SLOTS = 128
_MEMORY_PATTERNS = re.compile(
    r"MemoryError|std::bad_alloc|Cannot allocate memory|out of memory|OutOfMemoryError|"
    r"heap out of memory|memory allocation of \d+ bytes failed|failed to allocate|cannot allocate"
)
_SYSTEM_BINDS = ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
                 "/etc/localtime", "/etc/mime.types")
_PRELUDE = (
    'mkdir -p /tmp/home && { [ ! -d /opt/hrm-home ] || cp -R /opt/hrm-home/. /tmp/home/; } && '
    '{ [ ! -d /.input ] || cp -R /.input/. /work/; } && '
    '{ [ ! -d /.files ] || cp -R /.files/. /work/; } && cd "$HRM_CWD" && exec "$@"'
)

T = TypeVar("T")
R = TypeVar("R")


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or setpriv/prlimit) is missing: nothing untrusted may run."""


@dataclass(frozen=True)
class SandboxResult:
    status: str
    exit_code: int | None
    stdout: str
    stderr: str
    wall_s: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SandboxJob:
    """One jailed command. `files` (relative path -> content) and `input_dir` are copied into /work."""

    command: Sequence[str]
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    input_dir: str | Path | None = None
    ro_binds: Sequence[tuple[str | Path, str]] = ()
    rw_binds: Sequence[tuple[str | Path, str]] = ()  # trusted caches only; never for hostile code
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    cwd: str = "/work"
    timeout_s: float | None = None
    memory_mb: int | None = None
    max_processes: int | None = None


@dataclass
class JailedProcess:
    """A process started by `Sandbox.process`; what it writes to stderr lands in `stderr_file`."""

    proc: subprocess.Popen
    stderr_file: object

    def stderr_tail(self, limit: int = 2000) -> str:
        self.stderr_file.seek(0, os.SEEK_END)
        size = self.stderr_file.tell()
        self.stderr_file.seek(max(0, size - limit))
        return self.stderr_file.read().decode("utf-8", "replace")


class Sandbox(dg.ConfigurableResource):
    """Runs untrusted programs; see the module docstring for the jail."""

    concurrency: int = max(1, os.cpu_count() or 1)
    timeout_s: float = 60.0
    memory_mb: int = 2048
    work_mb: int = 1024
    tmp_mb: int = 512
    max_output_bytes: int = 1_000_000
    max_processes: int = 512
    max_open_files: int = 4096
    max_file_size_mb: int = 256
    uid_base: int = 61000

    _gate: threading.BoundedSemaphore | None = PrivateAttr(default=None)
    _gate_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # --- public API -------------------------------------------------------------------------
    @staticmethod
    def check_available() -> None:
        missing = [t for t in ("bwrap", "prlimit") if not shutil.which(t)]
        if os.geteuid() == 0 and not shutil.which("setpriv"):
            missing.append("setpriv")
        if missing:
            raise SandboxUnavailable(
                f"sandbox tools missing: {', '.join(missing)}; run scripts/setup.sh as root "
                "(apt-get install bubblewrap util-linux)")

    def run(self, command: Sequence[str], **options) -> SandboxResult:
        return self.run_job(SandboxJob(command=list(command), **options))

    def run_job(self, job: SandboxJob) -> SandboxResult:
        self.check_available()
        with self._slot_gate(), _Slot() as slot, tempfile.TemporaryDirectory(prefix="hrm-sbx-") as stage:
            return self._execute(job, slot, Path(stage))

    def run_many(self, jobs: Iterable[SandboxJob]) -> list[SandboxResult]:
        return self.map(self.run_job, list(jobs))

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Apply fn (which may run several jailed commands) to items, `concurrency` at a time."""
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(fn, items))

    @contextlib.contextmanager
    def jail_argv(self, job: SandboxJob):
        """The argv that starts `job.command` in the same jail and limits as `run_job`, for a caller that
        runs it itself (an interactive SWE-ReX shell). The uid slot and staging dir are held until exit;
        no wall-clock timeout applies, so the caller must kill the process (which ends the jail)."""
        self.check_available()
        with _Slot() as slot, tempfile.TemporaryDirectory(prefix="hrm-sbx-") as stage:
            argv, status_w, status_r = self._command_line(job, slot, Path(stage), float(job.timeout_s or self.timeout_s),
                                                          int(job.memory_mb or self.memory_mb))
            os.close(status_w)
            os.close(status_r)
            i = argv.index("--json-status-fd")
            yield argv[:i] + argv[i + 2:]

    @contextlib.contextmanager
    def process(self, job: SandboxJob):
        """Start `job` in a jail and yield a JailedProcess to talk to over its stdin and stdout pipes (a
        long-lived grader, say). It holds one of the `concurrency` slots, and the jail is killed on exit.
        `job.timeout_s` only sets the CPU limit of each process in it; the caller keeps the time."""
        with self._slot_gate(), self.jail_argv(job) as argv, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                    start_new_session=True)
            try:
                yield JailedProcess(proc, err)
            finally:
                _kill_tree(proc)
                proc.wait()
                for stream in (proc.stdin, proc.stdout):
                    try:
                        stream.close()
                    except OSError:
                        pass

    # --- internals ----------------------------------------------------------------------------
    def _slot_gate(self) -> threading.BoundedSemaphore:
        with self._gate_lock:
            if self._gate is None:
                self._gate = threading.BoundedSemaphore(max(1, self.concurrency))
            return self._gate

    def _execute(self, job: SandboxJob, slot: int, stage: Path) -> SandboxResult:
        timeout = float(job.timeout_s or self.timeout_s)
        memory_mb = int(job.memory_mb or self.memory_mb)
        argv, pass_fd, status_r = self._command_line(job, slot, stage, timeout, memory_mb)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if job.stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=(pass_fd,), start_new_session=True)
        except OSError as exc:
            os.close(pass_fd)
            os.close(status_r)
            return SandboxResult("error", None, "", f"sandbox failed to start: {exc}", 0.0)
        os.close(pass_fd)
        if job.stdin:
            threading.Thread(target=_feed, args=(proc, job.stdin), daemon=True).start()
        out, err, timed_out, overflow = self._collect(proc, start + timeout)
        wall = time.monotonic() - start
        status_doc = _read_all(status_r)
        started = '"child-pid"' in status_doc
        exit_code = proc.returncode
        inner = re.findall(r'"exit-code":\s*(-?\d+)', status_doc)
        if inner:
            exit_code = int(inner[-1])
        stdout = out.decode("utf-8", "replace")
        stderr = err.decode("utf-8", "replace")
        if timed_out:
            status = "timeout"
        elif overflow:
            status = "output_limit"
        elif not started:
            status = "error"
        elif exit_code == 0:
            status = "ok"
        elif exit_code in (128 + signal.SIGXCPU, -signal.SIGXCPU, 128 + signal.SIGKILL) and wall >= timeout * 0.9:
            status = "timeout"
        elif _MEMORY_PATTERNS.search(stderr[-20000:]) or _MEMORY_PATTERNS.search(stdout[-5000:]):
            status = "memory"
        else:
            status = "failed"
        return SandboxResult(status, exit_code, stdout, stderr, round(wall, 4))

    def _command_line(self, job: SandboxJob, slot: int, stage: Path, timeout: float, memory_mb: int):
        env = {"PATH": "", "HOME": "/tmp/home", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "USER": "sandbox", "HRM_CWD": job.cwd}
        path = []
        args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid",
                "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox",
                "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
                "--perms", "0755", "--dir", "/etc", "--proc", "/proc", "--dev", "/dev",
                "--size", str(self.work_mb << 20), "--perms", "1777", "--tmpfs", "/work",
                "--size", str(self.tmp_mb << 20), "--perms", "1777", "--tmpfs", "/tmp"]
        for p in _SYSTEM_BINDS:
            if os.path.exists(p):
                args += ["--ro-bind", p, p]
        (stage / "passwd").write_text(
            f"root:x:0:0:root:/root:/bin/sh\nsandbox:x:{self.uid_base + slot}:{self.uid_base + slot}"
            f":sandbox:/tmp/home:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
        (stage / "group").write_text(f"root:x:0:\nsandbox:x:{self.uid_base + slot}:\n")
        args += ["--ro-bind", str(stage / "passwd"), "/etc/passwd", "--ro-bind", str(stage / "group"), "/etc/group"]
        for tc in all_toolchains():
            if not tc.available:
                continue
            for src, dest in tc.binds:
                if os.path.exists(src):
                    args += ["--ro-bind", str(src), dest]
            path += list(tc.path)
            env.update(tc.env)
        if job.input_dir is not None:
            args += ["--ro-bind", str(Path(job.input_dir).resolve()), "/.input"]
        if job.files:
            files_dir = stage / "files"
            for rel, content in job.files.items():
                target = (files_dir / rel).resolve()
                if not str(target).startswith(str(files_dir.resolve()) + os.sep):
                    raise ValueError(f"sandbox file path escapes the work dir: {rel!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content.encode() if isinstance(content, str) else content)
            _make_world_readable(files_dir)
            args += ["--ro-bind", str(files_dir), "/.files"]
        for src, dest in job.ro_binds:
            args += ["--ro-bind", str(src), dest]
        for src, dest in job.rw_binds:
            args += ["--bind", str(src), dest]
        args = _with_parent_dirs(args)
        _make_world_readable(stage, recursive=False)
        env["PATH"] = ":".join(path + ["/usr/local/bin", "/usr/bin", "/bin"])
        env.update(job.env)
        args += ["--clearenv"]
        for k, v in env.items():
            args += ["--setenv", k, v]
        args += ["--chdir", "/work"]
        status_r, status_w = os.pipe()
        args += ["--json-status-fd", str(status_w), "--"]
        cpu = max(1, math.ceil(timeout) + 1)
        limits = [f"--cpu={cpu}", f"--data={memory_mb << 20}", f"--fsize={self.max_file_size_mb << 20}",
                  f"--nproc={job.max_processes or self.max_processes}", f"--nofile={self.max_open_files}",
                  "--core=0"]
        if os.geteuid() == 0:
            uid = str(self.uid_base + slot)
            args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                     "--bounding-set=-all", "--no-new-privs", "--"]
        else:
            args[1:1] = ["--unshare-user", "--cap-drop", "ALL"]
        args += ["prlimit", *limits, "--", "sh", "-c", _PRELUDE, "sandbox", *job.command]
        return args, status_w, status_r

    def _collect(self, proc: subprocess.Popen, deadline: float):
        bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
        sel = selectors.DefaultSelector()
        for stream in bufs:
            sel.register(stream, selectors.EVENT_READ)
        timed_out = overflow = False
        total = 0
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(remaining, 0.5)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf = bufs[key.fileobj]
                room = self.max_output_bytes - len(buf)
                buf += chunk[:max(0, room)]
                total += len(chunk)
                if len(chunk) > room:
                    overflow = True
            if overflow:
                break
        if timed_out or overflow:
            _kill_tree(proc)
        sel.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            proc.wait()
        for stream in bufs:
            stream.close()
        return bytes(bufs[proc.stdout]), bytes(bufs[proc.stderr]), timed_out, overflow


class _Slot:
    """A slot number held with a file lock, so concurrent jails (across processes) get distinct uids."""

    def __enter__(self) -> int:
        SLOT_DIR.mkdir(parents=True, exist_ok=True)
        while True:
            for n in range(MAX_SLOTS):
                fd = os.open(SLOT_DIR / f"{n}.lock", os.O_CREAT | os.O_RDWR, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self.fd, self.n = fd, n
                return n
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _with_parent_dirs(args: list[str]) -> list[str]:
    """Create every bind target's missing ancestors as 0755 dirs (bwrap would make them 0700)."""
    made = {"/", "/usr", "/work", "/tmp", "/etc", "/proc", "/dev"}
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in ("--ro-bind", "--bind"):
            dest = Path(args[i + 2])
            for parent in reversed(dest.parents):
                if str(parent) not in made:
                    made.add(str(parent))
                    out += ["--perms", "0755", "--dir", str(parent)]
            out += args[i:i + 3]
            i += 3
        else:
            out.append(args[i])
            i += 1
    return out


def _kill_tree(proc: subprocess.Popen) -> None:
    # bwrap leads its own process group; its PID-namespace init dies with it (--die-with-parent).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass


def _read_all(fd: int) -> str:
    chunks = []
    os.set_blocking(fd, False)
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def _make_world_readable(root: Path, recursive: bool = True) -> None:
    root.chmod(0o755)
    if not recursive:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            os.chmod(p, 0o755 if os.access(p, os.X_OK) else 0o644)


def default_sandbox(**overrides) -> Sandbox:
    """The sandbox with settings from HRM_SANDBOX_* environment variables (CLI and benches)."""
    env = {k[len("HRM_SANDBOX_"):].lower(): v for k, v in os.environ.items() if k.startswith("HRM_SANDBOX_")
           and k[len("HRM_SANDBOX_"):].lower() in Sandbox.model_fields}
    return Sandbox(**{**env, **overrides})


def result_json(result: SandboxResult) -> str:
    return json.dumps(result.to_dict())
