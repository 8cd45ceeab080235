"""Multi-task losses over segments: masked next-token cross-entropy, edit-tag BCE and tool-selection CE after
every segment (deep supervision), and the Q-head's halt / continue BCE with Q-learning targets; per-task
metrics alongside.

Each term is returned as (sum, count) so a trainer can divide by the token count of a whole accumulated step
(`combine`); a plain forward divides by its own counts."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.config import ModelConfig
from model.vocab import TASK_TYPES

IGNORE = -100
WEIGHTS = {"lm": "lm_loss_weight", "q": "q_loss_weight", "edit": "edit_loss_weight", "tool": "tool_loss_weight"}


def combine(config: ModelConfig, parts: dict, denominators: dict | None = None) -> torch.Tensor:
    """The total loss: sum over terms of weight x sum / count, counts from `denominators` when given (e.g. the
    answer tokens of every micro-batch of an optimizer step), else the parts' own."""
    total = None
    for name, (value, count) in parts.items():
        denominator = (denominators or {}).get(name, count)
        if torch.is_tensor(denominator):
            denominator = denominator.clamp(min=1).to(value.dtype)
        else:
            denominator = max(float(denominator), 1.0)
        term = getattr(config, WEIGHTS[name]) * value / denominator
        total = term if total is None else total + term
    return total


def q_targets(config: ModelConfig, nxt) -> torch.Tensor:
    """The continue target from the next segment's Q logits [N, 2]: sigmoid(max(halt, continue)), or
    sigmoid(halt) when that segment is the last one allowed (there, a token must halt)."""
    last = nxt.index + 1 >= config.max_segments
    return torch.sigmoid(nxt.q[..., 0] if last else nxt.q.max(-1).values)


