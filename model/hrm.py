"""HRM-Code: a causal (prefix-LM) hierarchical reasoning LM with per-token recurrence and adaptive depth.

Per token: H_cycles x (L_cycles L-passes with input injection, then one H-pass), as in HRM; attention runs
inside every pass, so each (module, pass) has its own KV cache (as in HRM-Text) and cached decoding equals
the full forward. Only the last `grad_passes` passes build a graph. A Q-head after each H-cycle predicts
"this token's prediction is already right"; at inference a token halts at its own depth and offers its last
K/V to the passes it skips, so later tokens still see exact caches.

CodeLM holds what HRMCode and the baseline share: embeddings, RoPE, heads, losses, forward and cached step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from model.config import ModelConfig
from model.heads import OutputHeads
from model.layers import (AttnContext, Block, CodeEmbedding, KVCache, RMSNorm, RotaryEmbedding,
                          cache_bytes_per_token, init_weights, prefix_lm_mask)
from model.losses import compute_losses
from model.vocab import LANGUAGES


@dataclass
class ModelOutput:
    logits: torch.Tensor  # [B, T, V]
    loss: torch.Tensor | None
    metrics: dict[str, float]
    hidden: torch.Tensor  # [B, T, D] final state (before the heads' norm)
    edit_logits: torch.Tensor  # [B, T]
    tool_logits: torch.Tensor  # [B, num_tools], read at the last prompt token
    halt_depth: torch.Tensor  # [B, T] H-cycles each token ran


@dataclass
class TrunkOutput:
    state: torch.Tensor
    cycle_states: list[torch.Tensor]
    q_logits: list[torch.Tensor] = field(default_factory=list)
    depth: torch.Tensor | None = None


@dataclass
class StepOutput:
    logits: torch.Tensor  # [B, T, V]
    hidden: torch.Tensor
    depth: torch.Tensor  # [B, T]


class CodeLM(nn.Module):
    """Embeddings in, heads out; subclasses define `layers_per_pass` and `_trunk`."""

    layers_per_pass: list[int]
    max_depth: int = 1  # H-cycles a token runs at full depth

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = CodeEmbedding(config)
        self.rope = RotaryEmbedding(config.head_dim, config.max_seq_len, config.rope_theta)
        self.heads = OutputHeads(config)

    def _init_shared(self, num_blocks: int) -> None:
        init_weights(self, std=0.02)
        nn.init.trunc_normal_(self.embed.tokens.weight, std=1.0, a=-2.0, b=2.0)  # unit scale, like HRM's sqrt(d) x 1/sqrt(d)
        for name, p in self.named_parameters():
            if name.endswith(("attn.out.weight", "mlp.down.weight")):
                nn.init.trunc_normal_(p, std=0.02 / math.sqrt(2 * num_blocks), a=-0.04, b=0.04)

    def _trunk(self, x, ctx, cache, act_region, halt_depth, adaptive) -> TrunkOutput:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return self.heads.norm.weight.device  # a norm scale: never replaced by a quantized module

    @property
    def dtype(self) -> torch.dtype:
        return self.heads.norm.weight.dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, batch: dict, *, adaptive_depth: bool = False, halt_depth: torch.Tensor | None = None) -> ModelOutput:
        """Full forward over [B, T]. adaptive_depth halts answer tokens by the Q-head (prompt tokens always run
        full depth, as in generation); halt_depth [B, T] imposes given per-token depths instead."""
        ids = batch["input_ids"]
        B, T = ids.shape
        device = ids.device
        if T > self.config.max_seq_len:
            raise ValueError(f"input_ids has {T} positions, above max_seq_len={self.config.max_seq_len}")
        prompt_len = batch.get("prompt_len")
        prompt_len = torch.zeros(B, dtype=torch.long, device=device) if prompt_len is None else prompt_len
        language_ids, task_ids = self._conditioning(batch, B, device)
        valid = ids != self.config.pad_token_id
        positions = (valid.long().cumsum(1) - 1).clamp(min=0)
        cos, sin = self.rope(positions)
        index = torch.arange(T, device=device)
        ctx = AttnContext(cos, sin, prefix_lm_mask(index, valid, prompt_len))
        act_region = index[None, :] >= prompt_len[:, None]
        report_depth = adaptive_depth or halt_depth is not None
        if halt_depth is None and not adaptive_depth:
            halt_depth = self._explore_depths(act_region)
        trunk = self._trunk(self.embed(ids, language_ids, task_ids), ctx, None, act_region, halt_depth, adaptive_depth)

        hidden = self.heads.norm(trunk.state)
        logits = self.heads.lm(hidden)
        edit_logits = self.heads.edit(hidden).squeeze(-1)
        last_prompt = (prompt_len - 1).clamp(min=0)
        tool_logits = self.heads.tool(hidden[torch.arange(B, device=device), last_prompt])
        loss, metrics = None, {}
        if batch.get("labels") is not None:
            loss, metrics = compute_losses(self.config, {**batch, "task_ids": task_ids}, logits, trunk.cycle_states,
                                           trunk.q_logits, self.heads.lm_logits, edit_logits, tool_logits)
        if trunk.depth is not None and report_depth:
            metrics["mean_depth"] = trunk.depth[act_region].float().mean().item() if act_region.any() else 0.0
        depth = trunk.depth if trunk.depth is not None else torch.full((B, T), self.max_depth, device=device)
        return ModelOutput(logits, loss, metrics, trunk.state, edit_logits, tool_logits, depth)

    def _explore_depths(self, act_region: torch.Tensor) -> torch.Tensor | None:
        """Training only: random halting depths for a share of the answer tokens (None: everyone full depth)."""
        p = self.config.halt_exploration_prob
        if not (self.training and self.max_depth > 1 and self.config.act and p > 0):
            return None
        explore = act_region & (torch.rand(act_region.shape, device=act_region.device) < p)
        random_depth = torch.randint(1, self.max_depth + 1, act_region.shape, device=act_region.device)
        return torch.where(explore, random_depth, self.max_depth)

    def _conditioning(self, batch, B, device):
        language_ids = batch.get("language_ids")
        task_ids = batch.get("task_ids")
        if language_ids is None:
            language_ids = torch.full((B,), LANGUAGES.index("none"), dtype=torch.long, device=device)
        if task_ids is None:
            task_ids = torch.zeros(B, dtype=torch.long, device=device)
        return language_ids, task_ids

    # -- cached decoding -----------------------------------------------------------------------------
    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        return KVCache(self.layers_per_pass, batch_size, max_len, self.config, self.dtype, self.device)

    def cache_bytes_per_token(self) -> int:
        return cache_bytes_per_token(self.layers_per_pass, self.config, self.dtype)

    @torch.no_grad()
    def step(self, input_ids: torch.Tensor, cache: KVCache, language_ids: torch.Tensor, task_ids: torch.Tensor, *,
             valid: torch.Tensor | None = None, prompt: bool = False, adaptive_depth: bool = False,
             last_logits_only: bool = False) -> StepOutput:
        """Append input_ids [B, T] to the cache and return their logits. prompt=True: the chunk attends
        bidirectionally within itself (prefix-LM prefill, full depth); else causal, with ACT if asked.
        valid [B, T] marks real tokens (False = left padding). last_logits_only: logits [B, 1, V] of the
        last position (a long prompt's full logits would dominate memory)."""
        B, T = input_ids.shape
        start, end = cache.length, cache.length + T
        if end > cache.max_len:
            raise ValueError(f"KV cache holds {cache.max_len} tokens; cannot append {T} after {start}")
        if valid is None:
            valid = torch.ones(B, T, dtype=torch.bool, device=input_ids.device)
        cache.valid[:, start:end] = valid
        positions = cache.next_position[:, None] + (valid.long().cumsum(1) - 1).clamp(min=0)
        cache.next_position += valid.sum(1)
        if int(cache.next_position.max()) > self.config.max_seq_len:
            raise ValueError(f"sequence grows past max_seq_len={self.config.max_seq_len}")
        key_valid = cache.valid[:, :end]
        mask = None
        if not bool(key_valid.all()) or (not prompt and T > 1):
            prompt_end = torch.full((B,), end if prompt else start, dtype=torch.long, device=input_ids.device)
            mask = prefix_lm_mask(torch.arange(start, end, device=input_ids.device), key_valid, prompt_end)
        cos, sin = self.rope(positions)
        ctx = AttnContext(cos, sin, mask, cache_start=start)
        act = adaptive_depth and not prompt
        act_region = torch.ones(B, T, dtype=torch.bool, device=input_ids.device) if act else None
        trunk = self._trunk(self.embed(input_ids, language_ids, task_ids), ctx, cache, act_region, None, act)
        cache.length = end
        hidden = self.heads.norm(trunk.state)
        depth = trunk.depth if trunk.depth is not None else torch.full((B, T), self.max_depth, device=input_ids.device)
        return StepOutput(self.heads.lm(hidden[:, -1:] if last_logits_only else hidden), hidden, depth)


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
