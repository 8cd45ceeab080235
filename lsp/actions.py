"""Code actions: the model's SEARCH/REPLACE answer as a workspace edit ("fix this test failure"), and a
docstring for the function at the cursor ("add docstring").

Both are strict: an answer that does not parse, does not apply, names a file outside the workspace, a test file
or the test runner's configuration, or a docstring whose insertion would change anything but the docstring,
gives NO edit (EditRefused, whose message the server logs), never a partly edited or corrupted file.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from datagen import doctasks
from datagen.swe.trajectories import benchmark_owned
from lsp.context import column_units
from lsp.model import Generation
from model.edits import MARKERS, SEARCH, apply_edit_blocks, parse_edit_blocks

MAX_DOC_LINES = 12
_PATH_LINE = re.compile(r"^[\w.+-]+(?:/[\w.+-]+)*$")


class EditRefused(ValueError):
    """The model's answer gives no safe edit; the message says why."""


# --- fix this test failure --------------------------------------------------------------------------------
def repair_prompt(language: str, rel: str, text: str, test_output: str) -> Generation:
    """The model's repair task (its training rows' wording): the file, then the failing tests' output."""
    prompt = (f"A test of this {language} function fails. Fix the bug with a SEARCH/REPLACE edit.\n"
              f"### {rel}\n{text if text.endswith(chr(10)) else text + chr(10)}### test output\n{test_output[-1500:]}\n")
    return Generation(prompt, language=language, task="repair", max_new_tokens=256)


def _file_names(answer: str) -> list[str | None]:
    """For each block of a well-formed answer, in order, the file named on the last non-blank line before its
    SEARCH marker outside any block (None when that line is not path-like, e.g. prose or nothing)."""
    names, last, inside = [], None, False
    for line in answer.split("\n"):
        marker = line.strip()
        if marker in MARKERS:
            if marker == SEARCH:
                names.append(last)
                inside = True
            elif marker == MARKERS[2]:
                inside, last = False, None
            continue
        if not inside and marker and not marker.startswith("```"):  # a code fence names no file
            name = marker.strip("#`*: ").strip()
            last = name if (_PATH_LINE.match(name) or name.startswith("/")) else None
    return names


def resolve_path(root: Path, name: str, test_files: set[str]) -> str:
    """`name` as a workspace-relative path of an existing file the answer may edit; EditRefused otherwise."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name or "\0" in name or not pure.parts:
        raise EditRefused(f"the answer edits {name!r}, a path outside the workspace")
    full = root / pure
    real_root = os.path.realpath(root)
    if os.path.commonpath([os.path.realpath(full), real_root]) != real_root or any(
            (root / PurePosixPath(*pure.parts[:i])).is_symlink() for i in range(1, len(pure.parts) + 1)):
        raise EditRefused(f"the answer edits {name!r}, which leaves the workspace through a link")
    rel = pure.as_posix()
    if benchmark_owned(rel, test_files):
        raise EditRefused(f"the answer edits {rel}, a test file or test configuration; only code is fixed")
    if not full.is_file():
        raise EditRefused(f"the answer edits {rel}, which is not a file of the workspace")
    return rel


def answer_edits(answer: str, root: str | Path, current: str, read: Callable[[str], str],
                 test_files: set[str]) -> dict[str, tuple[str, str]]:
    """{workspace-relative path: (old text, new text)} of a SEARCH/REPLACE answer. Blocks without a file name
    apply to `current`; `read(rel)` gives a file's text as the editor holds it. All blocks apply or none."""
    root = Path(root)
    try:
        blocks = parse_edit_blocks(answer)
    except ValueError as exc:
        raise EditRefused(f"the answer's edit blocks are malformed: {exc}") from None
    if not blocks:
        raise EditRefused("the answer holds no SEARCH/REPLACE block")
    by_file: dict[str, list] = {}
    for name, block in zip(_file_names(answer), blocks):
        rel = current if name is None or name == current else resolve_path(root, name, test_files)
        if rel == current and benchmark_owned(current, test_files):
            raise EditRefused(f"{current} is a test file or test configuration; only code is fixed")
        by_file.setdefault(rel, []).append(block)
    edits = {}
    for rel, file_blocks in by_file.items():
        old = read(rel)
        try:
            new = apply_edit_blocks(old, file_blocks)
        except ValueError as exc:
            raise EditRefused(f"{rel}: {exc}") from None
        if old and not old.endswith("\n") and new.endswith("\n"):
            new = new[:-1]  # apply_edit_blocks reads whole lines; keep the file's missing final newline
        if new != old:
            edits[rel] = (old, new)
    if not edits:
        raise EditRefused("the answer changes nothing")
    return edits


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def minimal_edit(old: str, new: str, encoding: str = "utf-16") -> tuple[tuple[int, int], tuple[int, int], str]:
    """((start line, char), (end line, char), new text): one edit replacing the changed lines of `old`
    (columns in the negotiated position encoding)."""
    a, b = _lines(old), _lines(new)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    end = len(a) - tail
    if end == len(a) and a and not a[-1].endswith("\n"):
        end_pos = (len(a) - 1, column_units(a[-1], encoding))  # the last line has no newline after it
    else:
        end_pos = (end, 0)
    if head == len(a) and a and not a[-1].endswith("\n"):
        start_pos = (len(a) - 1, column_units(a[-1], encoding))
    else:
        start_pos = (head, 0)
    return start_pos, end_pos, "".join(b[head:len(b) - tail])


