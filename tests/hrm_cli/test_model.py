import io
import json
from pathlib import Path

import pytest

from hrm_cli.main import main


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class RecordingStdout(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes, self.flushes = [], 0

    def write(self, text):
        self.writes.append(text)
        return super().write(text)

    def flush(self):
        self.flushes += 1


@pytest.mark.slow
def test_train_then_generate_streams(token_shards, tmp_path, capsys, monkeypatch):
    files, tok = token_shards
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"model": {"preset": "tiny", "max_seq_len": 64},
                                  "train": {"max_steps": 30, "batch_size": 8, "lr": 1e-2, "warmup_steps": 3,
                                            "log_every": 10, "checkpoint_every": 30}}))
    out = tmp_path / "ckpt"
    assert main(["train", "--config", str(config), "--shards", str(Path(files[0]).parent),
                 "--out", str(out), "--tokenizer", str(tok)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["steps"] == 30 and "step 30/30 loss" in captured.err
    assert (out / "model.safetensors").is_file() and (out / "tokenizer" / "tokenizer.json").is_file()

    recorder = RecordingStdout()
    monkeypatch.setattr("sys.stdout", recorder)
    code = main(["generate", "--checkpoint", str(out), "--prompt", "add two numbers #1", "--language", "python",
                 "--max-new-tokens", "12", "--stop", "\n\n"])
    assert code == 0
    pieces = [w for w in recorder.writes if w != "\n"]
    assert len(pieces) >= 2 and recorder.flushes >= len(pieces)  # token by token, flushed as produced
    assert "".join(pieces).strip()

    recorder2 = RecordingStdout()
    monkeypatch.setattr("sys.stdout", recorder2)
    assert main(["generate", "--checkpoint", str(out), "--prompt", "add two numbers #1", "--max-new-tokens", "4",
                 "--quantization", "int8", "--temperature", "0.8", "--top-k", "5", "--seed", "1"]) == 0


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["train", "--config", "nope", "--shards", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "neither a preset" in capsys.readouterr().err
    assert main(["train", "--config", "tiny", "--shards", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no .parquet files" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompt", "x"]) == 2
    assert "not a checkpoint" in capsys.readouterr().err
