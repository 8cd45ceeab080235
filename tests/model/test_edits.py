"""The edit format's owner (model/edits.py): markers, parsing, the strict apply, and that the model's
validator, the synthetic generator, the repair grader and the Polyglot parser all follow it."""

import random
import re
import time

import pytest

from evals.polyglot.edits import MalformedAnswer, apply_answer
from datagen import repair_grading, synthetic
from model.edits import (DIVIDER, MARKERS, REPLACE, SEARCH, EditBlock, apply_edit_blocks, apply_edits,
                         format_edit_blocks, parse_edit_blocks)
from model.tokenizer import special_tokens
from model.validate import check_edit, validate_output

SOURCE = "def area(w, h):\n    total = w * h\n    return total\n"


def block(search: str, replace: str, name: str = "main.py") -> str:
    return f"{name}\n{SEARCH}\n{search}{DIVIDER}\n{replace}{REPLACE}\n"


# --- the format ------------------------------------------------------------------------------------------
def test_markers_are_the_tokenizers_special_tokens():
    assert MARKERS == ("<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE")
    assert special_tokens()[-3:] == list(MARKERS)


def test_format_parse_apply_round_trip_with_file_name_lines():
    blocks = [EditBlock("    total = w * h\n", "    total = h * w\n"), EditBlock("    return total\n", "    return -total\n")]
    text = format_edit_blocks(blocks, "main.py")
    assert text.count("main.py\n") == 2
    assert parse_edit_blocks(text) == blocks
    assert apply_edits(SOURCE, text) == "def area(w, h):\n    total = h * w\n    return -total\n"


def test_blocks_hold_whole_lines():
    assert EditBlock("a", "b") == EditBlock("a\n", "b\n")
    assert format_edit_blocks([EditBlock("a", "")]) == f"{SEARCH}\na\n{DIVIDER}\n{REPLACE}\n"
    # the answer's last line need not end in a newline, nor the file's
    assert apply_edits("x = 1", f"{SEARCH}\nx = 1\n{DIVIDER}\nx = 2\n{REPLACE}") == "x = 2\n"


def test_blocks_apply_in_order_to_the_text_edited_so_far():
    answer = block("    total = w * h\n", "    size = w * h\n") + block("    return total\n", "    return size\n")
    assert apply_edits(SOURCE, answer) == "def area(w, h):\n    size = w * h\n    return size\n"
    # a later block sees what an earlier one wrote: its SEARCH is gone, or now occurs twice
    with pytest.raises(ValueError, match="edit block 2: SEARCH text not found"):
        apply_edits(SOURCE, block("    return total\n", "    return 0\n") * 2)
    with pytest.raises(ValueError, match="edit block 2: SEARCH text found 2 times"):
        apply_edits(SOURCE, block("def area(w, h):\n", "def area(w, h):\n    return total\n")
                    + block("    return total\n", "    return 0\n"))


def test_empty_search_only_creates_an_empty_file():
    assert apply_edits("", block("", "x = 1\n")) == "x = 1\n"
    with pytest.raises(ValueError, match="empty SEARCH is only allowed for an empty file"):
        apply_edits(SOURCE, block("", "x = 1\n"))


def test_a_search_that_occurs_twice_is_refused_not_applied_to_the_first_match():
    source = "a = 0\nb = 1\na = 0\n"
    with pytest.raises(ValueError, match="found 2 times"):
        apply_edits(source, block("a = 0\n", "a = 5\n"))
    assert not check_edit(source, block("a = 0\n", "a = 5\n")).ok
    assert apply_edits(source, block("a = 0\nb = 1\n", "a = 5\nb = 1\n")) == "a = 5\nb = 1\na = 0\n"


def test_search_matches_whole_lines_only():
    # "total = w * h" also ends the line "    total = w * h": no whole-line match, so not found
    with pytest.raises(ValueError, match="not found"):
        apply_edits(SOURCE, block("total = w * h\n", "    total = 0\n"))
    # one whole-line match, though the text occurs inside another line too
    assert apply_edits("x = 1\nyx = 1\n", block("x = 1\n", "x = 2\n")) == "x = 2\nyx = 1\n"


def test_overlapping_matches_count_as_two():
    with pytest.raises(ValueError, match="found 2 times"):
        apply_edits("a\na\na\n", block("a\na\n", "b\n"))


