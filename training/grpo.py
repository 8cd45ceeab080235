"""Group-relative policy optimisation, the math only (torch): advantages within each prompt's group of samples,
per-token log-probabilities of sampled answers, the clipped surrogate with a KL penalty to the starting policy,
and the answer-token entropy.

Shapes: a batch holds B = prompts x group sequences, each `prompt + answer` left-aligned and padded; `mask`
[B, T] marks the positions whose next token is an answer token (the labels of model.data.collate).
"""

from __future__ import annotations

import torch

IGNORE = -100


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """rewards [P, G] -> advantages [P, G]: (r - group mean) / (group std + eps); a group whose samples all
    earned the same reward teaches nothing and gets 0."""
    mean = rewards.mean(1, keepdim=True)
    std = rewards.std(1, keepdim=True, unbiased=False)
    return torch.where(std > 0, (rewards - mean) / (std + eps), torch.zeros_like(rewards))


def answer_batch(prompts: list[list[int]], answers: list[list[int]], pad_id: int,
                 conditions: list[tuple[int, int]] | None = None) -> dict:
    """input_ids / prompt_len / labels [B, T] for sequences prompt + answer (the answer's tokens are labels);
    with `conditions`, each sequence's (language id, task id), which the model is conditioned on: a sample's
    log-probability is only its sampling policy's under the ids it was decoded with."""
    width = max(len(p) + len(a) for p, a in zip(prompts, answers))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    labels = torch.full((len(prompts), width), IGNORE, dtype=torch.long)
    for row, (p, a) in enumerate(zip(prompts, answers)):
        seq = p + a
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        labels[row, len(p) - 1:len(seq) - 1] = torch.tensor(a, dtype=torch.long)
    batch = {"input_ids": ids, "prompt_len": torch.tensor([len(p) for p in prompts], dtype=torch.long),
             "labels": labels}
    if conditions is not None:
        batch["language_ids"] = torch.tensor([c[0] for c in conditions], dtype=torch.long)
        batch["task_ids"] = torch.tensor([c[1] for c in conditions], dtype=torch.long)
    return batch


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(label) [B, T] with 0 off the answer, mask [B, T]) from logits [B, T, V]."""
    mask = labels != IGNORE
    logp = torch.log_softmax(logits.float(), -1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    return logp * mask, mask


def entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the next-token distribution over the answer positions."""
    logp = torch.log_softmax(logits.float(), -1)
    per_token = -(logp.exp() * logp).sum(-1)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, clip: float = 0.2, kl_coef: float = 0.02,
              weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """The loss to minimise and its parts. Per token: the clipped surrogate min(ratio A, clip(ratio) A) with
    ratio = pi / pi_old, minus kl_coef times the k3 estimate of KL(pi || pi_ref), exp(d) - d - 1 with
    d = log pi_ref - log pi (non-negative, unbiased); averaged over each sequence's answer tokens, then over
    sequences, or summed with `weights` [B] per sequence (e.g. the turns of one agent episode sharing its
    weight). logp carries the gradient; old_logp and ref_logp are constants."""
    mask = mask.float()
    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages.detach()[:, None]
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    d = ref_logp.detach() - logp
    kl = torch.exp(d) - d - 1
    per_token = -(surrogate - kl_coef * kl)
    lengths = mask.sum(1).clamp(min=1)
    per_sequence = (per_token * mask).sum(1) / lengths
    loss = per_sequence.mean() if weights is None else (per_sequence * weights.detach()).sum()
    with torch.no_grad():
        clipped = ((ratio - 1).abs() > clip).float()
        stats = {"kl": float(((kl * mask).sum(1) / lengths).mean()),
                 "clip_fraction": float((clipped * mask).sum() / mask.sum().clamp(min=1)),
                 "ratio": float((ratio * mask).sum() / mask.sum().clamp(min=1))}
    return loss, stats
