"""The shared generation loop: prompt fitting, n samples per prompt, stop strings; Polyglot subsets."""

from dataclasses import dataclass

import pytest

from evals import evaluate as ev


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    from model import build_model
    from model.config import ModelConfig
    from model.tokenizer import train_tokenizer

    texts = ["def add(a, b):\n    return a + b\n" * 20, "function f(x) { return x * 2; }\n" * 20]
    tok = train_tokenizer(texts, 300, tmp_path_factory.mktemp("tok"))
    model = build_model(ModelConfig.preset("tiny", vocab_size=tok.vocab_size, max_seq_len=64)).eval()
    return ev.Candidate("hrm", model, tok)


def test_complete_returns_n_samples_and_fits_long_prompts(candidate):
    long_prompt = "def add(a, b):\n    return a + b\n" * 40  # far longer than the 64-token context
    out = ev.complete(candidate, [long_prompt, "def f(x):\n"], ["python", "python"], "codegen", max_new_tokens=8,
                      n=3, temperature=0.8, batch_size=4, seed=1)
    assert [len(o) for o in out] == [3, 3] and all(isinstance(t, str) for o in out for t in o)
    assert candidate.decoded_tokens > 0 and candidate.tokens_per_s > 0
    with pytest.raises(ValueError, match="no room"):
        ev.complete(candidate, ["x"], ["python"], "codegen", max_new_tokens=64)


def test_fit_keeps_the_tail():
    assert ev._fit(list(range(10)), 4) == [6, 7, 8, 9]
    assert ev._fit([1, 2], 4) == [1, 2]


@dataclass
class _Exercise:
    language: str
    exercise: str


def test_select_polyglot_subsets():
    pool = [_Exercise(lang, name) for lang in ("python", "go") for name in ("zeta", "alpha", "mid")]
    picked = ev.select_polyglot(pool, "python:2,go/zeta")
    assert [(e.language, e.exercise) for e in picked] == [("python", "alpha"), ("python", "mid"), ("go", "zeta")]
    assert len(ev.select_polyglot(pool, "all")) == 6


def test_polyglot_prompt_lists_files_and_format():
    p = ev.polyglot_prompt("Do it.", {"b.py": "x = 1", "a.py": "y = 2\n"}, "diff")
    assert p.index("### a.py") < p.index("### b.py") and "SEARCH" in p and p.startswith("Do it.")
