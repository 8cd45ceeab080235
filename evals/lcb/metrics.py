"""Unbiased pass@k (Chen et al. 2021), averaged over problems as lcb_runner does."""

from __future__ import annotations

from collections import defaultdict


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k): the chance that at least one of k of the n samples is correct."""
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def mean_pass_at_k(graded_lists: list[list[bool]], k: int) -> float | None:
    """Mean pass@k over problems; None unless every problem has at least k samples (lcb_runner's rule)."""
    if not graded_lists or any(len(g) < k for g in graded_lists):
        return None
    return sum(pass_at_k(len(g), sum(map(bool, g)), k) for g in graded_lists) / len(graded_lists)


def summarise(questions: list[dict], ks=(1, 5), group_by=("difficulty", "platform", "testtype")) -> dict:
    """pass@k overall and per difficulty/platform/test type for per-question results with a `graded_list`."""
    graded = [q["graded_list"] for q in questions]
    summary = {f"pass@{k}": mean_pass_at_k(graded, k) for k in ks}
    summary["n_questions"] = len(questions)
    summary["n_generations"] = sum(len(g) for g in graded)
    for key in group_by:
        groups = defaultdict(list)
        for q in questions:
            if q.get(key):
                groups[q[key]].append(q["graded_list"])
        if groups:
            summary[f"by_{key}"] = {name: {"n": len(g), **{f"pass@{k}": mean_pass_at_k(g, k) for k in ks}}
                                    for name, g in sorted(groups.items())}
    return summary
