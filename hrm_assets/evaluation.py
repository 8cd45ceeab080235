"""benchmark_report: HRM fp32, baseline, int8 and nf4 on every benchmark, appended to the DuckDB history;
and the regression check that compares it with the previous report. The work is in `evals/pipeline.py`."""

import base64
from typing import Optional

import dagster as dg

from evals.evaluate import EvalSettings, preset_settings
from evals.pipeline import build_report, regression_findings
from evals.report import describe
from hrm_assets.metadata import report_headline, report_summary
from hrm_assets.versions import report_version, source_version
from resources.credentials import Credentials
from resources.sandbox import Sandbox
from resources.settings import env_float, env_str, from_env, from_env_if_set, split_csv
from resources.warehouse import Warehouse


class ReportConfig(dg.Config):
    """The evaluation preset (HRM_EVAL_PRESET) with the fields set here or in their HRM_EVAL_* variables on top;
    a field left None takes the preset's value."""
    models: str = from_env("HRM_REPORT_MODELS")
    preset: str = from_env("HRM_EVAL_PRESET")
    humaneval_problems: Optional[int] = from_env_if_set("HRM_EVAL_HUMANEVAL_PROBLEMS")
    humaneval_n: Optional[int] = from_env_if_set("HRM_EVAL_HUMANEVAL_N")
    humaneval_temperature: Optional[float] = from_env_if_set("HRM_EVAL_HUMANEVAL_TEMPERATURE")
    max_new_tokens: Optional[int] = from_env_if_set("HRM_EVAL_MAX_NEW_TOKENS")
    polyglot_subset: Optional[str] = from_env_if_set("HRM_EVAL_POLYGLOT_SUBSET")
    polyglot_formats: Optional[str] = from_env_if_set("HRM_EVAL_POLYGLOT_FORMATS")
    polyglot_max_new_tokens: Optional[int] = from_env_if_set("HRM_EVAL_POLYGLOT_MAX_NEW_TOKENS")
    lcb_problems: Optional[int] = from_env_if_set("HRM_EVAL_LCB_PROBLEMS")
    lcb_n: Optional[int] = from_env_if_set("HRM_EVAL_LCB_N")
    synthetic_tasks: Optional[int] = from_env_if_set("HRM_EVAL_SYNTHETIC_TASKS")
    synthetic_max_new_tokens: Optional[int] = from_env_if_set("HRM_EVAL_SYNTHETIC_MAX_NEW_TOKENS")
    decoders: Optional[bool] = from_env_if_set("HRM_EVAL_DECODERS")
    docs_tasks: Optional[int] = from_env_if_set("HRM_EVAL_DOCS_TASKS")
    docs_max_new_tokens: Optional[int] = from_env_if_set("HRM_EVAL_DOCS_MAX_NEW_TOKENS")
    git_tasks: Optional[int] = from_env_if_set("HRM_EVAL_GIT_TASKS")
    git_max_new_tokens: Optional[int] = from_env_if_set("HRM_EVAL_GIT_MAX_NEW_TOKENS")
    multifile_tasks: Optional[int] = from_env_if_set("HRM_EVAL_MULTIFILE_TASKS")
    batch_size: Optional[int] = from_env_if_set("HRM_EVAL_BATCH_SIZE")
    seed: Optional[int] = from_env_if_set("HRM_EVAL_SEED")

    def to_settings(self) -> EvalSettings:
        fields = ("humaneval_problems", "humaneval_n", "humaneval_temperature", "max_new_tokens", "polyglot_subset",
                  "polyglot_max_new_tokens", "lcb_problems", "lcb_n", "synthetic_tasks", "synthetic_max_new_tokens",
                  "decoders", "docs_tasks", "docs_max_new_tokens", "git_tasks", "git_max_new_tokens", "multifile_tasks",
                  "batch_size", "seed")
        overrides = {f: getattr(self, f) for f in fields if getattr(self, f) is not None}
        if self.polyglot_formats is not None:
            overrides["polyglot_formats"] = split_csv(self.polyglot_formats)
        if self.synthetic_tasks is not None:  # the tool-use examples follow the held-out task count
            overrides["tool_use_examples"] = self.synthetic_tasks
        return preset_settings(self.preset, **overrides)


