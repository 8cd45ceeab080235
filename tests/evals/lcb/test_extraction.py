"""The code graded is the last fenced block of an answer (or the whole answer, by mode)."""

from evals.lcb.extraction import code_for_grading, extract_code


def test_extraction_takes_the_last_fenced_block():
    text = "Idea:\n```python\nprint(1)\n```\nFinal:\n```python\nprint(2)\n```\n"
    assert extract_code(text) == "print(2)"
    assert extract_code("print(3)") == ""
    assert code_for_grading("print(3)") == "print(3)"
    assert code_for_grading("print(3)", "fenced") == ""
    assert code_for_grading(text, "auto") == "print(2)"
