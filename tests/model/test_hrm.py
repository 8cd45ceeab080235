"""HRM-Code core: config, causality, prefix-LM mask, cached == full forward (with and without adaptive depth),
truncated gradient, overfitting, baseline parameter parity."""

import ast
import pathlib

import pytest
import torch

from model import ModelConfig, build_model
from model.hrm import HRMCode, ReasoningModule

ROOT = pathlib.Path(__file__).resolve().parents[2]


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


def test_config_validation_names_the_field_and_round_trips():
    with pytest.raises(ValueError, match="hidden_size"):
        ModelConfig(hidden_size=65, num_heads=4)
    with pytest.raises(ValueError, match="grad_passes"):
        ModelConfig(grad_passes=99)
    with pytest.raises(ValueError, match="arch"):
        ModelConfig(arch="rnn")
    with pytest.raises(ValueError, match="unknown field"):
        ModelConfig.from_dict({"hidden": 3})
    for name in ("tiny", "small", "100m", "gpu-base", "gpu-100m", "gpu-1b"):
        config = ModelConfig.preset(name)
        assert ModelConfig.from_json(config.to_json()) == config
    assert 0.9e8 < ModelConfig.preset("100m").estimated_params() < 1.2e8
    assert 0.9e8 < ModelConfig.preset("gpu-100m").estimated_params() < 1.2e8
    assert 0.9e9 < ModelConfig.preset("gpu-1b").estimated_params() < 1.1e9
    assert ModelConfig.preset("tiny").estimated_params() < 1e6
    assert build_model("tiny").config == ModelConfig.preset("tiny")
    assert build_model({**ModelConfig.preset("tiny").to_dict(), "arch": "baseline"}).config.arch == "baseline"


def test_model_package_imports_no_pipeline_code():
    for path in (ROOT / "model").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in {"dagster", "hrm_assets", "resources", "sensors", "hrm_cli"}, path


@pytest.mark.parametrize("arch", ["hrm", "baseline"])
def test_answer_is_causal_and_prompt_is_bidirectional(arch):
    model = make_model(arch=arch)
    ids = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14]]
    base = model(batch_of(ids, [4])).logits
    later = [row[:] for row in ids]
    later[0][7] = 30  # an answer token
    changed = model(batch_of(later, [4])).logits
    torch.testing.assert_close(changed[0, :7], base[0, :7])  # nothing before it moves
    assert not torch.allclose(changed[0, 7:], base[0, 7:])
    in_prompt = [row[:] for row in ids]
    in_prompt[0][3] = 30  # last prompt token: earlier prompt positions see it (bidirectional)
    changed = model(batch_of(in_prompt, [4])).logits
    assert not torch.allclose(changed[0, 0], base[0, 0])
    fully_causal = model(batch_of(in_prompt, [0])).logits
    torch.testing.assert_close(fully_causal[0, :3], model(batch_of(ids, [0])).logits[0, :3])


@pytest.mark.parametrize("arch", ["hrm", "baseline"])
def test_right_padding_does_not_change_real_positions(arch):
    model = make_model(arch=arch)
    short = model(batch_of([[5, 6, 7, 8, 9]], [2])).logits
    padded = model(batch_of([[5, 6, 7, 8, 9, 0, 0, 0], [9, 8, 7, 6, 5, 4, 3, 2]], [2, 3])).logits
    torch.testing.assert_close(padded[0, :5], short[0], atol=1e-5, rtol=1e-5)


def cached_logits(model, prompts, answers, adaptive_depth=False):
    """Prefill left-padded prompts, then feed the answers one token at a time through the KV caches."""
    B, width = len(prompts), max(map(len, prompts))
    ids = torch.zeros(B, width, dtype=torch.long)
    valid = torch.zeros(B, width, dtype=torch.bool)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = torch.tensor(p)
        valid[r, width - len(p):] = True
    lang, task = torch.tensor([4] * B), torch.tensor([0] * B)
    cache = model.new_cache(B, width + len(answers[0]))
    steps = [model.step(ids, cache, lang, task, valid=valid, prompt=True).logits[:, -1:]]
    depths = []
    for t in range(len(answers[0])):
        out = model.step(torch.tensor([[a[t]] for a in answers]), cache, lang, task, adaptive_depth=adaptive_depth)
        steps.append(out.logits)
        depths.append(out.depth)
    return torch.cat(steps, 1), torch.cat(depths, 1)


