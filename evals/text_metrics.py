"""Text similarity against a human reference: ROUGE-L F1 (Lin, 2004), for generated commit messages and
documentation, and the report row that averages it with a bootstrap interval.

Tokens are lower-cased words and numbers; identifiers are split at `_` and camelCase humps, so `parse_args`,
`parseArgs` and "parse args" read alike. ROUGE-L is the longest common subsequence of the two token lists:
precision = LCS / candidate length, recall = LCS / reference length, F1 their harmonic mean (beta = 1). An
empty candidate or reference scores 0 (two empty texts also score 0: there is nothing to have matched).
"""

from __future__ import annotations

import re

from evals.stats import bootstrap_mean_interval, problem

_WORD = re.compile(r"[A-Za-z]+|\d+")
_HUMP = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
MAX_TOKENS = 2000  # the LCS is quadratic; longer texts are cut (a reference this long is rare)


def tokens(text: str) -> list[str]:
    out = []
    for word in _WORD.findall(text or ""):
        out += [p.lower() for p in _HUMP.findall(word)]
    return out[:MAX_TOKENS]


def lcs_length(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], prev + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(candidate: str, reference: str) -> dict[str, float]:
    """{"precision", "recall", "f1"} of ROUGE-L between the two texts."""
    c, r = tokens(candidate), tokens(reference)
    lcs = lcs_length(c, r) if c and r else 0
    if not lcs:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    p, rec = lcs / len(c), lcs / len(r)
    return {"precision": p, "recall": rec, "f1": 2 * p * rec / (p + rec)}


def rouge_l_result(benchmark: str, metric: str, scored: dict[str, float], resamples: int = 2000,
                   seed: int = 0) -> dict:
    """A report row: the mean of the per-item ROUGE-L F1 scores (item id -> score) with its bootstrap
    interval, and one per-problem result each (`passed` when the score is above one half)."""
    values = [scored[k] for k in sorted(scored)]
    mean = sum(values) / len(values) if values else 0.0
    low, high = bootstrap_mean_interval(values, resamples, seed)
    problems = [{**problem(k, scored[k] > 0.5, "low_overlap"), "score": round(scored[k], 4)} for k in sorted(scored)]
    return {"benchmark": benchmark, "metric": metric, "value": mean, "n": len(values),
            "ci_low": min(low, mean), "ci_high": max(high, mean), "problems": problems}
