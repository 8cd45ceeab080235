"""`hrm materialize` frees what a killed run held, so the next run is not blocked."""

import os
import socket
import subprocess

import dagster as dg


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_killed_runs_are_marked_failed_and_release_their_pool_slots(tmp_path):
    from hrm_cli.materialize import release_abandoned_runs

    instance = dg.DagsterInstance.ephemeral()
    instance.event_log_storage.set_concurrency_slots("gpu", 1)

    @dg.asset(pool="gpu")
    def trained():
        return 1

    job = dg.define_asset_job("j", [trained]).resolve(asset_graph=dg.Definitions(assets=[trained]).resolve_asset_graph())
    tags = {"hrm/launched_by": "hrm materialize", "hrm/host": socket.gethostname()}
    dead = instance.create_run_for_job(job, tags={**tags, "hrm/pid": str(_dead_pid())})
    alive = instance.create_run_for_job(job, tags={**tags, "hrm/pid": str(os.getpid())})
    for run in (dead, alive):
        instance.handle_run_event(run.run_id, dg.DagsterEvent(
            event_type_value="PIPELINE_START", job_name=run.job_name, message="started"))
    claim = instance.event_log_storage.claim_concurrency_slot("gpu", dead.run_id, "trained")
    assert claim.is_claimed

    assert release_abandoned_runs(instance) == [dead.run_id]
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
    assert instance.event_log_storage.claim_concurrency_slot("gpu", "next-run", "trained").is_claimed
