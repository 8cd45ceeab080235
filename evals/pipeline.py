"""The benchmark report without Dagster: every model on every benchmark, appended to the DuckDB history,
and the regression findings of the newest report against the one before it."""

from __future__ import annotations

import datetime as dt
import time

from evals import report as rp
from evals.evaluate import Candidate, EvalSettings, evaluate_candidate, load_suite

MODELS = ("hrm", "baseline", "hrm-int8", "hrm-nf4")


def load_candidate(warehouse, name: str) -> Candidate:
    """A benchmark Candidate for "hrm", "baseline", "hrm-int8" or "hrm-nf4" (the latest published checkpoint)."""
    from model.checkpoint import load_checkpoint

    base, _, quant = name.partition("-")
    source = warehouse.latest_checkpoint(f"{base}_checkpoint")
    model, tok = load_checkpoint(source["checkpoint_dir"], quantization=quant or None)
    return Candidate(name, model, tok, quant or "none", source["weights_sha256"][:12])


def build_report(models: list[str], settings: EvalSettings, warehouse, sandbox, log=None) -> dict:
    """Evaluate every model, append the rows to the history, and return the report with its trend."""
    suite = load_suite(warehouse, settings)
    report_id, created = rp.new_report_id(), dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    version = rp.code_version()
    rows, timings = [], {}
    for name in models:
        t0 = time.monotonic()
        candidate = load_candidate(warehouse, name)
        results = evaluate_candidate(candidate, suite, sandbox, settings, log=log)
        rows += rp.make_rows(report_id, created, name, candidate.checkpoint_hash, candidate.quantization, results,
                             version)
        timings[name] = round(time.monotonic() - t0, 1)
    db = warehouse.history_db()
    previous_ids = rp.report_ids(db)
    rp.append_history(db, rows)
    previous = rp.load_report(db, previous_ids[-1]) if previous_ids else []
    warehouse.write_table("benchmark_report", [{**r.to_dict()} for r in rows])
    return {"report_id": report_id, "rows": rows, "previous": previous,
            "previous_report_id": previous_ids[-1] if previous_ids else None, "models": list(models),
            "notes": suite.notes, "timings_s": timings,
            "markdown": rp.report_markdown(rows, previous, list(models))}


def regression_findings(warehouse, thresholds_spec: str) -> dict:
    """The newest report vs the one before it, with per-metric thresholds (see evals.report)."""
    db = warehouse.history_db()
    ids = rp.report_ids(db)
    if not ids:
        return {"report_id": None, "previous_report_id": None, "regressions": []}
    current = rp.load_report(db, ids[-1])
    previous = rp.load_report(db, ids[-2]) if len(ids) > 1 else []
    return {"report_id": ids[-1], "previous_report_id": ids[-2] if len(ids) > 1 else None,
            "regressions": rp.regressions(current, previous, rp.parse_thresholds(thresholds_spec))}
