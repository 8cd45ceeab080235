"""The continuous-batching engine: rows that join a running batch decode exactly what generate_ids decodes
alone; seeded sampling does not depend on the batch; stop strings, eos, length, cancel, limits."""

import threading
import time

import pytest
import torch

from inference.engine import BatchEngine, EngineClosed, QueueFull, Sequence
from model import ModelConfig, build_model
from model.generate import generate_ids
from model.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPTS = [TOK.encode_prompt(p) for p in ("def add(a, b):", "x", "fn main() {", "print(", "class A:\n    def")]


@pytest.fixture(scope="module", params=["hrm", "baseline"])
def model(request):
    torch.manual_seed(0)
    return build_model(ModelConfig.preset("tiny", arch=request.param, vocab_size=259, max_seq_len=96)).eval()


class Collector:
    def __init__(self):
        self.text, self.events, self.done = "", [], threading.Event()
        self.reason = None

    def __call__(self, event):
        self.events.append(event)
        if event[0] == "text":
            self.text += event[1]
        else:
            self.reason = event[1]
            self.done.set()


def run(engine, seqs):
    for s in seqs:
        assert s.sink.done.wait(60), "no answer in 60 s"
    return [(s.sink.text, s.sink.reason) for s in seqs]


def seq(prompt, n=12, **kw):
    return Sequence(prompt_ids=prompt, max_new_tokens=n, sink=Collector(), language_id=4, **kw)


def test_rows_joining_a_running_batch_decode_what_they_decode_alone(model):
    engine = BatchEngine(model, TOK, max_batch=8)
    try:
        first = seq(PROMPTS[0], n=30)
        engine.submit([first])
        while len(first.sink.events) < 5 and not first.sink.done.is_set():
            time.sleep(0.001)  # the first row is running: the others join its batch mid-flight
        later = [seq(p, n=20 + i) for i, p in enumerate(PROMPTS[1:])]
        engine.submit(later[:2])
        engine.submit(later[2:])
        got = run(engine, [first] + later)
    finally:
        engine.close()
    for s, (text, reason) in zip([first] + later, got):
        alone = generate_ids(model, [s.prompt_ids], 4, 0, max_new_tokens=s.max_new_tokens, eos_id=TOK.eos_id)[0]
        assert s.new_ids == alone
        assert text == TOK.decode(alone)
        assert reason == ("length" if len(alone) == s.max_new_tokens else "stop")
    assert engine.steps < sum(len(s.new_ids) for s in [first] + later)  # they shared steps


def test_a_seeded_sample_does_not_depend_on_the_batch(model):
    engine = BatchEngine(model, TOK)
    try:
        alone = seq(PROMPTS[1], temperature=1.0, top_p=0.9, seed=7)
        engine.submit([alone])
        run(engine, [alone])
        crowd = [seq(p, temperature=1.0, seed=i) for i, p in enumerate(PROMPTS)]
        again = seq(PROMPTS[1], temperature=1.0, top_p=0.9, seed=7)
        engine.submit(crowd[:2] + [again] + crowd[2:])
        run(engine, crowd + [again])
        other = seq(PROMPTS[1], temperature=1.0, top_p=0.9, seed=8)
        engine.submit([other])
        run(engine, [other])
    finally:
        engine.close()
    assert again.new_ids == alone.new_ids
    assert other.new_ids != alone.new_ids


def test_stop_strings_end_a_row_and_are_not_sent(model):
    free = generate_ids(model, [PROMPTS[0]], 4, 0, max_new_tokens=16, eos_id=TOK.eos_id)[0]
    text = TOK.decode(free)
    stop = text[5:7]
    engine = BatchEngine(model, TOK)
    try:
        s = seq(PROMPTS[0], n=16, stop=(stop, "never-there"))
        engine.submit([s])
        (got, reason), = run(engine, [s])
    finally:
        engine.close()
    assert got == text[:text.index(stop)] and reason == "stop"


def test_limits_cancel_and_close(model):
    engine = BatchEngine(model, TOK, max_batch=2, max_queue=3)
    try:
        with pytest.raises(ValueError, match="context"):
            engine.submit([seq(PROMPTS[0], n=95)])
        with pytest.raises(QueueFull):
            engine.submit([seq(PROMPTS[0]) for _ in range(4)])
        long = [seq(PROMPTS[0], n=60) for _ in range(3)]
        engine.submit(long)
        with pytest.raises(QueueFull):
            engine.submit([seq(PROMPTS[1])])
        for s in long:
            s.cancelled = True
        while engine.load():
            time.sleep(0.001)
        short = seq(PROMPTS[1], n=3)
        engine.submit([short])
        run(engine, [short])
        assert all(len(s.new_ids) < 60 for s in long)
    finally:
        engine.close()
    with pytest.raises(EngineClosed):
        engine.submit([seq(PROMPTS[1])])
