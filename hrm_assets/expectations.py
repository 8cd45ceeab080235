"""Great Expectations 1.x suites run inside asset checks (GX has no maintained Dagster integration)."""

from __future__ import annotations

import os
from typing import Callable

import dagster as dg


def gx_check(frame, suite_name: str, build: Callable[[object], list], metadata: dict | None = None,
             ) -> dg.AssetCheckResult:
    """Validate a pandas DataFrame against the expectations `build(gxe)` returns.

    `gxe` is `great_expectations.expectations`; each failed expectation is listed in the metadata
    with its unexpected count and a few unexpected values.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas(f"{suite_name}_source")
    asset = source.add_dataframe_asset(f"{suite_name}_frame")
    batch_def = asset.add_batch_definition_whole_dataframe(f"{suite_name}_batch")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for expectation in build(gxe):
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}_validation", data=batch_def, suite=suite))
    result = validation.run(batch_parameters={"dataframe": frame})
    failures = []
    for r in result.results:
        if not r.success:
            detail = r.result or {}
            failures.append({
                "expectation": r.expectation_config.type,
                "kwargs": {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"},
                "unexpected_count": detail.get("unexpected_count"),
                "observed_value": detail.get("observed_value"),
                "partial_unexpected_list": (detail.get("partial_unexpected_list") or [])[:5],
            })
    meta = {"suite": suite_name, "expectations": len(result.results), "failed": len(failures),
            "failures": dg.MetadataValue.json(failures)}
    meta.update(metadata or {})
    return dg.AssetCheckResult(passed=bool(result.success), metadata=meta)


def named(result: dg.AssetCheckResult, name: str) -> dg.AssetCheckResult:
    """`result` as the check `name` of a multi-check asset (check_specs), failing with ERROR severity."""
    return dg.AssetCheckResult(check_name=name, passed=result.passed, metadata=result.metadata,
                               severity=dg.AssetCheckSeverity.ERROR)


def publish_if_passed(warehouse, name: str, check: dg.AssetCheckResult, partition: str | None = None,
                      metadata: dict | None = None):
    """The last step of write-audit-publish for a table asset that built `name` inside
    `warehouse.staging(name, partition)` and audited the staged rows into `check` (a blocking check of the
    asset's check_specs). Passed: publish the staged table and yield the asset's result. Failed: yield the
    check's result (so the failure is recorded and holds downstream automation) and fail the step without
    publishing; the published table stays as it was (so do its hash and data version)."""
    from hrm_assets.metadata import table_result

    if not check.passed:
        yield check
        where = f" partition {partition}" if partition else ""
        raise dg.Failure(description=f"blocking check {check.check_name} failed on the staged {name}{where}: not "
                                     "published, the published table is unchanged",
                         metadata={"staged": dg.MetadataValue.path(str(warehouse.staging_file(name, partition)))})
    warehouse.publish(name, partition)
    yield table_result(warehouse, name, partition, metadata=metadata, check_results=[check])


def after_upstream(optional_deps=()) -> dg.AutomationCondition:
    """Declarative automation of the data chain: materialise when an upstream asset has new data (or the asset
    goes missing), once no upstream run is in progress and every upstream blocking check passed on its latest
    data. A failed blocking check upstream holds this asset across runs until that check passes again.

    `optional_deps` are upstream tables the build reads only when present (LCB problems, SWE task tables):
    their absence does not hold the asset the way a missing required table does."""
    missing = dg.AutomationCondition.any_deps_missing()
    checks = dg.AutomationCondition.all_deps_blocking_checks_passed()
    if optional_deps:
        optional = dg.AssetSelection.assets(*optional_deps)
        missing = missing.ignore(optional)
        # an optional table never made has no check verdict to wait for (swesmith_tasks' blocking GX check);
        # one whose blocking check failed holds the asset all the same
        failed = dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
        checks = checks.ignore(optional) & ~dg.AutomationCondition.any_deps_match(failed).allow(optional)
    return (dg.AutomationCondition.in_latest_time_window()
            & (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
            & ~missing
            & ~dg.AutomationCondition.any_deps_in_progress()
            & ~dg.AutomationCondition.in_progress()
            & checks).with_label("new upstream data, checks passed")