def compute_losses(config: ModelConfig, batch: dict, records: list, lookahead, heads, logits: torch.Tensor | None,
                   edit_logits: torch.Tensor, tool_logits: torch.Tensor, tool_at: tuple,
                   depth: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float], dict]:
    """logits: the final LM logits [B, T, V], or None: then the LM head runs here on `hidden` (the final state
    after the heads' norm) at the answer positions only. tool_at: where the tool head reads: a (rows,
    positions) index, one per entry of batch["tool_labels"] [B], for which tool_logits is [B, tools]; or, for
    packed rows, a [B, T] mask of each document's last prompt token, with tool_logits [B, T, tools] and
    tool_labels [B, T]. records: the segments of this call (model.lm.SegmentRecord: index, H state, which tokens ran it, Q
    logits); the last record's state is the final one behind logits / edit_logits / tool_logits. lookahead:
    an extra no-grad segment whose Q logits give the last record's continue target (or None).

    Each segment's terms count the tokens that ran it, over the call's segments (mean per segment), so a
    token that stopped early adds nothing to later segments, as a halted sequence leaves HRM's batch."""
    labels = batch["labels"]
    answer = labels != IGNORE
    targets = labels[answer]
    answer_logits = heads.lm(hidden[answer]) if logits is None else logits[answer]
    zero = answer_logits.sum() * 0.0  # keeps the graph when a batch has nothing to score
    S = len(records)
    metrics: dict[str, torch.Tensor] = {}  # detached scalars, read back to the host in one go at the end
    parts = {"lm": (zero, answer.sum())}

    if targets.numel():
        final_ce = F.cross_entropy(answer_logits.float(), targets, reduction="none")
        final_correct = (answer_logits.argmax(-1) == targets).detach()
        metrics["lm_loss"], metrics["lm_acc"] = final_ce.mean(), final_correct.float().mean()
        lm_sum, q_halt, q_continue, q_hits = zero, [], [], []
        for i, record in enumerate(records):
            ran = record.ran[answer]
            if i == S - 1:
                ce, correct = final_ce[ran], final_correct[ran]
            else:
                seg_logits = heads.lm_logits(record.state[answer & record.ran])
                ce = F.cross_entropy(seg_logits.float(), targets[ran], reduction="none")
                correct = (seg_logits.argmax(-1) == targets[ran]).detach()
            lm_sum = lm_sum + ce.sum()
            if config.max_segments > 1 and ce.numel():
                n = record.index + 1
                metrics[f"lm_loss_seg{n}"], metrics[f"lm_acc_seg{n}"] = ce.mean(), correct.float().mean()
            if record.q is None:
                continue
            q = record.q[answer][ran]
            # halt: is this token's prediction right after this segment (HRM: is the whole sequence right)
            q_halt.append(F.binary_cross_entropy_with_logits(q[:, 0], correct.float(), reduction="none"))
            q_hits.append((q[:, 0] > 0) == correct)
            nxt = records[i + 1] if i + 1 < S else lookahead
            if nxt is not None:  # continue: bootstrapped from the next segment, where the token ran it
                went_on = nxt.ran[answer][ran]
                target = q_targets(config, nxt)[answer][ran][went_on].detach()
                q_continue.append(F.binary_cross_entropy_with_logits(q[went_on, 1], target, reduction="none"))
        parts["lm"] = (lm_sum / S, answer.sum())
        if q_halt:
            halt = torch.cat(q_halt)
            cont = torch.cat(q_continue) if q_continue else None
            parts["q"] = ((halt.sum() + (cont.sum() if cont is not None else 0.0)) / S, answer.sum())
            metrics["q_halt_loss"], metrics["q_halt_acc"] = halt.mean(), torch.cat(q_hits).float().mean()
            if cont is not None and cont.numel():
                metrics["q_continue_loss"] = cont.mean()

        task_of_token = None
        if batch.get("task_ids") is not None:
            task_ids = batch["task_ids"]  # [B], or [B, T] in packed rows
            task_of_token = (task_ids if task_ids.dim() == 2 else task_ids[:, None].expand_as(labels))[answer]
        if task_of_token is not None:
            for t in task_of_token.unique().tolist():
                sel = task_of_token == t
                metrics[f"lm_loss_{TASK_TYPES[t]}"] = final_ce[sel].mean()
                metrics[f"lm_acc_{TASK_TYPES[t]}"] = final_correct[sel].float().mean()
        if config.max_segments > 1:
            metrics["mean_depth"] = depth[answer].float().mean()

    if batch.get("edit_tags") is not None:
        tags = batch["edit_tags"]
        tagged = tags >= 0
        if tagged.any():
            y = tags[tagged].float()
            total = zero
            for i, record in enumerate(records):
                x = edit_logits if i == S - 1 else heads.edit(heads.norm(record.state)).squeeze(-1)
                total = total + F.binary_cross_entropy_with_logits(x[tagged].float(), y, reduction="sum")
            parts["edit"] = (total / S, tagged.sum())
            final = edit_logits[tagged].float()
            metrics["edit_loss"] = F.binary_cross_entropy_with_logits(final, y)
            metrics["edit_acc"] = ((final > 0) == (y > 0.5)).float().mean()

    if batch.get("tool_labels") is not None:
        tools = batch["tool_labels"]
        if tools.dim() == 2:  # packed rows: one label and one logit row per document
            tools, tool_logits = tools[tool_at], tool_logits[tool_at]
        labelled = tools >= 0
        if labelled.any():
            total = zero
            for i, record in enumerate(records):
                x = tool_logits if i == S - 1 else heads.tool(heads.norm(record.state)[tool_at])
                total = total + F.cross_entropy(x[labelled].float(), tools[labelled], reduction="sum")
            parts["tool"] = (total / S, labelled.sum())
            final = tool_logits[labelled].float()
            metrics["tool_loss"] = F.cross_entropy(final, tools[labelled])
            metrics["tool_acc"] = (final.argmax(-1) == tools[labelled]).float().mean()

    loss = combine(config, parts)
    metrics["loss"] = loss
    values = torch.stack([v.detach().float() for v in metrics.values()]).tolist()  # one host sync, not one per metric
    return loss, dict(zip(metrics, values)), parts
