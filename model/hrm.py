"""HRM-Code: a causal (prefix-LM) hierarchical reasoning LM with per-token recurrence and adaptive depth.

Per token: H_cycles x (L_cycles L-passes with input injection, then one H-pass), as in HRM; attention runs
inside every pass, so each (module, pass) has its own KV cache (as in HRM-Text) and cached decoding equals
the full forward. Only the last `grad_passes` passes build a graph. A Q-head after each H-cycle predicts
"this token's prediction is already right"; at inference a token halts at its own depth and offers its last
K/V to the passes it skips, so later tokens still see exact caches.

The shared frame (embeddings, heads, losses, forward, cached step) is `model.lm.CodeLM`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from model.config import ModelConfig
from model.layers import Block, RMSNorm
from model.lm import CodeLM, TrunkOutput


class ReasoningModule(nn.Module):
    """A stack of blocks; the input injection is added to the state first; output RMS-normalised."""

    def __init__(self, config: ModelConfig, num_layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(config) for _ in range(num_layers))
        self.norm = RMSNorm(config.hidden_size, config.norm_eps)

    def forward(self, state, injection, ctx, caches, memos):
        h = state + injection
        for block, cache, memo in zip(self.blocks, caches, memos):
            h = block(h, ctx, cache, memo)
        return self.norm(h)

    def carry_into_cache(self, ctx, caches, memos) -> None:
        """Every token is halted: write each token's last K/V of this module into this pass's cache."""
        for (k_cache, v_cache), memo in zip(caches, memos):
            T = memo["k"].shape[2]
            k_cache[:, :, ctx.cache_start:ctx.cache_start + T] = memo["k"]
            v_cache[:, :, ctx.cache_start:ctx.cache_start + T] = memo["v"]


class HRMCode(CodeLM):
    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.L = ReasoningModule(config, config.L_layers)
        self.H = ReasoningModule(config, config.H_layers)
        # initial states: learned vectors broadcast to every token (HRM keeps fixed buffers)
        self.L_init = nn.Parameter(torch.empty(config.hidden_size))
        self.H_init = nn.Parameter(torch.empty(config.hidden_size))
        self.q_head = nn.Linear(config.hidden_size, 1)
        self.layers_per_pass = ([config.L_layers] * config.L_cycles + [config.H_layers]) * config.H_cycles
        self.max_depth = config.H_cycles
        self._init_shared(config.L_layers + config.H_layers)
        nn.init.trunc_normal_(self.L_init, std=1.0, a=-2.0, b=2.0)
        nn.init.trunc_normal_(self.H_init, std=1.0, a=-2.0, b=2.0)
        nn.init.zeros_(self.q_head.weight)
        nn.init.constant_(self.q_head.bias, -5.0)  # start by never halting (HRM's Q-head init)

    def _trunk(self, x, ctx, cache, act_region, halt_depth, adaptive) -> TrunkOutput:
        cfg = self.config
        B, T, D = x.shape
        z_L = self.L_init.to(x.dtype).expand(B, T, D)
        z_H = self.H_init.to(x.dtype).expand(B, T, D)
        halting = halt_depth is not None or (cfg.act and adaptive and act_region is not None)
        memos = {"L": [{} for _ in self.L.blocks], "H": [{} for _ in self.H.blocks]} if halting else None
        active = None  # None: every token still computing
        depth = torch.full((B, T), cfg.H_cycles, dtype=torch.long, device=x.device)
        threshold = math.log(cfg.halt_threshold / (1 - cfg.halt_threshold))
        grad = torch.is_grad_enabled()
        first_grad_pass = cfg.num_passes - cfg.grad_passes
        cycle_states, q_logits = [], []
        p = 0
        for cycle in range(cfg.H_cycles):
            for _ in range(cfg.L_cycles):
                with torch.set_grad_enabled(grad and p >= first_grad_pass):
                    z_L = self._pass("L", z_L, z_H + x, ctx, cache, p, memos, active)
                p += 1
            with torch.set_grad_enabled(grad and p >= first_grad_pass):
                z_H = self._pass("H", z_H, z_L, ctx, cache, p, memos, active)
            p += 1
            cycle_states.append(z_H)
            if cfg.act:
                q_logits.append(self.q_head(z_H).squeeze(-1))
            if halting and cycle < cfg.H_cycles - 1:
                running = active if active is not None else torch.ones(B, T, dtype=torch.bool, device=x.device)
                if halt_depth is not None:
                    stop = halt_depth <= cycle + 1
                else:
                    stop = act_region & (q_logits[-1] > threshold) & (cycle + 1 >= cfg.halt_min_cycles)
                stop = stop & running
                depth = torch.where(stop, cycle + 1, depth)
                active = running & ~stop
        return TrunkOutput(z_H, cycle_states, q_logits, depth if halting else None)

    def _pass(self, name, state, injection, ctx, cache, p, memos, active):
        module = self.L if name == "L" else self.H
        caches = cache.passes[p] if cache is not None else [None] * len(module.blocks)
        module_memos = memos[name] if memos is not None else [None] * len(module.blocks)
        # Skipping a pass nobody needs reads the mask on the host; a compiled graph computes it instead
        # (torch.where below keeps the old state), so training compiles to one graph per forward.
        if active is not None and not torch.compiler.is_compiling() and not bool(active.any()):
            if cache is not None:
                module.carry_into_cache(ctx, caches, module_memos)
            return state
        ctx.active = active
        new = module(state, injection, ctx, caches, module_memos)
        return new if active is None else torch.where(active[..., None], new, state)
