import copy

import pytest
import torch

from model.checkpoint import load_checkpoint
from model.config import ModelConfig
from model.data import collate, load_shards
from model.generate import generate_ids
from model.quantize import FakeQuantLinear, disable_qat, enable_qat, fake_quant_int8, quantize_model, weight_bytes
from model.train import TrainConfig, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(token_shards, tmp_path_factory):
    files, tok = token_shards
    out = tmp_path_factory.mktemp("quant") / "run"
    train(ModelConfig.preset("tiny", max_seq_len=64),
          TrainConfig(max_steps=40, batch_size=8, lr=1e-2, warmup_steps=4, dtype="fp32", checkpoint_every=40),
          files, out, tokenizer_dir=tok)
    model, tokenizer = load_checkpoint(out)
    data = load_shards(files)
    prompts = [(e.input_ids[:e.prompt_len], e.language, e.task) for e in map(data.example, range(6))]
    return out, model, tokenizer, prompts


def greedy(model, tokenizer, prompts):
    return [generate_ids(model, [ids], lang, task, max_new_tokens=12, eos_id=tokenizer.eos_id, adaptive_depth=False)[0]
            for ids, lang, task in prompts]


def agreement(a, b):
    same = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    return same / max(1, sum(max(len(ra), len(rb)) for ra, rb in zip(a, b)))


@pytest.mark.slow
@pytest.mark.parametrize("kind,minimum,max_ratio", [("int8", 0.8, 0.3), ("nf4", 0.5, 0.2)])
def test_quantized_greedy_tokens_mostly_agree_with_fp32(trained, kind, minimum, max_ratio):
    _, model, tokenizer, prompts = trained
    reference = greedy(model, tokenizer, prompts)
    quantized = quantize_model(copy.deepcopy(model), kind)
    assert not any(type(m) is torch.nn.Linear and m.out_features % 32 == 0 for m in quantized.modules())
    ratio = weight_bytes(quantized) / weight_bytes(model)
    print(f"{kind}: agreement {agreement(reference, greedy(quantized, tokenizer, prompts)):.3f}, bytes x{ratio:.3f}")
    assert agreement(reference, greedy(quantized, tokenizer, prompts)) >= minimum
    assert ratio <= max_ratio + 0.1  # tiny model: the fp32 norms and small embeddings weigh relatively more


@pytest.mark.slow
def test_load_checkpoint_quantized(trained):
    out, model, tokenizer, prompts = trained
    int8_model, tok = load_checkpoint(out, quantization="int8")
    assert tok.special_ids == tokenizer.special_ids
    assert weight_bytes(int8_model) < 0.5 * weight_bytes(model)
    assert len(greedy(int8_model, tok, prompts[:1])[0]) > 0
    with pytest.raises(ValueError, match="quantization"):
        load_checkpoint(out, quantization="int3")


def test_fake_quant_rounds_to_int8_grid_with_straight_through_gradient():
    x = torch.randn(4, 16, requires_grad=True)
    y = fake_quant_int8(x)
    scale = x.detach().abs().amax(-1, keepdim=True) / 127
    assert torch.allclose(y / scale, torch.round(y / scale), atol=1e-4)
    assert (y - x).abs().max() <= scale.max() / 2 + 1e-6
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


@pytest.mark.slow
def test_qat_switches_linears_keeps_state_dict_and_trains(trained, token_shards, tmp_path):
    _, model, _, _ = trained
    files, _ = token_shards
    qat = copy.deepcopy(model)
    keys = list(qat.state_dict())
    switched = enable_qat(qat)
    assert switched == sum(type(m) is torch.nn.Linear for m in model.modules()) and switched > 0
    assert list(qat.state_dict()) == keys
    data = load_shards(files)
    batch = collate([data.example(i) for i in range(4)])
    with torch.no_grad():
        assert not torch.equal(qat(batch).logits, model(batch).logits)
    disable_qat(qat)
    assert not any(isinstance(m, FakeQuantLinear) for m in qat.modules())
    result = train(ModelConfig.preset("tiny", max_seq_len=64),
                   TrainConfig(max_steps=3, batch_size=4, qat=True, dtype="fp32", log_every=1), files, tmp_path / "q")
    assert result.steps == 3 and all(torch.isfinite(torch.tensor(h["loss"])) for h in result.loss_history)