def test_whitespace_only_search_must_be_unique_too():
    with pytest.raises(ValueError, match="found 2 times"):
        apply_edits("a\n\nb\n\nc\n", block("\n", "# gap\n"))


def test_line_endings_are_kept():
    crlf = "a = 1\r\nb = 2\r\n"
    assert apply_edits(crlf, block("b = 2\r\n", "b = 3\r\n")) == "a = 1\r\nb = 3\r\n"
    with pytest.raises(ValueError, match="not found"):  # a CRLF file is not matched by LF lines
        apply_edits(crlf, block("b = 2\n", "b = 3\n"))


def test_only_newline_separates_lines():
    # a form feed (Python files use them) and U+2028 (legal in JavaScript strings) are ordinary characters
    source = 'x = 1\n\x0c\ny = "a\u2028b"\n'
    answer = block('y = "a\u2028b"\n', 'y = "a\u2028c"\n')
    assert apply_edits(source, answer) == 'x = 1\n\x0c\ny = "a\u2028c"\n'
    assert check_edit(source, answer).ok


def test_markers_must_be_whole_lines_and_may_carry_surrounding_whitespace():
    code = f'x = "{SEARCH}"\ny = "{DIVIDER}"  # {REPLACE}\n'
    answer = block(code, code.replace("x =", "z ="))
    assert apply_edits(code, answer) == code.replace("x =", "z =")
    loose = f"  {SEARCH}  \nx = 1\n\t{DIVIDER}\nx = 2\n{REPLACE}   \n"
    assert apply_edits("x = 1\n", loose) == "x = 2\n"


