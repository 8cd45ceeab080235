"""Gradient accumulation weighs by tokens: micro-batches of different token counts give the gradient of one
batch holding all of them; and per-segment optimizer steps (HRM's deep supervision) in the training loop."""

import pytest
import torch

from model import ModelConfig, build_model
from model.data import Example, collate
from model.train import TrainConfig, micro_batch_loss, step_denominators, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def examples():
    torch.manual_seed(0)
    out = []
    for i, (length, prompt_len) in enumerate([(30, 4), (26, 6), (9, 3), (12, 5), (7, 2)]):
        ids = torch.randint(3, 64, (length,)).tolist()
        tags = [j % 2 for j in range(prompt_len)] if i in (0, 3) else []
        out.append(Example(ids, prompt_len, language=4, task=1, edit_tags=tags, tool_label=i % 3 if i != 1 else -1,
                           example_id=str(i)))
    return out


def gradients(model, config, batches):
    model.zero_grad()
    denominators = step_denominators(batches, "cpu")
    for batch in batches:
        micro_batch_loss(config, model(batch).loss_parts, denominators).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("changes", [{}, {"segments": 2, "act": True, "halt_exploration_prob": 0.0}])
def test_micro_batches_of_different_token_counts_give_the_gradient_of_one_batch(changes):
    config = ModelConfig.preset("tiny", vocab_size=64, max_seq_len=64, **changes)
    torch.manual_seed(0)
    model = build_model(config).eval()  # eval: no exploration draws; the loss terms are the training ones
    data = examples()
    one = gradients(model, config, [collate(data)])
    two = gradients(model, config, [collate(data[:2]), collate(data[2:])])  # 50 answer tokens vs 18
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=1e-6, rtol=1e-4, msg=name)
    # averaging the micro-batches' own means, as before, weighs a token of the short batch twice as much
    model.zero_grad()
    for batch in (collate(data[:2]), collate(data[2:])):
        (model(batch).loss / 2).backward()
    assert not torch.allclose(model.heads.lm.weight.grad, one["heads.lm.weight"], atol=1e-6, rtol=1e-4)


def test_the_training_loop_reports_the_token_weighted_loss_of_the_whole_step(token_shards, tmp_path):
    files, tok = token_shards
    config = ModelConfig.preset("tiny", max_seq_len=64)
    base = dict(max_steps=1, lr=1e-4, warmup_steps=0, dtype="fp32", checkpoint_every=1, log_every=1)
    accumulated = train(config, TrainConfig(batch_size=4, grad_accum=2, **base), files, tmp_path / "a")
    whole = train(config, TrainConfig(batch_size=8, grad_accum=1, **base), files, tmp_path / "b")
    assert accumulated.final_metrics["loss"] == pytest.approx(whole.final_metrics["loss"], rel=1e-5)


def test_segment_steps_take_one_optimizer_step_per_segment(token_shards, tmp_path):
    files, tok = token_shards
    config = ModelConfig.preset("tiny", max_seq_len=64, segments=3)
    result = train(config, TrainConfig(max_steps=2, batch_size=4, lr=1e-3, warmup_steps=0, dtype="fp32",
                                       checkpoint_every=2, log_every=1, segment_steps=True), files, tmp_path / "r")
    optimizer = torch.load(tmp_path / "r" / "optimizer.pt", weights_only=True)
    assert {int(s["step"]) for s in optimizer["state"].values()} == {6}  # 2 batches x 3 segments
    assert "lm_loss_seg3" in result.final_metrics and result.final_metrics["loss"] > 0


def test_length_cut_micro_batches_train_like_the_uncut_batch(token_shards, tmp_path):
    files, tok = token_shards
    config = ModelConfig.preset("tiny", max_seq_len=64)
    base = dict(max_steps=2, batch_size=8, lr=1e-3, warmup_steps=0, dtype="fp32", checkpoint_every=2, log_every=1)
    whole = train(config, TrainConfig(**base), files, tmp_path / "a")
    cut = train(config, TrainConfig(micro_batch_tokens=64, **base), files, tmp_path / "b")
    assert cut.final_metrics["loss"] == pytest.approx(whole.final_metrics["loss"], rel=1e-5)
    from safetensors.torch import load_file

    a, b = (load_file(tmp_path / d / "model.safetensors") for d in ("a", "b"))
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("micro_batch_tokens", [0, 128])
def test_packed_training_follows_the_unpacked_run(token_shards, tmp_path, micro_batch_tokens):
    files, tok = token_shards
    config = ModelConfig.preset("tiny", max_seq_len=64)
    base = dict(max_steps=2, batch_size=8, lr=1e-3, warmup_steps=0, dtype="fp32", checkpoint_every=2, log_every=1)
    whole = train(config, TrainConfig(**base), files, tmp_path / "a")
    packed = train(config, TrainConfig(pack=True, micro_batch_tokens=micro_batch_tokens, **base), files,
                   tmp_path / "b")
    assert packed.final_metrics["loss"] == pytest.approx(whole.final_metrics["loss"], rel=1e-5)
    assert packed.tokens_seen == whole.tokens_seen
    from safetensors.torch import load_file

    a, b = (load_file(tmp_path / d / "model.safetensors") for d in ("a", "b"))
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4, msg=name)
