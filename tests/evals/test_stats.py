"""Per-problem rates: the unbiased pass@k mean over problems, a seeded bootstrap interval over problems
(Wilson when every problem scores the same), n = problems, and breakdown rows."""

import pytest

from evals import stats
from evals.lcb.metrics import pass_at_k


def _samples(passes: dict[str, int], n: int) -> list[dict]:
    return [stats.problem(pid, s < c, "failed", s) for pid, c in passes.items() for s in range(n)]


def test_pass_at_k_rows_average_the_unbiased_estimator_over_problems():
    problems = _samples({"a": 5, "b": 1, "c": 0, "d": 2}, 5)
    row = stats.problem_rate_result("humaneval", "pass@5", problems, k=5)
    assert row["n"] == 4 and row["value"] == pytest.approx(0.75)  # a, b and d pass with 5 of 5 samples
    row1 = stats.problem_rate_result("humaneval", "pass@1", problems, k=1)
    assert row1["value"] == pytest.approx((1 + 0.2 + 0 + 0.4) / 4)
    assert row1["ci_low"] < row1["value"] < row1["ci_high"]
    assert stats.problem_scores(problems, 2)["b"] == pytest.approx(pass_at_k(5, 1, 2))
    assert len(row1["problems"]) == 20 and row1["problems"][5] == {"problem": "b", "sample": 0, "passed": True,
                                                                   "error_kind": ""}
    with pytest.raises(ValueError, match="pass@5 needs"):
        stats.problem_rate_result("humaneval", "pass@5", _samples({"a": 1}, 2), k=5)


def test_the_interval_resamples_problems_and_is_seeded():
    problems = _samples({f"p{i}": int(i % 3 == 0) for i in range(30)}, 1)
    a = stats.problem_rate_result("x", "pass@1", problems, resamples=500, seed=1)
    b = stats.problem_rate_result("x", "pass@1", problems, resamples=500, seed=1)
    assert (a["ci_low"], a["ci_high"]) == (b["ci_low"], b["ci_high"])
    # p = 1/3 over 30 problems: the normal approximation's half width is ~0.17
    assert 0.12 < (a["ci_high"] - a["ci_low"]) / 2 < 0.22
    many = stats.problem_rate_result("x", "pass@1", _samples({f"p{i}": 1 for i in range(30)}, 5), resamples=500)
    few = stats.problem_rate_result("x", "pass@1", _samples({f"p{i}": 1 for i in range(30)}, 1), resamples=500)
    assert many["n"] == few["n"] == 30  # samples do not count as problems


def test_all_equal_problems_get_a_wilson_interval_not_a_zero_width_one():
    row = stats.problem_rate_result("x", "pass@1", _samples({f"p{i}": 0 for i in range(10)}, 1))
    assert row["value"] == 0.0 and row["ci_low"] == 0.0 and 0.2 < row["ci_high"] < 0.35


def test_breakdown_rows_split_the_problems_and_carry_no_per_problem_results():
    problems = _samples({"py/a": 1, "py/b": 0, "go/c": 1}, 1)
    rows = stats.breakdown_results("polyglot-whole", "pass_rate_1", problems,
                                   {"py/a": "python", "py/b": "python", "go/c": "go"})
    assert [(r["benchmark"], r["n"], r["value"]) for r in rows] == [("polyglot-whole/go", 1, 1.0),
                                                                    ("polyglot-whole/python", 2, 0.5)]
    assert all("problems" not in r for r in rows)


def test_the_paired_test_is_the_exact_one_sided_mcnemar_test():
    before = [stats.problem(f"p{i}", True) for i in range(10)]
    after = [stats.problem(f"p{i}", i >= 3) for i in range(10)]
    t = stats.paired_drop_test(before, after)
    assert t["worse"] == ["p0", "p1", "p2"] and t["better"] == [] and t["p_value"] == pytest.approx(1 / 8)
    assert stats.paired_drop_test(before, before)["p_value"] == 1.0
    assert stats.paired_drop_test(after, before)["p_value"] == 1.0  # an improvement is no drop
