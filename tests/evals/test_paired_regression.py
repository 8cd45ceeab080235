"""The paired regression check through the real DuckDB history: a planted significant drop fails and names
the problems that flipped; noise (flips both ways, or a small net drop bigger than the old threshold) passes."""

import datetime as dt

import pytest

from evals import report as rp
from evals import stats
from evals.pipeline import regression_findings
from resources.warehouse import Warehouse

PROBLEMS = [f"task/{i:02d}" for i in range(30)]


def _write(db, report_id, minute, passing, extra=(), samples=1, ids=PROBLEMS):
    """One hrm report: humaneval pass@1 over `ids` (those in `passing` pass every sample) and `extra` rows."""
    problems = [stats.problem(p, p in passing, "failed", s) for p in ids for s in range(samples)]
    results = [stats.problem_rate_result("humaneval", "pass@1", problems, resamples=200), *extra]
    rows = rp.make_rows(report_id, dt.datetime(2026, 1, 1, 0, minute), "hrm", "h", "none", results, "v")
    rp.append_history(db, rows, rp.problem_rows(report_id, "hrm", results))


def _history(tmp_path, before, after, **kw):
    wh = Warehouse(root=str(tmp_path))
    _write(wh.history_db(), "r1", 0, before, **kw)
    _write(wh.history_db(), "r2", 1, after, **kw)
    return wh


def test_a_planted_significant_drop_fails_and_names_the_flipped_problems(tmp_path):
    before = set(PROBLEMS[:20])
    flipped = PROBLEMS[:12]
    wh = _history(tmp_path, before, before - set(flipped))
    found = regression_findings(wh, "default=0.05")
    assert (found["report_id"], found["previous_report_id"]) == ("r2", "r1")
    [finding] = found["regressions"]
    assert finding["test"] == "paired" and finding["worse_problems"] == flipped
    assert (finding["worse"], finding["better"], finding["paired_problems"]) == (12, 0, 30)
    assert finding["p_value"] == pytest.approx(0.5 ** 12)
    assert "task/00" in rp.describe(finding) and "12 problems worse" in rp.describe(finding)


def test_noise_passes_flips_both_ways(tmp_path):
    before = set(PROBLEMS[:15])
    after = (before - set(PROBLEMS[:3])) | set(PROBLEMS[20:23])  # 3 pass->fail, 3 fail->pass
    assert regression_findings(_history(tmp_path, before, after), "default=0.05")["regressions"] == []


def test_a_small_net_drop_passes_though_it_exceeds_the_old_threshold(tmp_path):
    before = set(PROBLEMS[:15])
    after = (before - set(PROBLEMS[:4])) | {PROBLEMS[20]}  # 4 worse, 1 better: pass@1 0.50 -> 0.40
    wh = _history(tmp_path, before, after)
    assert regression_findings(wh, "default=0.05")["regressions"] == []  # p = 6/32
    # the absolute threshold alone would have called it a regression; a looser alpha does too
    db = wh.history_db()
    assert rp.regressions(rp.load_report(db, "r2"), rp.load_report(db, "r1"), {"default": 0.05})[0]["test"] == "threshold"
    [finding] = regression_findings(wh, "default=0.05", alpha=0.2)["regressions"]
    assert finding["p_value"] == pytest.approx(6 / 32) and finding["worse_problems"] == PROBLEMS[:4]


def test_several_samples_pair_each_problems_pass_fraction(tmp_path):
    before = set(PROBLEMS[:20])
    wh = _history(tmp_path, before, before - set(PROBLEMS[:10]), samples=5)
    [finding] = regression_findings(wh, "default=0.05")["regressions"]
    assert finding["paired_problems"] == 30 and finding["worse"] == 10  # problems, not 50 samples
    assert stats.paired_drop_test(
        [stats.problem("a", True, sample=0), stats.problem("a", True, sample=1)],
        [stats.problem("a", True, sample=0), stats.problem("a", False, sample=1)])["worse"] == ["a"]


def test_rows_without_per_problem_results_keep_thresholds_and_breakdowns_are_skipped(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    same = set(PROBLEMS[:15])
    for rid, minute, bpb, sub in (("r1", 0, 2.0, 0.9), ("r2", 1, 2.2, 0.1)):
        extra = [{"benchmark": "code-bpb", "metric": "bits_per_byte_python", "value": bpb, "n": 8,
                  "ci_low": bpb - 0.1, "ci_high": bpb + 0.1},
                 {"benchmark": "humaneval/hard", "metric": "pass@1", "value": sub, "n": 3, "ci_low": 0.0, "ci_high": 1.0},
                 {"benchmark": "generation", "metric": "tokens_per_s", "value": 100.0 / (minute + 1), "n": 10}]
        _write(wh.history_db(), rid, minute, same, extra=extra)
    found = regression_findings(wh, "default=0.05")["regressions"]
    assert [(f["benchmark"], f["test"]) for f in found] == [("code-bpb", "threshold")]
    assert regression_findings(wh, "default=0.05,bits_per_byte_python=0.5")["regressions"] == []


def test_per_problem_results_are_stored_with_the_report(tmp_path):
    db = tmp_path / "h.duckdb"
    problems = [stats.problem("a", True), stats.problem("b", False, "timeout")]
    results = [stats.problem_rate_result("lcb", "pass@1", problems, resamples=50),
               {"benchmark": "generation", "metric": "tokens_per_s", "value": 3.0, "n": 5}]
    rows = rp.make_rows("r1", dt.datetime(2026, 1, 1), "hrm", "h", "none", results, "v")
    rp.append_history(db, rows, rp.problem_rows("r1", "hrm", results))
    stored = rp.load_problems(db, "r1")
    assert list(stored) == [("hrm", "lcb", "pass@1")]
    assert stored[("hrm", "lcb", "pass@1")] == [{"problem": "a", "sample": 0, "passed": True, "error_kind": ""},
                                                {"problem": "b", "sample": 0, "passed": False, "error_kind": "timeout"}]
    with pytest.raises(ValueError, match="without their report rows"):
        rp.append_history(db, rp.make_rows("r2", dt.datetime(2026, 1, 2), "hrm", "h", "none", results, "v"),
                          rp.problem_rows("r3", "hrm", results))
    assert rp.report_ids(db) == ["r1"]  # nothing of the refused report was written
    with pytest.raises(ValueError, match="n = 3 but 2 problems"):
        rp.make_rows("r4", dt.datetime(2026, 1, 3), "hrm", "h", "none", [{**results[0], "n": 3}], "v")


def test_reports_on_disjoint_problems_fall_back_to_the_threshold(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    _write(wh.history_db(), "r1", 0, set(PROBLEMS))  # all pass
    _write(wh.history_db(), "r2", 1, set(), ids=[f"other/{i:02d}" for i in range(30)])  # none shared, all fail
    [finding] = regression_findings(wh, "default=0.05")["regressions"]
    assert finding["test"] == "threshold" and finding["note"] == "the two reports share no problem"
