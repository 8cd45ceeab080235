"""Training in real child processes: a SIGKILL mid-run then resume, and DDP over gloo with torchrun."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.config import ModelConfig
from model.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]
MODEL = dict(max_seq_len=64)
RUN = dict(max_steps=8, batch_size=4, warmup_steps=2, lr=3e-3, checkpoint_every=2, log_every=1)


pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]  # trains in child processes and under torchrun

CHILD = """
import json, os, sys, time
from model.config import ModelConfig
from model.train import TrainConfig, train
files, out, model_cfg, run_cfg, hang_at = json.loads(sys.argv[1])
def report(step, metrics):
    print(step, flush=True)
    if step == hang_at:
        time.sleep(120)  # the parent SIGKILLs us here
result = train(ModelConfig.preset("tiny", **model_cfg), TrainConfig(**run_cfg), files, out, callback=report)
if os.environ.get("RANK", "0") == "0":
    print(json.dumps({"tokens_seen": result.tokens_seen, "losses": [h["loss"] for h in result.loss_history]}))
"""


def weights(directory):
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def child_env(**extra):
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def test_sigkill_mid_training_then_resume_is_bit_identical(token_shards, tmp_path):
    files, _ = token_shards
    train(ModelConfig.preset("tiny", **MODEL), TrainConfig(**RUN), files, tmp_path / "whole")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    args = json.dumps([files, str(tmp_path / "cut"), MODEL, RUN, 5])
    child = subprocess.Popen([sys.executable, str(script), args], stdout=subprocess.PIPE, text=True,
                             env=child_env(OMP_NUM_THREADS="1"), cwd=REPO)
    try:
        for line in child.stdout:
            if line.strip() == "5":
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert json.loads((tmp_path / "cut" / "trainer_state.json").read_text())["step"] == 4
    resumed = train(ModelConfig.preset("tiny", **MODEL), TrainConfig(**RUN), files, tmp_path / "cut")
    assert resumed.resumed_from_step == 4 and resumed.steps == 8
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_interrupted_save_is_recovered(token_shards, tmp_path):
    from model.checkpoint import is_checkpoint, recover

    files, _ = token_shards
    out = tmp_path / "run"
    train(ModelConfig.preset("tiny", **MODEL), TrainConfig(**{**RUN, "max_steps": 2}), files, out)
    # a crash between the two renames of a save leaves the previous checkpoint at .run.old and no run/
    os.replace(out, tmp_path / ".run.old")
    recover(out)
    assert is_checkpoint(out) and not (tmp_path / ".run.old").exists()
    resumed = train(ModelConfig.preset("tiny", **MODEL), TrainConfig(**{**RUN, "max_steps": 3}), files, out)
    assert resumed.resumed_from_step == 2 and resumed.steps == 3


def test_ddp_two_cpu_processes_with_torchrun(token_shards, tmp_path):
    files, _ = token_shards
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ddp_run = {**RUN, "batch_size": 2, "max_steps": 4, "checkpoint_every": 4}
    args = json.dumps([files, str(tmp_path / "ddp"), MODEL, ddp_run, -1])
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", str(script), args],
                          capture_output=True, text=True, env=child_env(OMP_NUM_THREADS="1"), cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = json.loads(done.stdout.strip().splitlines()[-1])
    # one process accumulating 2 micro-batches of 2 trains on the same micro-batches as 2 ranks x 2
    single = train(ModelConfig.preset("tiny", **MODEL), TrainConfig(**{**ddp_run, "grad_accum": 2}), files,
                   tmp_path / "single")
    assert ddp["tokens_seen"] == single.tokens_seen
    assert ddp["losses"] == pytest.approx([h["loss"] for h in single.loss_history], rel=1e-3)
    from model import build_model

    torch.manual_seed(0)
    init = build_model(ModelConfig.preset("tiny", **MODEL)).state_dict()
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    moved = sum(float((b[k] - init[k]).abs().sum()) for k in b)
    apart = sum(float((a[k] - b[k]).abs().sum()) for k in b)
    print(f"ddp vs accumulation: {apart:.4g} apart after moving {moved:.4g}")
    assert moved > 0 and apart <= 1e-6 * moved  # bit-identical here; all-reduce may sum in another order
    assert not list(tmp_path.glob(".ddp*"))  # no temporary or old checkpoint directories left
