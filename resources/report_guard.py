"""Runs a test command in a jail and hands its framework's report to the host over a channel the tested code
does not hold.

In the jail, run as the job's command (`python3 -I -S report_guard.py --timeout S -- sh -c SCRIPT`), it:
makes itself non-dumpable (so processes of the same uid cannot open its /proc/<pid>/fd, memory or ptrace it),
becomes the subreaper of everything the script starts, creates a fresh report directory outside /work
(`$HRM_REPORT_DIR` for the script), runs the script with stdin closed and stdout/stderr into a pipe it reads
(capped, head and tail kept), and passes none of its own descriptors on. When the script exits (or the time
is up, or the output limit is hit) it kills every process left in the jail, then reads the report directory
(regular files only, never through a link, size-capped) and prints ONE JSON document on the jail's stdout:
exit status, output, CPU seconds of the script and everything it started, and the report files.

The tested code cannot print into that document: its output lands in the `output` field, which is never
parsed as a report. If it kills the guard there is no document, which the host counts as a failure. What
stays possible: code running inside the test process could write a file into the report directory itself,
impersonating the framework (see docs/polyglot.md).

On the host, `guard_command` builds the argv and `read_document` checks the document's exact shape.
Standard library only: in the jail it runs before and apart from any tested code.
"""

from __future__ import annotations

import json
import os
import sys

GUARD_FORMAT = "hrm-report-guard/1"
JAIL_PATH = "/opt/hrm-guard/report_guard.py"
KEEP_OUTPUT_HEAD = 16 * 1024
KEEP_OUTPUT_TAIL = 48 * 1024
MAX_REPORT_FILES = 64
MAX_REPORT_DEPTH = 4
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36


# --- host side -------------------------------------------------------------------------------------
def guard_command(command: list[str], timeout_s: float, max_document_bytes: int,
                  max_output_bytes: int | None = None) -> list[str]:
    """The jail argv that runs `command` under the guard (bind `guard_bind()` into the jail)."""
    argv = ["python3", "-I", "-S", JAIL_PATH, "--timeout", f"{timeout_s:g}",
            "--max-document", str(max_document_bytes)]
    if max_output_bytes:
        argv += ["--max-output", str(max_output_bytes)]
    return argv + ["--", *command]


def guard_bind() -> tuple[str, str]:
    """(host path, jail path) of this script, for a read-only bind."""
    return os.path.abspath(__file__), JAIL_PATH


def read_document(stdout: str) -> dict | None:
    """The guard's document from the jail's stdout, or None unless it is exactly one well-formed document."""
    try:
        doc = json.loads(stdout)
    except (ValueError, RecursionError):
        return None
    if type(doc) is not dict or doc.get("format") != GUARD_FORMAT:
        return None
    shape = {"exit_code": int, "signal": int, "timed_out": bool, "output_limit": bool, "output": str,
             "output_bytes": int, "cpu_s": float, "wall_s": float, "reports": dict, "skipped": list,
             "reports_truncated": bool}
    for key, kind in shape.items():
        if type(doc.get(key)) is not kind:
            return None
    if any(type(k) is not str or type(v) is not str for k, v in doc["reports"].items()):
        return None
    if any(type(s) is not str for s in doc["skipped"]):
        return None
    return doc


# --- jail side -------------------------------------------------------------------------------------
def _prctl(option: int, value: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


class _Capture:
    """The first `head` and last `tail` bytes of a stream, and its total size."""

    def __init__(self, head: int, tail: int):
        self.head_limit, self.tail_limit = head, tail
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > self.tail_limit:
            del self.tail[:len(self.tail) - self.tail_limit]

    def text(self) -> str:
        cut = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {cut} bytes of output cut ...]\n".encode() if cut > 0 else b""
        return (bytes(self.head) + middle + bytes(self.tail)).decode("utf-8", "replace")


def _in_jail() -> bool:
    """True inside a bubblewrap PID namespace (its init is bwrap), where kill(-1) reaches only the jail."""
    try:
        with open("/proc/1/comm") as f:
            return f.read().strip() == "bwrap"
    except OSError:
        return False


