"""One exercise of the Aider Polyglot benchmark, as a row and back: instructions, the stub files the solver
edits, the hidden tests, read-only editor files, build files and the reference solution, each as a list of
{path, content} relative to the exercise directory (evals/polyglot/exercises.py reads them from a checkout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath


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


def relative_path(name) -> str | None:
    """`name` as a normalised relative POSIX path inside its folder, or None if it is not one."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        return None
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return None
    return pure.as_posix()


def _to_list(files: dict[str, str]) -> list[dict]:
    return [{"path": p, "content": c} for p, c in sorted(files.items())]


def _to_dict(files) -> dict[str, str]:
    if files is None:
        return {}
    if isinstance(files, dict):
        return dict(files)
    return {f["path"]: f["content"] for f in files}
