"""Declarative automation of the data chain, evaluated on the project's own Definitions: new upstream data
requests the assets that read it, and a failed blocking check upstream holds them, across runs, until the
check passes again."""

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (  # not exported
    AssetCheckEvaluationTargetMaterializationData)

from hrm_assets.definitions import defs

DATA_CHAIN = ("tokenizer", "training_examples")  # both read code_corpus and synthetic_tasks
CORPUS_CHAIN = (*DATA_CHAIN, "doc_tasks")  # doc_tasks reads code_corpus only
CHECKS = {name: f"{name}_gx" for name in ("code_corpus", "synthetic_tasks", "training_examples")}  # blocking


def _materialise(instance, name, check_passed=True):
    """A new version of `name` (as a run's materialisation would record it) and its blocking check's verdict."""
    instance.report_runless_asset_event(dg.AssetMaterialization(name))
    if name in CHECKS:
        _check(instance, name, check_passed)


def _check(instance, name, passed):
    record = instance.fetch_materializations(dg.AssetKey(name), limit=1).records[0]
    target = AssetCheckEvaluationTargetMaterializationData(storage_id=record.storage_id, run_id=record.run_id,
                                                           timestamp=record.timestamp)
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(name), check_name=CHECKS[name], passed=passed, severity=dg.AssetCheckSeverity.ERROR,
        target_materialization_data=target))


class Daemon:
    """Successive ticks of the automation sensor (each evaluation continues from the last one's cursor)."""

    def __init__(self, instance):
        self.instance, self.cursor = instance, None

    def requested(self) -> set[str]:
        result = dg.evaluate_automation_conditions(defs=defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return {name for name in ("code_corpus", "doc_tasks", "tokenizer", "training_examples", "curriculum_shards")
                if result.get_num_requested(dg.AssetKey(name))}


@pytest.mark.slow
def test_new_data_flows_down_and_a_failed_blocking_check_holds_it_across_runs():
    instance = dg.DagsterInstance.ephemeral()
    for name in ("humaneval_problems", "code_corpus", "synthetic_tasks", *CORPUS_CHAIN):
        _materialise(instance, name)
    daemon = Daemon(instance)
    assert daemon.requested() == set()  # everything is up to date

    _materialise(instance, "synthetic_tasks")  # new synthetic tasks; the SWE task tables were never made
    assert daemon.requested() == set(DATA_CHAIN)
    for name in DATA_CHAIN:
        _materialise(instance, name)
    assert daemon.requested() == {"curriculum_shards"}  # and on down the chain

    _check(instance, "code_corpus", passed=False)  # a later run: the staged corpus failed its check
    _materialise(instance, "synthetic_tasks")
    assert daemon.requested() == set()
    assert daemon.requested() == set()  # still held on the next tick
    _materialise(instance, "code_corpus")  # fixed, checked, published
    assert daemon.requested() == set(CORPUS_CHAIN)


def test_the_automation_sensor_starts_running_and_covers_every_asset():
    sensor = defs.resolve_sensor_def("data_chain_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    automated = {k.to_user_string() for k in graph.get_all_asset_keys()
                 if graph.get(k).automation_condition is not None}
    assert {"code_corpus", "tokenizer", "training_examples", "curriculum_shards", "polyglot_problems"} <= automated
    assert "hrm_checkpoint" not in automated  # training runs on the weekly schedule, not on every new shard


def test_an_optional_task_table_whose_blocking_check_failed_holds_training_examples():
    """Never made, an optional table holds nothing (test above); made with a failed blocking check, it does."""
    instance = dg.DagsterInstance.ephemeral()
    for name in ("humaneval_problems", "code_corpus", "synthetic_tasks", *CORPUS_CHAIN):
        _materialise(instance, name)
    daemon = Daemon(instance)
    daemon.requested()
    instance.add_dynamic_partitions("swe_repos", ["r1"])

    def swesmith_tasks(passed):
        instance.report_runless_asset_event(dg.AssetMaterialization("swesmith_tasks", partition="r1"))
        record = instance.fetch_materializations(dg.AssetKey("swesmith_tasks"), limit=1).records[0]
        target = AssetCheckEvaluationTargetMaterializationData(storage_id=record.storage_id, run_id=record.run_id,
                                                               timestamp=record.timestamp)
        instance.report_runless_asset_event(dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("swesmith_tasks"), check_name="swesmith_tasks_gx", passed=passed,
            severity=dg.AssetCheckSeverity.ERROR, target_materialization_data=target, partition="r1"))

    swesmith_tasks(passed=False)
    _materialise(instance, "synthetic_tasks")  # new data that would otherwise request it
    assert daemon.requested() == {"tokenizer"}