@pytest.mark.parametrize("arch", ["hrm", "baseline"])
def test_cached_decoding_equals_full_forward(arch):
    model = make_model(arch=arch)
    prompts, answers = [[5, 6, 7, 8], [9, 10]], [[11, 12, 13, 14, 15, 16], [17, 18, 19, 20, 21, 22]]
    cached, _ = cached_logits(model, prompts, answers)
    for r, (p, a) in enumerate(zip(prompts, answers)):
        full = model(batch_of([p + a], [len(p)])).logits[0, len(p) - 1:]
        torch.testing.assert_close(cached[r, :len(a) + 1], full, atol=1e-4, rtol=1e-4)


def test_cached_adaptive_depth_equals_full_forward_with_the_same_halting():
    model = make_model(segments=2, halt_max_segments=4, act=True)
    with torch.no_grad():  # a random Q-head so tokens halt at different depths
        torch.manual_seed(3)
        model.q_head.weight.normal_(0, 2.0)
        model.q_head.bias.zero_()
    prompts = [[5, 6, 7, 8, 9]]
    answers = [[11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]]
    cached, depths = cached_logits(model, prompts, answers, adaptive_depth=True)
    assert len(set(depths[0].tolist())) > 1, "test needs tokens that halt at different depths"
    assert depths.min() >= 1 and depths.max() <= 4
    seq = prompts[0] + answers[0]
    P = len(prompts[0])
    # full forward with the decode's halting decisions: the prompt runs `segments`; token t's depth = depths[t-P]
    halt = torch.full((1, len(seq)), 2)
    halt[0, P:] = depths[0]
    full = model(batch_of([seq], [P]), halt_depth=halt).logits[0, P - 1:]
    torch.testing.assert_close(cached[0], full, atol=1e-4, rtol=1e-4)
    # the full forward can make the same decisions itself
    self_halted = model(batch_of([seq], [P]), adaptive_depth=True)
    torch.testing.assert_close(self_halted.logits[0, P - 1:], full, atol=1e-4, rtol=1e-4)
    assert self_halted.halt_depth[0, P:].tolist() == depths[0].tolist()
    # and the halting matters: fixed depth everywhere gives other logits
    assert not torch.allclose(model(batch_of([seq], [P])).logits[0, P:], full[1:], atol=1e-3)


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_gradient_only_through_the_last_k_passes(k):
    torch.manual_seed(0)
    model = build_model(tiny(grad_passes=k))  # 2 x (2 L + 1 H) = 6 passes: L L H L L H
    record = []
    for module in (model.L, model.H):
        module.register_forward_hook(lambda m, i, o: record.append(o.requires_grad))
    ids = torch.randint(1, 64, (2, 12))
    out = model(batch_of(ids.tolist(), [3, 3], labels=ids.roll(-1, 1)))
    assert record == [False] * (6 - k) + [True] * k
    out.loss.backward()
    l_grad = model.L.blocks[0].attn.qkv.weight.grad
    if k == 1:
        assert l_grad is None or not l_grad.any()  # only the final H-pass has a graph
    else:
        assert l_grad is not None and l_grad.abs().sum() > 0
    assert model.H.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["hrm", "baseline"])
