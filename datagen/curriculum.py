"""Training examples and curriculum shards.

- `corpus_examples`: code-completion examples cut from corpus files (function signature + docstring
  as prompt, body as answer).
- `build_training_examples`: one table in the TrainingExample schema for every task source, each row
  with its curriculum stage.
- `balance_languages` + `tokenize_examples`: the token shard rows of one stage (the parquet layout
  model/data.py reads).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from typing import Iterable

from datagen.repositories import doc_test_doc_ids
from datagen.schema import LANGUAGES, SPLITS, TASK_TYPES, TrainingExample

STAGES = {
    "1": "basic syntax and patterns",
    "2": "algorithmic reasoning",
    "3": "multi-file edits and repair",
    "4": "tool use and agent trajectories",
}
SHARD_COLUMNS = ("input_ids", "prompt_len", "language", "task_type", "edit_tags", "tool_label", "split",
                 "example_id")
_STAGE_OF_TASK = {"codegen": "1", "exec_predict": "2", "repair": "3", "diff_edit": "3", "tool_use": "4",
                  "agent_step": "4", "plan": "4"}
_BODY_START = re.compile(r"\)\s*(->\s*[^{]+|[\w<>:&*,\s\[\]]*)?\{\s*$")
_FUNC_HINT = re.compile(r"^\s*(func|fn|pub fn|pub\(crate\) fn|function|async function|static|public|private|"
                        r"protected|def|[\w:<>,*&\s]+\s+[\w:~]+)\b.*\(")


def stage_of(task_type: str, answer: str = "", hint: int | str | None = None) -> str:
    """Curriculum stage: a generator's hint when it has one, else by task type (long completions are stage 2)."""
    if hint not in (None, "", 0):
        return str(int(hint))
    if task_type not in _STAGE_OF_TASK:
        raise ValueError(f"unknown task_type {task_type!r}")
    if task_type == "codegen" and answer.count("\n") > 12:
        return "2"
    return _STAGE_OF_TASK[task_type]


CORPUS_VALIDATION_PERCENT = 5


def _doc_hash(doc_id: str) -> int:
    return int(hashlib.sha1(doc_id.encode()).hexdigest()[:8], 16)


def heldout_doc_ids(corpus_rows: Iterable[dict], validation_percent: int = CORPUS_VALIDATION_PERCENT) -> set[str]:
    """The corpus files never trained on (their completion examples are split "validation"; the code-bpb
    benchmark reads them): about validation_percent of each language's files by a hash of the doc id, and
    at least one for a language with two or more files; and every file of a documentation-test repository
    (datagen/repositories.py), whose docstrings are test answers that a completion prompt would show."""
    corpus_rows = list(corpus_rows)
    by_language: dict[str, list[str]] = {}
    for doc in corpus_rows:
        by_language.setdefault(doc["language"], []).append(doc["doc_id"])
    out = set()
    for ids in by_language.values():
        chosen = {d for d in ids if _doc_hash(d) % 100 < validation_percent}
        if not chosen and len(ids) >= 2 and validation_percent > 0:
            chosen = {min(ids, key=lambda d: (_doc_hash(d) % 100, d))}
        out |= chosen
    return out | doc_test_doc_ids(corpus_rows)


# --- corpus -> code completion examples ------------------------------------------------------------------
def _python_functions(text: str, max_body_lines: int) -> list[tuple[str, str]]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.split("\n")
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.body:
            continue
        first = node.body[0]
        has_doc = (isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant)
                   and isinstance(first.value.value, str))
        head_end = first.end_lineno if has_doc else node.body[0].lineno - 1
        if has_doc and len(node.body) == 1:
            continue
        start = node.lineno - 1 - len(node.decorator_list)
        body = lines[head_end:node.end_lineno]
        if not body or len(body) > max_body_lines:
            continue
        indent = len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())
        head = [line[indent:] for line in lines[start:head_end]]
        body = [line[indent:] if line[:indent].strip() == "" else line for line in body]
        out.append(("\n".join(head) + "\n", "\n".join(body) + "\n"))
    return out


