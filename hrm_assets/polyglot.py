"""Aider Polyglot: the benchmark clone, its 225 exercises as a table, and the reference-solution report.

Each body calls one plain function in evals/polyglot/pipeline.py. polyglot_problems is written, audited and
published per language partition (write-audit-publish: `Warehouse.staging`, `publish_if_passed`).
"""

import warnings

import dagster as dg

from evals.polyglot import pipeline
from evals.polyglot.exercises import EXPECTED_COUNTS, EXPECTED_TOTAL, LANGUAGES, PINNED_COMMIT
from hrm_assets.expectations import after_upstream, gx_check, named, publish_if_passed
from hrm_assets.metadata import table_result
from hrm_assets.versions import hash_version, source_version
from resources.partitions import polyglot_languages
from resources.sandbox import Sandbox
from resources.settings import from_env, split_csv
from resources.warehouse import Warehouse

# Partitioned asset checks are a Dagster preview feature; the per-language check spec depends on them.
warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*", category=dg.PreviewWarning)
# The reference report fails at most this many exercises with every toolchain installed (see pipeline.py).
MAX_EXPECTED_REFERENCE_FAILURES = 8
CODE_VERSION = source_version("evals.polyglot.pipeline")


class PolyglotSourceConfig(dg.Config):
    source: str = from_env("HRM_POLYGLOT_SOURCE")  # URL, local path or git bundle
    commit: str = PINNED_COMMIT


@dg.asset(group_name="sources", kinds={"git"}, code_version=CODE_VERSION,
          description="A git clone of Aider-AI/polyglot-benchmark at a pinned commit.")
def polyglot_benchmark(context: dg.AssetExecutionContext, config: PolyglotSourceConfig,
                       warehouse: Warehouse) -> dg.MaterializeResult:
    info = pipeline.clone_benchmark(config.source, warehouse.polyglot_checkout(), config.commit)
    context.log.info(f"polyglot-benchmark {info['commit']} at {info['path']}: {info['counts']}")
    return dg.MaterializeResult(metadata={
        "commit": info["commit"], "source": config.source, "path": dg.MetadataValue.path(info["path"]),
        "total_exercises": info["total"], "counts": dg.MetadataValue.json(info["counts"])},
        data_version=hash_version(info["commit"]))


@dg.asset(group_name="problems", kinds={"parquet", "duckdb"}, partitions_def=polyglot_languages,
          deps=[polyglot_benchmark], code_version=CODE_VERSION, automation_condition=after_upstream(),
          check_specs=[dg.AssetCheckSpec(
              "polyglot_problems_valid", asset="polyglot_problems", blocking=True, partitions_def=polyglot_languages,
              description="GX: the language's expected row count, non-empty instructions, every stub and test path "
                          "present in the clone, unique ids; over all partitions (the staged one in place of its "
                          "published version), their expected total (225 once all six are in). Run on the staged "
                          "partition, which is published only when it passes.")],
          description="One row per exercise: instructions, stubs, hidden tests, editor, build and reference "
                      "files, cross-language key. Parquet partition per language; DuckDB view polyglot_problems.")
def polyglot_problems(context: dg.AssetExecutionContext, warehouse: Warehouse):
    language = context.partition_key
    with warehouse.staging(pipeline.TABLE, language):
        out = pipeline.write_problems(warehouse, warehouse.polyglot_checkout(), language)
        for bad in out["rejected_rows"]:
            context.log.warning(f"quarantined {bad['path']}: {bad['reason']}")
        check = named(problems_valid(warehouse, language), "polyglot_problems_valid")
    yield from publish_if_passed(warehouse, pipeline.TABLE, check, language, metadata={
        "dagster/row_count": out["rows"], "expected_rows": out["expected"], "rejected": out["rejected"],
        "rejected_exercises": dg.MetadataValue.json({b["path"]: b["reason"] for b in out["rejected_rows"]}),
        "commit": out["commit"],
        "path": dg.MetadataValue.path(str(warehouse.published_file(pipeline.TABLE, language)))})


