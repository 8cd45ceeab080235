"""Output validation: whole files parse (python with `ast`, C-like languages by a string- and comment-aware
bracket check), SEARCH/REPLACE edit blocks apply, tool calls match their schema."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field

from model.edits import SEARCH, apply_edits
from model.vocab import TOOLS


@dataclass
class Check:
    ok: bool
    errors: list[str] = field(default_factory=list)
    result: str | None = None  # the edited file, for edits

    def __bool__(self) -> bool:
        return self.ok


# -- source files -------------------------------------------------------------------------------------
def check_source(code: str, language: str) -> Check:
    """Does the whole file parse? python: ast; cpp/go/java/javascript/rust: brackets balance outside strings
    and comments (best effort, no compiler); other languages pass."""
    if language == "python":
        try:
            ast.parse(code)
        except SyntaxError as e:
            return Check(False, [f"python: line {e.lineno}: {e.msg}"])
        return Check(True)
    if language in ("cpp", "go", "java", "javascript", "rust"):
        error = _bracket_error(code, language)
        return Check(error is None, [f"{language}: {error}"] if error else [])
    return Check(True)


_PAIRS = {")": "(", "]": "[", "}": "{"}


def _bracket_error(code: str, language: str) -> str | None:
    stack: list[tuple[str, int]] = []
    i, line, n = 0, 1, len(code)
    quotes = {'"', "'"} | ({"`"} if language in ("javascript", "go") else set())
    while i < n:
        c = code[i]
        if c == "\n":
            line += 1
        elif code.startswith("//", i):
            end = code.find("\n", i)
            i = n if end < 0 else end
            continue
        elif code.startswith("/*", i):
            end = code.find("*/", i + 2)
            if end < 0:
                return f"line {line}: unterminated block comment"
            line += code.count("\n", i, end)
            i = end + 2
            continue
        elif c == "'" and language == "rust" and not _rust_char_literal(code, i):
            pass  # a lifetime such as 'a
        elif c in quotes:
            j = i + 1
            while j < n and code[j] != c:
                if code[j] == "\\" and c != "`":
                    j += 1
                elif code[j] == "\n" and c != "`" and language != "rust":
                    return f"line {line}: unterminated string"
                j += 1
            if j >= n:
                return f"line {line}: unterminated string"
            line += code.count("\n", i, j)
            i = j + 1
            continue
        elif c in "([{":
            stack.append((c, line))
        elif c in _PAIRS:
            if not stack or stack[-1][0] != _PAIRS[c]:
                return f"line {line}: unexpected {c!r}"
            stack.pop()
        i += 1
    if stack:
        return f"line {stack[-1][1]}: {stack[-1][0]!r} never closed"
    return None


def _rust_char_literal(code: str, i: int) -> bool:
    return code.startswith("\\", i + 1) or (i + 2 < len(code) and code[i + 2] == "'")


# -- SEARCH/REPLACE edits (the format and its strict apply: model/edits.py) --------------------------
def check_edit(source: str, answer: str, language: str | None = None) -> Check:
    """Every block parses and applies (model.edits rules); the edited file still parses where a parser is at
    hand."""
    try:
        edited = apply_edits(source, answer)
    except ValueError as e:
        return Check(False, [str(e)])
    parsed = check_source(edited, language) if language else Check(True)
    return Check(parsed.ok, parsed.errors, edited)


# -- tool calls --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arg:
    kind: str  # "enum" | "string" | "strings" (list of strings) | "path"
    options: tuple[str, ...] = ()
    required: bool = True
    required_if: tuple[str, tuple[str, ...]] | None = None  # (other field, values) that make it required


def _sub(*options: str) -> dict[str, Arg]:
    return {"subcommand": Arg("enum", options), "args": Arg("strings")}


# The argument schema of each tool, in decoding order. A call is {"tool": name, "args": {field: value}}.
TOOL_SCHEMAS: dict[str, dict[str, Arg]] = {
    "none": {},
    "git": _sub("status", "diff", "log", "show", "add", "commit", "checkout", "switch", "branch", "restore",
                "reset", "stash", "apply", "init", "clone", "grep", "rm", "mv"),
    "pip": _sub("install", "uninstall", "show", "list", "freeze", "download"),
    "npm": _sub("install", "ci", "test", "run", "init", "uninstall", "list"),
    "cargo": _sub("build", "test", "run", "check", "fmt", "clippy", "add", "new", "init"),
    "mvn": {"goals": Arg("strings"), "args": Arg("strings")},
    "make": {"targets": Arg("strings"), "args": Arg("strings")},
    "cmake": {"args": Arg("strings")},
    "shell": {"command": Arg("string")},
    "fs": {"op": Arg("enum", ("read", "write", "list", "mkdir", "delete", "move", "copy")),
           "path": Arg("path"),
           "content": Arg("string", required=False, required_if=("op", ("write",))),
           "dest": Arg("path", required=False, required_if=("op", ("move", "copy")))},
}
assert set(TOOL_SCHEMAS) == set(TOOLS)


def is_required(arg: Arg, args: dict) -> bool:
    if arg.required_if:
        other, values = arg.required_if
        return args.get(other) in values
    return arg.required


def _value_error(name: str, arg: Arg, value) -> str | None:
    if arg.kind == "enum":
        return None if value in arg.options else f"{name}={value!r} is not one of {', '.join(arg.options)}"
    if arg.kind == "strings":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"{name} must be a list of strings"
        bad = [v for v in value if "\n" in v or "\x00" in v or not v]
        return f"{name} has an empty or multi-line item {bad[0]!r}" if bad else None
    if not isinstance(value, str) or not value.strip():
        return f"{name} must be a non-empty string"
    if "\x00" in value:
        return f"{name} contains a NUL byte"
    if arg.kind == "path" and (value.startswith("/") or ".." in value.split("/") or "\n" in value):
        return f"{name}={value!r} must be a relative path inside the workspace"
    return None


def check_tool_call(call: dict | str) -> Check:
    if isinstance(call, str):
        try:
            call = json.loads(call)
        except json.JSONDecodeError as e:
            return Check(False, [f"tool call is not JSON: {e}"])
    if not isinstance(call, dict) or call.get("tool") not in TOOL_SCHEMAS:
        return Check(False, [f"unknown tool {call.get('tool') if isinstance(call, dict) else call!r}"])
    schema, args = TOOL_SCHEMAS[call["tool"]], call.get("args", {})
    if not isinstance(args, dict):
        return Check(False, ["args must be an object"])
    errors = [f"unknown argument {k!r} for {call['tool']}" for k in args if k not in schema]
    for name, arg in schema.items():
        if name not in args:
            if is_required(arg, args):
                errors.append(f"{call['tool']}: missing argument {name!r}")
            continue
        error = _value_error(name, arg, args[name])
        if error:
            errors.append(f"{call['tool']}: {error}")
    return Check(not errors, errors)


def validate_output(task: str, language: str, output: str, source: str | None = None) -> Check:
    """Validate a model answer by task type: edits must apply, tool calls validate, code must parse."""
    if task in ("repair", "diff_edit") and SEARCH in output:
        return check_edit(source or "", output, language)
    if task == "tool_use":
        return check_tool_call(output)
    if task in ("codegen", "repair"):
        return check_source(output, language)
    return Check(True)
