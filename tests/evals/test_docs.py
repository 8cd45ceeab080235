"""The documentation grader on a known-good and known-bad answers, and the docs report rows of a real tiny
model."""

import pytest

from datagen import doctasks
from evals import docs

PY = '''def clamp(value, low, high):
    """Limit value to the closed range from low to high.

    Values below low become low and values above high become high.
    """
    return max(low, min(value, high))
'''
RUST = "/// Returns the larger of the two values.\npub fn larger(a: i32, b: i32) -> i32 {\n    a.max(b)\n}\n"


def _task(language, code, symbol="clamp"):
    doc = {"doc_id": "d", "language": language, "text": code, "origin": f"local:/src/{language}/a"}
    return doctasks.file_tasks(doc, "test", f"{language}:src", doctasks.DocTaskSettings(readme=False))[0] | {
        "symbol": symbol}


PY_TASK = _task("python", PY)
RUST_TASK = _task("rust", RUST, "larger")


def test_the_human_docstring_scores_one_and_lints_clean():
    graded = docs.grade_doc(PY_TASK, PY_TASK["answer"])
    assert graded == {"rouge_l": 1.0, "lint_ok": True, "why": "", "text": PY_TASK["answer"]}
    fenced = docs.grade_doc(PY_TASK, f'```python\n"""{PY_TASK["answer"]}"""\n```')
    assert fenced["rouge_l"] == 1.0 and fenced["lint_ok"]
    commented = docs.grade_doc(RUST_TASK, "/// Returns the larger of the two values.")
    assert commented == {"rouge_l": 1.0, "lint_ok": None, "why": "", "text": "Returns the larger of the two values."}


@pytest.mark.parametrize("answer, why", [
    ("", "empty"),
    ("   \n ", "empty"),
    ("def clamp(value, low, high):\n    return max(low, min(value, high))", "echoes the code"),
    ('Limit value."""\nimport os\nos.system("rm -rf /")\n"""', "holds triple quotes"),
    ("x" * 100_000, "overlong"),
])
def test_known_bad_answers_are_rejected(answer, why):
    graded = docs.grade_doc(PY_TASK, answer)
    assert graded["rouge_l"] == 0.0 and graded["lint_ok"] is False and graded["why"].startswith(why)


def test_an_unrelated_or_badly_styled_answer_scores_low_or_fails_lint():
    unrelated = docs.grade_doc(PY_TASK, "Open the network socket and send the greeting packet.")
    assert unrelated["rouge_l"] < 0.3
    unstyled = docs.grade_doc(PY_TASK, "limits value to the closed range from low to high")  # no period, not imperative
    assert unstyled["rouge_l"] > 0.5 and unstyled["lint_ok"] is False and unstyled["why"]
    assert docs.grade_doc(RUST_TASK, "/// Parses the config file from disk.")["rouge_l"] < 0.3


def test_docstring_lint_reports_pep257_findings_only():
    assert docs.docstring_lint(PY) == []
    assert any("D400" in f for f in docs.docstring_lint('def f():\n    """No period"""\n'))
    assert docs.docstring_lint("def f():\n    return 1\n") == []  # a missing docstring is not this grader's finding
    assert docs.docstring_lint("def f(:\n")[0].startswith("0: cannot parse")


def test_spread_takes_every_kind_and_language():
    rows = [{"example_id": f"{k}{i}", "kind": k, "language": lang} for k, lang in
            (("docstring", "python"), ("api_reference", "go"), ("api_reference", "rust")) for i in range(5)]
    picked = docs.spread_tasks(rows, 4)
    assert len(picked) == 4 and {(r["kind"], r["language"]) for r in picked[:3]} == {
        ("docstring", "python"), ("api_reference", "go"), ("api_reference", "rust")}


@pytest.mark.slow
def test_eval_docs_with_a_real_tiny_model_gives_valid_report_rows(tmp_path):
    import datetime

    from evals import evaluate as ev
    from evals.report import make_rows
    from model import build_model
    from model.config import ModelConfig
    from model.tokenizer import train_tokenizer

    tok = train_tokenizer([PY * 5, RUST * 5], 300, tmp_path / "tok")
    model = build_model(ModelConfig.preset("tiny", vocab_size=tok.vocab_size, max_seq_len=256)).eval()
    c = ev.Candidate("hrm", model, tok)
    rows = [PY_TASK | {"example_id": "py1"}, PY_TASK | {"example_id": "py2"}, RUST_TASK]
    results = docs.eval_docs(c, rows, ev.EvalSettings(batch_size=4, bootstrap_resamples=200), max_new_tokens=16)
    c.close()
    assert {r["metric"] for r in results} == {"docstring_rouge_l", "api_reference_rouge_l", "docstring_lint_pass_rate"}
    by_metric = {r["metric"]: r for r in results}
    assert by_metric["docstring_rouge_l"]["n"] == 2 and by_metric["api_reference_rouge_l"]["n"] == 1
    assert by_metric["docstring_lint_pass_rate"]["n"] == 2
    assert all(r["benchmark"] == "docs" and 0 <= r["ci_low"] <= r["value"] <= r["ci_high"] <= 1 for r in results)
    made = make_rows("r", datetime.datetime.now(), "hrm", "h", "none", results, "v")
    assert len(made) == 3


@pytest.mark.slow  # the first parquet write imports pyarrow and pandas (about 2 s)
def test_load_doc_suite_notes_a_missing_table(tmp_path):
    from resources.warehouse import Warehouse

    wh = Warehouse(root=str(tmp_path))
    assert docs.load_doc_suite(wh, 5) == ([], "doc_tasks is not materialised")
    wh.write_table("doc_tasks", [PY_TASK | {"split": "train"}, RUST_TASK])
    rows, note = docs.load_doc_suite(wh, 5)
    assert note == "" and [r["symbol"] for r in rows] == ["larger"]
