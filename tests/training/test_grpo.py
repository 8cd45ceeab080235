"""GRPO's math (training/grpo.py): group advantages, answer labels, the clipped surrogate, the KL penalty and
masking; and that the loss moves a real model toward its rewarded samples."""

import pytest
import torch

from training.grpo import IGNORE, answer_batch, entropy, group_advantages, grpo_loss, token_logprobs


def test_advantages_are_relative_to_the_group_and_zero_without_signal():
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 1.0]]))
    assert torch.allclose(adv[0], torch.tensor([1.0, -1.0, -1.0, 1.0]), atol=1e-3)
    assert torch.equal(adv[1], torch.zeros(4))  # every sample earned the same: nothing to learn
    assert adv[2, 3] > 0 and (adv[2, :3] < 0).all() and abs(float(adv[2].sum())) < 1e-5


def test_answer_batch_labels_exactly_the_answer_tokens():
    b = answer_batch([[5, 6, 2], [7, 2]], [[9, 10, 1], [11]], pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 2, 9, 10, 1], [7, 2, 11, 0, 0, 0]]
    assert b["prompt_len"].tolist() == [3, 2]
    # the logits at position t predict token t + 1: the last prompt token predicts the first answer token
    assert b["labels"].tolist() == [[IGNORE, IGNORE, 9, 10, 1, IGNORE], [IGNORE, 11, IGNORE, IGNORE, IGNORE, IGNORE]]


def test_token_logprobs_and_entropy_use_only_the_answer():
    logits = torch.zeros(1, 3, 4)
    logits[0, 1, 2] = 10.0
    labels = torch.tensor([[IGNORE, 2, IGNORE]])
    logp, mask = token_logprobs(logits, labels)
    assert mask.tolist() == [[False, True, False]] and logp[0, 0] == 0 and logp[0, 2] == 0
    assert -1e-3 < float(logp[0, 1]) < 0
    assert float(entropy(logits, mask)) < 0.01  # the uniform (high-entropy) positions are not answers


def test_loss_parts_clip_and_kl():
    mask = torch.tensor([[True, True, False]])
    same = torch.log(torch.tensor([[0.5, 0.5, 0.9]]))
    loss, stats = grpo_loss(same, same, same, torch.tensor([1.0]), mask)
    assert float(loss) == pytest.approx(-1.0) and stats["kl"] == 0.0 and stats["clip_fraction"] == 0.0
    # a ratio of 1.5 with a positive advantage is clipped to 1.2: the surrogate stops pushing
    logp = (same + torch.log(torch.tensor(1.5))).requires_grad_(True)
    loss, stats = grpo_loss(logp, same, logp.detach(), torch.tensor([1.0]), mask, clip=0.2, kl_coef=0.0)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(-1.2) and stats["clip_fraction"] == 1.0
    assert torch.equal(logp.grad, torch.zeros_like(logp))
    # the KL penalty is non-negative and pulls toward the reference; the masked position never counts
    logp = same.clone().requires_grad_(True)
    ref = torch.log(torch.tensor([[0.25, 0.5, 0.01]]))
    loss, stats = grpo_loss(logp, same, ref, torch.tensor([0.0]), mask, kl_coef=1.0)
    loss.backward()
    assert stats["kl"] > 0 and logp.grad[0, 0] > 0 and logp.grad[0, 2] == 0  # lower log pi at token 0


@pytest.mark.slow
def test_the_loss_moves_a_model_toward_rewarded_samples(tiny_checkpoint, one_torch_thread):
    """Samples whose first answer token is the rewarded one gain probability after a few updates, and the
    KL to the starting policy grows from zero: the update does what the math says on a real model."""
    import copy

    from model.checkpoint import load_checkpoint
    from model.generate import generate_ids
    from model.vocab import language_id, task_id
    from training.rl import sequence_logprobs

    torch.manual_seed(0)
    model, tok = load_checkpoint(tiny_checkpoint)
    ref = copy.deepcopy(model).requires_grad_(False)
    prompt = tok.encode_prompt("add two numbers #1")
    prompts = [prompt] * 16
    answers = generate_ids(model, prompts, language_id("python"), task_id("codegen"), max_new_tokens=4,
                           temperature=1.5, eos_id=tok.eos_id, seed=1)
    answers = [a or [tok.eos_id] for a in answers]
    firsts = [a[0] for a in answers]
    target = max(set(firsts), key=firsts.count) if len(set(firsts)) > 1 else None
    if target is None:
        pytest.skip("every sample began with the same token")
    rewards = torch.tensor([[1.0 if f == target else 0.0 for f in firsts]])
    adv = group_advantages(rewards).flatten()
    cond = [(language_id("python"), task_id("codegen"))] * 16
    old = [lp.detach() for lp, _, _ in sequence_logprobs(model, prompts, answers, cond, 0, 16)]
    ref_lp = [lp for lp, _, _ in sequence_logprobs(ref, prompts, answers, cond, 0, 16)]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def p_target() -> float:
        logp, mask, _ = sequence_logprobs(model, prompts[:1], [[target]], cond[:1], 0, 1)[0]
        return float(logp.sum().exp())

    before = p_target()
    for _ in range(4):
        opt.zero_grad()
        logp, mask, _ = sequence_logprobs(model, prompts, answers, cond, 0, 16, grad=True)[0]
        loss, stats = grpo_loss(logp, old[0], ref_lp[0], adv, mask, clip=10.0, kl_coef=0.01)
        loss.backward()
        opt.step()
    assert p_target() > before
    assert stats["kl"] > 0


@pytest.mark.slow
def test_the_loop_scores_samples_with_the_sampling_policy(tiny_checkpoint):
    """The log-probabilities RL trains on (training.rl.sequence_logprobs: the full forward, conditioned on each
    sample's language and task) are the decoder's, token by token; without the task id they are not."""
    from model.checkpoint import load_checkpoint
    from model.generate import generate_ids
    from model.vocab import language_id, task_id
    from training.rl import sequence_logprobs

    model, tok = load_checkpoint(tiny_checkpoint)
    prompts = [tok.encode_prompt("add two numbers #1"), tok.encode_prompt("print hello #2")]
    cond = [(language_id("python"), task_id("repair")), (language_id("cpp"), task_id("repair"))]
    log = []
    answers = generate_ids(model, prompts, [c[0] for c in cond], task_id("repair"), max_new_tokens=5,
                           logits_log=log)
    for conditions, close in ((cond, True), ([(c[0], task_id("codegen")) for c in cond], False)):
        for r, answer in enumerate(answers):
            logp, mask, _ = sequence_logprobs(model, [prompts[r]], [answer], conditions[r:r + 1], 0, 1)[0]
            decoded = torch.stack([torch.log_softmax(log[t][r].float(), -1)[tok_id] for t, tok_id in enumerate(answer)])
            diff = float((logp[mask] - decoded).abs().max())
            assert (diff < 1e-4) == close, (conditions[r], diff)
