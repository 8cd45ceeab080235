"""Deep supervision over segments: each segment runs H_cycles x L_cycles from the previous segment's detached
carry and has its own loss; segments map onto one KV cache per (segment, pass, layer)."""

import json

import pytest
import torch

from model import ModelConfig, build_model
from model.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**changes) -> ModelConfig:
    return ModelConfig.preset("tiny", vocab_size=64, max_seq_len=64, **changes)


def make_model(seed=0, **changes):
    torch.manual_seed(seed)
    return build_model(tiny(**changes)).eval()


def batch_of(ids, prompt_len, labels=None):
    ids = torch.tensor(ids)
    batch = {"input_ids": ids, "prompt_len": torch.tensor(prompt_len), "language_ids": torch.tensor([4] * len(ids)),
             "task_ids": torch.tensor([0] * len(ids))}
    if labels is not None:
        batch["labels"] = labels
    return batch


def lm_batch(seed=0, B=2, T=14, P=4):
    torch.manual_seed(seed)
    ids = torch.randint(1, 64, (B, T))
    labels = ids.roll(-1, 1)
    labels[:, :P - 1] = -100
    labels[:, -1] = -100
    return batch_of(ids.tolist(), [P] * B, labels=labels)


def test_config_fields_are_validated_by_name():
    assert tiny().segments == 1 and tiny().max_segments == 1
    assert tiny(segments=3).max_segments == 3
    assert tiny(segments=2, act=True, halt_max_segments=5).max_segments == 5
    for changes, field in [(dict(segments=0), "segments"), (dict(segments=1.5), "segments"),
                           (dict(segments=3, act=True, halt_max_segments=2), "halt_max_segments"),
                           (dict(segments=1, halt_max_segments=2), "halt_max_segments"),  # no Q-head to stop with
                           (dict(halt_exploration_prob=1.5), "halt_exploration_prob")]:
        with pytest.raises(ValueError, match=f"ModelConfig.{field}="):
            tiny(**changes)
    config = tiny(segments=2, act=True, halt_max_segments=4)
    assert ModelConfig.from_json(config.to_json()) == config


def test_a_checkpoint_from_before_segments_fails_naming_the_missing_field(tmp_path):
    model = make_model()
    save_checkpoint(tmp_path / "ckpt", model, model.config)
    old = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    for name in ("segments", "halt_max_segments"):
        del old[name]
    old.update(halt_threshold=0.9, halt_min_cycles=1, deep_supervision=True)  # the per-H-cycle halting fields
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"config\.json: .*missing field 'segments'"):
        load_checkpoint(tmp_path / "ckpt")
    del old["halt_threshold"], old["halt_min_cycles"], old["deep_supervision"]
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(old))
    loaded, _ = load_checkpoint(tmp_path / "ckpt")  # a config without the new fields gets their defaults
    assert loaded.config.segments == 1


def test_every_segment_has_a_loss_and_the_final_one_is_reported_apart():
    model = make_model(segments=3)
    out = model(lm_batch())
    m = out.metrics
    assert {"lm_loss_seg1", "lm_loss_seg2", "lm_loss_seg3"} <= set(m)
    assert m["lm_loss"] == pytest.approx(m["lm_loss_seg3"])  # final segment = what inference outputs
    # no edit / tool / Q terms here: the total is the mean of the segments' cross-entropies
    assert m["loss"] == pytest.approx((m["lm_loss_seg1"] + m["lm_loss_seg2"] + m["lm_loss_seg3"]) / 3, rel=1e-5)
    assert out.halt_depth.eq(3).all()


@pytest.mark.parametrize("segments", [1, 2])
def test_no_gradient_crosses_a_segment_boundary(segments):
    # grad_passes = every pass of a segment, so within one segment the gradient reaches the initial states
    model = make_model(segments=segments, grad_passes=tiny().num_passes).train()
    record = []
    for module in (model.L, model.H):
        module.register_forward_pre_hook(lambda m, args: record.append(args[0].requires_grad))
    out = model(lm_batch())
    targets = torch.randint(0, 64, out.logits.shape[:2])
    final_only = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), targets.flatten())
    final_only.backward()
    init_grad = model.L_init.grad
    if segments == 1:
        assert init_grad is not None and init_grad.abs().sum() > 0
    else:  # segment 2 starts from segment 1's detached carry: the final logits do not reach segment 1
        assert init_grad is None or not init_grad.any()
        passes = tiny().num_passes
        assert record[passes] is False  # the first pass of segment 2 reads a detached state


def test_continuing_from_a_carry_equals_one_forward_of_all_segments():
    model = make_model(segments=3)
    batch = lm_batch()
    whole = model(batch)
    out = model(batch, segments=1)
    assert out.carry.segment == 1 and not out.carry.z_H.requires_grad
    per_segment = [out.metrics["lm_loss_seg1"]]
    for n in (2, 3):
        out = model(batch, carry=out.carry, segments=1)
        per_segment.append(out.metrics[f"lm_loss_seg{n}"])
    torch.testing.assert_close(out.logits, whole.logits, atol=1e-5, rtol=1e-5)
    assert per_segment == pytest.approx([whole.metrics[f"lm_loss_seg{n}"] for n in (1, 2, 3)], rel=1e-5)


def test_cached_decoding_has_a_cache_per_segment_pass_and_layer_and_equals_the_full_forward():
    model = make_model(segments=3)
    assert len(model.new_cache(1, 8).passes) == 3 * len(model.layers_per_pass)
    prompt, answer = [5, 6, 7, 8], [11, 12, 13, 14, 15, 16]
    lang, task = torch.tensor([4]), torch.tensor([0])
    cache = model.new_cache(1, len(prompt) + len(answer))
    logits = [model.step(torch.tensor([prompt]), cache, lang, task, prompt=True).logits[:, -1:]]
    for token in answer:
        logits.append(model.step(torch.tensor([[token]]), cache, lang, task).logits)
    full = model(batch_of([prompt + answer], [len(prompt)])).logits[0, len(prompt) - 1:]
    torch.testing.assert_close(torch.cat(logits, 1)[0], full, atol=1e-4, rtol=1e-4)
    # one segment is not three: the cache of segment 3 holds what the full forward's third segment computed
    assert not torch.allclose(make_model(segments=1)(batch_of([prompt + answer], [4])).logits[0, 3:], full, atol=1e-3)
