"""Per-problem statistics of the report: pass rates with a bootstrap interval over problems, and the paired
test that compares two reports problem by problem.

A per-problem result is {"problem", "sample", "passed", "error_kind"} (error_kind "" when passed). A rate
row's value is the mean over problems of each problem's unbiased pass@k estimate (pass@1 = its pass
fraction); its interval resamples problems (percentile bootstrap). When every problem has the same score the
bootstrap has zero width, so the Wilson interval over problems is used instead.
"""

from __future__ import annotations

from collections import defaultdict

from evals.lcb.metrics import pass_at_k
from evals.report import wilson_interval

PROBLEM_KEYS = ("problem", "sample", "passed", "error_kind")


def problem(problem_id: str, passed: bool, error_kind: str = "", sample: int = 0) -> dict:
    """One per-problem result; a failure with no kind the grader can tell is "failed"."""
    return {"problem": str(problem_id), "sample": int(sample), "passed": bool(passed),
            "error_kind": "" if passed else (error_kind or "failed")}


def by_problem(problems: list[dict]) -> dict[str, list[bool]]:
    """problem id -> its samples' outcomes, in sample order."""
    out: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for p in problems:
        out[p["problem"]].append((p["sample"], bool(p["passed"])))
    return {pid: [ok for _, ok in sorted(samples)] for pid, samples in out.items()}


def problem_scores(problems: list[dict], k: int = 1) -> dict[str, float]:
    """Each problem's unbiased pass@k estimate (needs at least k samples per problem)."""
    out = {}
    for pid, graded in by_problem(problems).items():
        if len(graded) < k:
            raise ValueError(f"problem {pid}: {len(graded)} samples, pass@{k} needs at least {k}")
        out[pid] = pass_at_k(len(graded), sum(graded), k)
    return out


