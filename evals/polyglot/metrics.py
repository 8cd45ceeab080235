"""Aider's Polyglot metrics over evaluator results, overall and per language.

pass_rate_i: % of evaluated exercises whose tests passed within i tries; percent_cases_well_formed:
% of evaluated exercises with no malformed answer. Exercises whose toolchain is missing
(`unsupported`) are counted but left out of the denominators.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from evals.polyglot.evaluate import STATUSES, ExerciseResult


def summarize(results: Iterable[ExerciseResult], tries: int = 2) -> dict:
    results = list(results)
    summary = _rates(results, tries)
    summary["languages"] = {lang: _rates([r for r in results if r.language == lang], tries)
                            for lang in sorted({r.language for r in results})}
    return summary


def _rates(results: list[ExerciseResult], tries: int) -> dict:
    counts = Counter(r.status for r in results)
    evaluated = [r for r in results if r.status != "unsupported"]
    n = len(evaluated)
    out = {"counts": {"total": len(results), **{s: counts.get(s, 0) for s in STATUSES}}, "evaluated": n}
    for i in range(1, tries + 1):
        passed = sum(1 for r in evaluated if r.passed_on_try and r.passed_on_try <= i)
        out[f"pass_num_{i}"] = passed
        out[f"pass_rate_{i}"] = round(100.0 * passed / n, 1) if n else 0.0
    malformed_cases = sum(1 for r in evaluated if "malformed" in r.tries)
    out["percent_cases_well_formed"] = round(100.0 * (1 - malformed_cases / n), 1) if n else 0.0
    out["seconds"] = round(sum(r.seconds for r in results), 1)
    out["cpu_s"] = round(sum(r.cpu_s for r in results), 1)
    return out


def failures(results: Iterable[ExerciseResult]) -> list[dict]:
    """Every exercise that did not pass, with its reason."""
    return [{"language": r.language, "exercise": r.exercise, "status": r.status, "reason": r.reason}
            for r in results if r.status != "pass"]
