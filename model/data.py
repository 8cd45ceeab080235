"""Token shards (parquet) -> padded training batches, in a deterministic, resumable, language-balanced order.

A shard row: input_ids list<int32>, prompt_len int32, language, task_type, edit_tags list<int8> (may be
empty; per token, negative = no tag), tool_label int32 (-1 = none), split, example_id.

Sampling: each draw picks a language with probability proportional to count**language_balance (0 = every
language equally often, 1 = as often as in the data), then the next example of that language's current
shuffled pass. The order depends only on the seed and the sampler state (draw count and per-language
cursors), which checkpoints save, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from model.vocab import language_id, task_id

IGNORE = -100
REQUIRED_COLUMNS = ("input_ids", "prompt_len", "language", "task_type", "edit_tags", "tool_label", "split",
                    "example_id")


@dataclass
class Example:
    input_ids: list[int]
    prompt_len: int
    language: int
    task: int
    edit_tags: list[int]
    tool_label: int
    example_id: str


@dataclass
class TokenDataset:
    examples: list[Example]
    truncated: int = 0  # examples cut to max_seq_len (their answers lose their tails)
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.examples)

    def token_count(self) -> int:
        return sum(len(e.input_ids) for e in self.examples)


def load_shards(files: list[str], split: str = "train", max_seq_len: int | None = None,
                vocab_size: int | None = None) -> TokenDataset:
    """Read the rows of `split` from parquet shards; a bad row raises ValueError naming file and row."""
    import pyarrow.parquet as pq

    if not files:
        raise ValueError("no shard files given")
    examples, truncated = [], 0
    for path in files:
        table = pq.read_table(path)
        missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (expected {list(REQUIRED_COLUMNS)})")
        for row_number, row in enumerate(table.select(list(REQUIRED_COLUMNS)).to_pylist()):
            if row["split"] != split:
                continue
            example = _example_from_row(row, f"{path} row {row_number}", vocab_size)
            if max_seq_len is not None and len(example.input_ids) > max_seq_len:
                example.input_ids = example.input_ids[:max_seq_len]
                example.edit_tags = example.edit_tags[:max_seq_len]
                example.prompt_len = min(example.prompt_len, max_seq_len)
                truncated += 1
            examples.append(example)
    return TokenDataset(examples, truncated, list(files))


def _example_from_row(row: dict, where: str, vocab_size: int | None) -> Example:
    ids = row["input_ids"]
    if not ids:
        raise ValueError(f"{where} ({row['example_id']}): empty input_ids")
    if vocab_size is not None and (min(ids) < 0 or max(ids) >= vocab_size):
        raise ValueError(f"{where} ({row['example_id']}): token id outside [0, {vocab_size})")
    prompt_len = row["prompt_len"]
    if prompt_len is None or not 0 < prompt_len <= len(ids):
        raise ValueError(f"{where} ({row['example_id']}): prompt_len={prompt_len} not in [1, {len(ids)}]")
    tags = row["edit_tags"] or []
    if len(tags) > len(ids):
        raise ValueError(f"{where} ({row['example_id']}): {len(tags)} edit_tags for {len(ids)} tokens")
    try:
        language, task = language_id(row["language"]), task_id(row["task_type"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{where} ({row['example_id']}): {exc}") from None
    tool = row["tool_label"]
    return Example(list(ids), int(prompt_len), language, task, [int(t) for t in tags],
                   -1 if tool is None else int(tool), row["example_id"])


def collate(examples: list[Example], pad_id: int = 0, pad_to_multiple: int = 8,
            pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Pad to the longest example (rounded up to a multiple, or to `pad_to`); labels = next token on answers."""
    longest = max(len(e.input_ids) for e in examples)
    length = pad_to if pad_to is not None else -(-longest // pad_to_multiple) * pad_to_multiple
    if length < longest:
        raise ValueError(f"pad_to={pad_to} is shorter than the longest example ({longest} tokens)")
    batch_size = len(examples)
    input_ids = torch.full((batch_size, length), pad_id, dtype=torch.long)
    labels = torch.full((batch_size, length), IGNORE, dtype=torch.long)
    edit_tags = torch.full((batch_size, length), IGNORE, dtype=torch.long)
    for row, e in enumerate(examples):
        ids = torch.tensor(e.input_ids, dtype=torch.long)
        input_ids[row, :len(ids)] = ids
        # position t predicts token t+1; the last prompt token (<|answer|>) predicts the first answer token
        start = e.prompt_len - 1
        labels[row, start:len(ids) - 1] = ids[start + 1:]
        if e.edit_tags:
            tags = torch.tensor(e.edit_tags, dtype=torch.long)
            edit_tags[row, :len(tags)] = torch.where(tags < 0, IGNORE, tags)
    return {
        "input_ids": input_ids,
        "prompt_len": torch.tensor([e.prompt_len for e in examples], dtype=torch.long),
        "language_ids": torch.tensor([e.language for e in examples], dtype=torch.long),
        "task_ids": torch.tensor([e.task for e in examples], dtype=torch.long),
        "labels": labels,
        "edit_tags": edit_tags,
        "tool_labels": torch.tensor([e.tool_label if e.tool_label >= 0 else IGNORE for e in examples],
                                    dtype=torch.long),
    }


class BalancedSampler:
    """Deterministic language-balanced draws; `state_dict()` / `load_state_dict()` make resume exact."""

    def __init__(self, dataset: TokenDataset, seed: int = 0, language_balance: float = 0.5):
        if len(dataset) == 0:
            raise ValueError(f"no training examples in {dataset.files}")
        if language_balance < 0:
            raise ValueError(f"language_balance={language_balance}: must be >= 0")
        self.seed = seed
        by_language: dict[int, list[int]] = {}
        for index, e in enumerate(dataset.examples):
            by_language.setdefault(e.language, []).append(index)
        self.languages = sorted(by_language)
        self.members = [by_language[lang] for lang in self.languages]
        weights = torch.tensor([len(m) ** language_balance for m in self.members], dtype=torch.float64)
        self.weights = weights / weights.sum()
        self.draws = 0
        self.cursors = [0] * len(self.languages)  # position in the language's never-ending shuffled stream
        self._perm_cache: dict[tuple[int, int], list[int]] = {}

    def _permutation(self, lang_pos: int, epoch: int) -> list[int]:
        key = (lang_pos, epoch)
        if key not in self._perm_cache:
            if len(self._perm_cache) > 4 * len(self.languages):
                self._perm_cache.clear()
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + lang_pos * 7919 + epoch)
            self._perm_cache[key] = torch.randperm(len(self.members[lang_pos]), generator=g).tolist()
        return self._perm_cache[key]

    def draw(self, count: int) -> list[int]:
        """The next `count` example indices."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + 104_729 + self.draws)
        choices = torch.multinomial(self.weights, count, replacement=True, generator=g).tolist()
        indices = []
        for lang_pos in choices:
            size = len(self.members[lang_pos])
            epoch, offset = divmod(self.cursors[lang_pos], size)
            indices.append(self.members[lang_pos][self._permutation(lang_pos, epoch)[offset]])
            self.cursors[lang_pos] += 1
        self.draws += 1
        return indices

    def state_dict(self) -> dict:
        return {"seed": self.seed, "draws": self.draws, "cursors": list(self.cursors),
                "languages": list(self.languages)}

    def load_state_dict(self, state: dict) -> None:
        if state["languages"] != self.languages:
            raise ValueError(f"sampler state languages {state['languages']} differ from the data's "
                             f"{self.languages}: resume with the same shards")
        self.seed, self.draws, self.cursors = state["seed"], state["draws"], list(state["cursors"])


class BatchStream:
    """Micro-batches for one rank: each draw takes world_size * batch_size examples, this rank's slice."""

    def __init__(self, dataset: TokenDataset, batch_size: int, *, seed: int = 0, language_balance: float = 0.5,
                 rank: int = 0, world_size: int = 1, pad_id: int = 0, pad_to_multiple: int = 8,
                 pad_to: int | None = None):
        self.dataset = dataset
        self.sampler = BalancedSampler(dataset, seed, language_balance)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.pad_id, self.pad_to_multiple, self.pad_to = pad_id, pad_to_multiple, pad_to

    def next_batch(self) -> dict[str, torch.Tensor]:
        indices = self.sampler.draw(self.batch_size * self.world_size)
        mine = indices[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        return collate([self.dataset.examples[i] for i in mine], self.pad_id, self.pad_to_multiple, self.pad_to)


def shard_schema():
    import pyarrow as pa

    return pa.schema([("input_ids", pa.list_(pa.int32())), ("prompt_len", pa.int32()), ("language", pa.string()),
                      ("task_type", pa.string()), ("edit_tags", pa.list_(pa.int8())), ("tool_label", pa.int32()),
                      ("split", pa.string()), ("example_id", pa.string())])


def write_shard(path: str, rows: list[dict]) -> str:
    """Write rows (dicts with the shard columns) as one parquet shard with the exact column types."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows, schema=shard_schema()), path)
    return path