def _kill_everything_else(group: int) -> None:
    """SIGKILL every other process of the jail (outside one, only the script's process group), then reap."""
    import signal
    import time

    everything = _in_jail()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if everything:
                os.kill(-1, signal.SIGKILL)
            else:
                os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return  # no children left: with the subreaper flag, that is every descendant
        time.sleep(0.01)


def _read_reports(root: str, budget: int) -> tuple[dict[str, str], list[str], bool]:
    """Regular files under `root` (no links followed), up to `budget` bytes in all."""
    import stat

    reports: dict[str, str] = {}
    skipped: list[str] = []
    truncated = False
    pending = [(root, "", 0)]
    while pending:
        path, rel, depth = pending.pop()
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(f"{rel or '.'}: {exc.strerror}")
            continue
        for entry in entries:
            name = f"{rel}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                if depth < MAX_REPORT_DEPTH:
                    pending.append((entry.path, name + "/", depth + 1))
                else:
                    skipped.append(f"{name}: too deep")
                continue
            if len(reports) >= MAX_REPORT_FILES:
                skipped.append(f"{name}: too many files")
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                skipped.append(f"{name}: {exc.strerror}")
                continue
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    skipped.append(f"{name}: not a regular file")
                    continue
                data = f.read(budget + 1)
            if len(data) > budget:
                truncated = True
                skipped.append(f"{name}: over the size limit")
                continue
            budget -= len(data)
            reports[name] = data.decode("utf-8", "replace")
    return reports, skipped, truncated


def _drain(fd: int, capture: _Capture) -> bool:
    """Read what the pipe holds now (a bounded amount, so the caller keeps checking the time); True at EOF."""
    for _ in range(64):
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            return True
        capture.add(chunk)
    return False


def _run(command: list[str], timeout_s: float, max_output: int | None, max_document: int) -> dict:
    import resource
    import selectors
    import subprocess
    import tempfile
    import time

    _prctl(_PR_SET_DUMPABLE, 0)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    report_dir = tempfile.mkdtemp(prefix="hrm-report-", dir="/tmp")
    start = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            close_fds=True, start_new_session=True, env={**os.environ, "HRM_REPORT_DIR": report_dir})
    capture = _Capture(KEEP_OUTPUT_HEAD, KEEP_OUTPUT_TAIL)
    timed_out = output_limit = False
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            remaining = start + timeout_s - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            sel.select(timeout=min(remaining, 0.1))
            eof = _drain(fd, capture)
            if max_output and capture.total > max_output:
                output_limit = True
                break
            # Done when the script has ended; a process it left behind may still hold the pipe open.
            if proc.poll() is not None:
                _drain(fd, capture)
                break
            if eof:  # every writer closed the pipe, but the script still runs: just wait for it
                sel.unregister(fd)
                try:
                    proc.wait(timeout=max(0.0, remaining))
                except subprocess.TimeoutExpired:
                    timed_out = True
                break
    if timed_out or output_limit:
        proc.kill()
    code = proc.wait()  # before anything else is reaped, so that the script's own status is kept
    _kill_everything_else(proc.pid)
    proc.stdout.close()
    wall = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = capture.text()
    reports, skipped, truncated = _read_reports(report_dir, max(0, max_document - len(output.encode()) - 65536))
    return {"format": GUARD_FORMAT, "exit_code": code if code >= 0 else 128 - code,
            "signal": -code if code < 0 else 0, "timed_out": timed_out, "output_limit": output_limit,
            "output": output, "output_bytes": capture.total,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "wall_s": round(wall, 3),
            "reports": reports, "skipped": skipped, "reports_truncated": truncated}


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="report_guard")
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--max-output", type=int, default=0)
    parser.add_argument("--max-document", type=int, default=900_000)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    doc = _run(args.command, args.timeout, args.max_output or None, args.max_document)
    sys.stdout.write(json.dumps(doc, ensure_ascii=False))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
