"""Exercises of the Aider Polyglot benchmark: reading a checkout into rows, and rows back into exercises.

A row holds everything needed to show the task to a solver and to run its tests without the checkout:
instructions, the stub files the solver edits, the hidden tests, read-only editor files, build files
and the reference solution, each as a list of {path, content} relative to the exercise directory. The row
and `Exercise` itself live in datagen/polyglot/exercise.py (the agent loop reads them too).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path, PurePosixPath

from datagen.polyglot import exercise as polyglot_exercise
from datagen.polyglot.exercise import relative_path
from resources.settings import declared

UPSTREAM = declared("HRM_POLYGLOT_SOURCE").default  # the benchmark's home, the default clone source
PINNED_COMMIT = "7e0611e77b54e2dea774cdc0aa00cf9f7ed6144f"
LANGUAGES = ("cpp", "go", "java", "javascript", "python", "rust")
EXPECTED_COUNTS = {"cpp": 26, "go": 39, "java": 47, "javascript": 49, "python": 34, "rust": 30}
EXPECTED_TOTAL = sum(EXPECTED_COUNTS.values())

# Solution files the harness hides from the solver (they are build files, restored before each run).
_HIDDEN_SOLUTION_FILES = {"Cargo.toml", "CMakeLists.txt"}
# Exercise folders that are neither built nor shown: docs and metadata, Gradle (we build with javac).
_NOT_BUILD = (".docs/", ".meta/", ".approaches/", ".articles/", "gradle/")
_NOT_BUILD_FILES = {"gradlew", "gradlew.bat"}
MAX_FILE_BYTES = 4 << 20  # catch.hpp, the largest file the exercises need, is ~0.6 MB
MAX_FOLDER_FILES = 2000


class ExerciseError(ValueError):
    """An exercise folder that cannot be turned into a row; the message names the file."""


class Exercise(polyglot_exercise.Exercise):
    """The shared exercise (datagen/polyglot/exercise.py), plus its evaluation problem."""

    def to_eval_problem(self):
        from evals.problem import EvalProblem

        return EvalProblem(benchmark="polyglot", problem_id=self.key, language=self.language,
                           prompt=solver_prompt(self), grading_mode="polyglot_tests",
                           visible_files={**self.solution_files, **self.editor_files},
                           hidden_tests=dict(self.test_files), reference_solution=dict(self.reference_files),
                           metadata={"cross_language_key": self.cross_language_key, "commit": self.commit})


def solver_prompt(ex: Exercise) -> str:
    """What the solver sees on try 1, following Aider's benchmark: the docs plus a fixed addendum."""
    files = " ".join(sorted(ex.solution_files))
    return (f"{ex.instructions}\n\n####\n\n"
            f"Use the above instructions to modify the supplied files: {files}\n"
            "Don't change the names of existing functions or classes, as they may be referenced from "
            "other code like unit tests, etc.\n"
            "Only use standard libraries, don't suggest installing any packages.\n")


def exercise_dirs(checkout: Path, language: str) -> list[Path]:
    """The exercise folders of one language (symbolic links included, so that reading them refuses them)."""
    practice = Path(checkout) / language / "exercises" / "practice"
    if not practice.is_dir():
        raise ExerciseError(f"{practice}: no such folder; is {checkout} a polyglot-benchmark checkout?")
    link = next((p for p in (practice, *practice.parents) if p != Path(checkout) and p.is_symlink()
                 and Path(checkout) in p.parents), None)
    if link is not None:
        raise ExerciseError(f"{link}: a symbolic link inside the checkout; refused")
    return sorted(p for p in practice.iterdir() if p.is_dir() or p.is_symlink())


def extract_language(checkout: Path, language: str, commit: str = "") -> tuple[list[dict], list[dict]]:
    """Rows for every exercise of one language, and the rejected folders with their reason."""
    rows, rejected = [], []
    for folder in exercise_dirs(checkout, language):
        try:
            rows.append(read_exercise(folder, language, Path(checkout), commit).to_row())
        except ExerciseError as exc:
            rejected.append({"language": language, "exercise": folder.name,
                             "path": str(folder.relative_to(checkout)), "reason": str(exc)})
    return rows, rejected


