"""The documentation benchmark ("docs"): a model writes the docstring or doc comment of held-out repositories'
functions (datagen/doctasks.py), scored by ROUGE-L F1 against the human documentation and, for Python, by
whether the docstring put into the function passes pydocstyle's PEP 257 checks.

Grading reads and lints text only; nothing is run. An answer is cleaned (code fences, surrounding quotes,
comment markers) and rejected, scoring 0 and failing the lint, when it is empty, longer than
`MAX_ANSWER_CHARS`, echoes the function's code, or holds `\"\"\"` (it would end the docstring early).

Lint rules: pydocstyle's `pep257` convention without the missing-docstring codes D100-D107 (the snippet's
other definitions are not the answer's business). That keeps D2xx whitespace (one-line docstrings on one
line, a blank line after the summary, indentation), D3xx quoting and D4xx content (summary ends in a
period, imperative mood, no signature repeated, not empty). The docstring is linted in the function's header
with `...` as its body (`header_stub`).
"""

from __future__ import annotations

import re

from datagen.doctasks import insert_docstring, strip_markers
from evals.report import rate_result
from evals.stats import problem
from evals.text_metrics import rouge_l, rouge_l_result

BENCHMARK = "docs"
MAX_ANSWER_CHARS = 4000
METRICS = {"docstring": "docstring_rouge_l", "api_reference": "api_reference_rouge_l",
           "readme_section": "readme_rouge_l"}
LINT_METRIC = "docstring_lint_pass_rate"
_FENCE = re.compile(r"^```[\w+-]*\n(.*?)\n?```$", re.DOTALL)


def lint_codes() -> set[str]:
    from pydocstyle.violations import conventions

    return set(conventions.pep257) - {f"D10{i}" for i in range(8)}


def docstring_lint(code_with_docstring: str) -> list[str]:
    """pydocstyle's findings (`line: Dxxx message`) on Python source text, PEP 257 rules without D100-D107;
    a file pydocstyle cannot parse gives one finding saying so."""
    from pydocstyle.checker import ConventionChecker
    from pydocstyle.parser import ParseError

    codes = lint_codes()
    try:
        errors = list(ConventionChecker().check_source(code_with_docstring, "<answer>"))
    except (ParseError, SyntaxError, ValueError) as exc:
        return [f"0: cannot parse: {exc}"]
    return [f"{e.line}: {e.code} {e.short_desc}" for e in errors if getattr(e, "code", None) in codes]


def task_code(task_row: dict) -> str:
    """The code of a docstring or API-reference task: its prompt below the instruction line."""
    return task_row["prompt"].split("\n", 1)[1] if "\n" in task_row["prompt"] else ""


def header_stub(code: str) -> str:
    """The function's header (decorators, signature) with `...` as its body: the docstring is linted there,
    so the rules judge the answer, not the blank lines of the body around it (D202), and pydocstyle's parser
    is not tripped by the body (it cannot read some nested decorated functions)."""
    import ast

    from datagen.declarations import first_line

    node = ast.parse(code).body[0]
    body_line = first_line(node.body[0])
    lines = code.split("\n")
    header = lines[:body_line - 1]
    while header and (not header[-1].strip() or header[-1].strip().startswith("#")):
        header.pop()
    indent = re.match(r"\s*", lines[body_line - 1]).group() or "    "
    return "\n".join(header + [indent + "..."]) + "\n"


def clean_answer(language: str, answer: str) -> str:
    """The answer's text: one surrounding code fence, triple or single quotes and comment markers removed."""
    text = (answer or "").strip()
    if (m := _FENCE.match(text)):
        text = m.group(1).strip()
    for quote in ('"""', "'''", 'r"""', '"', "'"):
        end = quote.lstrip("r")
        if len(text) >= len(quote) + len(end) and text.startswith(quote) and text.endswith(end):
            text = text[len(quote):-len(end)].strip()
            break
    return strip_markers(language, text).strip()


def _echoes_code(answer: str, code: str) -> bool:
    """Half or more of the answer's lines of eight characters or more are lines of the code."""
    code_lines = {line.strip() for line in code.split("\n") if len(line.strip()) >= 8}
    lines = [line.strip() for line in answer.split("\n") if len(line.strip()) >= 8]
    return bool(lines) and sum(line in code_lines for line in lines) * 2 >= len(lines)


def rejection(task_row: dict, text: str) -> str:
    """Why a cleaned answer is not a documentation text at all ("" when it is one)."""
    if not text:
        return "empty"
    if len(text) > MAX_ANSWER_CHARS:
        return f"overlong: {len(text)} characters (at most {MAX_ANSWER_CHARS})"
    if task_row["language"] == "python" and ('"""' in text or "'''" in text):
        return "holds triple quotes: it would end the docstring"
    if _echoes_code(text, task_code(task_row)):
        return "echoes the code"
    return ""


def grade_doc(task_row: dict, answer: str) -> dict:
    """{"rouge_l": F1 against the human text, "lint_ok": PEP 257 checks of the inserted docstring (Python
    docstring tasks; None elsewhere), "why": the rejection or the first lint finding, "text": the cleaned
    answer}."""
    text = clean_answer(task_row["language"], answer)
    why = rejection(task_row, text)
    linted = task_row.get("kind") == "docstring" and task_row["language"] == "python"
    if why:
        return {"rouge_l": 0.0, "lint_ok": False if linted else None, "why": why, "text": text}
    score = rouge_l(text, task_row["answer"])["f1"]
    lint_ok = None
    if linted:
        try:
            stub = header_stub(task_code(task_row))
            findings = docstring_lint(insert_docstring("python", stub, task_row["symbol"].split(".")[-1], text))
        except (ValueError, SyntaxError) as exc:
            findings = [f"cannot insert: {exc}"]
        lint_ok, why = not findings, (findings[0] if findings else "")
    return {"rouge_l": score, "lint_ok": lint_ok, "why": why, "text": text}


