"""LoRA adapters (model/lora.py): an untrained adapter is the base model, merging keeps the outputs, only the
adapter trains, and an adapter loads only onto the base weights it was trained on."""

import json

import pytest
import torch
from torch import nn

from model import build_model
from model import lora
from model.checkpoint import WEIGHTS, load_checkpoint, save_checkpoint
from model.config import ModelConfig
from model.quantized_artifacts import sha256_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CONFIG = ModelConfig.preset("tiny", max_seq_len=32, vocab_size=128, hidden_size=32, num_heads=2)
BATCH = {"input_ids": torch.randint(1, 128, (2, 20), generator=torch.Generator().manual_seed(1)),
         "prompt_len": torch.tensor([5, 9])}


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_model(CONFIG).eval()


def logits(model):
    with torch.no_grad():
        return model(BATCH).logits


def randomize_b(model, seed=2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora.lora_modules(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.05)


def test_untrained_adapter_is_exactly_the_base_and_only_it_trains():
    model = tiny_model()
    before = logits(model)
    names = lora.add_lora(model, lora.LoRAConfig(rank=4, alpha=8))
    # every block's attention and SwiGLU linears, in both the L and the H module
    assert len(names) == 4 * (CONFIG.L_layers + CONFIG.H_layers)
    assert torch.equal(logits(model), before)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    assert len(trainable) == 2 * len(names)


def test_merge_equals_the_unmerged_forward_and_unmerge_restores_the_base():
    model = tiny_model()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    lora.add_lora(model, lora.LoRAConfig(rank=4, alpha=8))
    randomize_b(model)
    unmerged = logits(model)
    assert not torch.allclose(unmerged, logits(tiny_model()))  # the adapter changes the model
    lora.merge_lora(model)
    torch.testing.assert_close(logits(model), unmerged, atol=1e-5, rtol=1e-4)
    lora.unmerge_lora(model)
    torch.testing.assert_close(logits(model), unmerged, atol=1e-5, rtol=1e-4)
    for name, m in lora.lora_modules(model).items():
        torch.testing.assert_close(m.base.weight, base[f"{name}.weight"], atol=1e-6, rtol=0)
    baked = lora.bake_lora(model)
    assert not lora.lora_modules(baked) and all(type(m) is nn.Linear for m in baked.modules()
                                                if isinstance(m, nn.Linear))
    torch.testing.assert_close(logits(baked), unmerged, atol=1e-5, rtol=1e-4)


def test_a_training_step_moves_only_the_adapter():
    model = tiny_model()
    lora.add_lora(model, lora.LoRAConfig(rank=4, alpha=8))
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    labels = BATCH["input_ids"].roll(-1, 1)
    model.train()
    model({**BATCH, "labels": labels}).loss.backward()
    opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)
    assert any(m.lora_B.abs().sum() > 0 for m in lora.lora_modules(model).values())


def test_save_load_round_trip_and_refusals(tmp_path):
    ckpt = tmp_path / "ckpt"
    save_checkpoint(ckpt, tiny_model(), CONFIG)
    base_sha = sha256_file(ckpt / WEIGHTS)
    model, _ = load_checkpoint(ckpt)
    config = lora.LoRAConfig(rank=4, alpha=8)
    lora.add_lora(model, config)
    randomize_b(model)
    expected = logits(model)
    out = lora.save_adapter(tmp_path / "adapter", model, config, base_sha, metadata={"specialist": "rust"})
    doc = json.loads((out / lora.ADAPTER_CONFIG).read_text())
    assert doc["base_sha256"] == base_sha and doc["metadata"]["specialist"] == "rust"
    assert sorted(p.name for p in out.iterdir()) == [lora.ADAPTER_CONFIG, lora.ADAPTER_WEIGHTS]  # adapter only
    assert (out / lora.ADAPTER_WEIGHTS).stat().st_size < (ckpt / WEIGHTS).stat().st_size / 5

    loaded, _ = load_checkpoint(ckpt, adapter=out)  # merged into the base weights: a plain model
    assert not lora.lora_modules(loaded)
    torch.testing.assert_close(logits(loaded), expected, atol=1e-5, rtol=1e-4)

    with pytest.raises(lora.AdapterError, match="trained on base weights"):
        lora.load_adapter(tiny_model(), out, "0" * 64)
    other = tmp_path / "other"
    save_checkpoint(other, tiny_model(seed=1), CONFIG)
    with pytest.raises(lora.AdapterError, match="not on this checkpoint"):
        load_checkpoint(other, adapter=out)
    (out / lora.ADAPTER_WEIGHTS).write_bytes((out / lora.ADAPTER_WEIGHTS).read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(lora.AdapterError, match="sha256"):
        load_checkpoint(ckpt, adapter=out)


def test_config_and_targets_are_checked():
    with pytest.raises(ValueError, match="rank"):
        lora.LoRAConfig(rank=0)
    with pytest.raises(ValueError, match="match no nn.Linear"):
        lora.add_lora(tiny_model(), lora.LoRAConfig(targets=("nothing.here",)))
