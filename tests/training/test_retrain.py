"""Retraining retrains: the weekly job continues the published checkpoint into a new one (run twice, two
different checkpoints), and the champion/challenger gate publishes a challenger only when the report's
regression test finds it no worse; a worse one leaves `latest` alone and records an alert."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from evals.gate import ALERT_KIND, champion_challenger
from evals.evaluate import preset_settings
from evals.report import list_alerts
from resources.alerts import AlertSink
from resources.warehouse import Warehouse

NAME = "hrm_checkpoint"
GATE = ["bpb", "synthetic"]  # cheap on a tiny model; the weekly default is every benchmark


@pytest.fixture
def champion_warehouse(data_warehouse, tmp_path, one_torch_thread):
    """A copy of the shared data warehouse with a tiny HRM trained and published (the champion)."""
    from training.pipeline import CheckpointSettings, train_checkpoint

    wh = Warehouse(root=str(shutil.copytree(data_warehouse.root, tmp_path / "wh")))
    settings = CheckpointSettings(model_overrides={"max_seq_len": 256}, steps_per_stage=6, batch_size=4,
                                  checkpoint_every=6, max_minutes=0.0, warmup_steps=1)
    train_checkpoint(settings, wh, NAME, "hrm")
    return wh


def _weekly(wh, sandbox, steps=4):
    from hrm_assets import training as tr

    run_config = {"ops": {NAME: {"config": {"retrain_steps": steps, "steps_per_stage": 6, "batch_size": 4,
                                            "checkpoint_every": 4, "max_minutes": 0.0, "warmup_steps": 1,
                                            "model_overrides": json.dumps({"max_seq_len": 256}),
                                            "gate_benchmarks": ",".join(GATE), "gate_preset": "smoke"}}}}
    result = dg.materialize([tr.hrm_checkpoint], run_config=run_config, instance=dg.DagsterInstance.ephemeral(),
                            resources={"warehouse": wh, "sandbox": sandbox, "alerts": AlertSink()})
    assert result.success
    return result.asset_materializations_for_node(NAME)[0].metadata


@pytest.mark.slow
def test_weekly_retrain_twice_makes_two_new_checkpoints_and_the_gate_decides(champion_warehouse, sandbox):
    wh = champion_warehouse
    champion = wh.latest_checkpoint(NAME)["weights_sha256"]
    first = _weekly(wh, sandbox)
    after_first = wh.latest_checkpoint(NAME)["weights_sha256"]
    second = _weekly(wh, sandbox)
    after_second = wh.latest_checkpoint(NAME)["weights_sha256"]

    challengers = [first["challenger_hash"].value, second["challenger_hash"].value]
    assert len({champion[:12], *challengers}) == 3  # each run trained: no no-op resume of a finished run
    assert first["parent_hash"].value == champion[:12]
    assert second["parent_hash"].value == after_first[:12]  # the second run continues whatever `latest` holds
    for meta, before, after in ((first, champion, after_first), (second, after_first, after_second)):
        verdict = meta["gate_verdict"].value
        assert verdict["champion_sha256"] == before
        expected = verdict["challenger_sha256"] if verdict["accepted"] else before
        assert after == expected, verdict  # latest moved only to a challenger the gate accepted
        assert meta["gate"].value == ("challenger published" if verdict["accepted"] else "champion kept")
    run_dirs = sorted(p.name for p in (Path(wh.root) / "checkpoints" / NAME).glob("retrain-*"))
    assert len(run_dirs) == 2


def _corrupted_copy(source: Path, target: Path) -> Path:
    """The champion's checkpoint with every weight replaced by noise: a planted worse challenger."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    weights = load_file(str(target / "model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    save_file({k: torch.randn(v.shape, generator=generator) * 3 for k, v in weights.items()},
              str(target / "model.safetensors"))
    return target


def _challenger(wh, checkpoint_dir: Path) -> dict:
    from training.phases import sha256_file

    return {**wh.latest_checkpoint(NAME), "checkpoint_dir": str(checkpoint_dir), "run_dir": str(checkpoint_dir),
            "weights_sha256": sha256_file(checkpoint_dir / "model.safetensors")}


@pytest.mark.slow
def test_the_gate_keeps_the_champion_over_a_worse_challenger_and_alerts(champion_warehouse, sandbox, tmp_path,
                                                                       webhook):
    wh = champion_warehouse
    published = wh.latest_checkpoint(NAME)
    worse = _challenger(wh, _corrupted_copy(Path(published["checkpoint_dir"]), tmp_path / "worse"))
    sink = AlertSink(webhook_url=webhook.url, format="json")
    verdict = champion_challenger(wh, sandbox, NAME, worse, preset_settings("smoke"), GATE, "default=0.05", 0.05,
                                  notify=lambda kind, message, details: sink.send(kind, message, details, "run-1"))
    assert not verdict["accepted"] and verdict["regressions"]
    assert wh.latest_checkpoint(NAME) == published
    (alert,) = [a for a in list_alerts(wh.history_db()) if a["kind"] == ALERT_KIND]
    assert worse["weights_sha256"][:12] in alert["message"] and "champion" in alert["message"]
    # the alert reached the webhook too, and the history says so
    (body,) = webhook.bodies()
    assert body["kind"] == ALERT_KIND and body["run_id"] == "run-1" and body["message"] == alert["message"]
    assert alert["delivery"]["status"] == "sent"
    assert json.loads((tmp_path / "worse" / "gate.json").read_text())["accepted"] is False

    same = _challenger(wh, shutil.copytree(published["checkpoint_dir"], tmp_path / "same"))
    verdict = champion_challenger(wh, sandbox, NAME, same, preset_settings("smoke"), GATE, "default=0.05", 0.05)
    assert verdict["accepted"], verdict["regressions"]  # no worse than the champion: it is published
    assert wh.latest_checkpoint(NAME)["checkpoint_dir"] == str(tmp_path / "same")
