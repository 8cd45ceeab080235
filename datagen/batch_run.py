"""Run many small generated programs in one jailed process, for the synthetic tasks' ground truth.

A jail costs ~20 ms to start and an interpreter ~25 ms more, while a generated program runs in
microseconds: one Sandbox run per program made task generation cost minutes. Here a driver inside the
Sandbox runs each program of a batch in a fresh namespace (Python: `exec` with new globals; JavaScript:
`vm.runInNewContext`) with its own time limit, and reports per program what a single run would show: its
stdout, and for an uncaught error the line the interpreter prints (`ValueError: ...`, `Error: ...`).

The programs share one process, so a program could disturb a later one (patching builtins); the ones
run here come from our own templates and never do. Whatever breaks a batch as a whole (a crash, a hang the
per-program limit misses, unreadable output) sends its programs back through one Sandbox run each.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from resources.programs import single_file_job

BATCH_SIZE = 250
_BATCH_LIMIT_S = 120.0
_PY_DRIVER = r'''
import contextlib, io, json, signal, sys, traceback

class _Timeout(BaseException):
    pass

def _alarm(signum, frame):
    raise _Timeout()

signal.signal(signal.SIGALRM, _alarm)
limit = float(sys.argv[1])
results = []
for source in json.load(open("programs.json")):
    out, status, error = io.StringIO(), "ok", ""
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source, "main.py", "exec"), {"__name__": "__main__"})
    except _Timeout:
        status = "timeout"
    except SystemExit as e:
        if e.code not in (None, 0):  # as a lone run: a non-zero exit that prints no error line
            status = "failed"
    except BaseException as e:
        status, error = "failed", traceback.format_exception_only(type(e), e)[-1].strip()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    results.append({"status": status, "stdout": out.getvalue()[:4000], "error": error[:1000]})
sys.stdout.write(json.dumps(results))
'''
_JS_DRIVER = r'''
const fs = require("fs"), util = require("util"), vm = require("vm");
const limit = Math.round(Number(process.argv[2]) * 1000);
const results = JSON.parse(fs.readFileSync("programs.json", "utf8")).map((source) => {
  let out = "", status = "ok", error = "";
  const log = (...args) => { out += util.format(...args) + "\n"; };
  try {
    vm.runInNewContext(source, { console: { log } }, { timeout: limit, filename: "main.js" });
  } catch (e) {
    if (e && e.code === "ERR_SCRIPT_EXECUTION_TIMEOUT") status = "timeout";
    else { status = "failed"; error = e && e.name ? `${e.name}: ${e.message}` : String(e); }
  }
  return { status, stdout: out.slice(0, 4000), error: error.slice(0, 1000) };
});
process.stdout.write(JSON.stringify(results));
'''
DRIVERS = {"python": ("driver.py", _PY_DRIVER, "python3"), "javascript": ("driver.js", _JS_DRIVER, "node")}


@dataclass
class ProgramRun:
    status: str  # "ok", "failed" (an uncaught error), "timeout", or a Sandbox status from a single run
    stdout: str
    error: str  # the interpreter's error line for "failed"; the Sandbox's stderr tail for a single run

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_programs(sandbox, language: str, programs: list[str], timeout_s: float = 2.0) -> list[ProgramRun]:
    """One ProgramRun per program, in order; `timeout_s` is each program's limit."""
    if language not in DRIVERS:
        raise ValueError(f"no batch driver for {language!r}; expected one of {', '.join(DRIVERS)}")
    batches = [programs[i:i + BATCH_SIZE] for i in range(0, len(programs), BATCH_SIZE)]
    out: list[ProgramRun] = []
    for runs in sandbox.map(lambda batch: _run_batch(sandbox, language, batch, timeout_s), batches):
        out += runs
    return out


def _run_batch(sandbox, language: str, programs: list[str], timeout_s: float) -> list[ProgramRun]:
    name, driver, interpreter = DRIVERS[language]
    result = sandbox.run([interpreter, name, str(timeout_s)], files={name: driver, "programs.json": json.dumps(programs)},
                         timeout_s=min(_BATCH_LIMIT_S, 10 + timeout_s * len(programs)))
    runs = _parse(result.stdout, len(programs)) if result.ok else None
    if runs is None:
        return [_run_single(sandbox, language, p, timeout_s) for p in programs]
    return runs


def _parse(stdout: str, count: int) -> list[ProgramRun] | None:
    try:
        rows = json.loads(stdout)
        runs = [ProgramRun(str(r["status"]), str(r["stdout"]), str(r["error"])) for r in rows]
    except (ValueError, KeyError, TypeError):
        return None
    return runs if len(runs) == count else None


def _run_single(sandbox, language: str, program: str, timeout_s: float) -> ProgramRun:
    files, command = single_file_job(language, program)
    result = sandbox.run(command, files=files, timeout_s=max(timeout_s, 10.0))
    return ProgramRun(result.status, result.stdout, _error_line(result.stderr) or result.stderr[-300:])


def _error_line(stderr: str) -> str:
    """The line naming the uncaught error, as the batch driver reports it (node prints it first, then a
    stack; Python prints it last)."""
    errors = [line.strip() for line in stderr.strip().splitlines() if re.match(r"^\s*\w*(Error|Exception)\b", line)]
    return errors[0] if errors else ""