def problems_valid(warehouse: Warehouse, language: str) -> dg.AssetCheckResult:
    """The GX audit of one language's (staged) partition, and of all partitions together."""
    frame = pipeline.problem_frame(warehouse, warehouse.polyglot_checkout(), language)
    one = gx_check(frame, f"polyglot_problems_{language}", lambda gxe: [
        gxe.ExpectTableRowCountToEqual(value=EXPECTED_COUNTS[language]),
        gxe.ExpectColumnValuesToBeInSet(column="language", value_set=[language]),
        gxe.ExpectColumnValuesToBeBetween(column="instructions_chars", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="n_solution_files", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="n_test_files", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="paths_exist", value_set=[True]),
        gxe.ExpectColumnValuesToBeUnique(column="problem_id"),
    ])
    present = warehouse.partitions(pipeline.TABLE)
    expected_total = sum(EXPECTED_COUNTS[p] for p in present)
    everything = pipeline.problem_frame(warehouse, None)
    total = gx_check(everything, "polyglot_problems_total", lambda gxe: [
        gxe.ExpectTableRowCountToEqual(value=expected_total),
        gxe.ExpectColumnValuesToBeUnique(column="problem_id"),
        gxe.ExpectColumnValuesToBeInSet(column="language", value_set=list(LANGUAGES)),
    ])
    return dg.AssetCheckResult(passed=one.passed and total.passed, metadata={
        "rows": len(frame), "expected_rows": EXPECTED_COUNTS[language], "total_rows": len(everything),
        "expected_total": expected_total, "all_partitions": len(present) == len(LANGUAGES),
        "complete_total": EXPECTED_TOTAL,
        "failures": dg.MetadataValue.json({"partition": one.metadata["failures"].value,
                                           "total": total.metadata["failures"].value})})


class PolyglotReportConfig(dg.Config):
    languages: str = ""  # comma-separated; empty = all six
    exercises: str = ""  # comma-separated names or language/name keys; empty = all


@dg.asset(group_name="problems", kinds={"python", "duckdb"}, deps=[polyglot_problems], code_version=CODE_VERSION,
          description="Every reference solution run through our evaluator in the Sandbox: per-language "
                      "pass counts and each failure with its reason.")
def polyglot_reference_report(context: dg.AssetExecutionContext, config: PolyglotReportConfig,
                              sandbox: Sandbox, warehouse: Warehouse) -> dg.MaterializeResult:
    report, report_file = pipeline.reference_report(warehouse, sandbox, split_csv(config.languages),
                                                    split_csv(config.exercises), log=context.log.info)
    passes = {lang: s["counts"]["pass"] for lang, s in report["languages"].items()}
    return table_result(warehouse, pipeline.RESULTS_TABLE, metadata={
        "passed": report["counts"]["pass"], "exercises": report["counts"]["total"],
        "pass_rate_1": dg.MetadataValue.float(report["pass_rate_1"]), "unsupported": report["counts"]["unsupported"],
        "passes_by_language": dg.MetadataValue.json(passes),
        "languages": dg.MetadataValue.md(pipeline.languages_markdown(report)),
        "failures": dg.MetadataValue.md(pipeline.failures_markdown(report)),
        "expected_failures": report["expected_failures"], "wall_s": report["wall_s"],
        "report": dg.MetadataValue.path(str(report_file))})


@dg.asset_check(asset=polyglot_reference_report, blocking=False,
                description=f"At most {MAX_EXPECTED_REFERENCE_FAILURES} supported reference solutions fail "
                            "(the known jar and crate gaps); more means a toolchain regressed.")
def polyglot_reference_failures_known(warehouse: Warehouse) -> dg.AssetCheckResult:
    failed = pipeline.reference_failures(warehouse)
    return dg.AssetCheckResult(passed=len(failed) <= MAX_EXPECTED_REFERENCE_FAILURES,
                               severity=dg.AssetCheckSeverity.WARN,
                               metadata={"failed": len(failed), "failed_exercises": dg.MetadataValue.json(failed)})
