"""pass@k is the unbiased estimator."""

import pytest

from evals.lcb.metrics import mean_pass_at_k, pass_at_k


def test_pass_at_k_is_the_unbiased_estimator():
    from math import comb

    for n, c, k in [(10, 3, 1), (10, 3, 5), (10, 0, 5), (5, 5, 5), (20, 7, 10)]:
        exact = 1.0 if n - c < k else 1 - comb(n - c, k) / comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact)
    assert mean_pass_at_k([[True, False], [False, False]], 1) == 0.25
    assert mean_pass_at_k([[True, False]], 5) is None
