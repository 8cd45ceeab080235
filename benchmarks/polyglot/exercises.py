"""Exercises of the Aider Polyglot benchmark: reading a checkout into rows, and rows back into exercises.

A row holds everything needed to show the task to a solver and to run its tests without the checkout:
instructions, the stub files the solver edits, the hidden tests, read-only editor files, build files
and the reference solution, each as a list of {path, content} relative to the exercise directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

UPSTREAM = "https://github.com/Aider-AI/polyglot-benchmark"
PINNED_COMMIT = "7e0611e77b54e2dea774cdc0aa00cf9f7ed6144f"
LANGUAGES = ("cpp", "go", "java", "javascript", "python", "rust")
EXPECTED_COUNTS = {"cpp": 26, "go": 39, "java": 47, "javascript": 49, "python": 34, "rust": 30}
EXPECTED_TOTAL = sum(EXPECTED_COUNTS.values())

# Solution files the harness hides from the solver (they are build files, restored before each run).
_HIDDEN_SOLUTION_FILES = {"Cargo.toml", "CMakeLists.txt"}
# Exercise folders that are neither built nor shown: docs and metadata, Gradle (we build with javac).
_NOT_BUILD = (".docs/", ".meta/", ".approaches/", ".articles/", "gradle/")
_NOT_BUILD_FILES = {"gradlew", "gradlew.bat"}


class ExerciseError(ValueError):
    """An exercise folder that cannot be turned into a row; the message names the file."""


@dataclass
class Exercise:
    language: str
    exercise: str
    instructions: str
    solution_files: dict[str, str]
    test_files: dict[str, str]
    editor_files: dict[str, str] = field(default_factory=dict)
    build_files: dict[str, str] = field(default_factory=dict)
    reference_files: dict[str, str] = field(default_factory=dict)
    source_path: str = ""
    commit: str = ""

    @property
    def key(self) -> str:
        return f"{self.language}/{self.exercise}"

    @property
    def cross_language_key(self) -> str:
        # The same Exercism exercise carries the same slug in every language track.
        return self.exercise.lower()

    def to_row(self) -> dict:
        return {
            "problem_id": self.key, "language": self.language, "exercise": self.exercise,
            "cross_language_key": self.cross_language_key, "instructions": self.instructions,
            "solution_files": _to_list(self.solution_files), "test_files": _to_list(self.test_files),
            "editor_files": _to_list(self.editor_files), "build_files": _to_list(self.build_files),
            "reference_files": _to_list(self.reference_files),
            "source_path": self.source_path, "commit": self.commit,
        }

    @classmethod
    def from_row(cls, row: dict) -> "Exercise":
        return cls(language=row["language"], exercise=row["exercise"], instructions=row["instructions"],
                   solution_files=_to_dict(row["solution_files"]), test_files=_to_dict(row["test_files"]),
                   editor_files=_to_dict(row.get("editor_files")), build_files=_to_dict(row.get("build_files")),
                   reference_files=_to_dict(row.get("reference_files")),
                   source_path=row.get("source_path") or "", commit=row.get("commit") or "")

    def to_eval_problem(self):
        from benchmarks.problem import EvalProblem

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
    practice = Path(checkout) / language / "exercises" / "practice"
    if not practice.is_dir():
        raise ExerciseError(f"{practice}: no such folder; is {checkout} a polyglot-benchmark checkout?")
    return sorted(p for p in practice.iterdir() if p.is_dir())


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
    config_file = folder / ".meta" / "config.json"
    try:
        files = json.loads(config_file.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExerciseError(f"{config_file}: unreadable exercise config ({exc})") from exc
    solution = [p for p in files.get("solution", []) if PurePosixPath(p).name not in _HIDDEN_SOLUTION_FILES]
    if not solution or not files.get("test") or not files.get("example"):
        raise ExerciseError(f"{config_file}: files.solution, files.test and files.example must be non-empty")
    listed = set(solution) | set(files.get("test", [])) | set(files.get("editor", []))
    docs = [folder / ".docs" / n for n in ("introduction.md", "instructions.md", "instructions.append.md")]
    instructions = "\n\n".join(_read(p, folder).strip() for p in docs if p.exists())
    if not instructions.strip():
        raise ExerciseError(f"{folder / '.docs' / 'instructions.md'}: missing or empty instructions")
    build = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if (path.is_file() and rel not in listed and not rel.startswith(_NOT_BUILD)
                and rel not in _NOT_BUILD_FILES):
            try:
                build[rel] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # binary helpers (none needed by our runners)
    return Exercise(
        language=language, exercise=folder.name, instructions=instructions,
        solution_files={p: _read(folder / p, folder) for p in solution},
        test_files={p: _read(folder / p, folder) for p in files["test"]},
        editor_files={p: _read(folder / p, folder) for p in files.get("editor", [])},
        build_files=build,
        reference_files=_reference_files(folder, files["example"], files.get("solution", [])),
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
        out[target] = _read(folder / example, folder)
    return out


def _read(path: Path, folder: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ExerciseError(f"{path}: listed in {folder / '.meta/config.json'} but missing") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ExerciseError(f"{path}: unreadable ({exc})") from exc


def _to_list(files: dict[str, str]) -> list[dict]:
    return [{"path": p, "content": c} for p, c in sorted(files.items())]


def _to_dict(files) -> dict[str, str]:
    if files is None:
        return {}
    if isinstance(files, dict):
        return dict(files)
    return {f["path"]: f["content"] for f in files}
