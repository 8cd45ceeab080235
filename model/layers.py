"""Building blocks: RMSNorm, RoPE, SwiGLU, SDPA attention with a KV cache and a prefix-LM mask, the block,
the input embedding (tokens + language + task type) and the per-pass KV cache."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 statistics even under bf16 autocast, as HRM does; one fused op
        return F.rms_norm(x.float(), self.weight.shape, self.weight.float(), self.eps).to(x.dtype)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for positions [0, max_seq_len); buffers, not saved in checkpoints."""

    def __init__(self, head_dim: int, max_seq_len: int, theta: float):
        super().__init__()
        self.max_seq_len = max_seq_len
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions [B, T] -> cos, sin [B, 1, T, head_dim/2]; callers keep positions below max_seq_len
        (checked there without a device sync per forward, which would also break torch.compile graphs)."""
        return self.cos[positions][:, None], self.sin[positions][:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def prefix_lm_mask(query_index: torch.Tensor, key_valid: torch.Tensor, prompt_end: torch.Tensor) -> torch.Tensor:
    """Boolean attention mask [B, 1, Tq, Tk], True = may attend.

    Query i sees key j when j is not padding and (j is in the prompt, j < prompt_end, or j <= i): bidirectional
    over the prompt, causal after it. Every query sees itself, so padding rows never get an empty softmax.
    """
    j = torch.arange(key_valid.shape[1], device=key_valid.device)
    i = query_index[None, :, None]
    allowed = key_valid[:, None, :] & ((j < prompt_end[:, None, None]) | (j <= i))
    return (allowed | (j == i))[:, None]


def packed_prefix_lm_mask(doc_ids: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
    """prefix_lm_mask for rows that hold several documents (doc_ids [B, T], -1 = padding; prompt_mask [B, T]):
    query i sees key j of its own document when j is a prompt token or j <= i, and always itself."""
    T = doc_ids.shape[1]
    j = torch.arange(T, device=doc_ids.device)
    i = j[:, None]
    same = (doc_ids[:, :, None] == doc_ids[:, None, :]) & (doc_ids >= 0)[:, None, :]
    allowed = same & (prompt_mask[:, None, :] | (j <= i))
    return (allowed | (j == i))[:, None]


def flex_block_mask(doc_ids: torch.Tensor, prompt_mask: torch.Tensor):
    """The FlexAttention BlockMask of packed_prefix_lm_mask (an unpacked row is one document whose padding has
    doc id -1): query q sees key k of its own document when k is a prompt token or k <= q, and itself."""
    from torch.nn.attention.flex_attention import create_block_mask

    B, T = doc_ids.shape

    def rule(b, h, q, k):
        same = (doc_ids[b, q] == doc_ids[b, k]) & (doc_ids[b, k] >= 0)
        return (same & (prompt_mask[b, k] | (k <= q))) | (q == k)

    return create_block_mask(rule, B, None, T, T, device=doc_ids.device)


@dataclass
class AttnContext:
    """What every attention layer of one forward/decode call shares."""

    cos: torch.Tensor
    sin: torch.Tensor
    mask: torch.Tensor | None  # None = every query sees every key
    cache_start: int = 0  # slot of the first new token in the KV cache
    active: torch.Tensor | None = None  # [B, T] ACT: tokens still computing; the rest keep their last K/V
    block_mask: object | None = None  # a FlexAttention BlockMask: used instead of `mask` (full forwards only)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
        self.out = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(self, x, ctx: AttnContext, cache: tuple | None = None, memo: dict | None = None):
        B, T, D = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(qkv[:2], ctx.cos, ctx.sin).unbind(0)  # q and k rotated in one go
        v = qkv[2]
        if memo is not None:
            # ACT: a halted token is frozen, so in this pass it offers the K/V of its last computed pass of
            # this module; cached decoding writes the same K/V, so later tokens see identical caches.
            if ctx.active is not None and "k" in memo:
                keep = ctx.active[:, None, :, None]
                k, v = torch.where(keep, k, memo["k"]), torch.where(keep, v, memo["v"])
            memo["k"], memo["v"] = k, v
        if cache is not None:
            k_cache, v_cache = cache
            end = ctx.cache_start + T
            k_cache[:, :, ctx.cache_start:end] = k
            v_cache[:, :, ctx.cache_start:end] = v
            k, v = k_cache[:, :, :end].to(q.dtype), v_cache[:, :, :end].to(q.dtype)
        if ctx.block_mask is not None and cache is None:
            from torch.nn.attention.flex_attention import flex_attention

            y = flex_attention(q, k, v, block_mask=ctx.block_mask)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=ctx.mask)
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class SwiGLU(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_up = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(self, x, ctx: AttnContext, cache=None, memo=None):
        x = x + self.attn(self.attn_norm(x), ctx, cache, memo)
        return x + self.mlp(self.mlp_norm(x))


def run_block(block: Block, x, ctx: AttnContext, cache, memo, checkpointing: bool):
    """block(x, ...), with its activations recomputed in backward when `checkpointing` applies (training with
    a graph and no KV cache)."""
    if checkpointing and cache is None and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint

        return checkpoint(block, x, ctx, None, memo, use_reentrant=False)
    return block(x, ctx, cache, memo)


class CodeEmbedding(nn.Module):
    """Token + language + task-type embeddings (our replacement for HRM's per-puzzle embeddings)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.languages = nn.Embedding(config.num_languages, config.hidden_size)
        self.tasks = nn.Embedding(config.num_task_types, config.hidden_size)

    def forward(self, input_ids, language_ids, task_ids):
        """language_ids / task_ids: [B] (one per row) or [B, T] (per token: packed rows)."""
        extra = self.languages(language_ids) + self.tasks(task_ids)
        return self.tokens(input_ids) + (extra if extra.dim() == 3 else extra[:, None, :])


class KVCache:
    """One K/V buffer per (pass, layer), preallocated to max_len slots, plus per-row padding and positions."""

    def __init__(self, layers_per_pass: list[int], batch_size: int, max_len: int, config: ModelConfig,
                 dtype: torch.dtype, device: torch.device):
        shape = (batch_size, config.num_heads, max_len, config.head_dim)
        self.passes = [[(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))
                        for _ in range(n)] for n in layers_per_pass]
        self.valid = torch.zeros(batch_size, max_len, dtype=torch.bool, device=device)
        self.next_position = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.length = 0
        self.max_len = max_len

    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for layers in self.passes for k, v in layers)

    @property
    def batch_size(self) -> int:
        return self.valid.shape[0]

    def select(self, rows: torch.Tensor) -> "KVCache":
        """A cache of the given rows only (a continuous batch drops the rows that finished)."""
        out = KVCache.__new__(KVCache)
        out.passes = [[(k.index_select(0, rows), v.index_select(0, rows)) for k, v in layers] for layers in self.passes]
        out.valid, out.next_position = self.valid.index_select(0, rows), self.next_position.index_select(0, rows)
        out.length, out.max_len = self.length, self.max_len
        return out

    def _first_used(self) -> int:
        used = self.valid[:, :self.length].any(0).nonzero()
        return int(used[0]) if len(used) else self.length

    @staticmethod
    def concat(caches: list["KVCache"], room: int) -> "KVCache":
        """The rows of every cache in one cache with `room` free slots after the longest: each cache's used
        slots are right-aligned (its leading slots that no row uses are dropped, the gap is invalid padding).
        Positions are per row (next_position) and padding is masked, so a row decodes the same after a merge."""
        spans = [(c._first_used(), c.length) for c in caches]
        width = max(end - start for start, end in spans)
        first = caches[0]
        rows = sum(c.batch_size for c in caches)
        out = KVCache.__new__(KVCache)
        out.length, out.max_len = width, width + room
        out.valid = torch.zeros(rows, out.max_len, dtype=torch.bool, device=first.valid.device)
        out.next_position = torch.cat([c.next_position for c in caches])
        out.passes = []
        for p, layers in enumerate(first.passes):
            merged = []
            for i, (k0, _) in enumerate(layers):
                shape = (rows, k0.shape[1], out.max_len, k0.shape[3])
                k = torch.zeros(shape, dtype=k0.dtype, device=k0.device)
                v = torch.zeros_like(k)
                row = 0
                for c, (start, end) in zip(caches, spans):
                    b, offset = c.batch_size, width - (end - start)
                    k[row:row + b, :, offset:width] = c.passes[p][i][0][:, :, start:end]
                    v[row:row + b, :, offset:width] = c.passes[p][i][1][:, :, start:end]
                    row += b
                merged.append((k, v))
            out.passes.append(merged)
        row = 0
        for c, (start, end) in zip(caches, spans):
            out.valid[row:row + c.batch_size, width - (end - start):width] = c.valid[:, start:end]
            row += c.batch_size
        return out


def cache_bytes_per_token(layers_per_pass: list[int], config: ModelConfig, dtype: torch.dtype) -> int:
    return sum(layers_per_pass) * 2 * config.hidden_size * torch.empty((), dtype=dtype).element_size()


def init_weights(module: nn.Module, std: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