def load_doc_suite(warehouse, limit: int = 0) -> tuple[list[dict], str]:
    """The test split of `doc_tasks`, spread over kinds and languages (at most `limit`; 0 = all), and a note
    ("" when the table is there and has test rows)."""
    try:
        rows = warehouse.read_table("doc_tasks").to_pylist()
    except FileNotFoundError:
        return [], "doc_tasks is not materialised"
    rows = [r for r in rows if r.get("split") == "test"]
    if not rows:
        return [], "doc_tasks has no test rows"
    return spread_tasks(rows, limit), ""


def spread_tasks(rows: list[dict], limit: int) -> list[dict]:
    """Up to `limit` rows taken round-robin over (kind, language), each group in example-id order."""
    if not limit or limit >= len(rows):
        return sorted(rows, key=lambda r: r["example_id"])
    groups: dict[tuple, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["example_id"]):
        groups.setdefault((r["kind"], r["language"]), []).append(r)
    out, i = [], 0
    while len(out) < limit:
        for group in groups.values():
            if i < len(group) and len(out) < limit:
                out.append(group[i])
        i += 1
    return out


def eval_docs(c, rows: list[dict], s, limit: int = 0, max_new_tokens: int = 128) -> list[dict]:
    """Report rows of benchmark "docs": ROUGE-L F1 per kind (bootstrap interval) and the docstring lint pass
    rate (Wilson interval), each with its per-problem results. `c` is an evals.evaluate.Candidate, `s` its
    EvalSettings (batch size, seed, bootstrap resamples); greedy generation."""
    from evals.evaluate import complete

    rows = spread_tasks(rows, limit)
    if not rows:
        return []
    texts = [t[0] for t in complete(c, [r["prompt"] for r in rows], [r["language"] for r in rows], "codegen",
                                    max_new_tokens=max_new_tokens, batch_size=s.batch_size, seed=s.seed)]
    graded = [(r, grade_doc(r, t)) for r, t in zip(rows, texts)]
    results = []
    for kind, metric in METRICS.items():
        scored = {r["example_id"]: g["rouge_l"] for r, g in graded if r["kind"] == kind}
        if scored:
            results.append(rouge_l_result(BENCHMARK, metric, scored, s.bootstrap_resamples, s.seed))
    linted = [(r, g) for r, g in graded if g["lint_ok"] is not None]
    if linted:
        passed = sum(g["lint_ok"] for _, g in linted)
        row = rate_result(BENCHMARK, LINT_METRIC, passed / len(linted), len(linted))
        row["problems"] = [problem(r["example_id"], g["lint_ok"], _lint_kind(g["why"])) for r, g in linted]
        results.append(row)
    return results


def _lint_kind(why: str) -> str:
    match = re.search(r"\b(D\d{3})\b", why)
    if match:
        return match.group(1)
    return why.split(":")[0].replace(" ", "_") if why else ""



def measure(corpus_parquet: str, model_spec: str = "", limit: int = 0, max_new_tokens: int = 128) -> dict:
    """Task counts of a code_corpus parquet file, the report rows of the human reference (a sanity check: its
    ROUGE-L is 1) and, with `model_spec`, of that model, on the test split."""
    import pyarrow.parquet as pq

    from datagen.doctasks import DocTaskSettings, build_doc_tasks
    from evals.evaluate import Candidate, EvalSettings

    rows, stats = build_doc_tasks(pq.read_table(corpus_parquet).to_pylist(), DocTaskSettings())
    test = spread_tasks([r for r in rows if r["split"] == "test"], limit)
    human = Candidate("human", None, None, endpoint=_Scripted({r["prompt"]: r["answer"] for r in test}))
    out = {"counts": stats["counts"], "test_repositories": len(stats["test_repositories"]),
           "files_skipped_completion_heldout": stats["files_skipped_completion_heldout"],
           "human": _summary(eval_docs(human, test, EvalSettings()))}
    if model_spec:
        from evals.pipeline import candidate_from_spec
        from inference.specs import parse_spec

        c = candidate_from_spec(parse_spec(model_spec))
        try:
            out["model"] = _summary(eval_docs(c, test, EvalSettings(), max_new_tokens=max_new_tokens))
        finally:
            c.close()
    return out


class _Scripted:
    """A candidate-like endpoint that answers each prompt with a fixed text (the human reference)."""

    def __init__(self, answers: dict[str, str]):
        self.answers, self.completion_tokens = answers, 0

    def complete(self, prompts, languages, task, **_):
        return [[self.answers[p]] for p in prompts]


def _summary(results: list[dict]) -> list[dict]:
    return [{k: round(r[k], 4) if isinstance(r[k], float) else r[k] for k in
             ("metric", "value", "n", "ci_low", "ci_high")} for r in results]


if __name__ == "__main__":  # python -m evals.docs CORPUS_PARQUET [MODEL_SPEC [LIMIT]]
    import json
    import sys

    args = sys.argv[1:]
    print(json.dumps(measure(args[0], args[1] if len(args) > 1 else "", int(args[2]) if len(args) > 2 else 0)))
