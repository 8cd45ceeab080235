"""Token shards (parquet) -> padded training batches, in a deterministic, resumable, language-balanced order.

A shard row: input_ids list<int32>, prompt_len int32, language, task_type, edit_tags list<int8> (may be
empty; per token, negative = no tag), tool_label int32 (-1 = none), split, example_id.

Sampling: each draw picks a language with probability proportional to count**language_balance (0 = every
language equally often, 1 = as often as in the data), then the next example of that language's current
shuffled pass. With task weights, the draw picks a (language, task type) group instead, with probability
proportional to count**language_balance x the task's weight (1 for a task not named), so a few hundred
repair tasks are not drowned by thousands of corpus completions of the same language. The order depends
only on the seed and the sampler state (draw count and per-group cursors), which checkpoints save, so a
resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
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
    """Columnar rows: one flat int32 token array with offsets (no Python object per token, so a shard set
    of a billion tokens takes ~4 GB, not ~30)."""

    tokens: np.ndarray  # int32, every row's input_ids concatenated
    offsets: np.ndarray  # int64 [n + 1]
    prompt_len: np.ndarray  # int64 [n]
    language: np.ndarray  # int64 [n], ids from model.vocab
    task: np.ndarray  # int64 [n]
    tool_label: np.ndarray  # int64 [n], -1 = none
    tags: np.ndarray  # int8, every row's edit_tags concatenated
    tag_offsets: np.ndarray  # int64 [n + 1]
    example_ids: list[str]
    max_seq_len: int | None = None  # rows are cut to this many tokens when read
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompt_len)

    @property
    def truncated(self) -> int:
        """Rows longer than max_seq_len (their answers lose their tails)."""
        return 0 if self.max_seq_len is None else int((np.diff(self.offsets) > self.max_seq_len).sum())

    def token_count(self) -> int:
        return int(self.offsets[-1])

    def example(self, i: int) -> Example:
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        tag_start, tag_end = int(self.tag_offsets[i]), int(self.tag_offsets[i + 1])
        limit = self.max_seq_len or (end - start)
        return Example(self.tokens[start:min(end, start + limit)].tolist(), min(int(self.prompt_len[i]), limit),
                       int(self.language[i]), int(self.task[i]),
                       self.tags[tag_start:min(tag_end, tag_start + limit)].tolist(), int(self.tool_label[i]),
                       self.example_ids[i])

    @classmethod
    def from_examples(cls, examples: list[Example], max_seq_len: int | None = None) -> "TokenDataset":
        def flat(lists, dtype):
            lengths = np.array([len(x) for x in lists], dtype=np.int64)
            values = np.concatenate([np.asarray(x, dtype=dtype) for x in lists]) if lists else np.zeros(0, dtype)
            return values, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

        tokens, offsets = flat([e.input_ids for e in examples], np.int32)
        tags, tag_offsets = flat([e.edit_tags for e in examples], np.int8)
        column = lambda name: np.array([getattr(e, name) for e in examples], dtype=np.int64)  # noqa: E731
        return cls(tokens, offsets, column("prompt_len"), column("language"), column("task"), column("tool_label"),
                   tags, tag_offsets, [e.example_id for e in examples], max_seq_len)


def load_shards(files: list[str], split: str = "train", max_seq_len: int | None = None,
                vocab_size: int | None = None) -> TokenDataset:
    """Read the rows of `split` from parquet shards; a bad row raises ValueError naming file, row and id."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not files:
        raise ValueError("no shard files given")
    parts = []
    for path in files:
        table = pq.read_table(path, columns=None)
        missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (expected {list(REQUIRED_COLUMNS)})")
        rows = np.flatnonzero(pc.equal(table["split"], split).to_numpy(zero_copy_only=False))
        parts.append(_read_part(table.select(list(REQUIRED_COLUMNS)).take(rows), rows, str(path), vocab_size))
    if not parts or all(len(p[0]) == 0 for p in parts):
        return replace(TokenDataset.from_examples([], max_seq_len), files=list(files))
    merged = [np.concatenate([p[k] for p in parts]) for k in range(6)]
    token_lists, tag_lists = [p[6] for p in parts], [p[7] for p in parts]
    tokens, offsets = _concat_lists(token_lists)
    tags, tag_offsets = _concat_lists(tag_lists)
    return TokenDataset(tokens.astype(np.int32), offsets, merged[0], merged[1], merged[2], merged[3], tags.astype(np.int8),
                        tag_offsets, [x for p in parts for x in p[8]], max_seq_len, list(files))


MAPPED_ARRAYS = ("tokens", "offsets", "prompt_len", "language", "task", "tool_label", "tags", "tag_offsets")


