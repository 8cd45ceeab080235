"""The source-data sensors: a new LCB release adds its partition, a new Polyglot commit re-clones."""

import subprocess

import dagster as dg

from sensors.source_data import new_lcb_release_sensor, new_polyglot_commit_sensor


def test_new_lcb_release_sensor_adds_partition_and_requests_run(instance, tmp_path, monkeypatch):
    monkeypatch.delenv("HRM_LCB_SOURCE", raising=False)
    assert isinstance(new_lcb_release_sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)
    (tmp_path / "test.jsonl").write_text("")
    (tmp_path / "test2.jsonl").write_text("")
    monkeypatch.setenv("HRM_LCB_SOURCE", str(tmp_path))
    result = new_lcb_release_sensor(dg.build_sensor_context(instance=instance))
    assert [r.partition_key for r in result.run_requests] == ["release_v2"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["release_v2"]
    assert result.cursor == "release_v2"
    assert isinstance(new_lcb_release_sensor(dg.build_sensor_context(instance=instance, cursor="release_v2")),
                      dg.SkipReason)
    (tmp_path / "test3.jsonl").write_text("")
    newer = new_lcb_release_sensor(dg.build_sensor_context(instance=instance, cursor="release_v2"))
    assert newer.run_requests[0].partition_key == "release_v3"


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_new_polyglot_commit_sensor_reclones_a_new_head(instance, tmp_path, monkeypatch):
    repo = tmp_path / "bench"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    (repo / "README.md").write_text("v1\n")
    _git("add", "README.md", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "v1", cwd=repo)
    head = _git("rev-parse", "HEAD", cwd=repo)
    monkeypatch.setenv("HRM_POLYGLOT_SOURCE", str(repo))
    ctx = dg.build_sensor_context(instance=instance)
    request = new_polyglot_commit_sensor(ctx)
    assert isinstance(request, dg.RunRequest)
    assert request.run_config["ops"]["polyglot_benchmark"]["config"]["commit"] == head
    instance.report_runless_asset_event(dg.AssetMaterialization("polyglot_benchmark", metadata={"commit": head}))
    assert isinstance(new_polyglot_commit_sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)
