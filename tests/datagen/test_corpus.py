"""The code corpus drops exact and near duplicates."""

import random

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


def test_the_corpus_is_the_same_wherever_its_source_tree_is_installed(tmp_path):
    # a clean clone's venv holds Go's sources at another absolute path: the files picked, their doc ids
    # (which decide the held-out files) and their order must not depend on it
    for where in ("one/site", "two/deeper/site"):
        for i in range(30):
            rng = random.Random(i)
            body = "\n".join(f"def {''.join(rng.choices('abcdefgh', k=8))}(x):\n    return x * {rng.randint(0, 999)}\n"
                             for _ in range(12))
            _write(tmp_path / where, f"pkg{i % 4}/mod{i}.py", body)
    picked = [corpus.build_corpus({"python": [str(tmp_path / where)]}, max_files_per_language=12, min_bytes=50)[0]
              for where in ("one/site", "two/deeper/site")]
    assert [r["doc_id"] for r in picked[0]] == [r["doc_id"] for r in picked[1]]
    assert len(picked[0]) == 12 and picked[0][0]["origin"] != picked[1][0]["origin"]
