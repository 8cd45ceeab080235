import pytest

from model.edits import MARKERS
from model.tokenizer import CodeTokenizer, special_tokens, train_tokenizer

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "fn main() { println!(\"hi\"); }\n",
    "for (int i = 0; i < n; ++i) { total += v[i]; }\n",
    "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"ok\") }\n",
] * 20


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    return train_tokenizer(CORPUS, vocab_size=400, out_dir=out), out


def test_round_trip_any_text(tok):
    tokenizer, _ = tok
    for text in ["def add(a, b):\n\treturn a+b  # ünïcödé ✓ 漢字\n", "", "   \n\n", "\x00\x7f bytes"]:
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_special_ids_and_pad_zero(tok):
    tokenizer, _ = tok
    assert tokenizer.pad_id == 0 and tokenizer.token_id("<|pad|>") == 0
    ids = [tokenizer.token_id(t) for t in special_tokens()]
    assert len(set(ids)) == len(ids)
    assert tokenizer.language_id("rust") != tokenizer.language_id("go")
    assert tokenizer.tool_id("git") == tokenizer.token_id("<|tool:git|>")
    assert tokenizer.vocab_size <= 400


def test_edit_markers_are_single_tokens_and_round_trip(tok):
    tokenizer, _ = tok
    block = "<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n"
    ids = tokenizer.encode(block)
    for marker in MARKERS:
        assert tokenizer.token_id(marker) in ids
    assert tokenizer.decode(ids) == block


def test_encode_example_layout(tok):
    tokenizer, _ = tok
    ids, prompt_len = tokenizer.encode_example("write add", "def add(a, b): return a + b")
    prompt = tokenizer.encode_prompt("write add")
    assert ids[:prompt_len] == prompt and prompt[-1] == tokenizer.answer_id
    assert ids[-1] == tokenizer.eos_id
    assert tokenizer.decode(ids[prompt_len:-1]) == "def add(a, b): return a + b"


def test_save_load_same_ids(tok):
    tokenizer, out = tok
    again = CodeTokenizer.load(out)
    text = "fn main() { let x = 1; }"
    assert again.encode(text) == tokenizer.encode(text)
    assert again.special_ids == tokenizer.special_ids


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(CORPUS, vocab_size=100)
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        CodeTokenizer.load(tmp_path)
