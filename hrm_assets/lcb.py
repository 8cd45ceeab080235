"""LiveCodeBench: raw releases, the normalised code-generation problems and the scenario tables.

Partitions are LCB release tags (`resources.partitions.lcb_releases`). The default whole-graph run
materialises only the tags in HRM_LCB_RELEASES, and only when HRM_LCB_SOURCE points at data: with no
source configured there is nothing to load and nothing is invented (see docs/lcb.md). Each body calls
one plain function in evals/lcb/pipeline.py. Every table is written to staging, audited there by its blocking
check and published only when the check passes (write-audit-publish: `Warehouse.staging`, `publish_if_passed`);
the partitioned ones per release.
"""

import warnings

import dagster as dg

from evals.lcb import pipeline
from evals.lcb.pipeline import EXECUTION_TABLE, PROBLEMS_TABLE, RAW_TABLE, TEST_OUTPUT_TABLE
from evals.lcb.records import DIFFICULTIES, PLATFORMS, TEST_TYPES
from hrm_assets.expectations import gx_check, named, publish_if_passed
from hrm_assets.versions import source_version
from resources.partitions import lcb_releases
from resources.settings import env_str, from_env, split_csv
from resources.warehouse import Warehouse

# Partitioned asset checks are a Dagster preview feature; the per-release check specs depend on them.
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


def _spec(name: str, asset: str, description: str, partitioned: bool = False) -> dg.AssetCheckSpec:
    """The blocking check of a table, run on the staged rows before they are published."""
    return dg.AssetCheckSpec(name, asset=asset, blocking=True, partitions_def=lcb_releases if partitioned else None,
                             description=f"{description} Run on the staged table, which is published only when "
                                         "it passes.")


@dg.asset(group_name="sources", kinds={"python", "parquet"}, partitions_def=lcb_releases, code_version=CODE_VERSION,
          metadata={"hrm/default_partitions": default_releases()},
          check_specs=[_spec("livecodebench_raw_valid", RAW_TABLE, partitioned=True, description=(
              "GX: at least one problem, unique ids, parseable contest dates, non-empty test lists, valid "
              "testtype, platform and difficulty."))],
          description="code_generation_lite records of one release tag from a local directory/file or the "
                      "Hugging Face hub, private tests decoded without unpickling code; bad rows quarantined.")
def livecodebench_raw(context: dg.AssetExecutionContext, config: LcbSourceConfig, warehouse: Warehouse):
    release = context.partition_key
    with warehouse.staging(RAW_TABLE, release):
        out = pipeline.write_release(warehouse, config.source or None, release)
        for bad in out["rejected_rows"][:50]:
            context.log.warning(f"quarantined {bad['file']}:{bad['row']} ({bad['question_id']}): {bad['reason']}")
        # A release where every row was quarantined is a data problem, not an empty benchmark.
        check = _table_check(warehouse, RAW_TABLE, release, "livecodebench_raw_valid", f"lcb_raw_{release}",
                             lambda gxe: [gxe.ExpectTableRowCountToBeBetween(min_value=1)] + _problem_expectations(gxe))
    yield from publish_if_passed(warehouse, RAW_TABLE, check, release, metadata={
        "dagster/row_count": out["rows"], "rejected": out["rejected"], "unsafe_rejected": out["unsafe_rejected"],
        "source": out["source"], "files": dg.MetadataValue.json(out["files"]),
        "by_platform": dg.MetadataValue.json(out["by_platform"]),
        "by_difficulty": dg.MetadataValue.json(out["by_difficulty"]),
        "quarantine": dg.MetadataValue.path(out["quarantine"])})


@dg.asset(group_name="problems", kinds={"parquet", "duckdb"}, partitions_def=lcb_releases, deps=[livecodebench_raw],
          code_version=CODE_VERSION,
          check_specs=[_spec("lcb_problems_valid", PROBLEMS_TABLE, partitioned=True,
                             description="GX: the same rules as livecodebench_raw on the windowed table.")],
          description="Normalised code-generation problems of a release inside the configured contest-date "
                      "window, with the lcb_runner prompt and a platform/difficulty/test-type category.")
def lcb_problems(context: dg.AssetExecutionContext, config: LcbWindowConfig, warehouse: Warehouse):
    release = context.partition_key
    with warehouse.staging(PROBLEMS_TABLE, release):
        out = pipeline.write_problems(warehouse, release, *_window(config))
        context.log.info(f"{out['rows']} of {out['raw_rows']} problems inside the window {out['window']}")
        check = _table_check(warehouse, PROBLEMS_TABLE, release, "lcb_problems_valid", f"lcb_problems_{release}",
                             _problem_expectations)
    yield from publish_if_passed(warehouse, PROBLEMS_TABLE, check, release, metadata={
        "dagster/row_count": out["rows"], "raw_rows": out["raw_rows"], "window": dg.MetadataValue.json(out["window"]),
        "by_category": dg.MetadataValue.json(out["by_category"])})


