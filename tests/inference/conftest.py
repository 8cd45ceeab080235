import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, token_shards):
    """A tiny HRM trained for 40 steps on the test shards (it writes readable code) with their tokenizer."""
    from hrm_cli.main import main

    files, tok = token_shards
    root = tmp_path_factory.mktemp("serve")
    config = root / "run.json"
    config.write_text(json.dumps({"model": {"preset": "tiny", "max_seq_len": 128},
                                  "train": {"max_steps": 40, "batch_size": 8, "lr": 1e-2, "warmup_steps": 3,
                                            "log_every": 40, "checkpoint_every": 40}}))
    out = root / "ckpt"
    assert main(["train", "--config", str(config), "--shards", str(Path(files[0]).parent), "--out", str(out),
                 "--tokenizer", str(tok)]) == 0
    return out
