"""The agent's tools in a jailed session, and the one action format a policy writes.

An action is exactly one block, SWE-smith's xml style (what its trajectories hold, short enough for a small
model to learn):

    <function=NAME>
    <parameter=KEY>VALUE</parameter>
    ...
    </function>

Text before the block is the policy's thought; nothing but whitespace may follow it. Parsing is strict: no
block, two blocks, an unknown tool, an unknown or missing parameter, or a bad number is a `ParseError`, whose
message goes back to the policy as the observation (and the step still counts).

Every tool runs inside the session's jail (`JailedSession.run`); file contents travel into the jail as
base64 (`write_file`), never through a host-side file API.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

TOOL_NAMES = ("bash", "view", "search", "edit", "run_tests", "submit")
MAX_OBSERVATION_CHARS = 4000
VIEW_WINDOW = 80
SEARCH_MAX_HITS = 50

# name -> (required parameters, optional parameters)
PARAMETERS = {
    "bash": (("command",), ()),
    "view": (("path",), ("start", "window")),
    "search": ((), ("pattern", "name", "path")),
    "edit": (("path", "old", "new"), ()),
    "run_tests": ((), ()),
    "submit": ((), ()),
}
_DOCS = {
    "bash": "run one shell command line in /work (state such as cd persists)",
    "view": f"show a file with line numbers, {VIEW_WINDOW} lines from `start` (default 1); `window` changes the count",
    "search": "grep -rn for the literal text `pattern`, or find files whose name matches the glob `name`; "
              "under `path` (default .)",
    "edit": "replace the text `old` in file `path` by `new`; `old` must occur exactly once (empty `old` creates "
            "a new file)",
    "run_tests": "run the task's tests and show their output",
    "submit": "finish: your changes to the repository are the answer",
}
_BLOCK = re.compile(r"<function=([A-Za-z_]+)>(.*?)</function>", re.S)
_OPEN = re.compile(r"<function=")
_PARAM = re.compile(r"<parameter=([A-Za-z_]+)>(.*?)</parameter>", re.S)

# python3 in the jail does the str_replace, so the file is only ever read and written there
_EDIT_SCRIPT = r"""
import json, os, sys
a = json.load(open(sys.argv[1]))
path, old, new = a["path"], a["old"], a["new"]
if not old:
    if os.path.exists(path) and os.path.getsize(path):
        sys.exit(f"error: {path} exists and is not empty; give `old` text to replace")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    open(path, "w").write(new)
    print(f"created {path} ({new.count(chr(10))} lines)")
    sys.exit(0)
if not os.path.isfile(path):
    sys.exit(f"error: no file {path}")
text = open(path).read()
n = text.count(old)
if n != 1:
    sys.exit(f"error: `old` occurs {n} times in {path}; it must occur exactly once "
             "(view the file and copy more lines of context)" if n else
             f"error: `old` not found in {path} (view the file: whitespace and indentation must match)")
