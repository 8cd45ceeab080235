"""ACT as in HRM: (halt, continue) Q-logits per token and segment, trained with Q-learning targets bootstrapped
from the next segment; exploration by a random minimum segment count; a maximum segment count so inference
can think longer than training; cached decoding equal to the full forward whatever each token's depth."""

import pytest
import torch
import torch.nn.functional as F

from model import ModelConfig, build_model
from model.generate import generate_ids
from model.lm import SegmentRecord
from model.losses import compute_losses

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**changes) -> ModelConfig:
    return ModelConfig.preset("tiny", vocab_size=64, max_seq_len=64, **changes)


def make_model(seed=0, **changes):
    torch.manual_seed(seed)
    return build_model(tiny(**changes)).eval()


def batch_of(ids, prompt_len, labels=None):
    ids = torch.tensor(ids)
    batch = {"input_ids": ids, "prompt_len": torch.tensor(prompt_len), "language_ids": torch.tensor([4] * len(ids)),
             "task_ids": torch.tensor([0] * len(ids))}
    if labels is not None:
        batch["labels"] = labels
    return batch


def lm_batch(seed=0, B=2, T=14, P=4):
    torch.manual_seed(seed)
    ids = torch.randint(1, 64, (B, T))
    labels = ids.roll(-1, 1)
    labels[:, :P - 1] = -100
    labels[:, -1] = -100
    return batch_of(ids.tolist(), [P] * B, labels=labels)


def test_q_targets_are_bootstrapped_from_the_next_segment():
    config = tiny(segments=3, act=True)  # 3 segments, and 3 is also the most a token may run
    model = build_model(config).eval()
    torch.manual_seed(1)
    T, D = 4, config.hidden_size
    labels = torch.randint(0, 64, (1, T))
    q = [torch.randn(1, T, 2) for _ in range(3)]
    ran = [torch.tensor([[True, True, True, True]]), torch.tensor([[True, True, True, False]]),
           torch.tensor([[True, False, True, False]])]  # token 3 stops after segment 1, token 1 after 2
    states = [torch.randn(1, T, D) for _ in range(3)]
    records = [SegmentRecord(i, states[i], ran[i], q[i]) for i in range(3)]
    logits = model.heads.lm_logits(states[2])
    _, metrics, _ = compute_losses(config, {"labels": labels}, records, None, model.heads, logits, torch.zeros(1, T),
                                   torch.zeros(1, config.num_tools), torch.zeros(1, dtype=torch.long),
                                   torch.ones(1, T, dtype=torch.long))
    # continue after segment 1: sigmoid(max(halt, continue)) of segment 2, for the tokens that ran segment 2
    terms = [F.binary_cross_entropy_with_logits(q[0][0, t, 1], torch.sigmoid(q[1][0, t].max())) for t in (0, 1, 2)]
    # continue after segment 2: segment 3 is the last allowed, where a token must halt: sigmoid(halt) of it
    terms += [F.binary_cross_entropy_with_logits(q[1][0, t, 1], torch.sigmoid(q[2][0, t, 0])) for t in (0, 2)]
    # after segment 3 nothing can continue: no term
    assert metrics["q_continue_loss"] == pytest.approx(float(torch.stack(terms).mean()), rel=1e-5)
    # halt: is each token's prediction right after the segment, for the tokens that ran it
    halt = []
    for i in range(3):
        for t in range(T):
            if ran[i][0, t]:
                right = float(model.heads.lm_logits(states[i])[0, t].argmax() == labels[0, t])
                halt.append(F.binary_cross_entropy_with_logits(q[i][0, t, 0], torch.tensor(right)))
    assert metrics["q_halt_loss"] == pytest.approx(float(torch.stack(halt).mean()), rel=1e-5)


def test_training_stops_tokens_by_the_q_head_and_explores():
    model = make_model(segments=3, act=True, halt_exploration_prob=0.0).train()
    with torch.no_grad():
        model.q_head.bias.copy_(torch.tensor([5.0, -5.0]))  # q_halt > q_continue everywhere
    batch = lm_batch()
    batch["labels"][:, 3] = -100  # only answer tokens are scored (the last prompt token runs every segment)
    out = model(batch)
    assert (out.halt_depth[:, 4:] == 1).all() and (out.halt_depth[:, :4] == 3).all()
    assert "lm_loss_seg2" not in out.metrics  # no answer token ran segment 2: no loss there
    assert "q_continue_loss" not in out.metrics  # nobody continued: no continue target (the action was not taken)
    with torch.no_grad():
        model.q_head.bias.copy_(torch.tensor([-5.0, 5.0]))  # continue everywhere: every token runs to the cap
    out = model(lm_batch())
    assert (out.halt_depth == 3).all() and "q_continue_loss" in out.metrics and "lm_loss_seg3" in out.metrics
    out.loss.backward()
    assert model.q_head.weight.grad.abs().sum() > 0


def test_a_lookahead_segment_trains_the_continue_value_beyond_the_training_segments():
    batch = lm_batch()
    capped = make_model(segments=1, act=True).train()(batch)
    assert "q_continue_loss" not in capped.metrics  # one segment, and no token may run a second
    longer = make_model(segments=1, act=True, halt_max_segments=3).train()(batch)
    assert "q_continue_loss" in longer.metrics  # the continue target after segment 1 comes from a lookahead
    assert longer.halt_depth.eq(1).all()  # which is not a trained segment
    longer.loss.backward()


def test_inference_can_think_longer_than_training():
    model = make_model(segments=1, act=True, halt_max_segments=4)
    with torch.no_grad():
        model.q_head.bias.copy_(torch.tensor([-5.0, 5.0]))  # the Q-head asks for more segments
    batch = lm_batch()
    assert model(batch).halt_depth.eq(1).all()  # fixed depth = the trained segments
    adaptive = model(batch, adaptive_depth=True).halt_depth
    assert (adaptive[:, :4] == 1).all() and (adaptive[:, 4:] == 4).all()  # answer tokens think up to the cap
    stats = {}
    generate_ids(model, [[5, 6, 7]], 4, 0, max_new_tokens=4, stats=stats)
    assert stats["max_depth"] == 4 and stats["mean_depth"] == 4.0


def test_cached_generation_equals_full_recompute_with_segments_and_act_for_rows_halting_at_different_depths():
    model = make_model(segments=2, act=True, halt_max_segments=4)
    with torch.no_grad():  # a random Q-head, so tokens stop after 1, 2, 3 or 4 segments
        torch.manual_seed(5)
        model.q_head.weight.normal_(0, 1.0)
        model.q_head.bias.copy_(torch.tensor([0.0, 1.0]))
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
    log = []
    new = generate_ids(model, prompts, 4, 0, max_new_tokens=10, logits_log=log)
    depths = []
    for r, (prompt, generated) in enumerate(zip(prompts, new)):
        assert len(generated) == 10
        P, seq = len(prompt), prompt + generated
        full = model(batch_of([seq], [P]), adaptive_depth=True)
        for i in range(10):  # the logits token i was chosen from = the full forward's at the position before it
            torch.testing.assert_close(log[i][r], full.logits[0, P - 1 + i], atol=1e-4, rtol=1e-4)
            assert int(full.logits[0, P - 1 + i].argmax()) == generated[i]
        assert (full.halt_depth[0, :P] == 2).all()
        depths.append(tuple(full.halt_depth[0, P:-1].tolist()))  # fed tokens (the last one was never fed)
    assert len({d for row in depths for d in row}) >= 3, depths  # tokens stop at different depths
    assert len(set(depths)) == len(prompts), depths  # and each row has its own depths
