"""Decontamination: files sharing a long n-gram with a benchmark problem are dropped."""

import json

from datagen import corpus, decontaminate

FUNC = '''def add_numbers(first_value, second_value):
    """Return the sum of two numbers, checking both are integers before adding them together."""
    if not isinstance(first_value, int) or not isinstance(second_value, int):
        raise TypeError("both values must be integers for this function to work correctly")
    return first_value + second_value
'''


def _write(root, name, text):
    p = root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_decontamination_drops_files_sharing_a_long_ngram_with_a_problem(tmp_path):
    problem = ("def separate_paren_groups(paren_string):\n    result = []\n    current_string = []\n"
               "    current_depth = 0\n    for c in paren_string:\n        if c == '(':\n            current_depth += 1\n")
    ngrams = decontaminate.BenchmarkNgrams.from_problems([("humaneval/HumanEval/1", problem)], n=13)
    assert ngrams.first_overlap("x = 1\n" + problem[40:] + "\nprint(x)") == "humaneval/HumanEval/1"
    assert ngrams.first_overlap(FUNC) is None
    # boilerplate found in many problems is not contamination
    boiler = "if __name__ == '__main__':\n    import unittest\n    unittest.main(verbosity=2, exit=False)\n"
    many = decontaminate.BenchmarkNgrams.from_problems([(f"p{i}", boiler + f"x{i} = {i}") for i in range(5)], n=13)
    assert many.first_overlap(boiler) is None
    _write(tmp_path, "clean.py", FUNC * 2)
    _write(tmp_path, "leaked.py", FUNC + problem)
    rows, removed, stats = corpus.build_corpus({"python": [str(tmp_path)]}, max_files_per_language=10, min_bytes=50,
                                               contamination=ngrams)
    assert stats.contaminated == 1 and removed[0]["origin"].endswith("leaked.py")
    assert "HumanEval/1" in removed[0]["reason"]


def test_problem_texts_reach_into_json_and_maps():
    rows = [{"problem_id": "p1", "prompt": "statement", "hidden_tests": json.dumps({"t.py": "assert f() == 1"}),
             "reference_solution": [("sol.py", "def f(): return 1")]}]
    (label, text), = decontaminate.problem_texts_from_rows("polyglot_problems", rows)
    assert label == "polyglot_problems/p1"
    assert "assert f() == 1" in text and "def f(): return 1" in text and "statement" in text


def test_humaneval_package_texts_are_all_164():
    assert len(decontaminate.humaneval_package_texts()) == 164