def load_shards_mapped(files: list[str], cache_dir: str, split: str = "train", max_seq_len: int | None = None,
                       vocab_size: int | None = None) -> TokenDataset:
    """load_shards through an on-disk copy of its arrays (.npy under cache_dir), opened memory-mapped: the
    ranks of a machine share one page cache instead of each holding every token in its own memory. The copy
    is keyed by the shards' paths, sizes and modification times, the split and the vocabulary size; it is
    written to a temporary directory and renamed into place, so a killed or concurrent writer never leaves a
    half-written copy that a reader would take."""
    stats = [(str(Path(f).resolve()), os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
    key = hashlib.sha256(json.dumps([stats, split, vocab_size]).encode()).hexdigest()[:16]
    root = Path(cache_dir)
    target = root / f"tokens-{split}-{key}"
    if not (target / "complete").is_file():
        data = load_shards(files, split, None, vocab_size)  # validates every row, naming a bad one
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".writing-"))
        for name in MAPPED_ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(data, name))
        (tmp / "example_ids.json").write_text(json.dumps(data.example_ids))
        (tmp / "complete").write_text("")
        try:
            os.rename(tmp, target)
        except OSError:  # another process put its copy there first: same content
            shutil.rmtree(tmp, ignore_errors=True)
    arrays = {name: np.load(target / f"{name}.npy", mmap_mode="r") for name in MAPPED_ARRAYS}
    example_ids = json.loads((target / "example_ids.json").read_text())
    return TokenDataset(**arrays, example_ids=example_ids, max_seq_len=max_seq_len, files=list(files))


def _concat_lists(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    values = np.concatenate([v for v, _ in parts])
    offsets, base = [np.zeros(1, np.int64)], 0
    for v, o in parts:
        offsets.append(o[1:] + base)
        base += len(v)
    return values, np.concatenate(offsets)


def _read_part(table, rows: np.ndarray, path: str, vocab_size: int | None):
    """Validate one shard's rows of the split, vectorised; the error names the first bad row."""
    ids_col, tags_col = table["input_ids"].combine_chunks(), table["edit_tags"].combine_chunks()
    example_ids = table["example_id"].to_pylist()

    def fail(index: int, why: str):
        raise ValueError(f"{path} row {int(rows[index])} ({example_ids[index]}): {why}")

    def flat(column, name):
        if column.null_count:
            fail(int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0]), f"{name} is null")
        offsets = column.offsets.to_numpy().astype(np.int64)
        values = column.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
        return values, offsets - offsets[0]

    tokens, offsets = flat(ids_col, "input_ids")
    tags, tag_offsets = flat(tags_col, "edit_tags") if len(tags_col) else (np.zeros(0, np.int8), np.zeros(1, np.int64))
    lengths, tag_lengths = np.diff(offsets), np.diff(tag_offsets)
    for index in np.flatnonzero(lengths == 0)[:1]:
        fail(index, "empty input_ids")
    if vocab_size is not None and len(tokens):
        bad = (tokens < 0) | (tokens >= vocab_size)
        if bad.any():
            fail(int(np.searchsorted(offsets, np.flatnonzero(bad)[0], side="right") - 1),
                 f"token id outside [0, {vocab_size})")
    prompt = table["prompt_len"].to_numpy(zero_copy_only=False)
    prompt = np.where(np.isnan(prompt.astype(np.float64)), 0, prompt).astype(np.int64)
    for index in np.flatnonzero((prompt < 1) | (prompt > lengths))[:1]:
        fail(index, f"prompt_len={table['prompt_len'][int(index)].as_py()} not in [1, {lengths[index]}]")
    for index in np.flatnonzero(tag_lengths > lengths)[:1]:
        fail(index, f"{tag_lengths[index]} edit_tags for {lengths[index]} tokens")
    language = _ids(table["language"].to_pylist(), language_id, fail)
    task = _ids(table["task_type"].to_pylist(), task_id, fail)
    tool = np.nan_to_num(table["tool_label"].to_numpy(zero_copy_only=False).astype(np.float64), nan=-1).astype(np.int64)
    return (prompt, language, task, tool, lengths, tag_lengths, (tokens, offsets), (tags, tag_offsets), example_ids)


def _ids(names: list, lookup, fail) -> np.ndarray:
    table = {}
    out = np.empty(len(names), dtype=np.int64)
    for index, name in enumerate(names):
        if name not in table:
            try:
                table[name] = lookup(name)
            except (ValueError, KeyError) as exc:
                fail(index, str(exc))
        out[index] = table[name]
    return out


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


