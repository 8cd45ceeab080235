"""Bits per byte of held-out code (evals/bpb.py): the model's summed token NLL over the file's bytes, and the
gzip -9 / xz -9e baselines on the same bytes."""

import inspect
import math
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from evals import bpb
from model.tokenizer import ByteTokenizer

REPETITIVE = "def add(a, b):\n    return a + b\n" * 60


def tiny_model(arch="hrm", max_seq_len=64):
    import torch

    from model import ModelConfig, build_model

    torch.manual_seed(0)
    return build_model(ModelConfig(arch=arch, vocab_size=ByteTokenizer.vocab_size, hidden_size=32, num_heads=2,
                                   max_seq_len=max_seq_len))


def random_text(n, seed=0):
    rng = random.Random(seed)
    return "".join(chr(rng.randint(0x20, 0x7E)) for _ in range(n))


def test_windows_score_every_token_once_with_the_promised_context():
    for n in (0, 1, 5, 63, 64, 65, 200, 1001):
        for window, stride in ((63, 31), (63, 63), (10, 1), (10, 7)):
            spans = bpb.windows(n, window, stride)
            scored = [j for begin, end, first in spans for j in range(first, end)]
            assert scored == list(range(n))
            for begin, end, first in spans:
                assert end - begin <= window and begin <= first
                if begin > 0:
                    assert first - begin >= window - stride
    with pytest.raises(ValueError):
        bpb.windows(10, 8, 9)


def test_gzip_and_xz_match_the_command_line_tools_and_squeeze_repetition():
    data = REPETITIVE.encode()
    assert bpb.compressor_bits_per_byte([REPETITIVE], "gzip") < 1.0
    assert bpb.compressor_bits_per_byte([REPETITIVE], "xz") < 1.0
    assert bpb.compressor_bits_per_byte([random_text(4000)], "gzip") > 6.0  # 95 symbols: ~6.6 bits each at best
    if shutil.which("gzip") and shutil.which("xz"):
        code = Path(inspect.__file__).read_bytes()  # real code, where compression levels differ

        def cli(*argv):
            return 8 * len(subprocess.run(argv, input=code, capture_output=True, check=True).stdout)

        assert bpb.compressed_bits(code, "xz") == cli("xz", "-9e", "-c")  # the same liblzma
        # zlib's deflate is not GNU gzip's: within 0.5 % of gzip -9, and below gzip -6
        assert abs(bpb.compressed_bits(code, "gzip") / cli("gzip", "-9", "-n", "-c") - 1) < 0.005
        assert bpb.compressed_bits(code, "gzip") < cli("gzip", "-6", "-n", "-c")
    # each file is compressed alone: two copies cost twice one
    assert bpb.compressor_file_bits([REPETITIVE, REPETITIVE], "gzip") == 2 * bpb.compressor_file_bits([REPETITIVE], "gzip")
    with pytest.raises(ValueError):
        bpb.compressed_bits(data, "zip")


@pytest.mark.parametrize("arch", ["hrm", "baseline"])
def test_an_untrained_model_spends_about_log2_vocab_bits_per_byte_on_random_text(arch, one_torch_thread):
    model = tiny_model(arch)
    texts = [random_text(300, seed) for seed in range(3)]
    value = bpb.model_bits_per_byte(model, ByteTokenizer(), texts, ["python"] * 3)
    assert abs(value - math.log2(ByteTokenizer.vocab_size)) < 1.0, value  # one byte per token, near-uniform


def test_sliding_windows_equal_one_pass_when_the_file_fits_and_stay_close_when_it_does_not(one_torch_thread):
    import torch

    model = tiny_model(max_seq_len=64).eval()  # training mode would draw random ACT depths
    tok = ByteTokenizer()
    text = random_text(40, seed=3)
    ids = [tok.answer_id] + tok.encode(text)
    with torch.no_grad():
        logits = model({"input_ids": torch.tensor([ids]), "prompt_len": torch.tensor([1]),
                        "language_ids": torch.tensor([4]), "task_ids": torch.tensor([0])}).logits[0]
    logp = torch.log_softmax(logits[:-1].float(), -1).gather(1, torch.tensor(ids[1:])[:, None])
    direct = float(-logp.sum()) / math.log(2)
    assert bpb.model_file_bits(model, tok, [text], ["python"])[0] == pytest.approx(direct, rel=1e-5)
    long = random_text(500, seed=4)
    chunks = bpb.model_file_bits(model, tok, [long], ["python"], stride=63)[0]
    slid = bpb.model_file_bits(model, tok, [long], ["python"], stride=16)[0]
    assert chunks > 0 and slid > 0 and abs(chunks - slid) / chunks < 0.1
    # batching does not change a file's bits
    assert bpb.model_file_bits(model, tok, [long, text], ["python"] * 2, batch_size=1) == pytest.approx(
        bpb.model_file_bits(model, tok, [long, text], ["python"] * 2, batch_size=8), rel=1e-5)


@pytest.mark.slow  # trains for a few seconds
def test_a_few_training_steps_on_repetitive_code_beat_the_untrained_model(one_torch_thread):
    import torch

    model = tiny_model("hrm", max_seq_len=64)
    tok = ByteTokenizer()
    held_out = ["def add(a, b):\n    return a + b\n" * 8]
    before = bpb.model_bits_per_byte(model, tok, held_out, ["python"])
    ids = torch.tensor([[tok.answer_id] + tok.encode(REPETITIVE)[i:i + 63] for i in range(0, 600, 37)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        logits = model({"input_ids": ids, "prompt_len": torch.ones(len(ids), dtype=torch.long)}).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = bpb.model_bits_per_byte(model, tok, held_out, ["python"])
    assert after < before - 2.0, (before, after)
    assert model.training  # the evaluation put the model back the way it found it


def test_bootstrap_interval_brackets_the_ratio_and_narrows_with_more_files():
    rng = random.Random(1)
    sizes = [rng.randint(500, 5000) for _ in range(40)]
    bits = [s * rng.uniform(2.0, 4.0) for s in sizes]
    lo, hi = bpb.bootstrap_interval(bits, sizes)
    assert lo < bpb.ratio(bits, sizes) < hi
    lo4, hi4 = bpb.bootstrap_interval(bits[:4], sizes[:4])
    assert hi4 - lo4 > hi - lo
    assert bpb.bootstrap_interval([10.0], [5]) == (2.0, 2.0)