# --- malformed answers: an error naming the block and line, never a partial edit ----------------------------
@pytest.mark.parametrize("answer,message", [
    ("just prose, no block\n", "no SEARCH/REPLACE block"),
    ("", "no SEARCH/REPLACE block"),
    (f"{SEARCH}\nx = 1\n{REPLACE}\n", f"(line 3): {REPLACE} where {DIVIDER} was expected"),
    (f"{SEARCH}\nx = 1\n{DIVIDER}\nx = 2\n", f"not terminated (missing {REPLACE})"),
    (f"{SEARCH}\nx = 1\n", f"not terminated (missing {DIVIDER})"),
    (f"{SEARCH}\nx = 1\n{SEARCH}\n{DIVIDER}\nx = 2\n{REPLACE}\n", f"(line 3): {SEARCH} where {DIVIDER} was expected"),
    (f"{SEARCH}\nx = 1\n{DIVIDER}\n{DIVIDER}\nx = 2\n{REPLACE}\n", f"(line 4): {DIVIDER} where {REPLACE} was expected"),
    # a first block that applies, then a second whose SEARCH marker is missing: not silently dropped
    (f"{SEARCH}\nx = 1\n{DIVIDER}\nx = 2\n{REPLACE}\ny = 1\n{DIVIDER}\ny = 2\n{REPLACE}\n",
     f"edit block 2 (line 7): {DIVIDER} outside a block"),
    (f"{SEARCH}\nx = 1\n{DIVIDER}\nx = 2\n{REPLACE}\n{REPLACE}\n", f"edit block 2 (line 6): {REPLACE} outside a block"),
])
def test_malformed_answers_are_refused_with_a_reason(answer, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        apply_edits("x = 1\ny = 1\n", answer)
    assert not check_edit("x = 1\ny = 1\n", answer).ok


def test_a_marker_line_inside_the_code_cannot_hide_in_a_block():
    # a file whose lines are markers (a merge conflict, an underline) cannot be edited through them
    answer = block(f"title\n{DIVIDER}\n", f"Title\n{DIVIDER}\n")
    with pytest.raises(ValueError, match="was expected"):
        apply_edits(f"title\n{DIVIDER}\n", answer)


@pytest.mark.slow
def test_huge_inputs_stay_linear_and_errors_stay_short():
    source = "".join(f"line_{i} = {i}\n" for i in range(200_000))
    edits = [EditBlock(f"line_{i} = {i}\n", f"line_{i} = -{i}\n") for i in range(0, 200_000, 1000)]
    answer = format_edit_blocks(edits, "main.py")
    start = time.perf_counter()
    edited = apply_edits(source, answer)
    assert time.perf_counter() - start < 10
    assert edited.count(" = -") == 200 and len(edited) == len(source) + 200
    giant = block("x" * 5_000_000 + "\n", "y\n")
    start = time.perf_counter()
    with pytest.raises(ValueError) as error:
        apply_edits(source, giant)
    assert time.perf_counter() - start < 10 and len(str(error.value)) < 200
    start = time.perf_counter()
    assert len(parse_edit_blocks(block("a\n" * 1_000_000, "b\n") * 3)) == 3
    assert time.perf_counter() - start < 10


def test_apply_edit_blocks_checks_blocks_built_in_code():
    with pytest.raises(ValueError, match="edit block 1: SEARCH text not found"):
        apply_edit_blocks(SOURCE, [EditBlock("nothing", "x")])


def test_the_validator_routes_repair_answers_through_the_strict_apply():
    assert validate_output("repair", "python", block("    return total\n", "    return total + 1\n"), SOURCE).ok
    assert not validate_output("repair", "python", block("total", "size"), SOURCE).ok  # no line is "total"


# --- everyone follows the owner -------------------------------------------------------------------------
def test_polyglot_parser_takes_the_owners_blocks_and_stays_tolerant():
    files = {"area.py": SOURCE}
    strict = format_edit_blocks([EditBlock("    return total\n", "    return -total\n")], "area.py")
    assert apply_answer(strict, "diff", files)["area.py"] == apply_edits(SOURCE, strict)
    # Aider's tolerance, on purpose: longer fences, and SEARCH text off by indentation or trailing spaces
    long_fences = "area.py\n<<<<<<<<< SEARCH\n    return total\n=========\n    return 0\n>>>>>>>>> REPLACE\n"
    off_by_spaces = block("  return total  \n", "    return 0\n", "area.py")
    for loose in (long_fences, off_by_spaces):
        assert apply_answer(loose, "diff", files)["area.py"].endswith("    return 0\n")
        with pytest.raises(ValueError):
            apply_edits(SOURCE, loose)
    with pytest.raises(MalformedAnswer, match=f"has no {DIVIDER} divider"):
        apply_answer(f"area.py\n{SEARCH}\nx\n{REPLACE}\n", "diff", files)


def test_every_synthetic_reference_block_applies_strictly():
    checked = 0
    for template in synthetic.REPAIR_TEMPLATES:
        for lang in synthetic.LANGUAGES:
            for seed in range(20):
                rs = template.render(random.Random(seed), lang)
                for _, i, old, new in synthetic.mutations(rs.code, random.Random(seed)):
                    lines = rs.code.split("\n")
                    lines[i] = new
                    mutant = "\n".join(lines)
                    answer, _ = synthetic.search_replace_block("main.py", mutant, i, old)
                    assert check_edit(mutant, answer).result == rs.code, (template.name, lang, seed, answer)
                    checked += 1
    assert checked > 5000


def _ambiguous_task(lang: str) -> dict:
    """A mutant whose buggy line also occurs, unchanged, in a helper: a SEARCH of that one line occurs twice,
    and replacing only its first occurrence fixes `solve`."""
    if lang == "python":
        mutant = "def solve(n):\n    return n + 0\n\n\ndef helper(n):\n    return n + 0\n"
        search, replace = "    return n + 0\n", "    return n + 1\n"
    else:
        mutant = "function solve(n) {\n  return n + 0;\n}\n\nfunction helper(n) {\n  return n + 0;\n}\n"
        search, replace = "  return n + 0;\n", "  return n + 1;\n"
    calls, expected = ["1", "5", "9"], ["2", "6", "10"]
    return {"mutant": mutant, "answer": block(search, replace, synthetic.FILE_NAMES[lang]),
            "tests": synthetic.test_block(lang, calls, expected)}


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["python", "javascript"])
def test_validator_and_repair_grader_agree_on_an_ambiguous_search(sandbox, lang):
    task = _ambiguous_task(lang)
    assert not check_edit(task["mutant"], task["answer"], lang).ok
    fixed, why = repair_grading.repair_verdict(sandbox, lang, task["mutant"], task["answer"], task["tests"], 20)
    assert not fixed and "found 2 times" in why
    # the same fix with one line of context is unique, and both accept it
    first = task["mutant"].split("\n", 1)[0] + "\n"
    search = first + parse_edit_blocks(task["answer"])[0].search
    answer = block(search, first + parse_edit_blocks(task["answer"])[0].replace)
    assert check_edit(task["mutant"], answer, lang).ok
    assert repair_grading.repair_fixed(sandbox, lang, task["mutant"], answer, task["tests"], 20)
