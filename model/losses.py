"""Multi-task losses: masked next-token cross-entropy (with deep supervision over H-cycles), edit-tag BCE,
tool-selection CE and the Q-halt BCE, summed with the config's weights; per-task metrics alongside."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from model.config import ModelConfig
from model.vocab import TASK_TYPES

IGNORE = -100


def compute_losses(config: ModelConfig, batch: dict, logits: torch.Tensor, cycle_states: list[torch.Tensor],
                   q_logits: list[torch.Tensor], lm_head: Callable, edit_logits: torch.Tensor,
                   tool_logits: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """cycle_states[c]: the H state after cycle c (the last equals the state behind `logits`); q_logits[c]:
    the Q-head's halt logit after cycle c ([] for the baseline). lm_head maps states to vocabulary logits."""
    labels = batch["labels"]
    answer = labels != IGNORE
    targets = labels[answer]
    metrics: dict[str, torch.Tensor] = {}  # detached scalars, read back to the host in one go at the end
    zero = logits.sum() * 0.0  # keeps the graph when a batch has nothing to score
    lm_loss, q_loss = zero, zero

    if targets.numel():
        per_cycle_ce, per_cycle_correct = [], []
        for c, state in enumerate(cycle_states):
            cycle_logits = logits[answer] if c == len(cycle_states) - 1 else lm_head(state[answer])
            per_cycle_ce.append(F.cross_entropy(cycle_logits.float(), targets, reduction="none"))
            per_cycle_correct.append((cycle_logits.argmax(-1) == targets).detach())
        ce, correct = per_cycle_ce[-1], per_cycle_correct[-1]
        lm_loss = torch.stack([x.mean() for x in per_cycle_ce]).mean() if config.deep_supervision else ce.mean()
        metrics["lm_loss"], metrics["lm_acc"] = ce.mean(), correct.float().mean()
        if len(cycle_states) > 1:
            for c, (x, ok) in enumerate(zip(per_cycle_ce, per_cycle_correct)):
                metrics[f"lm_loss_cycle{c + 1}"], metrics[f"lm_acc_cycle{c + 1}"] = x.mean(), ok.float().mean()

        task_of_token = batch["task_ids"][:, None].expand_as(labels)[answer] if "task_ids" in batch else None
        if task_of_token is not None:
            for t in task_of_token.unique().tolist():
                sel = task_of_token == t
                metrics[f"lm_loss_{TASK_TYPES[t]}"] = ce[sel].mean()
                metrics[f"lm_acc_{TASK_TYPES[t]}"] = correct[sel].float().mean()

        if q_logits:
            # Q target: "this token's prediction is already right" at that cycle (HRM's halt target per token)
            q_terms, q_hits = [], []
            for q, ok in zip(q_logits, per_cycle_correct):
                q = q[answer].float()
                q_terms.append(F.binary_cross_entropy_with_logits(q, ok.float()))
                q_hits.append(((q > 0) == ok).float().mean())
            q_loss = torch.stack(q_terms).mean()
            metrics["q_halt_loss"], metrics["q_halt_acc"] = q_loss, torch.stack(q_hits).mean()

    edit_loss = zero
    if batch.get("edit_tags") is not None:
        tags = batch["edit_tags"]
        tagged = tags >= 0
        if tagged.any():
            x, y = edit_logits[tagged].float(), tags[tagged].float()
            edit_loss = F.binary_cross_entropy_with_logits(x, y)
            metrics["edit_loss"], metrics["edit_acc"] = edit_loss, ((x > 0) == (y > 0.5)).float().mean()

    tool_loss = zero
    if batch.get("tool_labels") is not None:
        tools = batch["tool_labels"]
        labelled = tools >= 0
        if labelled.any():
            x = tool_logits[labelled].float()
            tool_loss = F.cross_entropy(x, tools[labelled])
            metrics["tool_loss"] = tool_loss
            metrics["tool_acc"] = (x.argmax(-1) == tools[labelled]).float().mean()

    loss = (config.lm_loss_weight * lm_loss + config.edit_loss_weight * edit_loss
            + config.tool_loss_weight * tool_loss + config.q_loss_weight * q_loss)
    metrics["loss"] = loss
    values = torch.stack([v.detach().float() for v in metrics.values()]).tolist()  # one host sync, not one per metric
    return loss, dict(zip(metrics, values))
