"""Grading a model's repair of a synthetic task from outside its process.

The answer is applied to the mutant with the model's own strict SEARCH/REPLACE apply (`model.edits`),
so the grader accepts exactly the answers the model's validator accepts. The repaired file then runs in
the jail under a runner that sees the hidden calls but never the expected results; the host compares
what `solve` returned with the expected results (see `repair_verdict`).
"""

from __future__ import annotations

import ast
import json
import re
import secrets

from model.edits import apply_edits
from resources.programs import single_file_job


def repair_cases(lang: str, tests: str) -> list[tuple[str, str]]:
    """(call arguments, expected result line) for each assert of a `synthetic.test_block` (the task's test_program)."""
    if lang == "python":
        cases, body = [], ast.parse(tests).body
        if len(body) % 2 or not body:
            raise ValueError("python test block: expected pairs of `got = solve(...)` and `assert got == ...`")
        for assign, check in zip(body[::2], body[1::2]):
            call = assign.value if isinstance(assign, ast.Assign) else None
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "solve"
                    and isinstance(check, ast.Assert) and isinstance(check.test, ast.Compare)):
                raise ValueError(f"python test block: unexpected statement at line {assign.lineno}")
            args = ast.get_source_segment(tests, call)[len("solve("):-1]
            cases.append((args, ast.get_source_segment(tests, check.test.comparators[0])))
        return cases
    if lang == "javascript":
        pattern = re.compile(r"^if \(JSON\.stringify\(solve\((.*)\)\) !== JSON\.stringify\((.*)\)\) \{$", re.M)
        cases = pattern.findall(tests)
        if not cases or len(cases) != tests.count("\nif (") + tests.startswith("if ("):
            raise ValueError("javascript test block: expected `if (JSON.stringify(solve(...)) !== ...` checks")
        return cases
    raise ValueError(f"no repair grading for {lang!r}")


# The jail runs the repaired file under one of these runners. The runner binds what it needs before
# the candidate runs, loads the candidate, reads a one-time token from stdin, calls `solve` on each
# hidden argument list and writes `<token> <i> <result>` lines, each result rendered exactly as
# print(repr(...)) / console.log(JSON.stringify(...)) render plain data of exact built-in types
# (anything else is an error), then `<token> end <n>`, and exits at once. The expected results never
# enter the jail, so lines the candidate prints itself (or after stealing the token) can only carry
# values it computed, which is what returning them from `solve` does.
_PY_RUNNER = """\
import os, sys
_write, _exit, _type, _repr, _items, _dict, _len = os.write, os._exit, type, repr, dict.items, dict, len


def _enc(v, depth=0):
    t = _type(v)
    if t is int or t is float or t is str or t is bool or v is None:
        return _repr(v)
    if depth > 100:
        raise ValueError("result nested too deeply")
    if t is list:
        return "[" + ", ".join([_enc(x, depth + 1) for x in v]) + "]"
    if t is tuple:
        inner = ", ".join([_enc(x, depth + 1) for x in v])
        return "(" + inner + ("," if _len(v) == 1 else "") + ")"
    if t is _dict:
        return "{" + ", ".join([_enc(k, depth + 1) + ": " + _enc(x, depth + 1) for k, x in _items(v)]) + "}"
    raise TypeError("solve returned something that is not plain data")


def _main(calls, _readline=sys.stdin.readline, _callable=callable, _range=range, _fail=BaseException):
    # everything used after the candidate's code ran was bound before it ran
    text = ""
    try:
        with open("main.py", encoding="utf-8") as f:
            code = compile(f.read(), "main.py", "exec")
        scope = {"__name__": "__main__", "__builtins__": __builtins__}
        exec(code, scope)
        token = _readline().strip()
        solve = _dict.get(scope, "solve")
        if not token or not _callable(solve):
            raise LookupError("no token on stdin, or main.py defines no function solve")
        for i in _range(_len(calls)):
            text += "%s %d %s\\n" % (token, i, _enc(solve(*calls[i])))
        text += "%s end %d\\n" % (token, _len(calls))
    except _fail:
        _write(2, b"runner: error\\n")
        _exit(1)
    _write(1, text.encode("utf-8", "backslashreplace"))
    _exit(0)


_main(CALLS)
"""

