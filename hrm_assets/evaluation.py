"""benchmark_report: HRM fp32, baseline, int8 and nf4 on every benchmark, appended to the DuckDB history;
and the regression check that compares it with the previous report."""

import datetime as dt
import time

import dagster as dg

from hrm_assets.training import latest_checkpoint
from hrm_assets.training_data import BENCHMARK_ASSETS, TASK_ASSETS, env_float, env_int, env_str
from resources.sandbox import Sandbox
from resources.warehouse import Warehouse

MODELS = ("hrm", "baseline", "hrm-int8", "hrm-nf4")


class ReportConfig(dg.Config):
    models: str = env_str("HRM_REPORT_MODELS", ",".join(MODELS))
    humaneval_problems: int = env_int("HRM_EVAL_HUMANEVAL_PROBLEMS", 4)
    humaneval_n: int = env_int("HRM_EVAL_HUMANEVAL_N", 5)
    humaneval_temperature: float = env_float("HRM_EVAL_HUMANEVAL_TEMPERATURE", 0.8)
    max_new_tokens: int = env_int("HRM_EVAL_MAX_NEW_TOKENS", 48)
    polyglot_subset: str = env_str("HRM_EVAL_POLYGLOT_SUBSET", "python:1,javascript:1")
    polyglot_formats: str = env_str("HRM_EVAL_POLYGLOT_FORMATS", "whole,diff")
    polyglot_max_new_tokens: int = env_int("HRM_EVAL_POLYGLOT_MAX_NEW_TOKENS", 64)
    lcb_problems: int = env_int("HRM_EVAL_LCB_PROBLEMS", 10)
    lcb_n: int = env_int("HRM_EVAL_LCB_N", 1)
    synthetic_tasks: int = env_int("HRM_EVAL_SYNTHETIC_TASKS", 12)
    synthetic_max_new_tokens: int = env_int("HRM_EVAL_SYNTHETIC_MAX_NEW_TOKENS", 32)
    batch_size: int = env_int("HRM_EVAL_BATCH_SIZE", 64)
    seed: int = env_int("HRM_EVAL_SEED", 0)


def eval_settings(config: ReportConfig):
    from benchmarks.evaluate import EvalSettings

    return EvalSettings(
        humaneval_problems=config.humaneval_problems, humaneval_n=config.humaneval_n,
        humaneval_temperature=config.humaneval_temperature, max_new_tokens=config.max_new_tokens,
        polyglot_subset=config.polyglot_subset,
        polyglot_formats=tuple(f.strip() for f in config.polyglot_formats.split(",") if f.strip()),
        polyglot_max_new_tokens=config.polyglot_max_new_tokens, lcb_problems=config.lcb_problems, lcb_n=config.lcb_n,
        synthetic_tasks=config.synthetic_tasks, synthetic_max_new_tokens=config.synthetic_max_new_tokens,
        tool_use_examples=config.synthetic_tasks, batch_size=config.batch_size, seed=config.seed)


def load_candidate(warehouse: Warehouse, name: str):
    """A benchmark Candidate for "hrm", "baseline", "hrm-int8" or "hrm-nf4"."""
    from benchmarks.evaluate import Candidate
    from model.checkpoint import load_checkpoint

    base, _, quant = name.partition("-")
    source = latest_checkpoint(warehouse, f"{base}_checkpoint")
    model, tok = load_checkpoint(source["checkpoint_dir"], quantization=quant or None)
    return Candidate(name, model, tok, quant or "none", source["weights_sha256"][:12])


def build_report(config: ReportConfig, warehouse: Warehouse, sandbox: Sandbox, log=None) -> dict:
    """Evaluate every model, append the rows to the history, and return the report with its trend."""
    from benchmarks import report as rp
    from benchmarks.evaluate import evaluate_candidate, load_suite

    settings = eval_settings(config)
    suite = load_suite(warehouse, settings)
    report_id, created = rp.new_report_id(), dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    version = rp.code_version()
    models = [m.strip() for m in config.models.split(",") if m.strip()]
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
            "previous_report_id": previous_ids[-1] if previous_ids else None, "models": models,
            "notes": suite.notes, "timings_s": timings,
            "markdown": rp.report_markdown(rows, previous, models)}


@dg.asset(group_name="evaluation", kinds={"duckdb", "python"},
          deps=["hrm_checkpoint", "baseline_checkpoint", "quantized_models", "synthetic_tasks",
                *BENCHMARK_ASSETS, *[a for a in TASK_ASSETS if a == "tool_use_examples"]],
          description="HRM fp32, baseline, int8 and nf4 on HumanEval, Polyglot, LCB (when configured), held-out "
                      "synthetic tasks and tool use; one row per (model, benchmark, metric) in the DuckDB history.")
def benchmark_report(context: dg.AssetExecutionContext, config: ReportConfig, warehouse: Warehouse,
                     sandbox: Sandbox) -> dg.MaterializeResult:
    report = build_report(config, warehouse, sandbox, log=context.log.info)
    notes = "".join(f"- {k}: {v}\n" for k, v in report["notes"].items())
    return dg.MaterializeResult(metadata={
        "report_id": report["report_id"], "previous_report_id": report["previous_report_id"] or "none",
        "dagster/row_count": len(report["rows"]),
        "report": dg.MetadataValue.md(report["markdown"] + ("\n### Not evaluated\n" + notes if notes else "")),
        "history_db": dg.MetadataValue.path(str(warehouse.history_db())),
        "eval_seconds_per_model": dg.MetadataValue.json(report["timings_s"]),
        "values": dg.MetadataValue.json({f"{r.model}/{r.benchmark}/{r.metric}": r.value for r in report["rows"]}),
    })


def regression_findings(warehouse: Warehouse, thresholds_spec: str) -> dict:
    """The newest report vs the one before it, with per-metric thresholds (see benchmarks.report)."""
    from benchmarks import report as rp

    db = warehouse.history_db()
    ids = rp.report_ids(db)
    if not ids:
        return {"report_id": None, "previous_report_id": None, "regressions": []}
    current = rp.load_report(db, ids[-1])
    previous = rp.load_report(db, ids[-2]) if len(ids) > 1 else []
    return {"report_id": ids[-1], "previous_report_id": ids[-2] if len(ids) > 1 else None,
            "regressions": rp.regressions(current, previous, rp.parse_thresholds(thresholds_spec))}


@dg.asset_check(asset=benchmark_report, name="no_regression", blocking=False,
                description="Fails when a metric is worse than in the previous report by more than its threshold "
                            "(HRM_REGRESSION_THRESHOLDS, e.g. 'default=0.05,pass@1=0.03').")
def no_regression(warehouse: Warehouse) -> dg.AssetCheckResult:
    found = regression_findings(warehouse, env_str("HRM_REGRESSION_THRESHOLDS", "default=0.05"))
    return dg.AssetCheckResult(
        passed=not found["regressions"], severity=dg.AssetCheckSeverity.ERROR,
        metadata={"report_id": found["report_id"] or "none", "previous_report_id": found["previous_report_id"] or "none",
                  "regressions": dg.MetadataValue.json(found["regressions"]),
                  "count": len(found["regressions"])},
        description="; ".join(f"{r['model']}/{r['benchmark']}/{r['metric']} {r['previous']:.4g} -> {r['value']:.4g}"
                              for r in found["regressions"]) or "no regression")