@dg.asset(group_name="evaluation", kinds={"duckdb", "python"}, code_version=source_version("evals.pipeline"),
          deps=["hrm_checkpoint", "hrm_rl_checkpoint", "baseline_checkpoint", "quantized_models", "synthetic_tasks",
                "polyglot_problems", "humaneval_problems", "lcb_problems", "lcb_test_output_problems",
                "lcb_execution_problems", "tool_use_examples", "doc_tasks", "git_tasks", "multifile_tasks"],
          description="HRM fp32, HRM after RL, baseline, int8 and nf4 on HumanEval, Polyglot, LCB (when configured), "
                      "held-out synthetic tasks, tool use, documentation, git conflicts and commit messages, and "
                      "multi-file SWE tasks; one row per (model, benchmark, metric) in the DuckDB "
                      "history, and hrm-rl against hrm paired per problem.")
def benchmark_report(context: dg.AssetExecutionContext, config: ReportConfig, warehouse: Warehouse,
                     sandbox: Sandbox, credentials: Credentials) -> dg.MaterializeResult:
    report = build_report(list(split_csv(config.models)), config.to_settings(), warehouse, sandbox,
                          log=context.log.info, api_key=credentials.openai_api_key)
    notes = "".join(f"- {k}: {v}\n" for k, v in report["notes"].items())
    rows = report["rows"]
    return dg.MaterializeResult(data_version=report_version(rows), metadata={
        "summary": dg.MetadataValue.md(report_summary(report["report_id"], rows, report["models"])),
        **report_headline(rows),
        "report_id": report["report_id"], "previous_report_id": report["previous_report_id"] or "none",
        "dagster/row_count": len(report["rows"]), "per_problem_results": report["problem_results"],
        "report": dg.MetadataValue.md(report["markdown"] + ("\n### Not evaluated\n" + notes if notes else "")),
        "history_db": dg.MetadataValue.path(str(warehouse.history_db())),
        "eval_seconds_per_model": dg.MetadataValue.json(report["timings_s"]),
        "paired_comparisons": dg.MetadataValue.json(report["comparisons"]),
        **{f"p_{c['model']}_vs_{c['against']}/{c['benchmark']}/{c['metric']}": float(c["p_value"])
           for c in report["comparisons"]},
        "values": dg.MetadataValue.json({f"{r.model}/{r.benchmark}/{r.metric}": r.value for r in report["rows"]}),
        "intervals": dg.MetadataValue.json({f"{r.model}/{r.benchmark}/{r.metric}": [r.ci_low, r.ci_high, r.n]
                                            for r in report["rows"]}),
        "flops_curve_points": dg.MetadataValue.json(report["flops_curve"]),
        **({"flops_curve": dg.MetadataValue.md("![held-out score vs training FLOPs](data:image/png;base64,"
                                               f"{base64.b64encode(report['flops_curve_png']).decode()})"),
            "flops_curve_png": dg.MetadataValue.path(report["flops_curve_path"])}
           if report["flops_curve_png"] else {}),
    })


@dg.asset_check(asset=benchmark_report, name="no_regression", blocking=False,
                description="Fails when a metric is significantly worse than in the previous report: a paired "
                            "per-problem test at HRM_REGRESSION_ALPHA where both reports hold per-problem results, "
                            "else a worsening beyond HRM_REGRESSION_THRESHOLDS (e.g. 'default=0.05').")
def no_regression(warehouse: Warehouse) -> dg.AssetCheckResult:
    found = regression_findings(warehouse, env_str("HRM_REGRESSION_THRESHOLDS"), env_float("HRM_REGRESSION_ALPHA"))
    return dg.AssetCheckResult(
        passed=not found["regressions"], severity=dg.AssetCheckSeverity.ERROR,
        metadata={"report_id": found["report_id"] or "none", "previous_report_id": found["previous_report_id"] or "none",
                  "regressions": dg.MetadataValue.json(found["regressions"]),
                  "count": len(found["regressions"])},
        description="; ".join(describe(r) for r in found["regressions"]) or "no regression")
