"""The local model's prompt layout: prompt, <|answer|>, then the code before the cursor, cut from the front."""

import threading
import time

import pytest

from lsp.model import Cancelled, Generation, LocalModel
from model.tokenizer import ByteTokenizer


class _Engine:
    max_seq_len = 40


def local(max_seq_len=40):
    m = LocalModel.__new__(LocalModel)
    m.name, m.tokenizer, m.engine = "test", ByteTokenizer(), _Engine()
    m.engine.max_seq_len = max_seq_len
    return m


def test_the_answer_prefix_follows_the_answer_token_and_the_context_is_cut_first():
    tok = ByteTokenizer()
    ids = local().prompt_ids(Generation("context " * 10 + "Complete this.\n", "def f(", max_new_tokens=10))
    assert len(ids) == 30 and ids[-7] == tok.answer_id and tok.decode(ids[-6:]) == "def f("
    assert tok.decode(ids[:-7]).endswith("Complete this.\n")


def test_a_long_prefix_keeps_its_tail_and_the_answer_token():
    tok = ByteTokenizer()
    ids = local().prompt_ids(Generation("Complete this.\n", "x" * 100 + "tail", max_new_tokens=10))
    assert len(ids) == 30 and ids[0] == tok.answer_id and tok.decode(ids[1:]).endswith("tail")


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_a_cancelled_generation_leaves_the_engine(tiny_checkpoint):
    pytest.importorskip("torch")
    from inference.specs import parse_spec

    m = LocalModel(parse_spec(f"local:{tiny_checkpoint}"))
    try:
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(Cancelled):
            m.generate(Generation("Complete this python function.\n", "def f(", "python", max_new_tokens=80), cancel)
        deadline = time.monotonic() + 10
        while m.engine.load() and time.monotonic() < deadline:  # the row leaves at the engine's next step
            time.sleep(0.01)
        assert m.engine.load() == 0
        assert isinstance(m.generate(Generation("Complete this python function.\n", "def f(", "python",
                                                max_new_tokens=4)), str)
    finally:
        m.close()
