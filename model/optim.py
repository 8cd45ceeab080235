"""Optimizers: AdamW (torch) and a pure-PyTorch AdamATan2, and the warmup + cosine learning-rate schedule.

AdamATan2 (Everett et al. 2024, used by HRM through a CUDA-only package) replaces Adam's m / (sqrt(v) + eps)
by a * atan2(m, b * sqrt(v)): bounded, scale-invariant, and with no epsilon to tune.
"""

from __future__ import annotations

import math

import torch


class AdamATan2(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95),
                 weight_decay: float = 0.1, a: float = 1.27, b: float = 1.0):
        if lr < 0:
            raise ValueError(f"lr={lr}: must be >= 0")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"betas={betas}: each must be in [0, 1)")
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay}: must be >= 0")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, a=a, b=b))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), wd, a, b = (group["lr"], group["betas"], group["weight_decay"],
                                            group["a"], group["b"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("AdamATan2 does not support sparse gradients")
                state = self.state[p]
                if not state:
                    # step is a tensor so that optimizer.state_dict() round-trips through torch.load(weights_only)
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                step = state["step"].item()
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1.0 - lr * wd)  # decoupled weight decay, as in AdamW
                exp_avg.lerp_(grad, 1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = (exp_avg_sq / (1.0 - beta2 ** step)).sqrt_().mul_(b)
                update = (exp_avg / (1.0 - beta1 ** step)).atan2_(denom)
                p.add_(update, alpha=-lr * a)
        return loss


def lr_at(step: int, *, base_lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Linear warmup from 0 to base_lr, then cosine down to min_lr_ratio * base_lr at total_steps."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    floor = base_lr * min_lr_ratio
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only; norms, biases and 1-d gains are not decayed."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, name: str, *, lr: float, betas: tuple[float, float],
                    weight_decay: float, eps: float = 1e-8) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    if name == "adam_atan2":
        return AdamATan2(groups, lr=lr, betas=betas)
    raise ValueError(f"optimizer={name!r}: expected 'adamw' or 'adam_atan2'")
