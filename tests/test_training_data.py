"""Training-data pure functions: corpus dedup/decontamination, synthetic ground truth, examples, shards."""

import json
import random

import pytest

from datagen import corpus, curriculum, decontaminate, synthetic
from datagen.repair_grading import repair_fixed
from model.edits import apply_edits

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


def test_mutations_search_replace_round_trip():
    rs = synthetic._r_sum_above(random.Random(3), "python")
    muts = synthetic.mutations(rs.code, random.Random(0))
    assert {m[0] for m in muts} == {"flipped operator", "off by one", "wrong variable"}
    kind, i, old, new = muts[0]
    lines = rs.code.split("\n")
    lines[i] = new
    mutant = "\n".join(lines)
    block, tags = synthetic.search_replace_block("main.py", mutant, i, old)
    assert apply_edits(mutant, block) == rs.code
    assert tags[i] == 1 and sum(tags) == 1
    with pytest.raises(ValueError):
        apply_edits(rs.code + "zzz", "no block here")


def test_synthetic_tasks_ground_truth_comes_from_the_sandbox(sandbox):
    cfg = synthetic.SyntheticConfig(exec_per_template=1, repair_per_template=1, languages=("python", "javascript"),
                                    heldout_exec_tasks=1, heldout_repair_tasks=1)
    result = synthetic.generate_synthetic_tasks(sandbox, cfg)
    assert not result.rejected
    ex = [t for t in result.tasks if t["task_type"] == "exec_predict"]
    assert len([t for t in ex if t["heldout"] != "instances"]) == 2 * len(synthetic.EXEC_TEMPLATES)
    for t in ex[:6]:  # re-running the program gives the recorded answer
        files, cmd = synthetic.single_file_job(t["language"], t["program"])
        assert sandbox.run(cmd, files=files).stdout == t["answer"]
    rep = [t for t in result.tasks if t["task_type"] == "repair"]
    assert len([t for t in rep if t["heldout"] != "instances"]) == 2 * len(synthetic.REPAIR_TEMPLATES)
    for t in rep[:4]:
        assert repair_fixed(sandbox, t["language"], t["program"], t["answer"], t["test_program"])
        # the unfixed mutant really fails its test
        files, cmd = synthetic.single_file_job(t["language"], synthetic.with_tests(t["program"], t["test_program"]))
        assert sandbox.run(cmd, files=files).status == "failed"
        assert not repair_fixed(sandbox, t["language"], t["program"], "no edit", t["test_program"])
    held = {t["template"] for t in result.tasks if t["heldout"] == "templates"}
    assert held == set(cfg.heldout_templates)
    assert not held & {t["template"] for t in result.tasks if t["split"] != "test"}


def test_corpus_examples_and_stages():
    go = ("package x\n\n// Add returns the sum.\nfunc Add(a int, b int) int {\n\tc := a + b\n\treturn c\n}\n")
    rows = [{"doc_id": "d1", "language": "python", "text": FUNC}, {"doc_id": "d2", "language": "go", "text": go}]
    ex = curriculum.corpus_examples(rows)
    assert {e["language"] for e in ex} == {"python", "go"}
    py = next(e for e in ex if e["language"] == "python")
    assert py["prompt"].endswith('integers before adding them together."""\n')
    assert py["answer"].strip().endswith("return first_value + second_value")
    g = next(e for e in ex if e["language"] == "go")
    assert "// Add returns the sum." in g["prompt"] and g["answer"].endswith("}\n")
    assert curriculum.stage_of("repair") == "3" and curriculum.stage_of("tool_use") == "4"
    assert curriculum.stage_of("codegen", "x\n" * 20) == "2" and curriculum.stage_of("exec_predict", hint=1) == "1"


def test_build_training_examples_rejects_bad_rows_with_reason():
    good = {"task_type": "codegen", "language": "python", "prompt": "p", "answer": "a", "source_asset": "s",
            "split": "train", "example_id": "e1", "edit_tags": [], "tool_calls": [], "stage_hint": 0}
    rows, rejected = curriculum.build_training_examples([good, {**good, "example_id": "e2", "language": "cobol"},
                                                          {**good, "example_id": "e3", "answer": " "}, good])
    assert [r["example_id"] for r in rows] == ["e1"]
    reasons = " ".join(r["reason"] for r in rejected)
    assert "cobol" in reasons and "empty answer" in reasons and "duplicate example_id" in reasons


def test_balance_languages_caps_each_language():
    rows = [{"language": lang, "split": "train", "example_id": f"{lang}{i}"} for lang in ("python", "go")
            for i in range(10 if lang == "python" else 3)]
    out = curriculum.balance_languages(rows, 4)
    assert sum(r["language"] == "python" for r in out) == 4 and sum(r["language"] == "go" for r in out) == 3


def test_external_task_rows_with_json_text_lists_are_accepted():
    rows = [{"task_type": "tool_use", "language": "none", "prompt": "Task: init", "answer": "git init",
             "source_asset": "tool_use_examples", "split": "train", "example_id": "w1", "edit_tags": "[]",
             "tool_calls": '[{"tool": "git", "args": {}}]', "kept": "True"},
            {"task_type": "tool_use", "language": "none", "prompt": "Task: x", "answer": "y",
             "source_asset": "tool_use_examples", "split": "train", "example_id": "w2", "edit_tags": "[]",
             "tool_calls": "[]", "kept": "False"}]
    rows_out, rejected = curriculum.build_training_examples(curriculum.external_examples("tool_use_examples", rows))
    assert [r["example_id"] for r in rows_out] == ["w1"] and not rejected
    assert rows_out[0]["stage"] == "4" and json.loads(rows_out[0]["tool_calls"])[0]["tool"] == "git"
