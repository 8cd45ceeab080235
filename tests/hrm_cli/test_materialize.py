"""`hrm materialize` goes through the instance: runs are queued, launched in their own process by the instance's
launcher with a job origin, followed to the end; run monitoring frees what a killed run held."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SLOW = pytest.mark.slow  # starts a code server and run processes


@pytest.fixture
def instance_home(tmp_path, monkeypatch):
    """A fresh DAGSTER_HOME with the shipped dagster.yaml, and a workspace with the test code location."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_file:\n"
        f"      relative_path: {Path(__file__).with_name('instance_location.py')}\n"
        f"      working_directory: {REPO_ROOT}\n      attribute: defs\n      location_name: test_location\n")
    return workspace


@SLOW
def test_runs_are_launched_through_the_instance_with_a_job_origin(instance_home, capsys):
    from hrm_cli.materialize import materialize

    assert materialize(str(instance_home), None, None, list_only=False) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["success"]
    assert [(r["assets"], r["partition"]) for r in summary["runs"]] == [
        (["repo_rows"], "repo_a"), (["repo_rows"], "repo_b"), (["summary", "trained"], None)]
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("swe_repos") == ["repo_a", "repo_b"]
        for entry in summary["runs"]:
            run = instance.get_run_by_id(entry["run_id"])
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert run.remote_job_origin.location_name == "test_location"  # a run-status sensor sees it
            assert run.tags.get("dagster/partition") == entry["partition"]
        pid_events = [e for e in instance.all_logs(summary["runs"][0]["run_id"])
                      if "Started process for run (pid:" in (e.message or "")]
        assert pid_events and f"pid: {os.getpid()})" not in pid_events[0].message  # its own process


@SLOW
def test_a_failed_step_stops_the_command_and_is_named(instance_home, monkeypatch, capsys):
    from hrm_cli.materialize import materialize

    monkeypatch.setenv("HRM_TEST_FAIL", "1")
    assert materialize(str(instance_home), "summary,trained", None, list_only=False) == 1
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert not summary["success"] and summary["runs"][0]["assets"] == ["summary", "trained"]
    assert "step summary failed: ValueError: summary refused: HRM_TEST_FAIL is set" in err
    assert "FAILED: summary,trained" in err


@SLOW
def test_list_prints_the_plan_and_registers_the_configured_partitions(instance_home, capsys):
    from hrm_cli.materialize import materialize

    assert materialize(str(instance_home), "repo_rows", "repo_b", list_only=True) == 0
    assert capsys.readouterr().out.splitlines() == ["repo_rows [repo_b]"]


@SLOW
def test_a_killed_run_is_failed_and_its_gpu_slot_freed_by_run_monitoring(instance_home, monkeypatch):
    from hrm_cli import instance_runs

    monkeypatch.setenv("HRM_TEST_TRAIN_S", "120")
    with dg.DagsterInstance.get() as instance, instance_runs.workspace(instance, str(instance_home)) as context:
        daemon = instance_runs.Daemon(context)
        run = instance_runs.submit(context, ["trained"], None, {})
        pid = _wait_for(lambda: daemon.tick() or _worker_pid(instance, run.run_id), "the run worker to start")
        _wait_for(lambda: _gpu_slot_holders(instance) == {run.run_id}, "the step to claim the gpu slot")

        os.kill(pid, signal.SIGKILL)
        run, events = instance_runs.follow(daemon, run.run_id, lambda line: None)
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert any("SIGKILL" in message for _, message in instance_runs.failures(events))
        assert _gpu_slot_holders(instance) == {run.run_id}  # nothing but run monitoring frees it

        wait_s = instance.run_monitoring_settings["free_slots_after_run_end_seconds"]
        time.sleep(wait_s + 1)
        instance_runs.monitor(context)
        assert _gpu_slot_holders(instance) == set()
        assert instance.event_log_storage.claim_concurrency_slot("gpu", "next-run", "trained").is_claimed


@SLOW
def test_killing_the_whole_command_mid_training_leaves_no_stale_gpu_slot(instance_home, tmp_path):
    """`hrm materialize`, its code server and the run worker all killed at once: nothing is left to notice the
    run ended but run monitoring's health check of the worker (resources/run_launcher.py)."""
    from hrm_cli import instance_runs

    env = {**os.environ, "HRM_TEST_TRAIN_S": "120"}
    code = f"from hrm_cli.materialize import materialize; materialize({str(instance_home)!r}, 'trained', None, False)"
    command = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True, cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with dg.DagsterInstance.get() as instance:
            run_id = _wait_for(lambda: next(iter(_gpu_slot_holders(instance)), None), "a step to hold the gpu slot")
            os.killpg(command.pid, signal.SIGKILL)
            command.wait()
            _wait_for(lambda: _worker_pid(instance, run_id) and not _running(_worker_pid(instance, run_id)),
                      "the run worker to die")
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED  # stale, as before

            with instance_runs.workspace(instance, str(instance_home)) as context:
                instance_runs.monitor(context)
                run = instance.get_run_by_id(run_id)
                assert run.status == dg.DagsterRunStatus.FAILURE
                assert any("is gone" in (e.message or "") for e in instance.all_logs(run_id))
                time.sleep(instance.run_monitoring_settings["free_slots_after_run_end_seconds"] + 1)
                instance_runs.monitor(context)
            assert _gpu_slot_holders(instance) == set()
    finally:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    from resources.run_launcher import _alive_since

    return _alive_since(pid, before=time.time())


def test_the_plan_orders_by_dependency_and_groups_runs():
    from hrm_assets.definitions import defs
    from hrm_cli.materialize import build_plan, register_configured_partitions

    instance, graph = dg.DagsterInstance.ephemeral(), defs.resolve_asset_graph()
    register_configured_partitions(graph, instance)
    plan = build_plan(graph, instance, None, None)
    position = {k: i for i, (keys, _) in enumerate(plan) for k in keys}
    for key in graph.toposorted_asset_keys:
        for parent in graph.get(key).parent_keys:
            if parent.to_user_string() in position and key.to_user_string() in position:
                assert position[parent.to_user_string()] <= position[key.to_user_string()], (parent, key)
    repos = [pk for keys, pk in plan if keys == ["swe_repos", "swesmith_tasks"]]
    assert repos == instance.get_dynamic_partitions("swe_repos") and len(repos) >= 1  # one run per repo
    if not instance.get_dynamic_partitions("lcb_release"):  # no LCB source: its empty group splits no runs
        assert [keys for keys, pk in plan if pk is None][0][-1] == "polyglot_benchmark"
    assert build_plan(graph, instance, "curriculum_shards", "2") == [(["curriculum_shards"], "2")]


def _worker_pid(instance, run_id: str) -> int | None:
    for entry in instance.all_logs(run_id):
        message = entry.message or ""
        if message.startswith("Started process for run (pid: "):
            return int(message.split("pid: ")[1].split(")")[0])
    return None


def _gpu_slot_holders(instance) -> set[str]:
    info = instance.event_log_storage.get_concurrency_info("gpu")
    return {slot.run_id for slot in info.claimed_slots}


def _wait_for(probe, what: str, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")
