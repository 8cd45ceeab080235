"""A small code location for the tests of runs through the instance: a dynamically partitioned asset whose keys
come from configuration (as swe_repos'), an unpartitioned asset that fails on request, and a `gpu`-pool asset that
sleeps on request (as a training step would); plus the real register_partitions sensor."""

import os
import time

import dagster as dg

from resources.partitions import DEFAULT_KEYS, SWE_REPO
from sensors.partitions import register_partitions_sensor

repos = dg.DynamicPartitionsDefinition(name=SWE_REPO)


@dg.asset(partitions_def=repos, metadata={DEFAULT_KEYS: dg.MetadataValue.json(["repo_a", "repo_b"])})
def repo_rows(context: dg.AssetExecutionContext) -> str:
    return context.partition_key


@dg.asset(deps=[repo_rows])
def summary() -> int:
    if os.environ.get("HRM_TEST_FAIL"):
        raise ValueError("summary refused: HRM_TEST_FAIL is set")
    return 1


@dg.asset(deps=[summary], pool="gpu")
def trained() -> int:
    time.sleep(float(os.environ.get("HRM_TEST_TRAIN_S", "0")))
    return 1


defs = dg.Definitions(assets=[repo_rows, summary, trained], sensors=[register_partitions_sensor],
                      executor=dg.in_process_executor)