def _brace_functions(text: str, max_body_lines: int) -> list[tuple[str, str]]:
    """Functions in brace languages: a signature line ending in '{' and the body up to its matching brace."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _FUNC_HINT.match(line) and _BODY_START.search(line) and not line.lstrip().startswith(("if", "for", "while",
                                                                                                  "switch", "}")):
            depth, j = line.count("{") - line.count("}"), i + 1
            while j < len(lines) and depth > 0 and j - i <= max_body_lines + 1:
                depth += lines[j].count("{") - lines[j].count("}")
                j += 1
            if depth == 0 and 1 < j - i <= max_body_lines + 1:
                k = i
                while k > 0 and lines[k - 1].lstrip().startswith(("//", "///", "/*", "*")) and i - k < 8:
                    k -= 1
                indent = len(line) - len(line.lstrip())
                head = [x[indent:] for x in lines[k:i + 1]]
                body = [x[indent:] if x[:indent].strip() == "" else x for x in lines[i + 1:j]]
                out.append(("\n".join(head) + "\n", "\n".join(body) + "\n"))
                i = j
                continue
        i += 1
    return out


def corpus_examples(corpus_rows: Iterable[dict], *, max_per_doc: int = 8, max_body_lines: int = 16,
                    max_answer_chars: int = 600,
                    validation_percent: int = CORPUS_VALIDATION_PERCENT) -> list[dict]:
    """Code-completion examples ("codegen"): prompt = signature (+ docstring/comments), answer = body."""
    out, seen = [], set()
    corpus_rows = list(corpus_rows)
    heldout = heldout_doc_ids(corpus_rows, validation_percent)
    for doc in corpus_rows:
        lang = doc["language"]
        pairs = (_python_functions if lang == "python" else _brace_functions)(doc["text"], max_body_lines)
        pairs = [(h, b) for h, b in pairs if b.strip() and len(b) <= max_answer_chars and len(h) <= 800]
        pairs.sort(key=lambda p: hashlib.sha1((doc["doc_id"] + p[0]).encode()).hexdigest())
        split = "validation" if doc["doc_id"] in heldout else "train"
        for head, body in pairs[:max_per_doc]:
            example_id = "corpus-" + hashlib.sha1((doc["doc_id"] + head).encode()).hexdigest()[:14]
            if example_id in seen:  # the same signature twice in one file (overloads, nested helpers)
                continue
            seen.add(example_id)
            out.append({"task_type": "codegen", "language": lang,
                        "prompt": f"Complete this {lang} function.\n{head}", "answer": body,
                        "source_asset": "code_corpus", "split": split, "example_id": example_id,
                        "edit_tags": [], "tool_calls": [], "stage_hint": 0})
    return out


def corpus_chunks(corpus_rows: Iterable[dict], *, max_per_doc: int = 4, max_answer_chars: int = 600,
                  context_lines: int = 3, validation_percent: int = CORPUS_VALIDATION_PERCENT) -> list[dict]:
    """File-continuation examples ("codegen"): the answer is a run of whole lines of the file (at most
    max_answer_chars), the prompt the lines just before it. Function bodies alone leave out most of a file
    (imports, declarations, comments, templates) and most of some languages (C++ headers hold few
    functions the brace matcher finds), which is what bits per byte of held-out files measures."""
    if max_per_doc <= 0:
        return []
    out = []
    corpus_rows = list(corpus_rows)
    heldout = heldout_doc_ids(corpus_rows, validation_percent)
    for doc in corpus_rows:
        lines = doc["text"].splitlines(keepends=True)
        chunks, start = [], 0
        while start < len(lines):
            end, size = start, 0
            while end < len(lines) and (end == start or size + len(lines[end]) <= max_answer_chars):
                size += len(lines[end])
                end += 1
            if size <= max_answer_chars and "".join(lines[start:end]).strip():
                chunks.append((start, end))
            start = end
        # spread the kept chunks over the file, so a capped file still shows its start, middle and end
        step = max(1, len(chunks) / max_per_doc)
        picked = sorted({chunks[int(i * step)] for i in range(min(max_per_doc, len(chunks)))})
        split = "validation" if doc["doc_id"] in heldout else "train"
        lang = doc["language"]
        for start, end in picked:
            context = "".join(lines[max(0, start - context_lines):start])
            out.append({"task_type": "codegen", "language": lang,
                        "prompt": f"Continue this {lang} file.\n{context}", "answer": "".join(lines[start:end]),
                        "source_asset": "code_corpus", "split": split,
                        "example_id": f"chunk-{hashlib.sha1(doc['doc_id'].encode()).hexdigest()[:12]}-{start}",
                        "edit_tags": [], "tool_calls": [], "stage_hint": 0})
    return out


def synthetic_examples(task_rows: Iterable[dict]) -> list[dict]:
    out = []
    for t in task_rows:
        tags = list(t.get("edit_tags") or [])
        if tags:  # the generator tags lines of the program; the schema tags lines of the prompt
            offset = t["prompt"][:t["prompt"].index(t["program"])].count("\n")
            n_lines = t["prompt"].count("\n") + 1
            tags = [0] * offset + tags + [0] * max(0, n_lines - offset - len(tags))
            tags = tags[:n_lines]
        out.append({"task_type": t["task_type"], "language": t["language"], "prompt": t["prompt"],
                    "answer": t["answer"], "source_asset": "synthetic_tasks", "split": t["split"],
                    "example_id": t["task_id"], "edit_tags": tags, "tool_calls": [],
                    "stage_hint": int(t.get("stage") or 0)})
    return out


def external_examples(table_name: str, rows: Iterable[dict]) -> list[dict]:
    """Rows of another task asset that already follow the TrainingExample schema."""
    out = []
    for i, r in enumerate(rows):
        if str(r.get("kept", True)).lower() in ("false", "0"):  # a task asset's own rejected rows
            continue
        calls, tags = r.get("tool_calls") or [], r.get("edit_tags") or []
        if isinstance(calls, str):  # some task assets store these lists as JSON text
            calls = json.loads(calls) if calls.strip() else []
        if isinstance(tags, str):
            tags = json.loads(tags) if tags.strip() else []
        out.append({"task_type": r.get("task_type"), "language": r.get("language"), "prompt": r.get("prompt"),
                    "answer": r.get("answer"), "source_asset": r.get("source_asset") or table_name,
                    "split": r.get("split") or "train",
                    "example_id": r.get("example_id") or f"{table_name}-{i}",
                    "edit_tags": list(tags), "tool_calls": calls,
                    "stage_hint": int(r.get("stage") or 0)})
    return out


def build_training_examples(candidates: list[dict]) -> tuple[list[dict], list[dict]]:
    """Validate candidates against TrainingExample; returns (rows with stage, rejected rows with reason)."""
    rows, rejected, seen = [], [], set()
    for i, c in enumerate(candidates):
        where = f"{c.get('source_asset')} row {i} ({c.get('example_id')})"
        try:
            for name in ("prompt", "answer"):
                if not isinstance(c.get(name), str) or not c[name].strip():
                    raise ValueError(f"empty {name}")
            ex = TrainingExample(task_type=c["task_type"], language=c["language"], prompt=c["prompt"],
                                 answer=c["answer"], source_asset=c["source_asset"], split=c["split"],
                                 example_id=c["example_id"], edit_tags=[int(x) for x in c["edit_tags"]],
                                 tool_calls=list(c["tool_calls"]))
            if ex.example_id in seen:
                raise ValueError("duplicate example_id")
            stage = stage_of(ex.task_type, ex.answer, c.get("stage_hint"))
        except (ValueError, TypeError, KeyError) as exc:
            rejected.append({**{k: c.get(k) for k in ("example_id", "source_asset", "task_type", "language")},
                             "reason": f"{where}: {exc}"})
            continue
        seen.add(ex.example_id)
        row = ex.to_dict()
        row["tool_calls"] = json.dumps(row["tool_calls"])
        row["stage"] = stage
        rows.append(row)
    return rows, rejected


# --- shards ----------------------------------------------------------------------------------------------
def balance_languages(rows: list[dict], max_per_language: int, seed: int = 0) -> list[dict]:
    """At most max_per_language rows per (language, split), chosen by a seeded hash (0 = no cap)."""
    if max_per_language <= 0:
        return list(rows)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["language"], r["split"]), []).append(r)
    out = []
    for key in sorted(groups):
        ranked = sorted(groups[key], key=lambda r: hashlib.sha1(f"{seed}:{r['example_id']}".encode()).hexdigest())
        out += ranked[:max_per_language]
    return out


def token_edit_tags(tokenizer, prompt: str, prompt_ids: list[int], line_tags: list[int], total_len: int) -> list[int]:
    """Per-token tags: the prompt line's tag (0/1) on prompt tokens, -1 on <|answer|> and answer tokens.

    Empty when the token pieces do not spell the prompt exactly (a multi-byte character split
    across tokens), since then the alignment would be a guess."""
    text_ids = prompt_ids[:-1]  # the last prompt id is <|answer|>
    pieces = [tokenizer.decode([t]) for t in text_ids]
    if "".join(pieces) != prompt:
        return []
    line_of_char = []
    for n, line in enumerate(prompt.split("\n")):
        line_of_char += [n] * (len(line) + 1)
    tags, pos = [], 0
    for piece in pieces:
        # a token that starts with the newline ending a line belongs to the next line's indentation
        start = pos + (1 if piece.startswith("\n") and len(piece) > 1 else 0)
        line = line_of_char[min(start, len(line_of_char) - 1)] if line_of_char else 0
        tags.append(int(line_tags[line]) if line < len(line_tags) else 0)
        pos += len(piece)
    return tags + [-1] * (total_len - len(tags))


def tokenize_examples(rows: list[dict], tokenizer, max_seq_len: int) -> tuple[list[dict], list[dict]]:
    """Shard rows (SHARD_COLUMNS) and the examples dropped for being longer than max_seq_len tokens."""
    from model.vocab import TOOLS, tool_id

    shard, too_long = [], []
    for r in rows:
        ids, prompt_len = tokenizer.encode_example(r["prompt"], r["answer"])
        if len(ids) > max_seq_len:
            too_long.append({"example_id": r["example_id"], "tokens": len(ids),
                             "reason": f"{len(ids)} tokens > max_seq_len {max_seq_len}"})
            continue
        tags = list(r.get("edit_tags") or [])
        token_tags = token_edit_tags(tokenizer, r["prompt"], ids[:prompt_len], tags, len(ids)) if tags else []
        calls = r.get("tool_calls") or "[]"
        calls = json.loads(calls) if isinstance(calls, str) else calls
        tool = calls[0].get("tool") if calls and isinstance(calls[0], dict) else None
        shard.append({"input_ids": ids, "prompt_len": prompt_len, "language": r["language"],
                      "task_type": r["task_type"], "edit_tags": token_tags,
                      "tool_label": tool_id(tool) if tool in TOOLS else -1, "split": r["split"],
                      "example_id": r["example_id"]})
    return shard, too_long


def shard_table(shard_rows: list[dict]):
    """The pyarrow table with the exact column types model/data.py and `datasets` expect."""
    import pyarrow as pa

    schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("prompt_len", pa.int32()), ("language", pa.string()),
                        ("task_type", pa.string()), ("edit_tags", pa.list_(pa.int8())), ("tool_label", pa.int32()),
                        ("split", pa.string()), ("example_id", pa.string())])
    return pa.Table.from_pylist(shard_rows, schema=schema)


def check_vocab() -> None:
    """The datagen contract and the model's closed vocabularies must agree."""
    from model.vocab import LANGUAGES as M_LANGUAGES, TASK_TYPES as M_TASKS

    if tuple(M_LANGUAGES) != tuple(LANGUAGES) or tuple(M_TASKS) != tuple(TASK_TYPES):
        raise RuntimeError("datagen/schema.py and model/vocab.py disagree on LANGUAGES or TASK_TYPES")
    assert set(SPLITS) >= {"train", "validation", "test"}