def test_overfits_a_handful_of_sequences(arch):
    torch.manual_seed(0)
    model = build_model(tiny(arch=arch, **({"segments": 2, "act": True} if arch == "hrm" else {})))
    seqs = torch.randint(1, 64, (4, 16))
    labels = seqs.roll(-1, 1)
    labels[:, :4] = -100  # prompt
    labels[:, -1] = -100
    batch = batch_of(seqs.tolist(), [5] * 4, labels=labels)
    edit_tags = torch.full((4, 16), -100)
    edit_tags[:, :5] = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 1], [1, 1, 0, 0, 0]])
    batch["edit_tags"] = edit_tags
    batch["tool_labels"] = torch.tensor([1, 2, 3, -100])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(150):
        out = model(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    metrics = model.eval()(batch).metrics
    assert metrics["lm_acc"] == 1.0, metrics
    assert metrics["tool_acc"] == 1.0 and metrics["edit_acc"] == 1.0
    assert metrics["lm_loss"] < 0.1
    if arch == "hrm":
        assert "q_halt_loss" in metrics and "lm_acc_seg1" in metrics


@pytest.mark.parametrize("preset", ["tiny", "small", "gpu-base", "100m", "gpu-100m", "gpu-1b"])
def test_baseline_parameter_parity(preset):
    config = ModelConfig.preset(preset)
    baseline = config.with_changes(arch="baseline")
    assert baseline.baseline_layers == config.baseline_layers
    if preset in ("tiny", "small"):  # the formula is checked against real modules on the small ones
        hrm, base = build_model(config).num_parameters(), build_model(baseline).num_parameters()
        assert hrm == config.estimated_params() and base == baseline.estimated_params()
    else:
        hrm, base = config.estimated_params(), baseline.estimated_params()
    assert abs(base - hrm) / hrm < 0.05


def test_training_explores_random_halting_depths():
    torch.manual_seed(0)
    model = build_model(tiny(segments=3, act=True, halt_exploration_prob=0.5))
    with torch.no_grad():
        model.q_head.bias.copy_(torch.tensor([5.0, -5.0]))  # the Q-head halts every token after one segment
    ids = torch.randint(1, 64, (2, 24))
    train_out = model(batch_of(ids.tolist(), [6, 6]))
    assert (train_out.halt_depth[:, :6] == 3).all()  # the prompt always runs `segments`
    # exploration: about half the answer tokens draw a minimum of 2 or 3 segments, the rest halt after one
    assert set(train_out.halt_depth[:, 6:].unique().tolist()) == {1, 2, 3}
    model.eval()
    assert (model(batch_of(ids.tolist(), [6, 6])).halt_depth == 3).all()
    adaptive = model(batch_of(ids.tolist(), [6, 6]), adaptive_depth=True).halt_depth
    assert (adaptive[:, :6] == 3).all() and (adaptive[:, 6:] == 1).all()


def test_hrm_is_an_hrm():
    model = make_model()
    assert isinstance(model, HRMCode) and isinstance(model.L, ReasoningModule)
    assert model.layers_per_pass == [1, 1, 1, 1, 1, 1]


@pytest.mark.slow
def test_the_trunk_traces_into_one_graph_for_torch_compile():
    # Training with segments, Q-stopping and exploration: only the loss code (boolean masks over answer tokens)
    # may break the compiled graph; a break inside the H/L passes would split every forward into pieces.
    torch._dynamo.reset()
    model = make_model(segments=2, act=True, halt_max_segments=3, halt_exploration_prob=1.0).train()
    ids = torch.randint(5, 64, (2, 16))
    labels = ids.clone()
    labels[:, :4] = -100
    explanation = torch._dynamo.explain(model)(batch_of(ids.tolist(), [4, 4], labels=labels))
    places = [str(reason.user_stack[-1].filename) if reason.user_stack else "" for reason in explanation.break_reasons]
    assert all(place.endswith("losses.py") for place in places), [r.reason for r in explanation.break_reasons]
    torch._dynamo.reset()


@pytest.mark.slow  # compiles the model (about 4 s)
def test_packed_rows_trace_into_one_graph_too():
    # packed rows (several documents a row): the forward finds each document's last prompt token without a
    # data-dependent shape, so again only the loss code may break the compiled graph
    from model.data import Example, collate_packed

    torch._dynamo.reset()
    model = make_model(segments=2).train()
    g = torch.Generator().manual_seed(0)
    docs = [Example(torch.randint(5, 64, (n,), generator=g).tolist(), p, 1, 2, [], tool, f"d{n}")
            for n, p, tool in ((12, 4, 1), (9, 9, 0), (10, 3, -1))]
    explanation = torch._dynamo.explain(model)(collate_packed([docs[:2], docs[2:]]), answer_logits_only=True)
    places = [str(reason.user_stack[-1].filename) if reason.user_stack else "" for reason in explanation.break_reasons]
    assert all(place.endswith("losses.py") for place in places), [r.reason for r in explanation.break_reasons]
    torch._dynamo.reset()
