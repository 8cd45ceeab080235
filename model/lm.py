"""CodeLM: what HRMCode and the same-budget baseline share (embeddings, RoPE, heads, losses, the full forward
and the cached decoding step), and the model's output types. Subclasses define `layers_per_pass` and `_trunk`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from model.config import ModelConfig
from model.heads import OutputHeads
from model.layers import (AttnContext, CodeEmbedding, KVCache, RotaryEmbedding, cache_bytes_per_token, init_weights,
                          flex_block_mask, packed_prefix_lm_mask, prefix_lm_mask)
from model.losses import compute_losses
from model.vocab import LANGUAGES


@dataclass
class Carry:
    """What one segment hands the next: detached states, so no gradient crosses a segment boundary."""

    z_H: torch.Tensor  # [B, T, D]
    z_L: torch.Tensor
    memos: dict  # per module ("L", "H") and layer: the K/V a halted token offers to later passes
    running: torch.Tensor  # [B, T] tokens that compute the next segment
    depth: torch.Tensor  # [B, T] segments computed so far
    segment: int  # segments done
    min_segments: torch.Tensor | None = None  # training exploration, drawn once per sequence


@dataclass
class DepthPlan:
    """How deep each token goes in one forward or decoding step."""

    cap: torch.Tensor  # [B, T] the most segments each token runs
    segments: int  # segments this call runs (cached decoding: every segment of the cache, to fill it)
    q_region: torch.Tensor | None = None  # [B, T] tokens the Q-head may stop early (q_halt > q_continue)
    min_segments: torch.Tensor | None = None  # [B, T] training exploration: no Q-stop before this many
    lookahead: bool = False  # training: one extra no-grad segment for the last segment's continue target


@dataclass
class SegmentRecord:
    """One segment of a forward: the H state after it (a token that did not run it keeps its earlier state),
    which tokens ran it, and the Q-head's (halt, continue) logits."""

    index: int  # 0-based segment number
    state: torch.Tensor
    ran: torch.Tensor  # [B, T] bool
    q: torch.Tensor | None = None  # [B, T, 2] float32


@dataclass
class ModelOutput:
    logits: torch.Tensor | None  # [B, T, V]; None with answer_logits_only
    loss: torch.Tensor | None
    metrics: dict[str, float]
    hidden: torch.Tensor  # [B, T, D] final state (before the heads' norm)
    edit_logits: torch.Tensor  # [B, T]
    tool_logits: torch.Tensor  # [B, num_tools], read at the last prompt token (packed rows: [B, T, num_tools])
    halt_depth: torch.Tensor  # [B, T] segments each token ran
    loss_parts: dict | None = None  # {name: (sum, count)} per loss term, for token-weighted accumulation
    carry: Carry | None = None  # the state after this call's last segment


@dataclass
class TrunkOutput:
    state: torch.Tensor
    records: list[SegmentRecord]
    depth: torch.Tensor | None = None
    carry: Carry | None = None
    lookahead: SegmentRecord | None = None  # the extra no-grad segment (training, ACT), for the Q targets


@dataclass
class StepOutput:
    logits: torch.Tensor  # [B, T, V]
    hidden: torch.Tensor
    depth: torch.Tensor  # [B, T] segments


