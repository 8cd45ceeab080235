"""register_partitions: on a fresh instance the configured dynamic partition keys appear without `hrm materialize`,
so the UI alone can build partitioned assets."""

import logging
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from sensors.partitions import register_partitions_sensor

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCATION = REPO_ROOT / "tests" / "hrm_cli" / "instance_location.py"


def test_the_sensor_adds_the_configured_keys_the_instance_lacks():
    from datagen.swe.repos import configured_specs
    from hrm_assets.definitions import defs
    from hrm_assets.lcb import default_releases

    keys = [s.key for s in configured_specs()]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("swe_repos", keys[:1])
        result = register_partitions_sensor(dg.build_sensor_context(instance=instance, definitions=defs))
        added = {r.partitions_def_name: r.partition_keys for r in result.dynamic_partitions_requests}
        expected = {"swe_repos": keys[1:], **({"lcb_release": default_releases()} if default_releases() else {})}
        assert added == expected

        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        again = register_partitions_sensor(dg.build_sensor_context(instance=instance, definitions=defs))
        assert isinstance(again, dg.SkipReason)


@pytest.mark.slow
def test_a_fresh_instance_gets_the_keys_from_the_daemon_and_the_ui_path_builds_them(tmp_path, monkeypatch):
    """The sensor daemon's own iteration (as under `dagster dev`) ticks the default-RUNNING sensor; a run of a
    partition launched through the instance (as the UI launches it) then succeeds."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    from hrm_cli import instance_runs

    workspace = _fresh_home_and_workspace(tmp_path, monkeypatch)
    with dg.DagsterInstance.get() as instance, \
            WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace)])) as context:
        assert instance.get_dynamic_partitions("swe_repos") == []
        list(execute_sensor_iteration(context, logging.getLogger("test"), None, None))
        assert instance.get_dynamic_partitions("swe_repos") == ["repo_a", "repo_b"]

        run = instance_runs.submit(context, ["repo_rows"], "repo_b", {})
        run, _ = instance_runs.follow(instance_runs.Daemon(context), run.run_id, lambda line: None)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_materialized_partitions(dg.AssetKey("repo_rows")) == {"repo_b"}


@pytest.mark.slow
def test_materialize_all_from_a_fresh_instance_is_an_asset_backfill_that_completes(tmp_path, monkeypatch):
    """What the UI's "Materialize all" does: an asset backfill over every asset and partition, which the daemon's
    backfill and run-queue iterations carry out (here called in turn, as `dagster dev`'s daemon calls them)."""
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
    from dagster._daemon.sensor import execute_sensor_iteration

    workspace = _fresh_home_and_workspace(tmp_path, monkeypatch)
    log = logging.getLogger("test")
    with dg.DagsterInstance.get() as instance, \
            WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace)])) as context:
        list(execute_sensor_iteration(context, log, None, None))
        graph = context.create_request_context().asset_graph
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=make_new_backfill_id(), asset_graph=graph, partition_names=None,
            asset_selection=list(graph.materializable_asset_keys), backfill_timestamp=time.time(), tags={},
            dynamic_partitions_store=instance, all_partitions=True, title=None, description=None, run_config=None)
        instance.add_backfill(backfill)
        deadline = time.monotonic() + 180
        with QueuedRunCoordinatorDaemon(interval_seconds=1) as queue:
            while instance.get_backfill(backfill.backfill_id).status == BulkActionStatus.REQUESTED:
                assert time.monotonic() < deadline, "the backfill did not finish"
                list(execute_backfill_iteration(context, log))
                list(queue.run_iteration(context))
                time.sleep(0.5)
        assert instance.get_backfill(backfill.backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS
        assert instance.get_materialized_partitions(dg.AssetKey("repo_rows")) == {"repo_a", "repo_b"}
        for key in ("summary", "trained"):
            assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None


def _fresh_home_and_workspace(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text("load_from:\n  - python_file:\n"
                         f"      relative_path: {LOCATION}\n      working_directory: {REPO_ROOT}\n"
                         "      attribute: defs\n      location_name: test_location\n")
    return workspace