_JS_RUNNER = """\
const fs = require('fs');
const writeSync = fs.writeSync, readFileSync = fs.readFileSync, exit = process.exit;
const stringify = JSON.stringify, isArray = Array.isArray, getProto = Object.getPrototypeOf;
const keys = Object.keys, ArrayProto = Array.prototype, ObjectProto = Object.prototype, Fn = Function;
const apply = Reflect.apply, trim = String.prototype.trim;

function enc(v, depth) {
  if (v === null) return 'null';
  const t = typeof v;
  if (t === 'number' || t === 'string' || t === 'boolean') return stringify(v);
  if (t === 'undefined' && depth === 0) return 'undefined';
  if (t !== 'object' || depth > 100) throw new TypeError('solve returned a ' + t + ', not plain data');
  const proto = getProto(v);
  let s = '';
  if (isArray(v) && proto === ArrayProto) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i], tx = typeof x;
      s += (i ? ',' : '') + (tx === 'undefined' || tx === 'function' || tx === 'symbol' ? 'null' : enc(x, depth + 1));
    }
    return '[' + s + ']';
  }
  if (proto === ObjectProto || proto === null) {
    const ks = keys(v);
    for (let i = 0; i < ks.length; i++) {
      const x = v[ks[i]], tx = typeof x;
      if (tx === 'undefined' || tx === 'function' || tx === 'symbol') continue;
      s += (s ? ',' : '') + stringify(ks[i]) + ':' + enc(x, depth + 1);
    }
    return '{' + s + '}';
  }
  throw new TypeError('solve returned an object that is not plain data');
}

// everything used after the candidate's code ran was bound before it ran (no prototype lookups)
const n = CALLS.length;
let text = '';
try {
  const src = readFileSync('main.js', 'utf8');
  const load = new Fn('require', 'module', 'exports', src + '\\n;return typeof solve === "function" ? solve : undefined;');
  const solve = apply(load, undefined, [require, {exports: {}}, {}]);
  const token = apply(trim, readFileSync(0, 'utf8'), []);
  if (!token || typeof solve !== 'function') throw new ReferenceError('no token on stdin, or no function solve');
  for (let i = 0; i < n; i++) text += token + ' ' + i + ' ' + enc(apply(solve, undefined, CALLS[i]), 0) + '\\n';
  text += token + ' end ' + n + '\\n';
} catch (e) {
  writeSync(2, 'runner: error\\n');
  exit(1);
}
writeSync(1, text);
exit(0);
"""
RUNNER_NAMES = {"python": "grade.py", "javascript": "grade.js"}


def repair_runner(lang: str, calls: list[str]) -> str:
    """The runner program for `calls` (argument-list source texts, as in the test block)."""
    if lang == "python":
        args = [ast.literal_eval(f"({c},)") for c in calls]
        return f"CALLS = {args!r}\n" + _PY_RUNNER
    args = [json.loads(f"[{c}]") for c in calls]
    return f"'use strict';\nconst CALLS = {json.dumps(args)};\n" + _JS_RUNNER


def repair_verdict(sandbox, lang: str, mutant: str, answer: str, tests: str,
                   timeout_s: float = 10.0) -> tuple[bool, str]:
    """(fixed, why not) for the model's SEARCH/REPLACE `answer` to `mutant`.

    The repaired file runs in the jail under `repair_runner`, which sees the hidden calls but never
    the expected results; the host checks that the run ended normally, that exactly one framed
    result per call came back, and that each equals the expected result line of the test block."""
    try:
        fixed = apply_edits(mutant, answer)
    except ValueError as exc:
        return False, f"answer does not apply: {exc}"
    try:
        cases = repair_cases(lang, tests)
    except (ValueError, SyntaxError) as exc:  # a broken task row is that task's error, not the run's
        return False, f"the task's test block is not understood: {exc}"
    got, why = run_cases(sandbox, lang, fixed, [c for c, _ in cases], timeout_s)
    if got is None:
        return False, why
    for (call, expected), value in zip(cases, got):
        if value != expected:
            return False, f"solve({call}) returned {value}, expected {expected}"
    return True, ""


def run_cases(sandbox, lang: str, program: str, calls: list[str], timeout_s: float = 10.0) -> tuple[list | None, str]:
    """What `solve` in `program` returned for each call (result lines as the test block writes them), run in
    the jail under `repair_runner`; (None, why) unless the run ended normally with exactly one framed result
    per call and an end line."""
    files, _ = single_file_job(lang, program)
    files[RUNNER_NAMES[lang]] = repair_runner(lang, calls)
    command = ["python3", "-I", "grade.py"] if lang == "python" else ["node", "grade.js"]
    token = secrets.token_hex(16)
    result = sandbox.run(command, files=files, stdin=(token + "\n").encode(), timeout_s=timeout_s)
    if result.status != "ok":
        return None, f"run {result.status}: {result.stderr.strip()[-200:]}"
    got: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if line.startswith(token + " "):
            index, _, value = line[len(token) + 1:].partition(" ")
            if index in got:
                return None, f"result {index} reported twice"
            got[index] = value
    if got.pop("end", None) != str(len(calls)) or set(got) != {str(i) for i in range(len(calls))}:
        return None, f"expected {len(calls)} results and an end line, got {sorted(got)}"
    return [got[str(i)] for i in range(len(calls))], ""


def repair_fixed(sandbox, lang: str, mutant: str, answer: str, tests: str, timeout_s: float = 10.0) -> bool:
    """Whether the model's SEARCH/REPLACE answer fixes the mutant (see repair_verdict)."""
    return repair_verdict(sandbox, lang, mutant, answer, tests, timeout_s)[0]
