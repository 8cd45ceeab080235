"""The code corpus drops exact and near duplicates."""

from datagen import corpus

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


def test_corpus_removes_exact_and_near_duplicates(tmp_path):
    other = FUNC.replace("add_numbers", "combine").replace("sum", "total")
    _write(tmp_path, "a.py", FUNC * 3)
    _write(tmp_path, "b.py", FUNC * 3)  # exact duplicate
    _write(tmp_path, "c.py", FUNC * 3 + "\n# one extra comment line\n")  # near duplicate
    _write(tmp_path, "d.py", "import os\n" + "\n".join(f"def f{i}(x):\n    return x * {i} + os.sep.count('/')\n"
                                                    for i in range(40)))
    _write(tmp_path, "e.js", other)  # wrong extension for python: ignored
    rows, removed, stats = corpus.build_corpus({"python": [str(tmp_path)]}, max_files_per_language=10, min_bytes=50)
    reasons = sorted(r["reason"] for r in removed)
    assert reasons == ["exact duplicate", "near duplicate"]
    assert stats.kept == 2 and stats.per_language == {"python": 2}
