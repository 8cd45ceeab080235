"""Held-out score against training FLOPs (evals/curves.py): points come from the published phases, the
matched table pairs checkpoints of nearest FLOPs, and the plot is a real PNG."""

import pytest

from evals import curves
from evals.report import rate_result


def _published(flops):
    return {"checkpoint_dir": f"/ck/phase-{len(flops)}",
            "phases": [{"stage": str(i + 1), "dir": f"/ck/phase-{i + 1}", "train_flops": f, "tokens_seen": 1000 * (i + 1)}
                       for i, f in enumerate(flops)]}


def _point(model, phase, flops, exec_rate, bpb):
    p = curves.CurvePoint(model, phase, f"/{model}/{phase}", flops, 100)
    p.results = [rate_result("synthetic-instances", "exec_exact_match", exec_rate, 120),
                 rate_result("synthetic-instances", "repair_fix_rate", exec_rate / 2, 110),
                 {"benchmark": "code-bpb", "metric": "bits_per_byte_python", "value": bpb, "n": 5},
                 {"benchmark": "code-bpb", "metric": "bits_per_byte_go", "value": bpb + 1, "n": 5},
                 {"benchmark": "code-bpb", "metric": "gzip_bits_per_byte_go", "value": 9.0, "n": 5}]
    return p


def test_points_follow_the_published_phases_and_say_when_flops_are_missing():
    points, why = curves.phase_points("hrm", _published([1e9, 2e9, 3e9]))
    assert why is None and [(p.phase, p.train_flops, p.checkpoint_dir) for p in points] == [
        ("1", 1e9, "/ck/phase-1"), ("2", 2e9, "/ck/phase-2"), ("3", 3e9, "/ck/phase-3")]
    old = _published([1e9, 2e9])
    del old["phases"][1]["train_flops"]
    points, why = curves.phase_points("baseline", old)
    assert points == [] and "no training FLOPs" in why
    assert curves.phase_points("hrm", {"checkpoint_dir": "/x"})[1]


def test_matched_table_pairs_each_baseline_point_with_the_nearest_hrm_flops():
    hrm = [_point("hrm", "1", 3e9, 0.1, 4.0), _point("hrm", "2", 6e9, 0.3, 3.5), _point("hrm", "3", 9e9, 0.6, 3.0)]
    base = [_point("baseline", "1", 1e9, 0.05, 4.2), _point("baseline", "3", 5e9, 0.2, 3.6)]
    md = curves.curve_markdown(hrm + base)
    matched = md.split("matched training FLOPs")[1]
    lines = [line for line in matched.splitlines() if line.startswith("| 1 ") or line.startswith("| 3 ")]
    assert lines[0].startswith("| 1 | 1 | 1e+09 / 3e+09 | 3.00 |")  # baseline phase 1 <-> HRM phase 1
    assert lines[1].startswith("| 3 | 2 | 5e+09 / 6e+09 | 1.20 |")  # baseline phase 3 <-> HRM phase 2
    assert "0.2 [" in lines[1] and "0.3 [" in lines[1]  # both scores with their intervals
    # the mean code-bpb over languages ignores the compressor rows
    assert hrm[0].mean_bpb() == 4.5
    by_flops = md.split("matched")[0]
    assert by_flops.index("| baseline | 1 |") < by_flops.index("| hrm | 1 |") < by_flops.index("| baseline | 3 |")


@pytest.mark.slow
def test_curve_png_is_a_png_with_every_panel():
    points = [_point("hrm", "1", 3e9, 0.1, 4.0), _point("hrm", "2", 6e9, 0.3, 3.5),
              _point("baseline", "1", 1e9, 0.05, 4.2)]
    png = curves.curve_png(points, [{"metric": "gzip_bits_per_byte_go", "value": 3.9}])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert curves.curve_markdown([]) == ""