# --- add docstring ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DocTarget:
    name: str
    header: str  # the function's source up to its body (Python) or its first line (others)
    source: str  # the function's source (at most 40 lines)
    insert_line: int  # 0-based line the docstring or comment is inserted before
    indent: str
    def_line: int  # 0-based line of the `def` / declaration


_DECLARATION = {
    "rust": r"^\s*(?:pub(?:\([\w:]+\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+\"\w+\"\s+)?fn\s+(\w+)",
    "go": r"^func\s+(?:\([^)]*\)\s*)?(\w+)",
    "javascript": r"^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*(\w+)|"
                  r"^\s*(?:export\s+)?(?:const|let|var)\s+(\w+)\s*=\s*(?:async\s*)?(?:function\b|\([^)]*\)\s*=>|\w+\s*=>)",
    "java": r"^\s*(?:(?:public|private|protected|static|final|abstract|synchronized|native)\s+)*"
            r"[\w<>\[\],.? ]+\s+(\w+)\s*\([^;]*$",
    "cpp": r"^\s*(?:template\s*<[^>]*>\s*)?(?:[\w:<>,*&]+\s+)+[*&]?([\w:~]+)\s*\([^;]*$",
}
_COMMENT = {"rust": ("///", None), "cpp": ("///", None), "go": ("//", None), "java": ("/**", " *"),
            "javascript": ("/**", " *")}
_KEYWORDS = {"if", "for", "while", "switch", "return", "else", "catch", "sizeof", "new"}


def docstring_target(text: str, language: str, line: int) -> DocTarget | None:
    """The function at 0-based `line` without a docstring (Python) or a comment above it (others)."""
    if language == "python":
        return _python_target(text, line)
    pattern = _DECLARATION.get(language)
    if pattern is None:
        return None
    lines = text.split("\n")
    for i in range(min(line, len(lines) - 1), max(-1, line - 40), -1):
        m = re.match(pattern, lines[i])
        name = m and next((g for g in m.groups() if g), None)
        if name and name not in _KEYWORDS:
            above = lines[i - 1].strip() if i > 0 else ""
            if above.startswith(("//", "/*", "*")) or above.endswith("*/"):
                return None  # already documented
            indent = re.match(r"\s*", lines[i]).group(0)
            return DocTarget(name, lines[i], "\n".join(lines[i:i + 40]), i, indent, i)
    return None


def _python_target(text: str, line: int) -> DocTarget | None:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    best = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno - 1 <= line <= node.end_lineno - 1:
            if best is None or node.lineno > best.lineno:
                best = node
    if best is None or ast.get_docstring(best) is not None:
        return None
    first = best.body[0]
    lines = text.split("\n")
    header_end = _header_end(lines, best.lineno - 1)  # 0-based line after the signature's colon
    if header_end is None or first.lineno - 1 < header_end:
        return None  # the body starts on the signature's line: `def f(): return 1`
    indent = re.match(r"[ \t]*", lines[first.lineno - 1]).group(0)
    header = "\n".join(lines[best.lineno - 1:header_end])
    source = "\n".join(lines[best.lineno - 1:min(best.end_lineno, best.lineno + 39)])
    return DocTarget(best.name, header, source, header_end, indent, best.lineno - 1)


