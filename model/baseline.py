"""The same-budget baseline: a plain pre-norm transformer with HRM-Code's embeddings, heads, losses and
cached decoding, `baseline_layers` deep so that its parameter count matches the HRM within 5 %."""

from __future__ import annotations

import torch
from torch import nn

from model.config import ModelConfig
from model.lm import CodeLM, DepthPlan, SegmentRecord, TrunkOutput
from model.layers import Block, run_block


class BaselineTransformer(CodeLM):
    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.baseline_layers))
        self.layers_per_pass = [config.baseline_layers]
        self._init_shared(config.baseline_layers)

    def _trunk(self, x, ctx, cache, plan: DepthPlan, carry) -> TrunkOutput:
        caches = cache.passes[0] if cache is not None else [None] * len(self.blocks)
        ctx.active = None
        h = x
        for block, layer_cache in zip(self.blocks, caches):
            h = run_block(block, h, ctx, layer_cache, None, self.config.activation_checkpointing)
        ran = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        return TrunkOutput(h, [SegmentRecord(0, h, ran)])
