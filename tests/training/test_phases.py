"""Checkpoints train through the curriculum phases and resume after an interruption, in one process or
under torchrun (the training data comes from the `data_warehouse` fixture in conftest.py)."""

import json

import pytest

TINY = json.dumps({"max_seq_len": 256})  # the tiny preset (hidden 64): nf4 fails on hidden 32


def _settings(**changes):
    from training.pipeline import CheckpointSettings

    base = dict(model_overrides=json.loads(TINY), steps_per_stage=6, batch_size=4, checkpoint_every=2,
                max_minutes=0.0, warmup_steps=1)
    return CheckpointSettings(**{**base, **changes})


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_curriculum_training_resumes_where_it_was_killed(data_warehouse, tmp_path):
    from model.tokenizer import CodeTokenizer
    from training import phases
    from training.pipeline import build_configs

    tok_dir = data_warehouse.tokenizer_dir()
    mc, tc = build_configs(_settings(), "hrm", CodeTokenizer.load(tok_dir).vocab_size)
    tc.log_every = 2
    shards = phases.stage_shards(data_warehouse)
    assert [s for s, _ in shards] == ["1", "2", "3"]  # stage 4 has no feeding asset here

    def kill_in_phase_2(stage, step, metrics):  # runs before that step's checkpoint is written
        if stage == "2" and step == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        phases.train_curriculum(mc, tc, shards, tmp_path / "run", tok_dir, on_step=kill_in_phase_2)
    done = phases.train_curriculum(mc, tc, shards, tmp_path / "run", tok_dir)
    phases = {p["stage"]: p for p in done["phases"]}
    assert phases["1"]["resumed_from_step"] == 6  # finished before the kill: nothing left to do
    assert phases["2"]["resumed_from_step"] == 2  # the checkpoint written at step 2
    assert phases["3"]["resumed_from_step"] == 0
    assert all(p["steps"] == 6 for p in done["phases"])
    assert [h["global_step"] for h in done["history"]] == list(range(2, 19, 2))
    assert done["tokens_seen"] > 0 and "loss" in done["final_losses"]


def test_torchrun_starts_the_training_module_not_the_command_line(tmp_path):
    from training.phases import torchrun_command

    cmd = torchrun_command(2, tmp_path / "phase-1.config.json", ["s1.parquet", "s2.parquet"], tmp_path / "phase-1",
                           tmp_path / "tok")
    launcher = cmd.index("--nproc_per_node=2")
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    assert cmd[launcher + 1:launcher + 3] == ["-m", "training.run"] and not any("hrm_cli" in c for c in cmd)
    assert cmd[launcher + 3:] == ["--config", str(tmp_path / "phase-1.config.json"), "--shards", "s1.parquet",
                                  "s2.parquet", "--out", str(tmp_path / "phase-1"), "--tokenizer", str(tmp_path / "tok")]


@pytest.mark.slow
def test_curriculum_phases_under_torchrun_on_two_cpu_ranks(data_warehouse, tmp_path, monkeypatch):
    """The HRM_TORCHRUN_NPROC path: each phase is `python -m training.run` on 2 gloo ranks (DDP)."""
    import torch

    from model.tokenizer import CodeTokenizer
    from training import phases
    from training.pipeline import build_configs

    monkeypatch.chdir(tmp_path)  # the ranks find this checkout's packages from any working directory
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tok_dir = data_warehouse.tokenizer_dir()
    mc, tc = build_configs(_settings(steps_per_stage=2, checkpoint_every=2), "hrm",
                           CodeTokenizer.load(tok_dir).vocab_size)
    shards = phases.stage_shards(data_warehouse)[:2]
    lines = []
    done = phases.train_curriculum(mc, tc, shards, tmp_path / "run", tok_dir, torchrun_nproc=2, log=lines.append)
    assert [(p["stage"], p["steps"], p["shards"]) for p in done["phases"]] == [("1", 2, 1), ("2", 2, 2)]
    assert any(line.startswith("phase-2 torchrun: step 2/2 loss") for line in lines), lines  # the ranks' progress
    assert done["tokens_seen"] > 0 and "loss" in done["final_losses"]
    for phase in ("phase-1", "phase-2"):
        rng_states = torch.load(tmp_path / "run" / phase / "rng.pt", weights_only=True)
        assert len(rng_states) == 2  # one RNG state per rank: the phase really ran on two processes


def test_subprocess_output_reaches_the_log_while_it_runs(tmp_path):
    """The child waits for a file that only the log callback writes: without line-by-line streaming it
    would time out instead of finishing."""
    import os
    import sys

    from training.phases import run_streaming

    flag = tmp_path / "seen"
    child = ("import os, sys, time\nprint('first', flush=True)\ndeadline = time.time() + 20\n"
             f"while not os.path.exists({str(flag)!r}) and time.time() < deadline: time.sleep(0.05)\n"
             f"print('saw the log' if os.path.exists({str(flag)!r}) else 'never logged', file=sys.stderr)\n"
             "sys.exit(3)\n")
    lines = []

    def log(line):
        lines.append(line)
        flag.write_text("x")

    code, tail = run_streaming([sys.executable, "-c", child], dict(os.environ), log, prefix="p: ")
    assert (code, lines) == (3, ["p: first", "p: saw the log"])
    assert tail == "first\nsaw the log\n"