def _header_end(lines: list[str], def_line: int) -> int | None:
    """The 0-based line after the one holding the signature's closing colon (tokens, not text: a colon in a
    default value or annotation inside brackets does not count)."""
    import io
    import tokenize

    depth = 0
    source = "\n".join(lines[def_line:]) + "\n"
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
            elif tok.type == tokenize.OP and tok.string == ":" and depth == 0:
                rest = source.split("\n")[tok.end[0] - 1][tok.end[1]:].strip()
                return def_line + tok.end[0] if not rest or rest.startswith("#") else None
    except (tokenize.TokenError, SyntaxError):
        return None
    return None


def docstring_prompt(language: str, text: str, target: DocTarget, max_chars: int = 1200) -> Generation:
    """What the model is asked for a docstring: the documentation tasks' own prompt (datagen/doctasks.py, the
    format `doc_tasks` trains and the `docs` benchmark scores), whose answer is the documentation text without
    quotes or comment markers. Falls back to the function's source when the file does not parse there."""
    try:
        prompt = doctasks.docstring_prompt(language, text, target.name, max_chars=max_chars)
    except ValueError:
        prompt = f"{doctasks.instruction(language, target.name)}\n{target.source}"
    return Generation(prompt, language=language, task="codegen", max_new_tokens=96 if language == "python" else 64,
                      stop=('"""',) if language == "python" else ("*/",))


def _clean(model_text: str, stop: str) -> list[str]:
    text = model_text.split(stop, 1)[0] if stop else model_text
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    lines = [l.strip() for l in text.strip().split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines[:MAX_DOC_LINES]


def docstring_edit(text: str, language: str, target: DocTarget, model_text: str) -> str:
    """The document with the model's docstring inserted; EditRefused when there is nothing safe to insert."""
    lines = text.split("\n")
    if language == "python":
        body = _clean(model_text, '"""')
        if not body or not any(body):
            raise EditRefused("the model gave an empty docstring")
        escaped = [l.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') for l in body]
        if escaped[-1].endswith('"'):
            escaped[-1] = escaped[-1][:-1] + '\\"'
        if len(escaped) == 1:
            block = [f'{target.indent}"""{escaped[0]}"""']
        else:
            block = [f'{target.indent}"""{escaped[0]}', *(f"{target.indent}{l}" if l else "" for l in escaped[1:]),
                     f'{target.indent}"""']
        new = "\n".join(lines[:target.insert_line] + block + lines[target.insert_line:])
        _check_python_docstring(text, new, target, "\n".join(body))
        return new
    opener, middle = _COMMENT[language]
    body = [l.replace("*/", "* /") for l in _clean(model_text, "")]
    if not body or not any(body):
        raise EditRefused("the model gave an empty comment")
    if middle is None:
        block = [f"{target.indent}{opener} {l}".rstrip() for l in body]
    else:
        block = [f"{target.indent}/**", *(f"{target.indent}{middle} {l}".rstrip() for l in body), f"{target.indent} */"]
    return "\n".join(lines[:target.insert_line] + block + lines[target.insert_line:])


def _check_python_docstring(old: str, new: str, target: DocTarget, expected: str) -> None:
    """The new file must parse, hold the expected docstring in the target function, and be otherwise equal."""
    try:
        old_tree, new_tree = ast.parse(old), ast.parse(new)
    except SyntaxError as exc:
        raise EditRefused(f"the docstring would break the file: {exc}") from None
    old_fn = _function_at(old_tree, target.def_line)
    new_fn = _function_at(new_tree, target.def_line)
    if new_fn is None or old_fn is None or ast.get_docstring(new_fn, clean=False) is None:
        raise EditRefused("the docstring did not land in the function")
    doc = ast.get_docstring(new_fn)
    if doc != ast.get_docstring(ast.parse(f'def f():\n    """{_python_literal(expected)}"""\n').body[0]):
        raise EditRefused("the inserted docstring does not read back as the model's text")
    new_fn.body = new_fn.body[1:]
    if ast.dump(old_tree) != ast.dump(new_tree):
        raise EditRefused("inserting the docstring would change the code")


def _python_literal(text: str) -> str:
    out = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return out[:-1] + '\\"' if out.endswith('"') else out


def _function_at(tree, def_line: int):
    return next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.lineno - 1 == def_line), None)
