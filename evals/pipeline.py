"""The benchmark report without Dagster: every model on every benchmark, appended to the DuckDB history,
HRM and the baseline against training FLOPs (evals/curves.py), and the regression findings of the newest
report against the one before it (paired per problem where both reports hold per-problem results)."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from evals import report as rp
from evals.curves import CURVE_MODELS, CurvePoint, curve_markdown, curve_png, phase_points
from evals.evaluate import (NEEDS_WEIGHTS, SYNTHETIC_BENCHMARKS, Candidate, EvalSettings, EvalSuite, evaluate_candidate,
                            load_suite)
from evals.stats import comparisons_markdown, paired_comparisons
from inference.specs import ModelSpec, is_spec, load_local, local_hash, parse_spec

MODELS = ("hrm", "hrm-rl", "baseline", "hrm-int8", "hrm-nf4")  # the default report
RL_MODEL = "hrm-rl"  # hrm_rl_checkpoint: HRM after RL from execution feedback
# (model, against): the report's paired comparisons of held-out per-problem results, when both are in it
PAIRED = (("hrm-rl", "hrm"),)
QAT_MODEL = "hrm-int8-qat"  # opt-in: needs HRM_QUANT_QAT_STEPS > 0
# models scored on some benchmarks only: the QAT model is there for the quantization comparison
MODEL_BENCHMARKS = {QAT_MODEL: ("synthetic-instances",)}


def candidate_from_spec(spec: ModelSpec, workers: int = 8, api_key: str = "") -> Candidate:
    """A Candidate for a model spec (inference/specs.py): a local checkpoint or an OpenAI-compatible endpoint
    (with `api_key`, else the key in the environment)."""
    if spec.kind == "openai":
        from inference.remote import OpenAIEndpoint

        return Candidate(spec.text, None, None, "endpoint", endpoint=OpenAIEndpoint(spec, workers=workers, key=api_key))
    model, tok = load_local(spec)  # with its adapter merged in (local:CKPT+ADAPTER)
    if tok is None:
        raise ValueError(f"{spec.text}: the checkpoint has no tokenizer/, so it cannot be evaluated")
    return Candidate(spec.text, model, tok, spec.quantization or "none", local_hash(spec))


def load_candidate(warehouse, name: str, workers: int = 8, api_key: str = "") -> Candidate:
    """A benchmark Candidate for a model spec (`local:...`, `openai:...`), or for "hrm", "baseline" (the latest
    published checkpoint), "hrm-rl" (hrm_rl_checkpoint's), "hrm-int8", "hrm-nf4" (the saved artifact of HRM's
    checkpoint) or "hrm-int8-qat" (the int8 artifact of quantized_models' QAT checkpoint)."""
    from model.checkpoint import load_checkpoint

    if is_spec(name):
        return candidate_from_spec(parse_spec(name), workers, api_key)
    if name not in (*MODELS, QAT_MODEL):
        raise ValueError(f"model {name!r}: expected a model spec (local:CKPT_DIR[+ADAPTER_DIR][@int8|@nf4] or "
                         f"openai:BASE_URL#MODEL) or one of the warehouse's models {', '.join((*MODELS, QAT_MODEL))}")
    if name == QAT_MODEL:
        qat = warehouse.latest_checkpoint("quantized_models").get("qat")
        if not qat:
            raise FileNotFoundError("quantized_models has no QAT checkpoint: set HRM_QUANT_QAT_STEPS > 0 and "
                                    "materialise quantized_models")
        model, tok = load_checkpoint(qat["checkpoint_dir"], quantization="int8", require_artifact=True)
        return Candidate(name, model, tok, "int8-qat", qat["weights_sha256"][:12])
    if name == RL_MODEL:
        source = warehouse.latest_checkpoint("hrm_rl_checkpoint")
        model, tok = load_checkpoint(source["checkpoint_dir"])
        return Candidate(name, model, tok, "none", source["weights_sha256"][:12])
    base, _, quant = name.partition("-")
    source = warehouse.latest_checkpoint(f"{base}_checkpoint")
    model, tok = load_checkpoint(source["checkpoint_dir"], quantization=quant or None, require_artifact=bool(quant))
    return Candidate(name, model, tok, quant or "none", source["weights_sha256"][:12])


def flops_curve(warehouse, suite: EvalSuite, sandbox, settings: EvalSettings, final: dict[str, list[dict]],
                log=None) -> tuple[list[CurvePoint], dict[str, str]]:
    """Curve points of HRM and the baseline: each earlier phase checkpoint scored on `settings.flops_curve`
    benchmarks, the final one with the report's own results; and notes on what could not be drawn."""
    from model.checkpoint import load_checkpoint

    points, notes = [], {}
    for model in CURVE_MODELS:
        if model not in final:
            continue
        published = warehouse.latest_checkpoint(f"{model}_checkpoint")
        found, why = phase_points(model, published)
        if why:
            notes[f"flops-curve {model}"] = why
            continue
        found[-1].results = final[model]
        for point in found[:-1] if settings.flops_curve else []:
            if not Path(point.checkpoint_dir).is_dir():
                notes[f"flops-curve {model} phase {point.phase}"] = f"checkpoint {point.checkpoint_dir} is gone"
                continue
            net, tok = load_checkpoint(point.checkpoint_dir)
            point.results = evaluate_candidate(Candidate(f"{model}@phase-{point.phase}", net, tok), suite, sandbox,
                                               settings, log=log, only=settings.flops_curve)
            points.append(point)
        points.append(found[-1])
    return points, notes


def _write_bytes_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def build_report(models: list[str], settings: EvalSettings, warehouse, sandbox, log=None, api_key: str = "") -> dict:
    """Evaluate every model, append the rows to the history, and return the report with its trend and the
    held-out-score-vs-training-FLOPs curve (markdown, points, and a PNG under `flops_curve_png`). `api_key`
    goes to openai: model specs' endpoints (else the key in the environment)."""
    suite = load_suite(warehouse, settings)
    report_id, created = rp.new_report_id(), dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    version = rp.code_version()
    rows, problems, timings, final = [], [], {}, {}
    for name in models:
        t0 = time.monotonic()
        candidate = load_candidate(warehouse, name, api_key=api_key)
        results = evaluate_candidate(candidate, suite, sandbox, settings, log=log, only=MODEL_BENCHMARKS.get(name, ()))
        final[name] = results
        rows += rp.make_rows(report_id, created, name, candidate.checkpoint_hash, candidate.quantization, results,
                             version)
        problems += rp.problem_rows(report_id, name, results)
        timings[name] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    points, curve_notes = flops_curve(warehouse, suite, sandbox, settings, final, log=log)
    timings["flops_curve"] = round(time.monotonic() - t0, 1)
    png, png_path = None, None
    if points:
        png = curve_png(points, suite.compressors)
        png_path = warehouse.path("reports", report_id, "flops_curve.png")
        _write_bytes_atomic(png_path, png)
    db = warehouse.history_db()
    previous_ids = rp.report_ids(db)
    rp.append_history(db, rows, problems)
    previous = rp.load_report(db, previous_ids[-1]) if previous_ids else []
    warehouse.write_table("benchmark_report", [{**r.to_dict()} for r in rows])
    comparisons = paired_comparisons(final, PAIRED)
    return {"report_id": report_id, "rows": rows, "problem_results": len(problems), "previous": previous,
            "comparisons": comparisons,
            "previous_report_id": previous_ids[-1] if previous_ids else None, "models": list(models),
            "notes": {**suite.notes, **curve_notes}, "timings_s": timings,
            "markdown": (rp.report_markdown(rows, previous, list(models)) + "\n" + comparisons_markdown(comparisons)
                         + "\n" + curve_markdown(points)),
            "flops_curve": [p.to_dict() for p in points], "flops_curve_png": png,
            "flops_curve_path": str(png_path) if png_path else None}


def regression_findings(warehouse, thresholds_spec: str, alpha: float = 0.05) -> dict:
    """The newest report vs the one before it: a paired test per problem at level alpha where both hold
    per-problem results, per-metric thresholds elsewhere (see evals.report.regressions)."""
    db = warehouse.history_db()
    ids = rp.report_ids(db)
    if not ids:
        return {"report_id": None, "previous_report_id": None, "regressions": []}
    current, thresholds = rp.load_report(db, ids[-1]), rp.parse_thresholds(thresholds_spec)
    if len(ids) == 1:
        return {"report_id": ids[-1], "previous_report_id": None, "regressions": []}
    found = rp.regressions(current, rp.load_report(db, ids[-2]), thresholds,
                           problems_now=rp.load_problems(db, ids[-1]), problems_before=rp.load_problems(db, ids[-2]),
                           alpha=alpha)
    return {"report_id": ids[-1], "previous_report_id": ids[-2], "alpha": alpha, "regressions": found}


# `hrm eval --benchmark NAME`: the evaluation steps (evals.evaluate.evaluate_candidate) each name runs; all = every one
BENCHMARK_STEPS = {
    "humaneval": ("humaneval",),
    "polyglot": ("polyglot", "polyglot/edit-decoder"),
    "lcb": ("livecodebench",),
    "bpb": ("code-bpb",),
    "synthetic": tuple(f"{name}{step}" for name in SYNTHETIC_BENCHMARKS.values()
                       for step in ("", "/edit-decoder", "/snap")),
    "docs": ("docs",),
    "git": ("git-conflicts", "git-commits"),
    "multifile": ("multi-file",),
    "all": (),
}


def evaluate_model(spec: str, benchmark: str, settings: EvalSettings, warehouse, sandbox, workers: int = 8,
                   log=None) -> dict:
    """One model spec on one benchmark (or all), with the code `benchmark_report` runs: the result rows
    (with intervals and, for pass/fail metrics, per-problem results) and the notes on what was not evaluated."""
    if benchmark not in BENCHMARK_STEPS:
        raise ValueError(f"unknown benchmark {benchmark!r}: expected one of {', '.join(BENCHMARK_STEPS)}")
    suite = load_suite(warehouse, settings)
    candidate = load_candidate(warehouse, spec, workers)
    only = BENCHMARK_STEPS[benchmark]
    t0 = time.monotonic()
    rows = evaluate_candidate(candidate, suite, sandbox, settings, log=log, only=only)
    wanted = {step.split("/")[0] for step in only}
    notes = {k: v for k, v in suite.notes.items() if not wanted or k.split("/")[0] in wanted}
    if candidate.model is None:
        skipped = [step for step in NEEDS_WEIGHTS if not only or step in only]
        if skipped:
            notes["endpoint"] = f"an endpoint has no weights to read: skipped {', '.join(skipped)}"
    return {"model": spec, "benchmark": benchmark, "checkpoint_hash": candidate.checkpoint_hash,
            "quantization": candidate.quantization, "rows": rows, "notes": notes,
            "seconds": round(time.monotonic() - t0, 1)}
