"""CodeLM: what HRMCode and the same-budget baseline share (embeddings, RoPE, heads, losses, the full forward
and the cached decoding step), and the model's output types. Subclasses define `layers_per_pass` and `_trunk`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from model.config import ModelConfig
from model.heads import OutputHeads
from model.layers import (AttnContext, CodeEmbedding, KVCache, RotaryEmbedding, cache_bytes_per_token, init_weights,
                          prefix_lm_mask)
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
