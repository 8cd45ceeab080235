"""Turning a solver's answer into files: Aider's `whole` and `diff` (SEARCH/REPLACE) edit formats.

The `diff` markers come from `model.edits`, the format's owner; this parser stays tolerant on purpose, as
Aider's is (markers with 5 to 9 fence characters, blocks naming their file, SEARCH text matched ignoring
indentation and trailing whitespace when no exact match exists), because the benchmark grades every
solver, as Aider does. The model's validator and the synthetic repair grader use the strict rules of
`model.edits` instead.

Anything that cannot be parsed or applied raises MalformedAnswer; its message says which file or
block failed, so it can be shown to the solver on the next try. A file name that is not a path inside the
exercise is malformed; which paths an answer may actually write is the evaluator's allow-list.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from model.edits import DIVIDER, REPLACE, SEARCH


def _loose(marker: str) -> str:
    """A regex for `marker` whose leading run of one character may be 5 to 9 long, as Aider accepts."""
    fence = marker[0]
    return re.escape(fence) + "{5,9}" + re.escape(marker.lstrip(fence))


EDIT_FORMATS = ("whole", "diff")
_FENCE = re.compile(r"^\s*(```+|~~~+)")
_SEARCH = re.compile(rf"^{_loose(SEARCH)}\s*$")
_DIVIDER = re.compile(rf"^{_loose(DIVIDER)}\s*$")
_REPLACE = re.compile(rf"{_loose(REPLACE)}\s*$")


class MalformedAnswer(ValueError):
    pass


def apply_answer(text: str, edit_format: str, files: dict[str, str], known: list[str] | None = None) -> dict[str, str]:
    """The files after applying `text` (in `edit_format`) to `files`; `files` is not changed. `known` (default:
    the paths of `files`) are the paths a bare or partial file name resolves to."""
    default = next(iter(files)) if len(files) == 1 else None  # where an unnamed block goes
    known = list(files) if known is None else known
    if edit_format == "whole":
        updates = parse_whole(text, known, default)
        return {**files, **updates}
    if edit_format == "diff":
        return apply_search_replace(parse_search_replace(text, known, default), files)
    raise ValueError(f"unknown edit format {edit_format!r}; expected one of {', '.join(EDIT_FORMATS)}")


def check_path(path: str, known: list[str]) -> str:
    """A safe exercise-relative path for a file name the solver wrote."""
    name = path.strip().strip("`*:").strip()
    name = re.sub(r"^(\./)+", "", name)
    if name in known:
        return name
    by_basename = [k for k in known if PurePosixPath(k).name == PurePosixPath(name).name]
    if len(by_basename) == 1:
        return by_basename[0]
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name or "\0" in name:
        raise MalformedAnswer(f"file name {path!r} is not a path inside the exercise")
    return pure.as_posix()


# --- whole files ------------------------------------------------------------------------------
def parse_whole(text: str, known: list[str], default: str | None = None) -> dict[str, str]:
    """Files given as a file name line followed by a fenced block holding the whole new content."""
    lines = text.splitlines()
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        name = _name_before(lines, i)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(1)), None)
        if end is None:
            raise MalformedAnswer(f"the code block opened on line {i + 1} is never closed")
        if name is None:
            name = default if default is not None else (known[0] if len(known) == 1 else None)
            if name is None:
                raise MalformedAnswer(f"the code block on line {i + 1} has no file name before it; "
                                      f"write the file name on the line before the block")
        out[check_path(name, known)] = "\n".join(lines[i + 1:end]) + "\n"
        i = end + 1
    if not out:
        raise MalformedAnswer("no file found: give each file as its name on one line, then a fenced "
                              "code block with its whole content")
    return out


def _name_before(lines: list[str], fence_line: int) -> str | None:
    j = fence_line - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0:
        return None
    candidate = lines[j].strip().strip("#").strip()
    if not candidate or " " in candidate.strip("`*: ") or len(candidate) > 200:
        return None
    return candidate


# --- SEARCH/REPLACE blocks --------------------------------------------------------------------
def parse_search_replace(text: str, known: list[str], default: str | None = None) -> list[tuple[str, str, str]]:
    """[(path, search, replace)] from blocks `path`, SEARCH marker, old lines, divider, new lines, REPLACE marker."""
    lines = text.splitlines(keepends=True)
    blocks = []
    current_file = None
    i = 0
    while i < len(lines):
        if not _SEARCH.match(lines[i].rstrip("\n")):
            i += 1
            continue
        name = _block_file_name(lines, i) or current_file
        if name is None:
            name = default if default is not None else (known[0] if len(known) == 1 else None)
            if name is None:
                raise MalformedAnswer(f"the SEARCH block on line {i + 1} names no file; "
                                      "put the file path on the line before it")
        path = check_path(name, known)
        divider = next((j for j in range(i + 1, len(lines)) if _DIVIDER.match(lines[j].rstrip("\n"))), None)
        if divider is None:
            raise MalformedAnswer(f"the SEARCH block on line {i + 1} ({path}) has no {DIVIDER} divider")
        end = next((j for j in range(divider + 1, len(lines)) if _REPLACE.match(lines[j].rstrip("\n"))), None)
        if end is None:
            raise MalformedAnswer(f"the SEARCH block on line {i + 1} ({path}) has no {REPLACE} end")
        blocks.append((path, "".join(lines[i + 1:divider]), "".join(lines[divider + 1:end])))
        current_file = path
        i = end + 1
    if not blocks:
        raise MalformedAnswer("no SEARCH/REPLACE block found")
    return blocks


def _block_file_name(lines: list[str], search_line: int) -> str | None:
    j = search_line - 1
    while j >= 0 and (not lines[j].strip() or _FENCE.match(lines[j])):
        if _FENCE.match(lines[j]) and j < search_line - 1:
            break
        j -= 1
    if j < 0:
        return None
    candidate = lines[j].strip().strip("#").strip()
    if not candidate or _FENCE.match(candidate) or " " in candidate.strip("`*: ") or _REPLACE.search(candidate):
        return None
    return candidate


def apply_search_replace(blocks: list[tuple[str, str, str]], files: dict[str, str]) -> dict[str, str]:
    out = dict(files)
    for n, (path, search, replace) in enumerate(blocks, 1):
        if not search.strip():
            out[path] = (out.get(path, "") + replace) if path in out else replace
            continue
        if path not in out:
            raise MalformedAnswer(f"block {n}: {path} does not exist (use an empty SEARCH to create it)")
        updated = _replace_once(out[path], search, replace)
        if updated is None:
            raise MalformedAnswer(f"block {n}: the SEARCH text does not match any lines of {path} exactly")
        out[path] = updated
    return out


def _replace_once(content: str, search: str, replace: str) -> str | None:
    if search in content:
        return content.replace(search, replace, 1)
    # Tolerate differences in trailing whitespace and indentation, line by line.
    have = content.splitlines(keepends=True)
    want = [l.strip() for l in search.splitlines()]
    while want and not want[-1]:
        want.pop()
    for start in range(len(have) - len(want) + 1):
        if all(have[start + k].strip() == want[k] for k in range(len(want))):
            tail = "" if replace.endswith("\n") or not replace else "\n"
            return "".join(have[:start]) + replace + tail + "".join(have[start + len(want):])
    return None
