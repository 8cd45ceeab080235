"""LiveCodeBench: raw releases, the normalised code-generation problems and the scenario tables.

Partitions are LCB release tags (`resources.partitions.lcb_releases`). The default whole-graph run
materialises only the tags in HRM_LCB_RELEASES, and only when HRM_LCB_SOURCE points at data: with no
source configured there is nothing to load and nothing is invented (see docs/lcb.md). Each body calls
one plain function in evals/lcb/pipeline.py.
"""

import warnings

import dagster as dg

from evals.lcb import pipeline
from evals.lcb.pipeline import EXECUTION_TABLE, PROBLEMS_TABLE, RAW_TABLE, TEST_OUTPUT_TABLE
from evals.lcb.records import DIFFICULTIES, PLATFORMS, TEST_TYPES
from hrm_assets.expectations import gx_check
from hrm_assets.metadata import table_result
from hrm_assets.versions import source_version
from resources.partitions import lcb_releases
from resources.settings import env_str, from_env, split_csv
from resources.warehouse import Warehouse

warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*", category=dg.PreviewWarning)
CODE_VERSION = source_version("evals.lcb.pipeline")


def default_releases() -> list[str]:
    """Release tags the default run materialises: none unless HRM_LCB_SOURCE is set."""
    if not env_str("HRM_LCB_SOURCE"):
        return []
    return list(split_csv(env_str("HRM_LCB_RELEASES")))


class LcbSourceConfig(dg.Config):
    source: str = from_env("HRM_LCB_SOURCE")  # directory/file of code_generation_lite, or hf://<dataset>


class LcbWindowConfig(dg.Config):
    start_date: str = from_env("HRM_LCB_START_DATE")  # YYYY-MM-DD, inclusive
    end_date: str = from_env("HRM_LCB_END_DATE")
    training_cutoff: str = from_env("HRM_LCB_TRAINING_CUTOFF")  # keep problems strictly after it


class LcbScenarioSourceConfig(LcbWindowConfig):  # the scenario tables keep lcb_problems' date window
    test_output_source: str = from_env("HRM_LCB_TEST_OUTPUT_SOURCE")
    execution_source: str = from_env("HRM_LCB_EXECUTION_SOURCE")


@dg.asset(group_name="sources", kinds={"python", "parquet"}, partitions_def=lcb_releases, code_version=CODE_VERSION,
          metadata={"hrm/default_partitions": default_releases()},
          description="code_generation_lite records of one release tag from a local directory/file or the "
                      "Hugging Face hub, private tests decoded without unpickling code; bad rows quarantined.")
def livecodebench_raw(context: dg.AssetExecutionContext, config: LcbSourceConfig,
                      warehouse: Warehouse) -> dg.MaterializeResult:
    out = pipeline.write_release(warehouse, config.source or None, context.partition_key)
    for bad in out["rejected_rows"][:50]:
        context.log.warning(f"quarantined {bad['file']}:{bad['row']} ({bad['question_id']}): {bad['reason']}")
    return table_result(warehouse, RAW_TABLE, context.partition_key, metadata={
        "dagster/row_count": out["rows"], "rejected": out["rejected"], "unsafe_rejected": out["unsafe_rejected"],
        "source": out["source"], "files": dg.MetadataValue.json(out["files"]),
        "by_platform": dg.MetadataValue.json(out["by_platform"]),
        "by_difficulty": dg.MetadataValue.json(out["by_difficulty"]),
        "quarantine": dg.MetadataValue.path(out["quarantine"])})


@dg.asset(group_name="problems", kinds={"parquet", "duckdb"}, partitions_def=lcb_releases, deps=[livecodebench_raw],
          code_version=CODE_VERSION,
          description="Normalised code-generation problems of a release inside the configured contest-date "
                      "window, with the lcb_runner prompt and a platform/difficulty/test-type category.")
def lcb_problems(context: dg.AssetExecutionContext, config: LcbWindowConfig,
                 warehouse: Warehouse) -> dg.MaterializeResult:
    out = pipeline.write_problems(warehouse, context.partition_key, config.start_date or None, config.end_date or None,
                         config.training_cutoff or None)
    context.log.info(f"{out['rows']} of {out['raw_rows']} problems inside the window {out['window']}")
    return table_result(warehouse, PROBLEMS_TABLE, context.partition_key, metadata={
        "dagster/row_count": out["rows"], "raw_rows": out["raw_rows"], "window": dg.MetadataValue.json(out["window"]),
        "by_category": dg.MetadataValue.json(out["by_category"])})


def _table_check(warehouse: Warehouse, table: str, partition: str | None, suite: str, build):
    return gx_check(pipeline.check_frame(warehouse, table, partition), suite, build)