def bootstrap_mean_interval(values: list[float], resamples: int = 2000, seed: int = 0,
                            level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of `values` (resampled with replacement)."""
    import numpy as np

    if not values:
        return 0.0, 1.0
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(max(1, resamples), len(data)))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def rate_interval(scores: list[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The 95 % interval of the mean per-problem score: bootstrap over problems, Wilson when every problem
    has the same score (there the bootstrap would claim certainty)."""
    if not scores:
        return 0.0, 1.0
    value = sum(scores) / len(scores)
    if min(scores) == max(scores):
        return wilson_interval(value * len(scores), len(scores))
    low, high = bootstrap_mean_interval(scores, resamples, seed)
    return min(low, value), max(high, value)  # the percentile interval of a skewed mean can miss the mean


def problem_rate_result(benchmark: str, metric: str, problems: list[dict], *, k: int = 1, resamples: int = 2000,
                        seed: int = 0, keep_problems: bool = True) -> dict:
    """A report row for a pass rate: mean pass@k over problems, its bootstrap interval, n = problems, and
    (with keep_problems) the per-problem results under "problems"."""
    scores = list(problem_scores(problems, k).values())
    value = sum(scores) / len(scores) if scores else 0.0
    low, high = rate_interval(scores, resamples, seed)
    row = {"benchmark": benchmark, "metric": metric, "value": value, "n": len(scores), "ci_low": low, "ci_high": high}
    if keep_problems:
        row["problems"] = [{key: p[key] for key in PROBLEM_KEYS} for p in problems]
    return row


def breakdown_results(benchmark: str, metric: str, problems: list[dict], groups: dict[str, str], *, k: int = 1,
                      resamples: int = 2000, seed: int = 0) -> list[dict]:
    """Rows `<benchmark>/<group>` for each group of problems (problem id -> group, e.g. language or
    difficulty). They carry no per-problem results: the main row holds those, and the regression check
    tests the main row only."""
    rows = []
    for name in sorted(set(groups.values())):
        picked = [p for p in problems if groups.get(p["problem"]) == name]
        if picked:
            rows.append(problem_rate_result(f"{benchmark}/{name}", metric, picked, k=k, resamples=resamples,
                                            seed=seed, keep_problems=False))
    return rows


# --- the paired comparison of two reports ---------------------------------------------------------------
def paired_drop_test(before: list[dict], after: list[dict]) -> dict:
    """One-sided exact McNemar (sign) test for a drop, pairing problems by id.

    Each problem's pass fraction over its samples is compared: `worse` problems dropped, `better` ones rose,
    the rest tie. Under no change a discordant problem is equally likely to go either way, so the p-value is
    P(X >= worse) for X ~ Binomial(worse + better, 1/2). With one sample per problem this is exactly
    McNemar's test on the pass/fail table. One-sided: the check only asks whether the model got worse."""
    from scipy.stats import binom

    old, new = by_problem(before), by_problem(after)
    shared = sorted(set(old) & set(new))
    worse, better = [], []
    for pid in shared:
        a, b = sum(old[pid]) / len(old[pid]), sum(new[pid]) / len(new[pid])
        if b < a:
            worse.append(pid)
        elif b > a:
            better.append(pid)
    discordant = len(worse) + len(better)
    p_value = float(binom.sf(len(worse) - 1, discordant, 0.5)) if discordant else 1.0
    return {"paired": len(shared), "worse": worse, "better": better, "p_value": p_value}


def paired_sign_test(base: dict[str, float], new: dict[str, float], *, higher_is_better: bool = True) -> dict:
    """One-sided exact sign test that `new` beats `base`, pairing items (problems, files) by id: `better`
    items improved, `worse` ones got worse, ties drop out; p = P(X >= better) for X ~ Binomial(better +
    worse, 1/2). With pass/fail scores it is McNemar's test, as paired_drop_test with the roles swapped."""
    from scipy.stats import binom

    shared = sorted(set(base) & set(new))
    sign = 1.0 if higher_is_better else -1.0
    better = [i for i in shared if sign * (new[i] - base[i]) > 0]
    worse = [i for i in shared if sign * (new[i] - base[i]) < 0]
    discordant = len(better) + len(worse)
    p_value = float(binom.sf(len(better) - 1, discordant, 0.5)) if discordant else 1.0
    return {"paired": len(shared), "better": better, "worse": worse, "p_value": p_value}


def paired_gain_test(before: list[dict], after: list[dict]) -> dict:
    """paired_sign_test for a gain on per-problem results: each problem's pass fraction over its samples."""
    return paired_sign_test(problem_scores(before), problem_scores(after))


def paired_comparisons(results: dict[str, list[dict]], pairs, alpha: float = 0.05) -> list[dict]:
    """For each (model, against) of `pairs` whose results are both in `results`: every metric both hold
    per-problem results for, compared problem by problem (paired_gain_test); `significant` at level alpha."""
    out = []
    for model, against in pairs:
        if model not in results or against not in results:
            continue
        base = {(r["benchmark"], r["metric"]): r for r in results[against] if r.get("problems")}
        for r in results[model]:
            other = base.get((r["benchmark"], r["metric"]))
            if not r.get("problems") or other is None:
                continue
            t = paired_gain_test(other["problems"], r["problems"])
            out.append({"model": model, "against": against, "benchmark": r["benchmark"], "metric": r["metric"],
                        "value": r["value"], "against_value": other["value"], "paired": t["paired"],
                        "better": len(t["better"]), "worse": len(t["worse"]), "p_value": t["p_value"],
                        "significant": t["p_value"] < alpha})
    return out


def comparisons_markdown(rows: list[dict]) -> str:
    if not rows:
        return ""
    lines = ["### Paired comparisons (one-sided sign test for a gain, per problem)", "",
             "| model | vs | benchmark | metric | value | vs value | better / worse of paired | p |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in rows:
        lines.append(f"| {c['model']} | {c['against']} | {c['benchmark']} | {c['metric']} | {c['value']:.3f} | "
                     f"{c['against_value']:.3f} | {c['better']} / {c['worse']} of {c['paired']} | {c['p_value']:.3g}"
                     f"{' *' if c['significant'] else ''} |")
    return "\n".join(lines) + "\n"
