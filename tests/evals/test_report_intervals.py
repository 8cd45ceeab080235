"""Every report row carries n and its 95 % interval; the history gains the interval columns in place; the
held-out inputs of the new benchmarks (synthetic splits, code files) are chosen as documented."""

import datetime as dt

import pytest

from evals import evaluate as ev
from evals import report as rp


def test_wilson_interval_known_values_and_width_at_the_default_size():
    assert rp.wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert rp.wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert rp.wilson_interval(10, 10)[1] == pytest.approx(1.0)
    low, high = rp.wilson_interval(60, 120)
    assert (high - low) / 2 < 0.10  # the default held-out size keeps the interval within +-10 points
    low, high = rp.wilson_interval(50, 100)
    assert (high - low) / 2 < 0.10
    assert rp.wilson_interval(0, 0) == (0.0, 1.0)
    for n in range(1, 300):  # rounding never leaves 0 or 1 outside its own interval
        for k in (0, n):
            low, high = rp.wilson_interval(k, n)
            assert low <= k / n <= high
    row = rp.rate_result("synthetic-instances", "exec_exact_match", 0.25, 40)
    assert row["ci_low"] < 0.25 < row["ci_high"] and row["n"] == 40


def test_rows_refuse_an_interval_that_misses_the_value_or_is_nan():
    at = dt.datetime(2026, 1, 1)
    good = {"benchmark": "b", "metric": "m", "value": 0.5, "n": 10, "ci_low": 0.2, "ci_high": 0.8}
    assert rp.make_rows("r", at, "hrm", "h", "none", [good], "v")[0].ci_high == 0.8
    for bad in ({"ci_low": 0.6}, {"ci_high": 0.4}, {"ci_low": float("nan")}, {"ci_high": None}):
        with pytest.raises(ValueError):
            rp.make_rows("r", at, "hrm", "h", "none", [{**good, **bad}], "v")
    no_interval = {"benchmark": "generation", "metric": "tokens_per_s", "value": 12.0, "n": 3}
    assert rp.make_rows("r", at, "hrm", "h", "none", [no_interval], "v")[0].ci_low is None


def test_a_history_written_before_intervals_gains_the_columns(tmp_path):
    import duckdb

    db = tmp_path / "h.duckdb"
    with duckdb.connect(str(db)) as con:  # the table as earlier versions created it
        con.execute("CREATE TABLE benchmark_history (report_id VARCHAR, created_at TIMESTAMP, model VARCHAR, "
                    "checkpoint_hash VARCHAR, quantization VARCHAR, benchmark VARCHAR, metric VARCHAR, "
                    "value DOUBLE, n INTEGER, code_version VARCHAR)")
        con.execute("INSERT INTO benchmark_history VALUES ('old', '2026-01-01 00:00:00', 'hrm', 'h', 'none', "
                    "'synthetic-heldout', 'exec_exact_match', 0.0, 12, 'v0')")
    rows = rp.make_rows("new", dt.datetime(2026, 1, 2), "hrm", "h", "none",
                        [rp.rate_result("synthetic-instances", "exec_exact_match", 0.5, 120)], "v1")
    rp.append_history(db, rows)
    assert rp.report_ids(db) == ["old", "new"]
    old, = rp.load_report(db, "old")
    new, = rp.load_report(db, "new")
    assert old.ci_low is None and old.value == 0.0
    assert (new.ci_low, new.ci_high) == pytest.approx(rp.wilson_interval(60, 120))
    md = rp.report_markdown([new], [old], ["hrm"])
    assert f"0.5 [{new.ci_low:.4g}, {new.ci_high:.4g}]" in md


def test_bits_per_byte_is_lower_is_better_in_the_regression_check():
    at = dt.datetime(2026, 1, 1)

    def report(rid, value):
        return rp.make_rows(rid, at, "hrm", "h", "none", [{"benchmark": "code-bpb", "metric": "bits_per_byte_python",
                                                           "value": value, "n": 5}], "v")

    thresholds = rp.parse_thresholds("default=0.05")
    assert rp.regressions(report("b", 3.2), report("a", 3.0), thresholds)
    assert rp.regressions(report("b", 2.5), report("a", 3.0), thresholds) == []


def _task(i, template, language="python", task_type="exec_predict"):
    return ev.EvalProblem(benchmark="synthetic", problem_id=f"{template}-{i}", language=language, prompt="p",
                          grading_mode="exec_output", metadata={"template": template, "task_type": task_type})


def test_a_capped_synthetic_split_keeps_every_template():
    problems = [_task(i, t) for t in ("arith", "collatz", "loop_sum") for i in range(20)]
    picked = ev.spread(problems, 6)
    assert sorted(p.metadata["template"] for p in picked) == ["arith"] * 2 + ["collatz"] * 2 + ["loop_sum"] * 2
    assert ev.spread(problems, 0) == problems and len(ev.spread(problems, 100)) == 60


def test_heldout_code_reads_only_heldout_files_cut_at_a_line_end():
    from datagen.curriculum import heldout_doc_ids

    text = "# é comment line\n" * 1000  # 18 bytes a line, a 2-byte character in each
    rows = [{"doc_id": f"{lang}{i}", "language": lang, "text": text} for lang in ("python", "go") for i in range(100)]
    held = heldout_doc_ids(rows)
    files = ev.heldout_code(rows, ev.EvalSettings(bpb_files_per_language=0, bpb_max_bytes=100))
    assert {f.doc_id for f in files} == held and {f.language for f in files} == {"python", "go"}
    assert len(held) > 4  # about 5 % of each language
    for f in files:
        assert f.text == "# é comment line\n" * 5  # 90 bytes: whole lines under the cap
    capped = ev.heldout_code(rows, ev.EvalSettings(bpb_files_per_language=1, bpb_max_bytes=0))
    assert len(capped) == 2 and all(f.text == text for f in capped)


def test_compressor_rows_name_each_language_and_hold_their_value():
    files = [ev.CodeFile("python", f"d{i}", "def f(x):\n    return x\n" * (10 + i)) for i in range(4)]
    files.append(ev.CodeFile("go", "g", "package main\n\nfunc main() {}\n" * 8))
    rows = {r["metric"]: r for r in ev.compressor_results(files, ev.EvalSettings())}
    assert set(rows) == {"gzip_bits_per_byte_python", "xz_bits_per_byte_python", "gzip_bits_per_byte_go",
                         "xz_bits_per_byte_go"}
    for r in rows.values():
        assert r["benchmark"] == "code-bpb" and r["ci_low"] <= r["value"] <= r["ci_high"]
    assert rows["gzip_bits_per_byte_python"]["n"] == 4
