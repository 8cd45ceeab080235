"""HRM-Code: a causal (prefix-LM) hierarchical reasoning LM with per-token recurrence, segments and ACT.

Per token and segment: H_cycles x (L_cycles L-passes with input injection, then one H-pass), as in HRM;
attention runs inside every pass, so each (segment, pass, layer) has its own KV cache (as HRM-Text has one
per pass) and cached decoding equals the full forward. A segment starts from the previous segment's
detached (z_H, z_L) and only its last `grad_passes` passes build a graph. After each segment a Q-head reads
(halt, continue) logits per token; a token that stops is frozen and offers its last K/V to the passes it
skips, so later tokens see the same keys in decoding and in the full forward.

The shared frame (embeddings, heads, losses, forward, cached step) is `model.lm.CodeLM`.
"""

from __future__ import annotations

import torch
from torch import nn

from model.config import ModelConfig
from model.layers import Block, RMSNorm, run_block
from model.lm import Carry, CodeLM, DepthPlan, SegmentRecord, TrunkOutput


class ReasoningModule(nn.Module):
    """A stack of blocks; the input injection is added to the state first; output RMS-normalised."""

    def __init__(self, config: ModelConfig, num_layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(config) for _ in range(num_layers))
        self.norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.checkpointing = config.activation_checkpointing

    def forward(self, state, injection, ctx, caches, memos):
        h = state + injection
        for block, cache, memo in zip(self.blocks, caches, memos):
            h = run_block(block, h, ctx, cache, memo, self.checkpointing)
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
        self.q_head = nn.Linear(config.hidden_size, 2)  # (halt, continue) logits per token
        self.layers_per_pass = ([config.L_layers] * config.L_cycles + [config.H_layers]) * config.H_cycles
        self._init_shared(config.L_layers + config.H_layers)
        nn.init.trunc_normal_(self.L_init, std=1.0, a=-2.0, b=2.0)
        nn.init.trunc_normal_(self.H_init, std=1.0, a=-2.0, b=2.0)
        nn.init.zeros_(self.q_head.weight)
        nn.init.constant_(self.q_head.bias, -5.0)  # halt == continue: nothing stops until trained (HRM's init)

    def depth_cap(self, adaptive_depth: bool) -> int:
        return self.config.max_segments if adaptive_depth and self.config.act else self.config.segments

    def _trunk(self, x, ctx, cache, plan: DepthPlan, carry: Carry | None) -> TrunkOutput:
        cfg = self.config
        B, T, D = x.shape
        if carry is None:
            carry = Carry(z_H=self.H_init.to(x.dtype).expand(B, T, D), z_L=self.L_init.to(x.dtype).expand(B, T, D),
                          memos={"L": [{} for _ in self.L.blocks], "H": [{} for _ in self.H.blocks]},
                          running=torch.ones(B, T, dtype=torch.bool, device=x.device),
                          depth=torch.zeros(B, T, dtype=torch.long, device=x.device), segment=0)
        z_H, z_L, memos, running, depth = carry.z_H, carry.z_L, carry.memos, carry.running, carry.depth
        compiling = torch.compiler.is_compiling()
        records = []
        first = carry.segment
        for s in range(first, first + plan.segments):
            if s > 0:  # the carry from the previous segment: no gradient crosses the boundary
                z_H, z_L, memos = z_H.detach(), z_L.detach(), _detached(memos)
            # None = every token computes (no masking work); a compiled graph always takes the masked path
            active = None if not compiling and bool(running.all()) else running
            z_H, z_L = self._segment(z_H, z_L, x, ctx, cache, s, memos, active)
            q = self.q_head(z_H).float() if cfg.act else None
            records.append(SegmentRecord(s, z_H, running, q))
            depth = depth + running.long()
            stop = s + 1 >= plan.cap
            if plan.q_region is not None and q is not None:
                q_stop = plan.q_region & (q[..., 0] > q[..., 1])
                if plan.min_segments is not None:
                    q_stop = q_stop & (s + 1 >= plan.min_segments)
                stop = stop | q_stop
            running = running & ~stop
            if cache is None and not compiling and not bool(running.any()):
                break  # nobody left to compute (a cache would still need the carried K/V of later passes)
        out = Carry(z_H.detach(), z_L.detach(), _detached(memos), running, depth, first + len(records),
                    plan.min_segments)
        lookahead = None
        if plan.lookahead:
            lookahead = self._lookahead(z_H, z_L, x, ctx, memos, records[-1], plan)
        return TrunkOutput(z_H, records, depth, out, lookahead)

    def _lookahead(self, z_H, z_L, x, ctx, memos, last: SegmentRecord, plan: DepthPlan) -> SegmentRecord:
        """Training with ACT: the next segment of the tokens that did not stop by the Q-head after the last one
        (they continue, or stopped only at the training cap), run without gradient, so the continue logit of
        the last segment gets its bootstrapped target (HRM computes the next step the same way)."""
        q_stopped = plan.q_region & (last.q[..., 0] > last.q[..., 1])
        if plan.min_segments is not None:
            q_stopped = q_stopped & (last.index + 1 >= plan.min_segments)
        region = last.ran & ~q_stopped
        with torch.no_grad():
            z_H, _ = self._segment(z_H.detach(), z_L.detach(), x, ctx, None, last.index + 1, _detached(memos), region)
            return SegmentRecord(last.index + 1, z_H, region, self.q_head(z_H).float())

    def _segment(self, z_H, z_L, x, ctx, cache, segment, memos, active):
        cfg = self.config
        grad = torch.is_grad_enabled()
        first_grad_pass = cfg.num_passes - cfg.grad_passes
        p = 0
        for _ in range(cfg.H_cycles):
            for _ in range(cfg.L_cycles):
                with torch.set_grad_enabled(grad and p >= first_grad_pass):
                    z_L = self._pass("L", z_L, z_H + x, ctx, cache, segment * cfg.num_passes + p, memos, active)
                p += 1
            with torch.set_grad_enabled(grad and p >= first_grad_pass):
                z_H = self._pass("H", z_H, z_L, ctx, cache, segment * cfg.num_passes + p, memos, active)
            p += 1
        return z_H, z_L

    def _pass(self, name, state, injection, ctx, cache, index, memos, active):
        module = self.L if name == "L" else self.H
        caches = cache.passes[index] if cache is not None else [None] * len(module.blocks)
        # Skipping a pass nobody needs reads the mask on the host; a compiled graph computes it instead
        # (torch.where below keeps the old state), so training compiles to one graph per forward.
        if active is not None and not torch.compiler.is_compiling() and not bool(active.any()):
            if cache is not None:
                module.carry_into_cache(ctx, caches, memos[name])
            return state
        ctx.active = active
        new = module(state, injection, ctx, caches, memos[name])
        return new if active is None else torch.where(active[..., None], new, state)


def _detached(memos: dict) -> dict:
    return {name: [{k: v.detach() for k, v in memo.items()} for memo in layers] for name, layers in memos.items()}
