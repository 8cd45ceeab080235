"""Byte-level BPE tokenizer for code, trained with HF `tokenizers`, with our special tokens.

Saved as `tokenizer.json` (the HF tokenizer) plus `special_tokens.json` (our special ids). The pad token is
always id 0, as the model config assumes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from model.edits import MARKERS
from model.vocab import LANGUAGES, TASK_TYPES, TOOLS

PAD = "<|pad|>"
EOS = "<|eos|>"
ANSWER = "<|answer|>"
SPECIAL_FILE = "special_tokens.json"


def language_token(name: str) -> str:
    return f"<|lang:{name}|>"


def task_token(name: str) -> str:
    return f"<|task:{name}|>"


def tool_token(name: str) -> str:
    return f"<|tool:{name}|>"


def special_tokens() -> list[str]:
    """All special tokens in id order; <|pad|> first so that it gets id 0."""
    return ([PAD, EOS, ANSWER] + [language_token(x) for x in LANGUAGES] + [task_token(x) for x in TASK_TYPES]
            + [tool_token(x) for x in TOOLS] + list(MARKERS))


class CodeTokenizer:
    """Wraps a `tokenizers.Tokenizer`; text in, ids out, and back, losslessly."""

    def __init__(self, tokenizer, source: str = "<memory>"):
        self._tok = tokenizer
        ids = {}
        for token in special_tokens():
            token_id = tokenizer.token_to_id(token)
            if token_id is None:
                raise ValueError(f"{source}: special token {token!r} missing from the tokenizer")
            ids[token] = token_id
        if ids[PAD] != 0:
            raise ValueError(f"{source}: {PAD} must have id 0, has {ids[PAD]}")
        self.special_ids = ids
        self.pad_id = 0
        self.eos_id = ids[EOS]
        self.answer_id = ids[ANSWER]

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_id(self, token: str) -> int:
        return self.special_ids[token]

    def language_id(self, name: str) -> int:
        return self.special_ids[language_token(name)]

    def task_id(self, name: str) -> int:
        return self.special_ids[task_token(name)]

    def tool_id(self, name: str) -> int:
        return self.special_ids[tool_token(name)]

    def encode_prompt(self, prompt: str) -> list[int]:
        return self.encode(prompt) + [self.answer_id]

    def encode_example(self, prompt: str, answer: str) -> tuple[list[int], int]:
        prompt_ids = self.encode_prompt(prompt)
        return prompt_ids + self.encode(answer) + [self.eos_id], len(prompt_ids)

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(out / "tokenizer.json"))
        meta = {"pad_id": self.pad_id, "eos_id": self.eos_id, "answer_id": self.answer_id,
                "vocab_size": self.vocab_size, "special_ids": self.special_ids}
        (out / SPECIAL_FILE).write_text(json.dumps(meta, indent=1))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> "CodeTokenizer":
        from tokenizers import Tokenizer

        path = Path(directory) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer.json (train one with model.tokenizer.train_tokenizer)")
        tok = cls(Tokenizer.from_file(str(path)), source=str(path))
        meta_path = Path(directory) / SPECIAL_FILE
        if meta_path.is_file():
            saved = json.loads(meta_path.read_text())["special_ids"]
            if saved != tok.special_ids:
                raise ValueError(f"{meta_path}: special ids disagree with {path}")
        return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path | None = None) -> CodeTokenizer:
    """Train byte-level BPE on `texts`; every byte is in the base alphabet, so any text round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = special_tokens()
    minimum = 256 + len(specials)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size={vocab_size}: must be at least {minimum} (256 bytes + special tokens)")
    tok = Tokenizer(models.BPE())
    # one token per digit: numbers keep a fixed, place-aligned spelling, which small models need to learn
    # arithmetic (a BPE merge of "12" and another of "123" share nothing)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    result = CodeTokenizer(tok)
    if out_dir is not None:
        result.save(out_dir)
    return result


class ByteTokenizer:
    """A stand-in with no training: ids = bytes + 3; 0 pad, 1 eos, 2 <|answer|> (tests and benches)."""

    pad_id, eos_id, answer_id, vocab_size = 0, 1, 2, 259

    def encode(self, text: str) -> list[int]:
        return [b + 3 for b in text.encode()]

    def decode(self, ids) -> str:
        return bytes(i - 3 for i in ids if i >= 3).decode("utf-8", errors="replace")

    def encode_prompt(self, prompt: str) -> list[int]:
        return self.encode(prompt) + [self.answer_id]
