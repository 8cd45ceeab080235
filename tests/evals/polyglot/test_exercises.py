"""evals/polyglot/exercises.py: exercise folders made here are read into rows; a folder that reaches outside
itself (a ../ or absolute path in its config, a link, a special file) or holds unreadable files is refused
with the file named, and the other exercises of the language are still read."""

import json
import os
from pathlib import Path

import pytest

from evals.polyglot.exercises import (Exercise, ExerciseError, exercise_dirs, extract_language, read_exercise,
                                      relative_path)


def make_exercise(root: Path, name: str = "adder", config: dict | None = None, **extra: str | bytes) -> Path:
    folder = root / "python" / "exercises" / "practice" / name
    files = {".docs/instructions.md": "Add two numbers.\n", ".docs/instructions.append.md": "Use +.\n",
             "adder.py": "def add(a, b):\n    pass\n", "adder_test.py": "def test_add():\n    pass\n",
             ".meta/example.py": "def add(a, b):\n    return a + b\n", "helpers/util.py": "U = 1\n",
             ".meta/config.json": json.dumps(config or {"files": {"solution": ["adder.py"], "test": ["adder_test.py"],
                                                                  "example": [".meta/example.py"]}}),
             **extra}
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def test_a_folder_becomes_a_row_and_back(tmp_path):
    folder = make_exercise(tmp_path)
    ex = read_exercise(folder, "python", tmp_path, commit="abc")
    assert ex.instructions == "Add two numbers.\n\nUse +."
    assert ex.solution_files == {"adder.py": "def add(a, b):\n    pass\n"}
    assert ex.reference_files == {"adder.py": "def add(a, b):\n    return a + b\n"}
    assert ex.build_files == {"helpers/util.py": "U = 1\n"}  # .docs and .meta are not build files
    assert ex.source_path == "python/exercises/practice/adder" and ex.key == "python/adder"
    assert Exercise.from_row(json.loads(json.dumps(ex.to_row()))) == ex


@pytest.mark.parametrize("entry", ["../adder.py", "/etc/passwd", "..", "sub\\adder.py", "", "a\0b", 7])
def test_config_entries_that_are_not_plain_relative_paths_are_refused(tmp_path, entry):
    config = {"files": {"solution": ["adder.py"], "test": [entry], "example": [".meta/example.py"]}}
    with pytest.raises(ExerciseError, match=r"config.json: files.test entry .* is not a path inside the exercise"):
        read_exercise(make_exercise(tmp_path, config=config), "python")


def test_a_link_anywhere_in_the_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host data\n")
    folder = make_exercise(tmp_path)
    (folder / "helpers" / "leak.py").symlink_to(secret)
    with pytest.raises(ExerciseError, match=r"helpers/leak.py: a symbolic link; refused"):
        read_exercise(folder, "python")
    linked = tmp_path / "python" / "exercises" / "practice" / "linked"
    linked.symlink_to(folder, target_is_directory=True)
    with pytest.raises(ExerciseError, match="linked: a symbolic link; refused"):
        read_exercise(linked, "python")


def test_special_files_missing_files_and_bad_text_are_named(tmp_path):
    folder = make_exercise(tmp_path)
    os.mkfifo(folder / "helpers" / "pipe")
    with pytest.raises(ExerciseError, match="helpers/pipe: not a regular file; refused"):
        read_exercise(folder, "python")
    config = {"files": {"solution": ["adder.py"], "test": ["missing_test.py"], "example": [".meta/example.py"]}}
    with pytest.raises(ExerciseError, match="missing_test.py: listed in .*config.json but missing"):
        read_exercise(make_exercise(tmp_path, "other", config=config), "python")
    latin = make_exercise(tmp_path, "latin", **{"adder_test.py": b"caf\xe9 = 1\n"})
    with pytest.raises(ExerciseError, match="adder_test.py: not UTF-8 text"):
        read_exercise(latin, "python")
    broken = make_exercise(tmp_path, "broken", **{".meta/config.json": "{not json"})
    with pytest.raises(ExerciseError, match="config.json: unreadable exercise config"):
        read_exercise(broken, "python")


def test_a_language_keeps_its_good_exercises_and_quarantines_the_rest(tmp_path):
    make_exercise(tmp_path, "adder")
    make_exercise(tmp_path, "nodocs", **{".docs/instructions.md": " ", ".docs/instructions.append.md": ""})
    make_exercise(tmp_path, "weird name")
    rows, rejected = extract_language(tmp_path, "python", commit="abc")
    assert [r["exercise"] for r in rows] == ["adder"] and rows[0]["commit"] == "abc"
    reasons = {r["exercise"]: r["reason"] for r in rejected}
    assert "missing or empty instructions" in reasons["nodocs"]
    assert "not a plain slug" in reasons["weird name"]


def test_a_folder_that_is_not_a_checkout_is_named(tmp_path):
    with pytest.raises(ExerciseError, match=f"{tmp_path}/rust/exercises/practice: no such folder"):
        exercise_dirs(tmp_path, "rust")


def test_relative_paths_are_normalised_or_refused():
    assert relative_path("src/./main.rs") == "src/main.rs"
    assert [relative_path(p) for p in ("../x", "/x", "a/../b", "a\\b", "", None)] == [None] * 6