def _problem_expectations(gxe):
    return [gxe.ExpectColumnValuesToBeUnique(column="question_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="question_id"),
            gxe.ExpectColumnValuesToBeInSet(column="date_parses", value_set=[True]),
            gxe.ExpectColumnValuesToBeBetween(column="n_tests", min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="testtype", value_set=list(TEST_TYPES)),
            gxe.ExpectColumnValuesToBeInSet(column="test_types_valid", value_set=[True]),
            gxe.ExpectColumnValuesToBeInSet(column="platform", value_set=list(PLATFORMS)),
            gxe.ExpectColumnValuesToBeInSet(column="difficulty", value_set=list(DIFFICULTIES))]


@dg.asset_check(asset=livecodebench_raw, partitions_def=lcb_releases, blocking=True,
                description="GX: at least one problem, unique ids, parseable contest dates, non-empty test "
                            "lists, valid testtype, platform and difficulty.")
def livecodebench_raw_valid(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    # A release where every row was quarantined is a data problem, not an empty benchmark.
    return _table_check(warehouse, RAW_TABLE, context.partition_key, f"lcb_raw_{context.partition_key}",
                        lambda gxe: [gxe.ExpectTableRowCountToBeBetween(min_value=1)] + _problem_expectations(gxe))


@dg.asset_check(asset=lcb_problems, partitions_def=lcb_releases, blocking=True,
                description="GX: the same rules as livecodebench_raw on the windowed table.")
def lcb_problems_valid(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    return _table_check(warehouse, PROBLEMS_TABLE, context.partition_key, f"lcb_problems_{context.partition_key}",
                        _problem_expectations)


@dg.asset(group_name="problems", kinds={"parquet"}, output_required=False, code_version=CODE_VERSION,
          description="Test-output prediction instances (livecodebench/test_generation format) inside the "
                      "contest-date window, with their lcb_runner prompts. Skipped when no source is "
                      "configured (HRM_LCB_TEST_OUTPUT_SOURCE).")
def lcb_test_output_problems(context: dg.AssetExecutionContext, config: LcbScenarioSourceConfig,
                             warehouse: Warehouse):
    if not config.test_output_source:
        context.log.info("no test_output_source configured (HRM_LCB_TEST_OUTPUT_SOURCE): skipped")
        return
    out = pipeline.write_test_output_problems(warehouse, config.test_output_source, *_window(config))
    yield _scenario_result(warehouse, TEST_OUTPUT_TABLE, out, config.test_output_source)


@dg.asset(group_name="problems", kinds={"parquet"}, output_required=False, code_version=CODE_VERSION,
          description="Code-execution instances (livecodebench/execution-v2 format) inside the contest-date "
                      "window, with their lcb_runner prompts. Skipped when no source is configured "
                      "(HRM_LCB_EXECUTION_SOURCE).")
def lcb_execution_problems(context: dg.AssetExecutionContext, config: LcbScenarioSourceConfig,
                           warehouse: Warehouse):
    if not config.execution_source:
        context.log.info("no execution_source configured (HRM_LCB_EXECUTION_SOURCE): skipped")
        return
    out = pipeline.write_execution_problems(warehouse, config.execution_source, *_window(config))
    yield _scenario_result(warehouse, EXECUTION_TABLE, out, config.execution_source)


def _window(config: LcbWindowConfig) -> tuple:
    return config.start_date or None, config.end_date or None, config.training_cutoff or None


def _scenario_result(warehouse: Warehouse, table: str, out: dict, source: str) -> dg.MaterializeResult:
    return table_result(warehouse, table, metadata={"dagster/row_count": out["rows"], "loaded_rows": out["loaded_rows"],
                                                    "rejected": out["rejected"], "source": source,
                                                    "window": dg.MetadataValue.json(out["window"])})


@dg.asset_check(asset=lcb_test_output_problems, blocking=True,
                description="GX: unique (question_id, test_id), dates parse, a test and a function name per row.")
def lcb_test_output_problems_valid(warehouse: Warehouse) -> dg.AssetCheckResult:
    return _table_check(warehouse, TEST_OUTPUT_TABLE, None, "lcb_test_output", lambda gxe: [
        gxe.ExpectColumnValuesToBeUnique(column="instance_id"),
        gxe.ExpectColumnValuesToBeInSet(column="date_parses", value_set=[True]),
        gxe.ExpectColumnValuesToBeBetween(column="n_tests", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="test_types_valid", value_set=[True]),
        gxe.ExpectColumnValuesToNotBeNull(column="function_name")])


@dg.asset_check(asset=lcb_execution_problems, blocking=True,
                description="GX: unique ids, dates parse, code/input/output present.")
def lcb_execution_problems_valid(warehouse: Warehouse) -> dg.AssetCheckResult:
    return _table_check(warehouse, EXECUTION_TABLE, None, "lcb_execution", lambda gxe: [
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToBeInSet(column="date_parses", value_set=[True]),
        gxe.ExpectColumnValuesToNotBeNull(column="code"),
        gxe.ExpectColumnValuesToNotBeNull(column="input"),
        gxe.ExpectColumnValuesToNotBeNull(column="output")])
