"""Output heads: the LM head (direct code), the edit-tag head (which prompt lines an edit touches) and the
tool head (which tool to call), plus their decoding modes: SEARCH/REPLACE blocks whose SEARCH text is copied
from the file, and tool calls whose arguments are decoded against a schema."""

from __future__ import annotations

import torch
from torch import nn

from model.config import ModelConfig
from model.layers import RMSNorm


class OutputHeads(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.lm = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.edit = nn.Linear(config.hidden_size, 1)  # per prompt token: touched by the edit
        self.tool = nn.Linear(config.hidden_size, config.num_tools)  # at the last prompt token

    def lm_logits(self, state: torch.Tensor) -> torch.Tensor:
        return self.lm(self.norm(state))
