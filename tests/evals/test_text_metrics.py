import pytest

from evals.report import make_rows
from evals.text_metrics import lcs_length, rouge_l, rouge_l_result, tokens


def test_tokens_split_identifiers_and_case():
    assert tokens("Fix parse_args in HTTPServer.parseURL (v2)") == \
        ["fix", "parse", "args", "in", "http", "server", "parse", "url", "v", "2"]


def test_lcs_is_a_subsequence_not_a_substring():
    assert lcs_length("a b c d e".split(), "a x c y e".split()) == 3
    assert lcs_length([], ["a"]) == 0


def test_rouge_l_known_values():
    assert rouge_l("fix the cache expiry", "fix the cache expiry")["f1"] == 1.0
    half = rouge_l("fix the cache", "fix the cache expiry bug now")  # lcs 3: p = 1, r = 0.5
    assert half["precision"] == 1.0 and half["recall"] == 0.5 and half["f1"] == pytest.approx(2 / 3)
    assert rouge_l("", "anything")["f1"] == 0.0 and rouge_l("", "")["f1"] == 0.0
    assert rouge_l("!!! ??? ...", "fix")["f1"] == 0.0  # punctuation is no words


def test_repeating_the_reference_words_does_not_reach_a_full_score():
    assert rouge_l("fix " * 50, "fix the cache")["f1"] < 0.1


def test_result_row_holds_its_interval_and_passes_make_rows():
    row = rouge_l_result("docs", "docstring_rouge_l", {"b": 0.2, "a": 1.0, "c": 0.6}, resamples=200)
    assert row["n"] == 3 and row["value"] == pytest.approx(0.6)
    assert row["ci_low"] <= row["value"] <= row["ci_high"]
    assert [p["passed"] for p in row["problems"]] == [True, False, True]
    import datetime
    assert make_rows("r", datetime.datetime.now(), "m", "h", "none", [row], "v")[0].n == 3