class CodeLM(nn.Module):
    """Embeddings in, heads out; subclasses define `layers_per_pass` (one segment's passes) and `_trunk`."""

    layers_per_pass: list[int]

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

    def _trunk(self, x, ctx, cache, plan: DepthPlan, carry: Carry | None) -> TrunkOutput:
        raise NotImplementedError

    def depth_cap(self, adaptive_depth: bool) -> int:
        """Segments a token runs at most: halt_max_segments with adaptive depth (ACT), else segments."""
        return 1

    @property
    def device(self) -> torch.device:
        return self.heads.norm.weight.device  # a norm scale: never replaced by a quantized module

    @property
    def dtype(self) -> torch.dtype:
        return self.heads.norm.weight.dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, batch: dict, *, adaptive_depth: bool = False, halt_depth: torch.Tensor | None = None,
                carry: Carry | None = None, segments: int | None = None,
                answer_logits_only: bool = False) -> ModelOutput:
        """Full forward over [B, T]. adaptive_depth lets the Q-head stop answer tokens, up to halt_max_segments
        (prompt tokens always run `segments`, as in generation); halt_depth [B, T] imposes per-token segment
        counts instead. In training with ACT, answer tokens stop by the Q-head (with exploration) up to
        `segments`. carry / segments: continue from an earlier call's carry for this many segments (one
        optimizer step per segment); the output's carry continues it. answer_logits_only (training, with labels):
        the LM head runs on the answer positions only, inside the loss, and the output has no logits (None)."""
        cfg = self.config
        ids = batch["input_ids"]
        B, T = ids.shape
        device = ids.device
        if T > cfg.max_seq_len:
            raise ValueError(f"input_ids has {T} positions, above max_seq_len={cfg.max_seq_len}")
        language_ids, task_ids = self._conditioning(batch, B, device)
        index = torch.arange(T, device=device)
        if "doc_ids" in batch:  # packed rows (model.data.collate_packed): several documents per row
            doc_ids, prompt_mask = batch["doc_ids"], batch["prompt_mask"]
            positions = batch["positions"]
            answer = ~prompt_mask
            # each document's last prompt token reads the tool head (the next token is an answer token or
            # another document's, or there is none)
            next_prompt = torch.cat([prompt_mask[:, 1:], prompt_mask.new_zeros(B, 1)], 1)
            next_doc = torch.cat([doc_ids[:, 1:], doc_ids.new_full((B, 1), -1)], 1)
            tool_at = prompt_mask & (~next_prompt | (next_doc != doc_ids))  # a mask: selected in the loss code
        else:
            prompt_len = batch.get("prompt_len")
            prompt_len = torch.zeros(B, dtype=torch.long, device=device) if prompt_len is None else prompt_len
            valid = ids != cfg.pad_token_id
            positions = (valid.long().cumsum(1) - 1).clamp(min=0)
            answer = index[None, :] >= prompt_len[:, None]
            # one document per row, as packed rows describe it
            doc_ids, prompt_mask = torch.where(valid, 0, -1), index[None, :] < prompt_len[:, None]
            tool_at = (torch.arange(B, device=device), (prompt_len - 1).clamp(min=0))
        cos, sin = self.rope(positions)
        if cfg.attention == "flex":
            ctx = AttnContext(cos, sin, None, block_mask=flex_block_mask(doc_ids, prompt_mask))
        else:
            ctx = AttnContext(cos, sin, packed_prefix_lm_mask(doc_ids, prompt_mask))
        plan = self._plan(answer, adaptive_depth, halt_depth, carry, segments)
        trunk = self._trunk(self.embed(ids, language_ids, task_ids), ctx, None, plan, carry)

        hidden = self.heads.norm(trunk.state)
        labels = batch.get("labels")
        if answer_logits_only and labels is None:
            raise ValueError("answer_logits_only needs labels")
        logits = None if answer_logits_only else self.heads.lm(hidden)
        edit_logits = self.heads.edit(hidden).squeeze(-1)
        # packed rows: every position's (the loss code picks each document's last prompt token; a boolean
        # selection here would break a compiled graph)
        tool_logits = self.heads.tool(hidden if "doc_ids" in batch else hidden[tool_at])
        depth = trunk.depth if trunk.depth is not None else torch.ones(B, T, dtype=torch.long, device=device)
        loss, metrics, parts = None, {}, None
        if labels is not None:
            loss, metrics, parts = compute_losses(cfg, {**batch, "task_ids": task_ids}, trunk.records,
                                                  trunk.lookahead, self.heads, logits, edit_logits, tool_logits,
                                                  tool_at, depth, hidden)
        return ModelOutput(logits, loss, metrics, trunk.state, edit_logits, tool_logits, depth, parts, trunk.carry)

    def _plan(self, answer, adaptive_depth, halt_depth, carry, segments) -> DepthPlan:
        """Per-token caps and Q-stopping for a full forward (see forward)."""
        cfg = self.config
        fixed = cfg.segments
        if halt_depth is not None:
            return DepthPlan(halt_depth.long(), int(halt_depth.max()))
        adaptive = adaptive_depth and cfg.act
        cap = torch.where(answer, self.depth_cap(True), fixed) if adaptive else torch.full_like(answer, fixed,
                                                                                                dtype=torch.long)
        done = carry.segment if carry is not None else 0
        todo = max(self.depth_cap(adaptive) - done, 0) if segments is None else segments
        if adaptive:
            return DepthPlan(cap, todo, q_region=answer)
        if not (self.training and cfg.act):
            return DepthPlan(cap, todo)
        # training with ACT: answer tokens stop by the Q-head, at least min_segments (HRM's exploration draws
        # it uniform in [2, segments] with probability halt_exploration_prob, else 1)
        min_segments = torch.ones_like(cap)
        if carry is not None and carry.min_segments is not None:
            min_segments = carry.min_segments
        elif fixed > 1:
            explore = torch.rand(answer.shape, device=answer.device) < cfg.halt_exploration_prob
            drawn = torch.randint(2, fixed + 1, answer.shape, device=answer.device)
            min_segments = torch.where(explore, drawn, min_segments)
        return DepthPlan(cap, todo, q_region=answer, min_segments=min_segments,
                         lookahead=done + todo < cfg.max_segments)

    def _conditioning(self, batch, B, device):
        language_ids = batch.get("language_ids")
        task_ids = batch.get("task_ids")
        if language_ids is None:
            language_ids = torch.full((B,), LANGUAGES.index("none"), dtype=torch.long, device=device)
        if task_ids is None:
            task_ids = torch.zeros(B, dtype=torch.long, device=device)
        return language_ids, task_ids

    # -- cached decoding -----------------------------------------------------------------------------
    def new_cache(self, batch_size: int, max_len: int, segments: int | None = None) -> KVCache:
        """One K/V buffer per (segment, pass, layer); segments defaults to the adaptive-depth maximum."""
        segments = self.depth_cap(True) if segments is None else segments
        return KVCache(self.layers_per_pass * segments, batch_size, max_len, self.config, self.dtype, self.device)

    def cache_bytes_per_token(self, segments: int | None = None) -> int:
        segments = self.depth_cap(True) if segments is None else segments
        return cache_bytes_per_token(self.layers_per_pass * segments, self.config, self.dtype)

    @torch.no_grad()
    def step(self, input_ids: torch.Tensor, cache: KVCache, language_ids: torch.Tensor, task_ids: torch.Tensor, *,
             valid: torch.Tensor | None = None, prompt: bool = False, adaptive_depth: bool = False,
             last_logits_only: bool = False) -> StepOutput:
        """Append input_ids [B, T] to the cache and return their logits. prompt=True: the chunk attends
        bidirectionally within itself (prefix-LM prefill, `segments` deep); else causal (a forced answer prefix
        or one decoded token), with ACT if asked. valid [B, T] marks real tokens (False = padding).
        last_logits_only: logits [B, 1, V] of the last position (a long prompt's full logits would dominate
        memory)."""
        B, T = input_ids.shape
        start, end = cache.length, cache.length + T
        if end > cache.max_len:
            raise ValueError(f"KV cache holds {cache.max_len} tokens; cannot append {T} after {start}")
        cache_segments = len(cache.passes) // len(self.layers_per_pass)
        act = adaptive_depth and not prompt and self.config.act
        if act and cache_segments < self.depth_cap(True):
            raise ValueError(f"adaptive depth runs up to {self.depth_cap(True)} segments; this KV cache holds "
                             f"{cache_segments} (new_cache(..., segments=None) sizes it for adaptive depth)")
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
        tokens = torch.ones(B, T, dtype=torch.bool, device=input_ids.device)
        cap = torch.full((B, T), self.depth_cap(act), dtype=torch.long, device=input_ids.device)
        plan = DepthPlan(cap, cache_segments, q_region=tokens if act else None)
        trunk = self._trunk(self.embed(input_ids, language_ids, task_ids), ctx, cache, plan, None)
        cache.length = end
        hidden = self.heads.norm(trunk.state)
        depth = trunk.depth if trunk.depth is not None else torch.ones(B, T, dtype=torch.long, device=input_ids.device)
        return StepOutput(self.heads.lm(hidden[:, -1:] if last_logits_only else hidden), hidden, depth)
