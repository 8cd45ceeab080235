"""Checkpoints record cumulative training FLOPs (training/phases.py), so held-out scores can be compared
at equal training compute."""

import pytest

from training import phases


def test_phase_flops_are_tokens_times_the_logged_flops_per_token():
    # two windows of 10 steps: 100 and 300 FLOPs per token; 2,000 tokens in the phase (100 a step)
    history = [{"step": 10, "tokens_per_s": 50.0, "flops_per_s": 5_000.0},
               {"step": 20, "tokens_per_s": 10.0, "flops_per_s": 3_000.0}]
    total = phases.add_training_flops(history, 2_000, flops_before=1e6)
    assert total == pytest.approx(1e6 + 1_000 * 100 + 1_000 * 300)
    assert [h["train_flops"] for h in history] == pytest.approx([1e6 + 1e5, total])
    assert phases.add_training_flops([{"step": 5, "loss": 1.0}], 100, 0.0) is None  # nothing logged


@pytest.mark.slow
def test_curriculum_summary_and_history_carry_cumulative_flops(token_shards, tmp_path, one_torch_thread):
    from model.config import ModelConfig
    from model.train import TrainConfig, train_step_flops

    files, tok_dir = token_shards
    shards = [("1", files[0]), ("2", files[1])]
    totals = {}
    for arch in ("hrm", "baseline"):
        mc = ModelConfig.preset("tiny", vocab_size=512, arch=arch)
        tc = TrainConfig(max_steps=4, batch_size=2, log_every=2, checkpoint_every=4, dtype="fp32", warmup_steps=1)
        done = phases.train_curriculum(mc, tc, shards, tmp_path / arch, tok_dir)
        flops = [h["train_flops"] for h in done["history"]]
        assert flops == sorted(flops) and flops[0] > 0
        assert done["phases"][-1]["train_flops"] == done["train_flops"] == flops[-1]
        assert done["phases"][0]["train_flops"] == flops[len(flops) // 2 - 1]
        # per real token: the analytic cost of a short row, a little more for the padding the trainer counts
        per_token = done["train_flops"] / done["tokens_seen"]
        analytic = train_step_flops(mc, 1, 32, 16) / 32
        assert analytic * 0.8 < per_token < analytic * 2.0, (arch, per_token, analytic)
        totals[arch] = per_token
    # HRM runs 3x the block passes of the baseline; the shared LM head narrows that at this width
    expected = train_step_flops(ModelConfig.preset("tiny", vocab_size=512), 1, 32, 16) / train_step_flops(
        ModelConfig.preset("tiny", vocab_size=512, arch="baseline"), 1, 32, 16)
    assert totals["hrm"] / totals["baseline"] == pytest.approx(expected, rel=0.1)
