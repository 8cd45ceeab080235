"""The whole and diff (SEARCH/REPLACE) edit formats, without the sandbox."""

import pytest

from evals.polyglot.edits import MalformedAnswer, apply_answer, check_path

STUB = {"bowling.py": "class BowlingGame:\n    def __init__(self):\n        pass\n\n    def roll(self, pins):\n        pass\n"}


def test_whole_format_replaces_named_file():
    text = "Here it is:\n\nbowling.py\n```python\nclass BowlingGame:\n    pass\n```\n"
    assert apply_answer(text, "whole", STUB) == {"bowling.py": "class BowlingGame:\n    pass\n"}


def test_whole_format_single_file_without_name_and_new_file():
    assert apply_answer("```\nx = 1\n```", "whole", STUB)["bowling.py"] == "x = 1\n"
    two = apply_answer("src/main/java/Frame.java\n```java\nclass Frame {}\n```\n", "whole", {"A.java": ""})
    assert two["src/main/java/Frame.java"] == "class Frame {}\n" and "A.java" in two


def test_diff_format_applies_blocks_in_order_and_tolerates_indentation():
    text = ("bowling.py\n```python\n<<<<<<< SEARCH\n    def roll(self, pins):\n        pass\n=======\n"
            "    def roll(self, pins):\n        self.rolls.append(pins)\n>>>>>>> REPLACE\n```\n\n"
            "bowling.py\n```python\n<<<<<<< SEARCH\n  def __init__(self):\n    pass\n=======\n"
            "    def __init__(self):\n        self.rolls = []\n>>>>>>> REPLACE\n```\n")
    out = apply_answer(text, "diff", STUB)["bowling.py"]
    assert "self.rolls.append(pins)" in out and "self.rolls = []" in out and "pass" not in out


def test_diff_empty_search_creates_a_file():
    text = "helper.py\n```\n<<<<<<< SEARCH\n=======\nHELP = 1\n>>>>>>> REPLACE\n```\n"
    assert apply_answer(text, "diff", STUB)["helper.py"] == "HELP = 1\n"


@pytest.mark.parametrize("text, message", [
    ("no code here", "no SEARCH/REPLACE block"),
    ("bowling.py\n<<<<<<< SEARCH\nnot in the file\n=======\nx\n>>>>>>> REPLACE\n", "does not match"),
    ("bowling.py\n<<<<<<< SEARCH\npass\n>>>>>>> REPLACE\n", "no ======= divider"),
    ("bowling.py\n<<<<<<< SEARCH\npass\n=======\nx\n", "no >>>>>>> REPLACE"),
    ("../evil.py\n<<<<<<< SEARCH\n=======\nx\n>>>>>>> REPLACE\n", "not a path inside"),
    ("missing.py\n<<<<<<< SEARCH\nold\n=======\nx\n>>>>>>> REPLACE\n", "does not exist"),
])
def test_malformed_diffs_are_rejected_with_a_reason(text, message):
    with pytest.raises(MalformedAnswer, match=message):
        apply_answer(text, "diff", STUB)


def test_whole_format_malformed():
    with pytest.raises(MalformedAnswer, match="no file found"):
        apply_answer("just prose", "whole", STUB)
    with pytest.raises(MalformedAnswer, match="never closed"):
        apply_answer("bowling.py\n```python\nx = 1\n", "whole", STUB)
    with pytest.raises(MalformedAnswer, match="no file name"):
        apply_answer("```\nx\n```", "whole", {"a.h": "", "a.cpp": ""})


def test_paths_cannot_escape_the_exercise():
    for bad in ("/etc/passwd", "../x.py", "src/../../x.py", "a\\b.py", ""):
        with pytest.raises(MalformedAnswer):
            check_path(bad, ["bowling.py"])
    assert check_path("./bowling.py", ["bowling.py"]) == "bowling.py"
    assert check_path("src/main/java/Bowling.java", ["src/main/java/Bowling.java"]) == "src/main/java/Bowling.java"
    assert check_path("Frame.java", ["src/main/java/Bowling.java", "src/main/java/Frame.java"]) == \
        "src/main/java/Frame.java"


def test_only_solution_paths_are_kept_and_the_rest_is_reported():
    """The allow-list: whatever else an answer writes (test-runner config, shadowing modules, tests, metadata)
    is dropped and named, in both formats."""
    from evals.polyglot.evaluate import Answer, _apply

    allowed = {"bowling.py"}
    extra = ["conftest.py", "pytest.ini", "pytest.py", "unittest/__init__.py", ".meta/example.py",
             "bowling_test.py", "Cargo.toml", ".cargo/config.toml", "jest.config.js", "go.mod"]
    whole = "".join(f"{p}\n```\nx = 1\n```\n" for p in ["bowling.py", *extra])
    diff = "".join(f"{p}\n```\n<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n```\n" for p in extra)
    for answer, fmt in ((Answer(response=whole), "whole"), (Answer(response=diff), "diff"),
                        (Answer(files={p: "x = 1\n" for p in ["bowling.py", *extra]}), "whole")):
        files, ignored = _apply(answer, fmt, dict(STUB), allowed)
        assert set(files) == {"bowling.py"} and sorted(ignored) == sorted(extra), fmt


def test_directory_solver_reads_whole_files_and_responses(tmp_path):
    from evals.polyglot.evaluate import Turn, directory_solver
    from evals.polyglot.exercises import Exercise

    ex = Exercise("java", "bowling", "Score a game.", {"src/main/java/BowlingGame.java": "class BowlingGame {}"},
                  {"src/test/java/BowlingGameTest.java": "class BowlingGameTest {}"})
    folder = tmp_path / "java" / "bowling" / "src" / "main" / "java"
    folder.mkdir(parents=True)
    (folder / "BowlingGame.java").write_text("class BowlingGame { int score() { return 0; } }")
    (folder / "Frame.java").write_text("class Frame {}")
    answer = directory_solver(tmp_path, "whole")(Turn(ex, 1, "", dict(ex.solution_files)))
    assert set(answer.files) == {"src/main/java/BowlingGame.java"}  # Frame.java is no solution path here
    assert answer.ignored_files == ["src/main/java/Frame.java"]
    ex.reference_files = {"src/main/java/BowlingGame.java": "", "src/main/java/Frame.java": ""}
    answer = directory_solver(tmp_path, "whole")(Turn(ex, 1, "", dict(ex.solution_files)))
    assert set(answer.files) == {"src/main/java/BowlingGame.java", "src/main/java/Frame.java"}
    assert directory_solver(tmp_path, "whole")(Turn(ex, 2, "", {})) is None  # no second answer
    assert directory_solver(tmp_path / "empty", "diff")(Turn(ex, 1, "", {})) is None
    (tmp_path / "java" / "bowling" / "response.md").write_text("text")
    assert directory_solver(tmp_path, "diff")(Turn(ex, 1, "", {})).response == "text"
