"""Interface-change bugs: a function renamed in its definition and in some of its callers, the rest forgotten.

A half-done refactoring: top-level function F of file A is renamed (its definition and A's own uses) and so are
its uses in some other library files, but the uses in one other file are not updated, so that file breaks.
The bug patch touches A and the updated callers; its reverse, the gold fix, touches both, and the task is kept
only when reverting any one of those files alone leaves a FAIL_TO_PASS test failing (the same validation as the
combined bugs, `datagen.swe.multifile.validate_combination`, with the patch's files as components). Another
fix exists: finishing the rename in the forgotten file; the tests decide, so the grader accepts either.

Names are found with Python's `ast` (parsing only): a definer's `def F`, and in the other files `F` as a name,
`module.F` as an attribute, and `from m import F`. Test files are never edited: tests that call F by its old name
fail with the bug and pass again once it is reverted.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
from pathlib import Path

from datagen.swe.bugs import source_files

BUG_TYPE = "rename_api"


def renamed(name: str) -> str:
    """The new name a refactoring might give: private made public with a suffix, public made private."""
    return f"{name.lstrip('_')}_impl" if name.startswith("_") else f"_{name}"


def name_spans(tree: ast.AST, name: str, source_lines: list[str]) -> list[tuple[int, int, int]]:
    """(line, start column, end column) of every use or definition of `name` in a parsed file."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name:
            spans.append((node.lineno, node.col_offset, node.end_col_offset))
        elif (isinstance(node, ast.Attribute) and node.attr == name and isinstance(node.value, ast.Name)
              and node.value.id not in ("self", "cls")):  # module.F, not an object's method of the same name
            end = node.end_col_offset
            spans.append((node.end_lineno, end - len(name), end))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            line = source_lines[node.lineno - 1]
            col = line.find(name, line.find("def ") + 4)
            spans.append((node.lineno, col, col + len(name)))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == name:
                    line = source_lines[alias.lineno - 1]
                    col = line.find(name, alias.col_offset)
                    spans.append((alias.lineno, col, col + len(name)))
    good = [(ln, a, b) for ln, a, b in spans if a >= 0 and source_lines[ln - 1][a:b] == name]
    return sorted(set(good))


def rename_in(text: str, spans: list[tuple[int, int, int]], new: str) -> str:
    lines = text.splitlines(keepends=True)
    for line, start, end in sorted(spans, reverse=True):
        lines[line - 1] = lines[line - 1][:start] + new + lines[line - 1][end:]
    return "".join(lines)


def file_patch(path: str, old: str, new: str) -> str:
    """A `git apply`-able unified diff of one file."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"a/{path}", f"b/{path}"))


def interface_bugs(repo_dir: str | Path, prefix: str, max_bugs: int = 20) -> list[dict]:
    """Candidate rename bugs: [{"instance_id", "entity", "file_patches": {path: patch}, "forgotten": path}],
    one per (function, forgotten caller file), the function's definer and every other caller file renamed."""
    repo_dir = Path(repo_dir)
    parsed: dict[str, tuple[str, ast.AST]] = {}
    for path in source_files(repo_dir):
        text = path.read_text(errors="replace")
        if not text.endswith("\n"):
            continue  # a diff of a file without a final newline needs markers difflib does not write
        try:
            parsed[path.relative_to(repo_dir).as_posix()] = (text, ast.parse(text))
        except (SyntaxError, ValueError, RecursionError):
            continue
    definers: dict[str, list[str]] = {}
    for rel, (_, tree) in parsed.items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("__"):
                definers.setdefault(node.name, []).append(rel)
    bugs = []
    for name, files in sorted(definers.items()):
        if len(files) != 1:
            continue  # defined twice: which one a caller means is not known from names alone
        definer, new = files[0], renamed(name)
        if any(new in text for text, _ in parsed.values()):
            continue  # the new name is taken somewhere
        spans = {rel: name_spans(tree, name, text.splitlines(keepends=True)) for rel, (text, tree) in parsed.items()}
        callers = sorted(rel for rel, s in spans.items() if s and rel != definer)
        if not callers:
            continue
        for forgotten in callers:
            edited = [definer] + [c for c in callers if c != forgotten]
            patches = {rel: file_patch(rel, parsed[rel][0], rename_in(parsed[rel][0], spans[rel], new))
                       for rel in edited}
            if len(patches) < 2 or not all(patches.values()):
                continue  # the fix would span one file only
            digest = hashlib.sha1(f"{name}:{forgotten}".encode()).hexdigest()[:8]
            bugs.append({"instance_id": f"{prefix}.{BUG_TYPE}__{digest}", "entity": name, "new_name": new,
                         "file_patches": patches, "forgotten": forgotten})
    return bugs[:max_bugs]


def as_components(bug: dict) -> tuple[dict, ...]:
    """The bug's per-file patches in the shape validate_combination and task_row take."""
    return tuple({"instance_id": f"{bug['instance_id']}:{path}", "patch": patch, "files": [path],
                  "bug_type": BUG_TYPE, "entity": bug["entity"]} for path, patch in sorted(bug["file_patches"].items()))
