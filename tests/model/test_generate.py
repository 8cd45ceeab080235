"""Generation: batching, stop ids, memory cap, streaming, sampling, stop strings, adaptive-depth stats."""

import pytest
import torch

from model import ModelConfig, build_model
from model.generate import generate, generate_ids, sample_next, stream, stream_ids
from model.tokenizer import ByteTokenizer


TOK = ByteTokenizer()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["hrm", "baseline"])
def model(request):
    torch.manual_seed(0)
    return build_model(ModelConfig.preset("tiny", arch=request.param, vocab_size=259, max_seq_len=96)).eval()


PROMPTS = [TOK.encode_prompt("def add(a, b):"), TOK.encode_prompt("x"), TOK.encode_prompt("fn main() {")]


def test_greedy_tokens_are_the_full_forward_argmax_and_batching_changes_nothing(model):
    batched = generate_ids(model, PROMPTS, [4, 4, 5], 0, max_new_tokens=10)
    for prompt, lang, got in zip(PROMPTS, [4, 4, 5], batched):
        assert got == generate_ids(model, [prompt], lang, 0, max_new_tokens=10)[0]
        seq = list(prompt)
        for token in got:  # each token is the argmax of a fresh full forward
            logits = model({"input_ids": torch.tensor([seq]), "prompt_len": torch.tensor([len(prompt)]),
                            "language_ids": torch.tensor([lang]), "task_ids": torch.tensor([0])}).logits
            assert token == int(logits[0, -1].argmax())
            seq.append(token)


def test_stop_ids_end_a_row_without_the_stop_token(model):
    free = generate_ids(model, PROMPTS[:1], 4, 0, max_new_tokens=12)[0]
    stop = free[4]
    cut = generate_ids(model, PROMPTS[:1], 4, 0, max_new_tokens=12, stop_ids=[stop])[0]
    assert cut == free[:free.index(stop)]
    assert generate_ids(model, PROMPTS[:1], 4, 0, max_new_tokens=12, eos_id=stop)[0] == cut
    early = generate_ids(model, PROMPTS, 4, 0, max_new_tokens=12, stop_when=lambda row: len(row) >= 3 + row[0] % 3)
    assert [len(row) for row in early] == [3 + row[0] % 3 for row in early]


def test_memory_cap_splits_the_batch_or_refuses(model):
    per_row = model.cache_bytes_per_token() * (max(map(len, PROMPTS)) + 8) / 2**20
    plain = generate_ids(model, PROMPTS, 4, 0, max_new_tokens=8)
    assert generate_ids(model, PROMPTS, 4, 0, max_new_tokens=8, max_memory_mb=per_row * 1.5) == plain
    with pytest.raises(MemoryError, match="max_memory_mb"):
        generate_ids(model, PROMPTS, 4, 0, max_new_tokens=8, max_memory_mb=per_row / 2)
    with pytest.raises(ValueError, match="max_seq_len"):
        generate_ids(model, PROMPTS, 4, 0, max_new_tokens=200)


def test_stream_ids_yield_the_same_tokens(model):
    assert list(stream_ids(model, PROMPTS[0], 4, 0, max_new_tokens=9)) == generate_ids(model, PROMPTS[:1], 4, 0, max_new_tokens=9)[0]


def test_sampling_is_seeded_and_top_k_1_is_greedy(model):
    greedy = generate_ids(model, PROMPTS, 4, 0, max_new_tokens=8)
    assert generate_ids(model, PROMPTS, 4, 0, max_new_tokens=8, temperature=1.0, top_k=1, seed=1) == greedy
    assert generate_ids(model, PROMPTS, 4, 0, max_new_tokens=8, temperature=1.0, top_p=1e-6, seed=1) == greedy
    a = generate_ids(model, PROMPTS, 4, 0, max_new_tokens=8, temperature=2.0, seed=7)
    assert a == generate_ids(model, PROMPTS, 4, 0, max_new_tokens=8, temperature=2.0, seed=7)
    assert a != greedy


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    seen = {int(sample_next(logits, 1.0, top_p=0.7, generator=torch.Generator().manual_seed(s))) for s in range(200)}
    assert seen == {0, 1}
    seen = {int(sample_next(logits, 1.0, top_k=3, generator=torch.Generator().manual_seed(s))) for s in range(300)}
    assert seen == {0, 1, 2}


def test_text_generate_and_stream_cut_at_stop_strings(model):
    text = generate(model, TOK, ["def add(a, b):"], language="python", max_new_tokens=20, eos_id=None)[0]
    assert len(text) > 4
    stop = text[3:5]
    cut = generate(model, TOK, ["def add(a, b):"], language="python", stop=[stop], max_new_tokens=20, eos_id=None)[0]
    assert cut == text[:text.find(stop)]
    pieces = list(stream(model, TOK, "def add(a, b):", language="python", stop=[stop], max_new_tokens=20, eos_id=None))
    assert "".join(pieces) == cut
    assert "".join(stream(model, TOK, "def add(a, b):", language="python", max_new_tokens=20, eos_id=None)) == text


def test_adaptive_depth_stats(model):
    stats = {}
    generate_ids(model, PROMPTS, 4, 0, max_new_tokens=6, stats=stats)
    assert stats["decoded_tokens"] == 15 and stats["compute_fraction"] == 1.0  # untrained Q-head never halts
    if hasattr(model, "q_head"):
        with torch.no_grad():
            model.q_head.bias.fill_(10.0)  # halt after the first cycle
        try:
            stats = {}
            generate_ids(model, PROMPTS, 4, 0, max_new_tokens=6, stats=stats)
            assert stats["mean_depth"] == 1.0 and stats["compute_fraction"] == 0.5
            generate_ids(model, PROMPTS, 4, 0, max_new_tokens=6, adaptive_depth=False, stats=stats)
            assert stats["compute_fraction"] == 1.0
        finally:
            with torch.no_grad():
                model.q_head.bias.fill_(-5.0)