def pack_rows(examples: list[Example], capacity: int) -> list[list[Example]]:
    """First-fit decreasing: the examples in rows of at most `capacity` tokens (an example is never split)."""
    rows: list[list[Example]] = []
    room: list[int] = []
    for e in sorted(examples, key=lambda e: -len(e.input_ids)):
        n = len(e.input_ids)
        if n > capacity:
            raise ValueError(f"example {e.example_id} has {n} tokens, above the packing capacity {capacity}")
        slot = next((r for r, left in enumerate(room) if left >= n), None)
        if slot is None:
            rows.append([e])
            room.append(capacity - n)
        else:
            rows[slot].append(e)
            room[slot] -= n
    return rows


def collate_packed(rows: list[list[Example]], pad_id: int = 0, pad_to_multiple: int = 8) -> dict[str, torch.Tensor]:
    """Several examples per row, each its own document: per-token doc ids (-1 = padding), positions that restart
    at every document, language and task ids, a prompt mask (the document-aware prefix-LM mask comes from
    doc ids and prompt mask), labels that never cross a document boundary, and tool labels at each document's
    last prompt token. The model's losses on it equal those on `collate` of the same examples."""
    longest = max(sum(len(e.input_ids) for e in row) for row in rows)
    length = -(-longest // pad_to_multiple) * pad_to_multiple
    shape = (len(rows), length)
    out = {"input_ids": torch.full(shape, pad_id, dtype=torch.long),
           "labels": torch.full(shape, IGNORE, dtype=torch.long),
           "edit_tags": torch.full(shape, IGNORE, dtype=torch.long),
           "tool_labels": torch.full(shape, IGNORE, dtype=torch.long),
           "doc_ids": torch.full(shape, -1, dtype=torch.long),
           "positions": torch.zeros(shape, dtype=torch.long),
           "language_ids": torch.zeros(shape, dtype=torch.long),
           "task_ids": torch.zeros(shape, dtype=torch.long),
           "prompt_mask": torch.zeros(shape, dtype=torch.bool)}
    for r, row in enumerate(rows):
        at = 0
        for d, e in enumerate(row):
            n, p = len(e.input_ids), e.prompt_len
            end = at + n
            out["input_ids"][r, at:end] = torch.tensor(e.input_ids, dtype=torch.long)
            out["labels"][r, at + p - 1:end - 1] = out["input_ids"][r, at + p:end]
            if e.edit_tags:
                tags = torch.tensor(e.edit_tags, dtype=torch.long)
                out["edit_tags"][r, at:at + len(tags)] = torch.where(tags < 0, IGNORE, tags)
            if e.tool_label >= 0:
                out["tool_labels"][r, at + p - 1] = e.tool_label
            out["doc_ids"][r, at:end] = d
            out["positions"][r, at:end] = torch.arange(n)
            out["language_ids"][r, at:end] = e.language
            out["task_ids"][r, at:end] = e.task
            out["prompt_mask"][r, at:at + p] = True
            at = end
    return out


class BalancedSampler:
    """Deterministic language-balanced draws; `state_dict()` / `load_state_dict()` make resume exact."""

    def __init__(self, dataset: TokenDataset, seed: int = 0, language_balance: float = 0.5,
                 task_weights: dict[str, float] | None = None):
        if len(dataset) == 0:
            raise ValueError(f"no training examples in {dataset.files}")
        if language_balance < 0:
            raise ValueError(f"language_balance={language_balance}: must be >= 0")
        task_weights = {task_id(name): float(w) for name, w in (task_weights or {}).items()}
        if any(w < 0 for w in task_weights.values()):
            raise ValueError(f"task_weights={task_weights}: weights must be >= 0")
        self.seed = seed
        # the groups a draw picks from: languages, or (language, task) pairs when tasks are weighted
        key = dataset.language * 1000 + dataset.task if task_weights else dataset.language
        self.groups = sorted(int(x) for x in np.unique(key))
        self.members = [np.flatnonzero(key == group) for group in self.groups]
        weights = torch.tensor([len(m) ** language_balance * task_weights.get(group % 1000, 1.0)
                                for m, group in zip(self.members, self.groups)], dtype=torch.float64)
        if not weights.sum() > 0:
            raise ValueError(f"task_weights={task_weights}: every task in the data has weight 0")
        self.weights = weights / weights.sum()
        self.draws = 0
        self.cursors = [0] * len(self.groups)  # position in each group's never-ending shuffled stream
        self._perm_cache: dict[tuple[int, int], list[int]] = {}

    def _permutation(self, lang_pos: int, epoch: int) -> list[int]:
        key = (lang_pos, epoch)
        if key not in self._perm_cache:
            if len(self._perm_cache) > 4 * len(self.groups):
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
            indices.append(int(self.members[lang_pos][self._permutation(lang_pos, epoch)[offset]]))
            self.cursors[lang_pos] += 1
        self.draws += 1
        return indices

    def state_dict(self) -> dict:
        return {"seed": self.seed, "draws": self.draws, "cursors": list(self.cursors),
                "languages": list(self.groups)}

    def load_state_dict(self, state: dict) -> None:
        if state["languages"] != self.groups:  # the key predates task groups; it holds the group ids
            raise ValueError(f"sampler state groups {state['languages']} differ from the data's "
                             f"{self.groups}: resume with the same shards and task weights")
        self.seed, self.draws, self.cursors = state["seed"], state["draws"], list(state["cursors"])


class BatchStream:
    """This rank's micro-batches. One draw per optimizer step takes the whole global batch (batch_size x
    world_size x grad_accum examples); micro-batch m of rank r is slice m * world_size + r. So the examples a
    step trains on, and how they are grouped into micro-batches, do not depend on how many processes share
    them: 2 ranks x 1 micro-batch see exactly what 1 rank x 2 accumulated micro-batches see."""

    def __init__(self, dataset: TokenDataset, batch_size: int, *, seed: int = 0, language_balance: float = 0.5,
                 rank: int = 0, world_size: int = 1, pad_id: int = 0, pad_to_multiple: int = 8,
                 pad_to: int | None = None, task_weights: dict[str, float] | None = None, max_tokens: int = 0,
                 pack_to: int = 0):
        self.dataset = dataset
        self.sampler = BalancedSampler(dataset, seed, language_balance, task_weights)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.pad_id, self.pad_to_multiple, self.pad_to = pad_id, pad_to_multiple, pad_to
        self.max_tokens = 0 if pad_to else max_tokens
        self.pack_to = 0 if pad_to else pack_to

    def step_batches(self, grad_accum: int = 1) -> list[dict[str, torch.Tensor]]:
        """The step's micro-batches for this rank. With max_tokens, each micro-batch's examples are sorted by
        length and cut into pieces of at most max_tokens padded tokens (one example at least), so a 40-token
        task is not padded to a 384-token file chunk; the losses weigh by tokens, so the step's gradient is
        the one of the uncut micro-batch. With pack_to, each micro-batch's examples are packed into rows of at
        most pack_to tokens (collate_packed: one document per example), cut by max_tokens the same way."""
        indices = self.sampler.draw(self.batch_size * self.world_size * grad_accum)
        batches = []
        for micro in range(grad_accum):
            start = (micro * self.world_size + self.rank) * self.batch_size
            examples = [self.dataset.example(i) for i in indices[start:start + self.batch_size]]
            if self.pack_to:
                for piece in self._pieces(pack_rows(examples, self.pack_to), lambda row: sum(len(e.input_ids)
                                                                                           for e in row)):
                    batches.append(collate_packed(piece, self.pad_id, self.pad_to_multiple))
                continue
            for piece in self._pieces(examples, lambda e: len(e.input_ids)):
                batches.append(collate(piece, self.pad_id, self.pad_to_multiple, self.pad_to))
        return batches

    def _pieces(self, items: list, size) -> list[list]:
        """`items` (examples, or packed rows) sorted by `size` and cut into pieces of at most max_tokens padded
        tokens, one item at least."""
        if not self.max_tokens:
            return [items]
        pieces, current = [], []
        for e in sorted(items, key=size):
            padded = -(-size(e) // self.pad_to_multiple) * self.pad_to_multiple
            if current and padded * (len(current) + 1) > self.max_tokens:
                pieces.append(current)
                current = []
            current.append(e)
        return pieces + [current]

    def next_batch(self) -> dict[str, torch.Tensor]:
        return self.step_batches(1)[0]


class StepPrefetcher:
    """`stream.step_batches(grad_accum)` built up to `depth` steps ahead in a background thread, so building
    the next step's batches overlaps this step's compute. The sampler state after each step's draw travels
    with its batches: `sampler_state()` is the state after the steps handed out, which is what a checkpoint
    must store for an exact resume (the thread's own draws run ahead of it)."""

    def __init__(self, stream: BatchStream, grad_accum: int, depth: int = 1, pin: bool = False):
        self.stream, self.grad_accum, self.pin = stream, grad_accum, pin
        self._state = stream.sampler.state_dict()
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="batch-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                batches = self.stream.step_batches(self.grad_accum)
                if self.pin:
                    batches = [{k: v.pin_memory() for k, v in b.items()} for b in batches]
                item = (batches, self.stream.sampler.state_dict(), None)
            except Exception as exc:  # handed to the trainer, which raises it
                item = (None, None, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return

    def next(self) -> list[dict[str, torch.Tensor]]:
        batches, state, error = self._queue.get()
        if error is not None:
            raise error
        self._state = state
        return batches

    def sampler_state(self) -> dict:
        return self._state

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


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
