import json

import pytest
import torch

from model.config import ModelConfig
from model.data import collate, load_shards
from model.train import TrainConfig, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def shards(token_shards):
    return token_shards


def tiny(**changes) -> ModelConfig:
    return ModelConfig.preset("tiny", max_seq_len=64, **changes)


def quick(**changes) -> TrainConfig:
    base = dict(max_steps=8, batch_size=4, warmup_steps=2, lr=3e-3, checkpoint_every=3, log_every=1)
    return TrainConfig(**{**base, **changes})


def weights(directory):
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def test_train_config_validation_names_the_field():
    with pytest.raises(ValueError, match="TrainConfig.min_lr_ratio"):
        TrainConfig(min_lr_ratio=1.5)
    with pytest.raises(ValueError, match="TrainConfig.optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"lr_typo": 1})


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw", "adam_atan2"])
def test_tiny_model_overfits_a_handful_of_sequences(shards, tmp_path, optimizer):
    files, tok = shards
    result = train(tiny(), quick(max_steps=60, checkpoint_every=60, log_every=10, lr=1e-2, optimizer=optimizer,
                                 warmup_steps=5, batch_size=8),
                   files, tmp_path / "run", tokenizer_dir=tok)
    first, last = result.loss_history[0]["lm_loss"], result.loss_history[-1]["lm_loss"]
    assert last < 0.35 * first, result.loss_history
    assert result.steps == 60 and result.tokens_seen > 0 and result.tokens_per_s > 0
    assert any(k.startswith("lm_loss_") for k in result.final_metrics)


@pytest.mark.slow
def test_resume_after_stop_is_bit_identical(shards, tmp_path):
    files, tok = shards
    cfg = quick(max_steps=8, checkpoint_every=3, grad_accum=2, batch_size=2)
    whole = train(tiny(), cfg, files, tmp_path / "whole", tokenizer_dir=tok)

    class Killed(Exception):
        pass

    def die_at_5(step, metrics):
        if step == 5:
            raise Killed  # last checkpoint is step 3: steps 4-5 are lost and redone
    with pytest.raises(Killed):
        train(tiny(), cfg, files, tmp_path / "cut", tokenizer_dir=tok, callback=die_at_5)
    assert json.loads((tmp_path / "cut" / "trainer_state.json").read_text())["step"] == 3
    resumed = train(tiny(), cfg, files, tmp_path / "cut")  # without tokenizer_dir: keeps the saved one
    assert resumed.resumed_from_step == 3 and resumed.steps == 8
    assert (tmp_path / "cut" / "tokenizer" / "tokenizer.json").is_file()
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in resumed.loss_history] == [h["loss"] for h in whole.loss_history]


@pytest.mark.slow
def test_callback_can_stop_and_checkpoint_loads(shards, tmp_path):
    from model.checkpoint import load_checkpoint

    files, tok = shards
    seen = []
    result = train(tiny(), quick(max_steps=20, checkpoint_every=100, eval_every=2), files, tmp_path / "r",
                   tokenizer_dir=tok, callback=lambda step, m: seen.append((step, "val_loss" in m)) or step == 4)
    assert seen == [(1, False), (2, True), (3, False), (4, True)] and result.steps == 4
    with pytest.raises(ValueError, match="another model config .*hidden_size"):
        train(tiny(hidden_size=32), quick(), files, tmp_path / "r")
    model, tokenizer = load_checkpoint(tmp_path / "r")
    assert tokenizer is not None and tokenizer.vocab_size <= 512
    saved = weights(tmp_path / "r")
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items() if k in saved)
    data = load_shards(files)
    batch = collate([data.example(i) for i in range(2)])
    with torch.no_grad():
        out = model(batch)
    assert out.logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(out.loss)


def test_train_step_flops_matches_the_models_linear_layers():
    from model import build_model
    from model.train import train_step_flops

    B, T = 2, 32
    base = tiny(arch="baseline")
    model = build_model(base)
    block_linear = sum(m.weight.numel() for m in model.blocks.modules() if isinstance(m, torch.nn.Linear))
    lm_head = model.heads.lm.weight.numel()
    attention = 3 * base.baseline_layers * 4 * T * base.hidden_size  # forward QK^T + AV, backward twice that
    # the LM head runs on the 10 answer tokens only
    assert train_step_flops(base, B, T, 10) == B * T * (6 * block_linear + attention) + 10 * 6 * lm_head

    full = tiny(grad_passes=tiny().num_passes)
    hrm = build_model(full)
    per_pass = {name: sum(m.weight.numel() for m in getattr(hrm, name).modules() if isinstance(m, torch.nn.Linear))
                for name in ("L", "H")}
    passes = full.H_cycles * (full.L_cycles * per_pass["L"] + per_pass["H"])
    layers = full.H_cycles * (full.L_cycles * full.L_layers + full.H_layers)
    assert train_step_flops(full, B, T, 10) == (B * T * (6 * passes + 3 * layers * 4 * T * full.hidden_size)
                                                + 10 * 6 * lm_head)
    assert train_step_flops(tiny(), B, T, 10) < train_step_flops(full, B, T, 10)  # truncated backward is cheaper