def _table_check(warehouse: Warehouse, table: str, partition: str | None, check_name: str, suite: str, build):
    return named(gx_check(pipeline.check_frame(warehouse, table, partition), suite, build), check_name)


def _problem_expectations(gxe):
    return [gxe.ExpectColumnValuesToBeUnique(column="question_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="question_id"),
            gxe.ExpectColumnValuesToBeInSet(column="date_parses", value_set=[True]),
            gxe.ExpectColumnValuesToBeBetween(column="n_tests", min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="testtype", value_set=list(TEST_TYPES)),
            gxe.ExpectColumnValuesToBeInSet(column="test_types_valid", value_set=[True]),
            gxe.ExpectColumnValuesToBeInSet(column="platform", value_set=list(PLATFORMS)),
            gxe.ExpectColumnValuesToBeInSet(column="difficulty", value_set=list(DIFFICULTIES))]


def _test_output_expectations(gxe):
    return [gxe.ExpectColumnValuesToBeUnique(column="instance_id"),
            gxe.ExpectColumnValuesToBeInSet(column="date_parses", value_set=[True]),
            gxe.ExpectColumnValuesToBeBetween(column="n_tests", min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="test_types_valid", value_set=[True]),
            gxe.ExpectColumnValuesToNotBeNull(column="function_name")]


def _execution_expectations(gxe):
    return [gxe.ExpectColumnValuesToBeUnique(column="id"),
            gxe.ExpectColumnValuesToBeInSet(column="date_parses", value_set=[True]),
            gxe.ExpectColumnValuesToNotBeNull(column="code"),
            gxe.ExpectColumnValuesToNotBeNull(column="input"),
            gxe.ExpectColumnValuesToNotBeNull(column="output")]


# With no source configured the scenario tables are still materialised, empty and saying so, so that
# "Materialize all" from the UI and asset backfills complete (evaluation notes the missing source).
@dg.asset(group_name="problems", kinds={"parquet"}, code_version=CODE_VERSION,
          check_specs=[_spec("lcb_test_output_problems_valid", TEST_OUTPUT_TABLE,
                             "GX: unique (question_id, test_id), dates parse, a test and a function name per row.")],
          description="Test-output prediction instances (livecodebench/test_generation format) inside the "
                      "contest-date window, with their lcb_runner prompts. Empty when no source is configured "
                      "(HRM_LCB_TEST_OUTPUT_SOURCE).")
def lcb_test_output_problems(context: dg.AssetExecutionContext, config: LcbScenarioSourceConfig,
                             warehouse: Warehouse):
    _log_missing_source(context, config.test_output_source, "HRM_LCB_TEST_OUTPUT_SOURCE")
    with warehouse.staging(TEST_OUTPUT_TABLE):
        out = pipeline.write_test_output_problems(warehouse, config.test_output_source, *_window(config))
        check = _table_check(warehouse, TEST_OUTPUT_TABLE, None, "lcb_test_output_problems_valid", "lcb_test_output",
                             _test_output_expectations)
    yield from publish_if_passed(warehouse, TEST_OUTPUT_TABLE, check,
                                 metadata=_scenario_metadata(out, config.test_output_source))


@dg.asset(group_name="problems", kinds={"parquet"}, code_version=CODE_VERSION,
          check_specs=[_spec("lcb_execution_problems_valid", EXECUTION_TABLE,
                             "GX: unique ids, dates parse, code/input/output present.")],
          description="Code-execution instances (livecodebench/execution-v2 format) inside the contest-date "
                      "window, with their lcb_runner prompts. Empty when no source is configured "
                      "(HRM_LCB_EXECUTION_SOURCE).")
def lcb_execution_problems(context: dg.AssetExecutionContext, config: LcbScenarioSourceConfig,
                           warehouse: Warehouse):
    _log_missing_source(context, config.execution_source, "HRM_LCB_EXECUTION_SOURCE")
    with warehouse.staging(EXECUTION_TABLE):
        out = pipeline.write_execution_problems(warehouse, config.execution_source, *_window(config))
        check = _table_check(warehouse, EXECUTION_TABLE, None, "lcb_execution_problems_valid", "lcb_execution",
                             _execution_expectations)
    yield from publish_if_passed(warehouse, EXECUTION_TABLE, check,
                                 metadata=_scenario_metadata(out, config.execution_source))


def _log_missing_source(context, source: str, env: str) -> None:
    if not source:
        context.log.info(f"no source configured ({env}): an empty table, nothing to score")


def _window(config: LcbWindowConfig) -> tuple:
    return config.start_date or None, config.end_date or None, config.training_cutoff or None


def _scenario_metadata(out: dict, source: str) -> dict:
    return {"dagster/row_count": out["rows"], "loaded_rows": out["loaded_rows"], "rejected": out["rejected"],
            "source": source or "none configured", "window": dg.MetadataValue.json(out["window"])}
