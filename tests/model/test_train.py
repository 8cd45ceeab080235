import json
import math

import pytest
import torch

from model.config import ModelConfig
from model.data import IGNORE, BalancedSampler, Example, TokenDataset, collate, load_shards
from model.optim import AdamATan2, lr_at
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


def test_collate_shifts_labels_onto_answer_positions():
    e = Example([5, 6, 7, 8, 9], prompt_len=2, language=1, task=2, edit_tags=[1, 0, -1], tool_label=-1,
                example_id="x")
    b = collate([e, Example([3, 4, 5], 1, 0, 0, [], 4, "y")], pad_to_multiple=8)
    assert b["input_ids"].shape == (2, 8)
    assert b["labels"][0].tolist() == [IGNORE, 7, 8, 9] + [IGNORE] * 4  # <|answer|> at 1 predicts 7
    assert b["labels"][1].tolist() == [4, 5] + [IGNORE] * 6
    assert b["edit_tags"][0, :4].tolist() == [1, 0, IGNORE, IGNORE]
    assert b["tool_labels"].tolist() == [IGNORE, 4]
    assert b["prompt_len"].tolist() == [2, 1] and b["language_ids"].tolist() == [1, 0]


def test_sampler_resumes_exactly_and_balances_languages():
    examples = [Example([1, 2], 1, 0, 0, [], -1, f"a{i}") for i in range(30)]
    examples += [Example([1, 2], 1, 5, 0, [], -1, f"b{i}") for i in range(3)]
    data = TokenDataset.from_examples(examples)
    a = BalancedSampler(data, seed=3, language_balance=0.0)
    for _ in range(4):
        a.draw(5)
    saved = json.loads(json.dumps(a.state_dict()))
    expected = [a.draw(5) for _ in range(6)]
    b = BalancedSampler(data, seed=3, language_balance=0.0)
    b.load_state_dict(saved)
    assert [b.draw(5) for _ in range(6)] == expected
    drawn = [i for batch in expected for i in batch]
    rare = sum(1 for i in drawn if examples[i].language == 5)
    assert 8 <= rare <= 22  # about half of 30 draws, though only 3 of 33 examples are that language
    assert BalancedSampler(data, seed=4).draw(20) != BalancedSampler(data, seed=3).draw(20)


def test_load_shards_reads_split_and_names_bad_rows(shards, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files, _ = shards
    train_rows, val_rows = load_shards(files, "train"), load_shards(files, "validation")
    assert len(train_rows) == 20 and len(val_rows) == 4
    first = pq.read_table(files[0]).to_pylist()[0]
    assert train_rows.example(0).input_ids == first["input_ids"] and train_rows.example(0).example_id == "python-0"
    cut = load_shards(files, max_seq_len=8)
    assert cut.truncated == 20 and len(cut.example(0).input_ids) == 8 and cut.example(0).prompt_len <= 8
    table = pq.read_table(files[0]).to_pylist()
    table[1]["prompt_len"] = 0
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(files[0])), bad)
    with pytest.raises(ValueError, match=r"bad.parquet row 1 .*prompt_len=0"):
        load_shards([str(bad)])
    with pytest.raises(ValueError, match="token id outside"):
        load_shards(files, vocab_size=10)


def test_schedule_has_warmup_and_a_real_floor():
    cfg = TrainConfig()
    assert cfg.min_lr_ratio < 1.0
    lrs = [lr_at(s, base_lr=1.0, warmup_steps=10, total_steps=100, min_lr_ratio=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[9:], lrs[10:]))
    assert lr_at(100, base_lr=1.0, warmup_steps=10, total_steps=100, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))


def test_train_config_validation_names_the_field():
    with pytest.raises(ValueError, match="TrainConfig.min_lr_ratio"):
        TrainConfig(min_lr_ratio=1.5)
    with pytest.raises(ValueError, match="TrainConfig.optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"lr_typo": 1})


def test_adam_atan2_minimises_and_state_round_trips(tmp_path):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(8))
    opt = AdamATan2([w], lr=0.05, weight_decay=0.0)
    for _ in range(200):
        opt.zero_grad()
        ((w - 3.0) ** 2).sum().backward()
        opt.step()
    assert torch.allclose(w, torch.full_like(w, 3.0), atol=0.1)
    torch.save(opt.state_dict(), tmp_path / "o.pt")
    opt.load_state_dict(torch.load(tmp_path / "o.pt", weights_only=True))


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
    assert train_step_flops(base, B, T, 10) == B * T * (6 * (block_linear + lm_head) + attention)

    full = tiny(grad_passes=tiny().num_passes, deep_supervision=False)
    hrm = build_model(full)
    per_pass = {name: sum(m.weight.numel() for m in getattr(hrm, name).modules() if isinstance(m, torch.nn.Linear))
                for name in ("L", "H")}
    passes = full.H_cycles * (full.L_cycles * per_pass["L"] + per_pass["H"])
    layers = full.H_cycles * (full.L_cycles * full.L_layers + full.H_layers)
    assert train_step_flops(full, B, T, 10) == B * T * (6 * (passes + lm_head) + 3 * layers * 4 * T * full.hidden_size)
    assert train_step_flops(tiny(), B, T, 10) < train_step_flops(full, B, T, 10)  # truncated backward is cheaper
