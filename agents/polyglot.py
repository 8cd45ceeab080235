"""Polyglot exercises of every language as agent tasks: the session holds the exercise's files (tests enabled),
`run_tests` runs its test command there (`datagen.polyglot.harness.session_command`), and the verdict is the
evaluator's own: a `TestRunner` run in a fresh jail on the clean exercise files plus the patch's changes to
the solution files, judged from the test framework's report (every expected test must pass).

The patch is applied here, on the host, as data: only hunks of solution files are kept; a change to any other
file (tests, build files, helpers the agent added) is left out, and a solution file turned into a link, a
binary, or renamed refuses the patch.
"""

from __future__ import annotations

import re

from datagen.polyglot.exercise import Exercise
from datagen.polyglot.harness import TestRunner, default_cache_dir

_REFUSED_HEADERS = re.compile(r"^(?:new file mode|new mode|deleted file mode) 1[26]0000|^(?:rename|copy) (?:from|to) ",
                              re.M)
_OUTCOME = {"pass": "ok", "fail": "failed", "timeout": "timeout"}


class PatchRefused(ValueError):
    """A patch whose change to a solution file cannot be graded as text."""


def solution_from_patch(ex: Exercise, patch: str) -> tuple[dict[str, str], list[str]]:
    """(the solution files after `patch`, taken against the exercise's stubs; the other paths it touched, left
    out). A solution file the patch deletes becomes empty."""
    from unidiff import PatchSet

    solution, ignored = dict(ex.solution_files), set()
    for pf in PatchSet(patch) if patch.strip() else []:
        paths = {f.split("/", 1)[1] if f.startswith(("a/", "b/")) else f for f in (pf.source_file, pf.target_file)}
        paths.discard("/dev/null")
        if not paths & set(solution):
            ignored |= paths
            continue
        if pf.is_binary_file or _REFUSED_HEADERS.search(str(pf.patch_info)) or len(paths) != 1:
            raise PatchRefused(f"{pf.path}: not a plain text change of a solution file")
        solution[pf.path] = "" if pf.is_removed_file else _apply_hunks(solution[pf.path], pf)
    return solution, sorted(ignored)


def _apply_hunks(text: str, pf) -> str:
    """`text` with the file's hunks applied; every context and removed line must match where the hunk says."""
    lines, out, at = text.splitlines(keepends=True), [], 0
    for hunk in pf:
        start = max(hunk.source_start - 1, 0) if hunk.source_length else hunk.source_start
        if start < at or start > len(lines):
            raise PatchRefused(f"{pf.path}: hunk at line {hunk.source_start} does not apply")
        out += lines[at:start]
        source, target, previous = [], [], ""
        for line in hunk:
            if line.line_type == "\\":  # "\ No newline at end of file": the line before it has none
                for side in {" ": (source, target), "-": (source,), "+": (target,)}.get(previous, ()):
                    side[-1] = side[-1].removesuffix("\n")
                continue
            previous = line.line_type
            if line.line_type in " -":
                source.append(line.value)
            if line.line_type in " +":
                target.append(line.value)
        if lines[start:start + len(source)] != source:
            raise PatchRefused(f"{pf.path}: hunk at line {hunk.source_start} does not match the file")
        out += target
        at = start + len(source)
    return "".join(out + lines[at:])


def session_binds(sandbox, task) -> list[tuple[str, str]]:
    """The shared builds the exercise's session command uses, read-only (built once per cache, sealed)."""
    return TestRunner(sandbox, default_cache_dir()).session_binds(Exercise.from_row(task.exercise))


def verify_exercise(sandbox, task, patch: str, cache_dir=None) -> dict:
    """The task's exercise graded as the evaluator grades it, on the clean files + the solution files' changes."""
    from unidiff.errors import UnidiffParseError

    ex = Exercise.from_row(task.exercise)
    try:
        solution, ignored = solution_from_patch(ex, patch)
    except (PatchRefused, UnidiffParseError) as exc:
        return _verdict("patch_failed", False, [], 0.0, str(exc)[-1000:])
    run = TestRunner(sandbox, cache_dir or default_cache_dir()).run(ex, solution)
    return _verdict(_OUTCOME.get(run.status, run.status), run.status == "pass", ignored, round(run.seconds, 3),
                    run.output[-2000:])


def _verdict(status: str, resolved: bool, ignored: list[str], wall_s: float, tail: str) -> dict:
    return {"resolved": resolved, "status": status, "fail_to_pass": {}, "pass_to_pass": {}, "tests": {},
            "ignored_files": ignored, "wall_s": wall_s, "output_tail": tail}