at = text[:text.index(old)].count(chr(10)) + 1
open(path, "w").write(text.replace(old, new))
print(f"edited {path} at line {at}")
"""


class ParseError(ValueError):
    """A malformed action; the message is shown to the policy."""


@dataclass(frozen=True)
class Action:
    tool: str
    args: dict[str, str]
    thought: str = ""

    def render(self) -> str:
        """The action in the format `parse_action` reads (the oracle's replies and tests use it)."""
        # old/new keep a newline after the tag, which parse_action takes off again (their text may start with one)
        params = "".join(f"<parameter={k}>{chr(10) if k in ('old', 'new') else ''}{v}</parameter>\n"
                         for k, v in self.args.items())
        return (f"{self.thought}\n\n" if self.thought else "") + f"<function={self.tool}>\n{params}</function>"


def parse_action(text: str, allowed: tuple[str, ...] = TOOL_NAMES) -> Action:
    blocks = list(_BLOCK.finditer(text))
    if not blocks:
        raise ParseError("no action found: end your reply with one <function=TOOL>...</function> block")
    if len(blocks) > 1 or len(_OPEN.findall(text)) > 1:
        raise ParseError(f"{len(_OPEN.findall(text))} actions found: write exactly one <function=...> block per reply")
    block = blocks[0]
    if text[block.end():].strip():
        raise ParseError("text after </function>: the action block must end the reply")
    tool = block.group(1)
    if tool not in allowed:
        raise ParseError(f"unknown tool {tool!r}: use one of {', '.join(allowed)}")
    body = block.group(2)
    args = {}
    for m in _PARAM.finditer(body):
        if m.group(1) in args:
            raise ParseError(f"{tool}: parameter {m.group(1)!r} given twice")
        args[m.group(1)] = m.group(2).strip("\n") if m.group(1) not in ("old", "new") else _strip_one_newline(m.group(2))
    if _PARAM.sub("", body).strip():
        raise ParseError(f"{tool}: text inside the block outside <parameter=...>...</parameter>")
    required, optional = PARAMETERS[tool]
    unknown = sorted(set(args) - set(required) - set(optional))
    if unknown:
        raise ParseError(f"{tool}: unknown parameter(s) {unknown}; it takes {list(required + optional)}")
    missing = [p for p in required if p not in args]
    if missing:
        raise ParseError(f"{tool}: missing parameter(s) {missing}")
    if tool == "search" and ("pattern" in args) == ("name" in args):
        raise ParseError("search: give exactly one of `pattern` (text to grep) or `name` (file-name glob)")
    for p in ("start", "window"):
        if p in args and not re.fullmatch(r"\d{1,7}", args[p].strip()):
            raise ParseError(f"{tool}: {p} must be a positive whole number, not {args[p]!r}")
    return Action(tool, args, text[:block.start()].strip())


def _strip_one_newline(value: str) -> str:
    # `<parameter=old>\nX\n</parameter>` means X\n: the newline after the tag is layout, the last one is content
    return value[1:] if value.startswith("\n") else value


def truncate(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 3 // 4], text[-(limit // 4):]
    return f"{head}\n[... observation truncated: {len(text) - len(head) - len(tail)} of {len(text)} characters " \
           f"left out ...]\n{tail}"


def system_prompt(allowed: tuple[str, ...] = TOOL_NAMES) -> str:
    tools = "\n".join(f"- {name}({', '.join(PARAMETERS[name][0] + tuple(p + '?' for p in PARAMETERS[name][1]))}): "
                      f"{_DOCS[name]}" for name in allowed)
    return ("You are a software engineer fixing a task in a git repository at /work, in a shell with no network. "
            "Each reply: a short thought, then exactly one action block, nothing after it:\n"
            "<function=TOOL>\n<parameter=NAME>VALUE</parameter>\n</function>\n"
            f"Tools:\n{tools}\n"
            "Example:\nLook at the failing function first.\n<function=view>\n<parameter=path>pkg/core.py"
            "</parameter>\n<parameter=start>40</parameter>\n</function>\n"
            "A malformed reply gets an error and still costs a step. Tests and test settings are restored before "
            "grading: fix the code, not the tests.")


class ToolBox:
    """The tools one episode may use, bound to its session and task."""

    def __init__(self, session, task, allowed: tuple[str, ...] = TOOL_NAMES, max_observation_chars: int = MAX_OBSERVATION_CHARS):
        unknown = sorted(set(allowed) - set(TOOL_NAMES))
        if unknown or "submit" not in allowed:
            raise ValueError(f"ToolBox: allowed tools {list(allowed)} must be among {TOOL_NAMES} and include submit")
        self.session, self.task, self.allowed = session, task, tuple(allowed)
        self.max_observation_chars = max_observation_chars

    def parse(self, text: str) -> Action:
        return parse_action(text, self.allowed)

    def run(self, action: Action, timeout_s: float) -> tuple[str, int | None, str]:
        """(observation, exit code, status) of one parsed action; the observation is truncated with a note."""
        tool, a = action.tool, action.args
        if tool == "submit":
            return "submitted", 0, "ok"
        if tool == "bash":
            r = self.session.run(a["command"], timeout_s=timeout_s)
        elif tool == "view":
            start, window = int(a.get("start", 1) or 1), int(a.get("window", VIEW_WINDOW) or VIEW_WINDOW)
            end, path = start + max(1, window) - 1, shlex.quote(a["path"])
            r = self.session.run(f"if [ -f {path} ]; then n=$(wc -l < {path}); echo \"[{a['path']}: lines {start}-"
                                 f"{end} of $n]\"; nl -ba -w5 -s'  ' {path} | sed -n '{start},{end}p'; "
                                 f"else echo 'error: no file {a['path']}'; false; fi", timeout_s=timeout_s)
        elif tool == "search":
            where = shlex.quote(a.get("path") or ".")
            if "pattern" in a:
                cmd = (f"grep -rnIF --exclude-dir=.git -e {shlex.quote(a['pattern'])} -- {where} > /tmp/.hrm_hits; "
                       f"rc=$?; head -n {SEARCH_MAX_HITS} /tmp/.hrm_hits; n=$(wc -l < /tmp/.hrm_hits); "
                       f"[ $n -gt {SEARCH_MAX_HITS} ] && echo \"[{SEARCH_MAX_HITS} of $n matches shown]\"; "
                       f"[ $n -eq 0 ] && echo 'no matches'; (exit $rc)")
            else:
                cmd = f"find {where} -name .git -prune -o -name {shlex.quote(a['name'])} -print | head -n {SEARCH_MAX_HITS}"
            r = self.session.run(cmd, timeout_s=timeout_s)
        elif tool == "edit":
            staged = self.session.write_file("/tmp/.hrm_edit.json", json.dumps(a))
            if staged.status != "ok":
                return truncate(staged.output, self.max_observation_chars), staged.exit_code, staged.status
            self.session.write_file("/tmp/.hrm_edit.py", _EDIT_SCRIPT)
            r = self.session.run("python3 /tmp/.hrm_edit.py /tmp/.hrm_edit.json; rc=$?; "
                                 "rm -f /tmp/.hrm_edit.json /tmp/.hrm_edit.py; (exit $rc)", timeout_s=timeout_s)
        else:  # run_tests
            r = self.session.run(self.task.test_command + " 2>&1", timeout_s=min(timeout_s, self.task.timeout_s))
        return truncate(r.output, self.max_observation_chars), r.exit_code, r.status
