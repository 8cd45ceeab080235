"""bench/gpu_check.py, run on the CPU at tiny sizes: every section runs and reports (the real check needs a
GPU; this keeps the script from rotting between GPU loans)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~15 s: a torchrun launch of two processes
def test_the_gpu_check_script_runs_every_section_on_a_cpu(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, "bench/gpu_check.py", "--out", str(out), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == json.loads(out.read_text())
    for section in ("device", "cache", "flex", "mfu", "train", "torchrun"):
        assert "error" not in result[section], result[section]
    assert result["cache"]["full_recompute_agrees"] == 1.0
    assert result["flex"]["flex_loss"] == pytest.approx(result["flex"]["sdpa_loss"], rel=1e-5)
    assert result["train"]["loss_fell"] and result["torchrun"]["rc"] == 0
    assert result["mfu"]["pack"] and 0 < result["mfu"]["hrm_mfu"] < 1