@pytest.mark.parametrize("arch, changes", [("baseline", {}), ("hrm", {}),
                                           ("hrm", dict(segments=2, act=True, halt_max_segments=3))])
def test_answer_only_logits_give_the_full_heads_loss_and_gradients(arch, changes):
    from model import build_model
    from model.data import Example

    config = tiny(arch=arch, **changes)
    g = torch.Generator().manual_seed(3)
    rows = [Example(torch.randint(5, 500, (n,), generator=g).tolist(), p, 1, 2, [], -1, f"r{n}")
            for n, p in ((40, 30), (17, 5), (25, 24))]
    batch = collate(rows)
    grads, losses = [], []
    for only in (False, True):
        torch.manual_seed(0)
        model = build_model(config).train()
        torch.manual_seed(1)  # the same ACT exploration draws
        out = model(batch, answer_logits_only=only)
        out.loss.backward()
        losses.append(out.loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        assert (out.logits is None) == only
    assert torch.allclose(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6), name
    with pytest.raises(ValueError, match="needs labels"):
        build_model(config)({"input_ids": batch["input_ids"]}, answer_logits_only=True)


def test_batch_flops_count_each_rows_own_tokens_not_the_padding():
    from model.data import Example
    from model.train import batch_train_flops, train_step_flops

    config = tiny()
    rows = [Example(list(range(5, 5 + n)), p, 0, 0, [], -1, f"r{n}") for n, p in ((40, 30), (9, 4))]
    batch = collate(rows)
    assert batch["input_ids"].shape == (2, 40)  # the short row is 31 pads
    alone = [batch_train_flops(config, collate([r])) for r in rows]
    assert batch_train_flops(config, batch) == sum(alone)
    assert alone == [train_step_flops(config, 1, 40, 10), train_step_flops(config, 1, 9, 5)]
    assert sum(alone) < train_step_flops(config, 2, 40, 15)  # what the padded shape would claim


def _examples(spec, seed=3, tools=()):
    from model.data import Example

    g = torch.Generator().manual_seed(seed)
    return [Example(torch.randint(5, 500, (n,), generator=g).tolist(), p, i % 3, i % 4,
                    [int(t % 3 == 0) for t in range(p)] if i % 2 else [], tools[i] if i < len(tools) else -1, f"e{i}")
            for i, (n, p) in enumerate(spec)]


@pytest.mark.parametrize("arch, changes", [("baseline", {}), ("hrm", {}), ("hrm", dict(segments=2))])
def test_packed_rows_give_the_unpacked_loss_and_gradients_on_the_same_tokens(arch, changes):
    from model import build_model
    from model.data import collate_packed, pack_rows

    config = tiny(arch=arch, **changes)
    # (9, 9): a document that is all prompt, so the next document's prompt follows its last prompt token
    examples = _examples([(40, 30), (17, 5), (25, 24), (9, 9), (30, 2), (12, 11)], tools=(2, -1, 0, 1, -1, 3))
    rows = pack_rows(examples, 64)
    assert len(rows) < len(examples) and all(sum(len(e.input_ids) for e in r) <= 64 for r in rows)
    assert sorted(e.example_id for r in rows for e in r) == sorted(e.example_id for e in examples)
    by_id = {e.example_id: e for e in examples}
    by_hand = [[by_id[i] for i in row] for row in (("e3", "e1", "e5"), ("e0",), ("e2", "e4"))]
    results = []
    for batch in (collate(examples), collate_packed(rows), collate_packed(by_hand)):
        torch.manual_seed(0)
        model = build_model(config).train()
        out = model(batch, answer_logits_only=True)
        out.loss.backward()
        results.append((out.loss.detach(), out.metrics,
                        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (loss, metrics, grads) = results[0]
    for packed_loss, packed_metrics, packed_grads in results[1:]:
        assert torch.allclose(loss, packed_loss, rtol=1e-5, atol=1e-6)
        assert metrics.keys() == packed_metrics.keys()  # per-task, edit and tool terms all present
        for key in metrics:
            assert metrics[key] == pytest.approx(packed_metrics[key], rel=1e-4, abs=1e-6), key
        assert grads.keys() == packed_grads.keys()
        for name in grads:
            assert torch.allclose(grads[name], packed_grads[name], rtol=1e-3, atol=1e-6), name


def test_packed_documents_never_see_each_other():
    from model import build_model
    from model.data import collate_packed

    config = tiny()
    a, b, c = _examples([(20, 8), (15, 6), (10, 4)])
    model = build_model(config).eval()
    with torch.no_grad():
        first = model(collate_packed([[a, b]])).hidden[0, 20:35]
        changed = model(collate_packed([[_examples([(20, 8)], seed=9)[0], b]])).hidden[0, 20:35]
        alone = model(collate([b])).hidden[0, :15]
    assert torch.allclose(first, changed, atol=1e-5)  # b does not see the document before it
    assert torch.allclose(first, alone, atol=1e-5)  # and equals b in its own row


def test_batch_flops_of_packed_rows_count_each_document_alone():
    from model.data import collate_packed
    from model.train import batch_train_flops

    config = tiny()
    examples = _examples([(40, 30), (17, 5), (9, 3)])
    packed = collate_packed([[examples[0], examples[1]], [examples[2]]])
    assert batch_train_flops(config, packed) == sum(batch_train_flops(config, collate([e])) for e in examples)


def test_packing_refuses_an_example_longer_than_a_row_and_the_fixed_length_recipe():
    from model.data import pack_rows

    with pytest.raises(ValueError, match="example e0 has 40 tokens, above the packing capacity 32"):
        pack_rows(_examples([(40, 30)]), 32)
    with pytest.raises(ValueError, match="TrainConfig.pack"):
        TrainConfig(pack=True, fixed_length=True)


@pytest.mark.parametrize("arch", ["baseline", "hrm"])
def test_activation_checkpointing_gives_the_same_loss_and_gradients(arch):
    from model import build_model

    batch = collate(_examples([(40, 30), (17, 5), (25, 24)], tools=(1, -1, 2)))
    grads = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = build_model(tiny(arch=arch, segments=2, activation_checkpointing=recompute)).train()
        calls = []
        for block in (model.blocks if arch == "baseline" else model.L.blocks):
            # counted in forward itself: the recompute does not run module hooks
            block.mlp.forward = (lambda run: lambda x: calls.append(1) or run(x))(block.mlp.forward)
        out = model(batch, answer_logits_only=True)
        forward_calls = len(calls)
        out.loss.backward()
        # recomputed in backward: the blocks that built a graph run again
        assert (len(calls) > forward_calls) == recompute
        grads.append((out.loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (loss, plain), (loss2, recomputed) = grads
    assert torch.allclose(loss, loss2) and plain.keys() == recomputed.keys()
    for name in plain:
        assert torch.allclose(plain[name], recomputed[name], rtol=1e-4, atol=1e-7), name
    with pytest.raises(ValueError, match="activation_checkpointing"):
        tiny(act=True, activation_checkpointing=True)


@pytest.mark.filterwarnings("ignore")  # FlexAttention warns that uncompiled CPU runs are slow
@pytest.mark.parametrize("packed", [False, True])
def test_flex_attention_gives_the_sdpa_losses(packed):
    # forward only: FlexAttention has no backward on CPU (bench/gpu_check.sh compares gradients on a GPU)
    from model import build_model
    from model.data import collate_packed, pack_rows

    examples = _examples([(40, 30), (17, 5), (25, 24), (9, 3)], tools=(1, -1, 2, -1))
    batch = collate_packed(pack_rows(examples, 64)) if packed else collate(examples)
    outputs = []
    for attention in ("sdpa", "flex"):
        torch.manual_seed(0)
        model = build_model(tiny(segments=2, attention=attention)).train()
        with torch.no_grad():
            outputs.append(model(batch, answer_logits_only=True))
    sdpa, flex = outputs
    assert torch.allclose(sdpa.loss, flex.loss, rtol=1e-5, atol=1e-6)
    for key in sdpa.metrics:
        assert sdpa.metrics[key] == pytest.approx(flex.metrics[key], rel=1e-4, abs=1e-6), key
    with pytest.raises(ValueError, match="attention"):
        tiny(attention="dense")