def read_exercise(folder: Path, language: str, checkout: Path | None = None, commit: str = "") -> Exercise:
    """An exercise from its folder. Every path is confined to the folder: a symbolic link or special file
    anywhere in it, or a config entry that is not a plain relative path to one of its files, is refused."""
    folder = Path(folder)
    if folder.is_symlink():
        raise ExerciseError(f"{folder}: a symbolic link; refused")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", folder.name):
        raise ExerciseError(f"{folder}: the exercise name is not a plain slug; refused")
    tree = set(list_files(folder))
    config_file = folder / ".meta" / "config.json"
    try:
        files = json.loads(read_text(folder, ".meta/config.json"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExerciseError(f"{config_file}: unreadable exercise config ({exc})") from exc
    if not isinstance(files, dict):
        raise ExerciseError(f"{config_file}: files is not an object")

    def listed(kind: str) -> list[str]:
        entries = files.get(kind) or []
        if not isinstance(entries, list):
            raise ExerciseError(f"{config_file}: files.{kind} is not a list")
        out = []
        for entry in entries:
            rel = relative_path(entry)
            if rel is None:
                raise ExerciseError(f"{config_file}: files.{kind} entry {entry!r} is not a path inside the "
                                    "exercise; refused")
            if rel not in tree:
                raise ExerciseError(f"{folder / rel}: listed in {config_file} but missing (or not a regular file)")
            out.append(rel)
        return out

    all_solution, tests, editor, examples = listed("solution"), listed("test"), listed("editor"), listed("example")
    solution = [p for p in all_solution if PurePosixPath(p).name not in _HIDDEN_SOLUTION_FILES]
    if not solution or not tests or not examples:
        raise ExerciseError(f"{config_file}: files.solution, files.test and files.example must be non-empty")
    listed_paths = set(solution) | set(tests) | set(editor)
    docs = [f".docs/{n}" for n in ("introduction.md", "instructions.md", "instructions.append.md")]
    instructions = "\n\n".join(read_text(folder, p).strip() for p in docs if p in tree)
    if not instructions.strip():
        raise ExerciseError(f"{folder / '.docs' / 'instructions.md'}: missing or empty instructions")
    build = {}
    for rel in sorted(tree):
        if rel not in listed_paths and not rel.startswith(_NOT_BUILD) and rel not in _NOT_BUILD_FILES:
            try:
                build[rel] = read_text(folder, rel)
            except ExerciseError as exc:
                if isinstance(exc.__cause__, UnicodeDecodeError):
                    continue  # binary helpers (none needed by our runners)
                raise
    return Exercise(
        language=language, exercise=folder.name, instructions=instructions,
        solution_files={p: read_text(folder, p) for p in solution},
        test_files={p: read_text(folder, p) for p in tests},
        editor_files={p: read_text(folder, p) for p in editor},
        build_files=build,
        reference_files=_reference_files(folder, examples, all_solution),
        source_path=folder.relative_to(checkout).as_posix() if checkout else str(folder),
        commit=commit,
    )


def _reference_files(folder: Path, examples: list[str], solution: list[str]) -> dict[str, str]:
    """Map `.meta/` example files onto the paths the solver's files live at."""
    out = {}
    for example in examples:
        if example.startswith(".meta/src/reference/"):  # Java: same package layout under src/main
            target = "src/main/" + example[len(".meta/src/reference/"):]
        else:
            suffix = PurePosixPath(example).suffix
            same_kind = [p for p in solution if PurePosixPath(p).suffix == suffix]
            if len(same_kind) != 1:
                raise ExerciseError(f"{folder / example}: cannot tell which solution file it replaces "
                                    f"(candidates {same_kind or solution})")
            target = same_kind[0]
        out[target] = read_text(folder, example)
    return out


# --- confined reading: nothing outside a folder, no symbolic links, no special files -------------------
def list_files(folder: Path, max_files: int = MAX_FOLDER_FILES) -> list[str]:
    """Relative paths of the regular files under `folder`, following no link. A symbolic link or a special
    file anywhere raises ExerciseError naming it."""
    out: list[str] = []
    pending = [(Path(folder), "")]
    while pending:
        path, rel = pending.pop()
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            raise ExerciseError(f"{path}: unreadable folder ({exc.strerror})") from exc
        for entry in entries:
            name = f"{rel}{entry.name}"
            if entry.is_symlink():
                raise ExerciseError(f"{Path(folder) / name}: a symbolic link; refused (only regular files are read)")
            if entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), name + "/"))
            elif entry.is_file(follow_symlinks=False):
                out.append(name)
            else:
                raise ExerciseError(f"{Path(folder) / name}: not a regular file; refused")
            if len(out) > max_files:
                raise ExerciseError(f"{folder}: more than {max_files} files; refused")
    return sorted(out)


def read_bytes(folder: Path, rel: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """A regular file inside `folder`, opened without following a link, at most `max_bytes`."""
    clean = relative_path(rel)
    path = Path(folder) / (clean or "?")
    if clean is None:
        raise ExerciseError(f"{Path(folder)}: {rel!r} is not a path inside the folder; refused")
    root = os.path.realpath(folder)
    if os.path.realpath(path.parent) != root and not os.path.realpath(path.parent).startswith(root + os.sep):
        raise ExerciseError(f"{path}: outside {folder} (through a symbolic link); refused")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ExerciseError(f"{path}: missing") from exc
    except OSError as exc:
        reason = "a symbolic link; refused" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"
        raise ExerciseError(f"{path}: {reason}") from exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ExerciseError(f"{path}: not a regular file; refused")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ExerciseError(f"{path}: larger than {max_bytes} bytes; refused")
    return data


def read_text(folder: Path, rel: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    try:
        return read_bytes(folder, rel, max_bytes).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExerciseError(f"{Path(folder) / rel}: not UTF-8 text ({exc})") from exc
