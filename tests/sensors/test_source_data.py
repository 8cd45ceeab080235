"""The source-data sensors: a new LCB release adds its partition, a new Polyglot commit re-clones."""

import subprocess

import dagster as dg

from evals.polyglot.exercises import PINNED_COMMIT
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


def _commit(repo, text):
    (repo / "README.md").write_text(text)
    _git("add", "README.md", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", text.strip(), cwd=repo)
    return _git("rev-parse", "HEAD", cwd=repo)


def test_new_polyglot_commit_sensor_reclones_a_new_head_when_following_upstream(instance, tmp_path, monkeypatch):
    repo = tmp_path / "bench"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    head = _commit(repo, "v1\n")
    monkeypatch.setenv("HRM_POLYGLOT_SOURCE", str(repo))
    monkeypatch.setenv("HRM_POLYGLOT_FOLLOW_UPSTREAM", "1")
    request = new_polyglot_commit_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(request, dg.RunRequest)
    assert request.run_config["ops"]["polyglot_benchmark"]["config"]["commit"] == head
    instance.report_runless_asset_event(dg.AssetMaterialization("polyglot_benchmark", metadata={"commit": head}))
    assert isinstance(new_polyglot_commit_sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)


def test_new_polyglot_commit_sensor_keeps_the_pinned_commit_by_default(instance, tmp_path, monkeypatch,
                                                                      polyglot_bundle):
    """Upstream = a clone of the bundle mirror (at the pinned commit) with one commit on top: the first tick
    after the main command, which materialised the pinned commit, leaves the benchmark where it is."""
    upstream = tmp_path / "upstream"
    _git("clone", "-q", str(polyglot_bundle), str(upstream), cwd=tmp_path)
    assert _git("rev-parse", "HEAD", cwd=upstream) == PINNED_COMMIT
    moved = _commit(upstream, "upstream moved on\n")
    monkeypatch.setenv("HRM_POLYGLOT_SOURCE", str(upstream))
    monkeypatch.delenv("HRM_POLYGLOT_FOLLOW_UPSTREAM", raising=False)
    instance.report_runless_asset_event(dg.AssetMaterialization("polyglot_benchmark",
                                                                metadata={"commit": PINNED_COMMIT}))
    first = new_polyglot_commit_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(first, dg.SkipReason) and "pinned" in first.skip_message
    monkeypatch.setenv("HRM_POLYGLOT_FOLLOW_UPSTREAM", "1")
    following = new_polyglot_commit_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(following, dg.RunRequest)
    assert following.run_config["ops"]["polyglot_benchmark"]["config"]["commit"] == moved
