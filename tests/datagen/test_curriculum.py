"""Curriculum: corpus rows become examples, stages are assigned, bad rows are rejected with a reason."""

import hashlib
import json

from datagen import curriculum

FUNC = '''def add_numbers(first_value, second_value):
    """Return the sum of two numbers, checking both are integers before adding them together."""
    if not isinstance(first_value, int) or not isinstance(second_value, int):
        raise TypeError("both values must be integers for this function to work correctly")
    return first_value + second_value
'''


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


def test_corpus_chunks_are_runs_of_whole_lines_spread_over_each_file():
    lines = [f"int value_{i} = {i} * {i};  // entry {i}\n" for i in range(200)]
    rows = [{"doc_id": f"h{i}", "language": "cpp", "text": "".join(lines)} for i in range(40)]
    chunks = curriculum.corpus_chunks(rows, max_per_doc=4, max_answer_chars=300, context_lines=2)
    heldout = curriculum.heldout_doc_ids(rows)
    assert heldout and len(chunks) == 4 * len(rows)
    text = "".join(lines)
    for c in chunks:
        assert c["task_type"] == "codegen" and len(c["answer"]) <= 300 and c["answer"] in text
        assert c["answer"].endswith("\n") and (c["answer"] == text[:len(c["answer"])] or
                                                text[text.index(c["answer"]) - 1] == "\n")
        context = c["prompt"].split("\n", 1)[1]
        assert text.index(c["answer"]) == 0 or text[:text.index(c["answer"])].endswith(context)
    doc_of = {f"chunk-{hashlib.sha1(r['doc_id'].encode()).hexdigest()[:12]}": r["doc_id"] for r in rows}
    for c in chunks:  # a held-out file (never trained on, read by code-bpb) gives validation examples only
        assert (c["split"] == "validation") == (doc_of[c["example_id"].rsplit("-", 1)[0]] in heldout)
    starts = [text.index(c["answer"]) for c in chunks[:4]]  # the first file's four chunks
    assert starts[0] == 0 and starts == sorted(starts) and starts[-1] > len(text) // 2
    assert curriculum.corpus_chunks(rows, max_per_doc=0) == []
    long_line = [{"doc_id": "x", "language": "go", "text": "a" * 500 + "\nshort\n"}]
    assert [c["answer"] for c in curriculum.corpus_chunks(long_line, max_answer_chars=300)] == ["short\n"]


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
