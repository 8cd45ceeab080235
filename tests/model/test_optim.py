"""The learning-rate schedule and the AdamATan2 optimizer."""

import math

import pytest
import torch

from model.optim import AdamATan2, lr_at
from model.train import TrainConfig


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_schedule_has_warmup_and_a_real_floor():
    cfg = TrainConfig()
    assert cfg.min_lr_ratio < 1.0
    lrs = [lr_at(s, base_lr=1.0, warmup_steps=10, total_steps=100, min_lr_ratio=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[9:], lrs[10:]))
    assert lr_at(100, base_lr=1.0, warmup_steps=10, total_steps=100, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))


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
