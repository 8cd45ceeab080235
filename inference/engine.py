"""Continuous batching over the KV-cached generator: sequences from any number of requests decode together,
one token per row per step, and a new sequence joins the running batch at the next step (its prompt is
prefilled on its own, then its cache rows are merged into the batch's cache; model.layers.KVCache.concat).

One thread owns the model. Callers `submit` sequences and receive events through each sequence's `sink`
(called from the engine thread): ("text", piece), then ("done", finish_reason) or ("error", message).
finish_reason is "stop" (eos or a stop string) or "length" (max_new_tokens).
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence as Seq

import torch

from model.generate import StopText, prefill, sample_next


class QueueFull(RuntimeError):
    """More sequences waiting or running than the engine accepts."""


class EngineClosed(RuntimeError):
    """The engine stopped (shut down, or its thread died)."""


@dataclass(eq=False)
class Sequence:
    """One completion to decode."""

    prompt_ids: list[int]
    max_new_tokens: int
    sink: Callable[[tuple], None] | None = None
    language_id: int = 0
    task_id: int = 0
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    cancelled: bool = False  # set by the caller (e.g. the client went away); the row leaves at the next step
    new_ids: list[int] = field(default_factory=list)
    _text: StopText | None = field(default=None, repr=False)
    _generator: torch.Generator | None = field(default=None, repr=False)


def _sample(logits: torch.Tensor, rows: list[Sequence]) -> list[int]:
    """One token per row: greedy rows take the argmax; sampled rows draw from their own seeded generator, so
    a request with a seed gets the same text whatever else is in the batch."""
    tokens = logits.argmax(-1).tolist()
    for r, seq in enumerate(rows):
        if seq.temperature > 0:
            tokens[r] = int(sample_next(logits[r:r + 1], seq.temperature, seq.top_p, generator=seq._generator))
    return tokens


class BatchEngine:
    def __init__(self, model, tokenizer, *, max_batch: int = 32, max_queue: int = 256, adaptive_depth: bool = True):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_batch, self.max_queue, self.adaptive_depth = max_batch, max_queue, adaptive_depth
        self.eos_id = getattr(tokenizer, "eos_id", None)
        self._pending: collections.deque[Sequence] = collections.deque()
        self._rows: list[Sequence] = []
        self._cache = self._logits = self._languages = self._tasks = None
        self._cv = threading.Condition()
        self._closed = False
        self.error: str | None = None
        self.steps = 0  # decoding steps run (a step decodes one token of every running row)
        self._thread = threading.Thread(target=self._run, name="hrm-batch-engine", daemon=True)
        self._thread.start()

    @property
    def max_seq_len(self) -> int:
        return self.model.config.max_seq_len

    def load(self) -> int:
        """Sequences waiting or running."""
        with self._cv:
            return len(self._pending) + len(self._rows)

    def submit(self, sequences: Seq[Sequence]) -> None:
        """Queue sequences (all or none): QueueFull when the engine holds max_queue, EngineClosed when stopped.
        Each prompt with its max_new_tokens must fit in the model's context (ValueError otherwise)."""
        for seq in sequences:
            if not seq.prompt_ids:
                raise ValueError("every prompt needs at least one token")
            if len(seq.prompt_ids) + seq.max_new_tokens > self.max_seq_len:
                raise ValueError(f"the prompt ({len(seq.prompt_ids)} tokens) and max_tokens ({seq.max_new_tokens}) "
                                 f"exceed the model's context of {self.max_seq_len} tokens")
        with self._cv:
            if self._closed or self.error:
                raise EngineClosed(self.error or "the engine is shut down")
            if len(self._pending) + len(self._rows) + len(sequences) > self.max_queue:
                raise QueueFull(f"the server holds {len(self._pending) + len(self._rows)} sequences; its queue "
                                f"limit is {self.max_queue}")
            for seq in sequences:
                seq._text = StopText(self.tokenizer, seq.stop)
                if seq.temperature > 0:
                    seq._generator = torch.Generator(device=self.model.device)
                    if seq.seed is not None:
                        seq._generator.manual_seed(seq.seed)
                    else:
                        seq._generator.seed()
            self._pending.extend(sequences)
            self._cv.notify()

    def run(self, sequences: list[Sequence]) -> list[str]:
        """Decode `sequences` (their sinks are replaced) and wait: their texts, in order. The engine's other
        work goes on meanwhile, so concurrent callers share its batches. RuntimeError on a failed step."""
        texts, errors = [[] for _ in sequences], []
        left, done = [len(sequences)], threading.Event()
        lock = threading.Lock()

        def sink(i, event):
            if event[0] == "text":
                texts[i].append(event[1])
                return
            with lock:
                if event[0] == "error":
                    errors.append(event[1])
                left[0] -= 1
                if left[0] == 0:
                    done.set()

        for i, seq in enumerate(sequences):
            seq.sink = lambda event, i=i: sink(i, event)
        if not sequences:
            return []
        self.submit(sequences)
        done.wait()
        if errors:
            raise RuntimeError(f"generation failed: {errors[0]}")
        return ["".join(t) for t in texts]

    def close(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout)

    # -- the engine thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._closed and not self._pending and not self._rows:
                        self._cv.wait()
                    if self._closed:
                        break
                    room = self.max_batch - len(self._rows)
                    joining = [self._pending.popleft() for _ in range(min(room, len(self._pending)))]
                try:
                    self._step(joining)
                except Exception as exc:  # a failed step fails its rows, not the server
                    for seq in self._rows + joining:
                        seq.sink(("error", f"{type(exc).__name__}: {exc}"))
                    self._rows, self._cache = [], None
        except BaseException as exc:  # the thread is dying: refuse new work and fail what waits
            self.error = f"engine thread died: {type(exc).__name__}: {exc}"
            raise
        finally:
            with self._cv:
                left, self._pending = list(self._pending) + self._rows, collections.deque()
                self._rows = []
            for seq in left:
                seq.sink(("error", self.error or "the engine shut down"))

    @torch.no_grad()
    def _step(self, joining: list[Sequence]) -> None:
        joining = [s for s in joining if not s.cancelled]
        if joining:
            self._admit(joining)
        if not self._rows:
            return
        tokens = _sample(self._logits, self._rows)
        keep = []
        for r, (seq, token) in enumerate(zip(self._rows, tokens)):
            if seq.cancelled:
                continue
            if token == self.eos_id:
                self._finish(seq, "stop")
                continue
            seq.new_ids.append(token)
            piece, stopped = seq._text.add(token)
            if piece:
                seq.sink(("text", piece))
            if stopped:
                seq.sink(("done", "stop"))
            elif len(seq.new_ids) >= seq.max_new_tokens:
                self._finish(seq, "length")
            else:
                keep.append(r)
        if len(keep) < len(self._rows):
            self._drop_all_but(keep)
        if not self._rows:
            return
        step_tokens = torch.tensor([tokens[r] for r in keep], dtype=torch.long, device=self.model.device)
        out = self.model.step(step_tokens[:, None], self._cache, self._languages, self._tasks,
                              adaptive_depth=self.adaptive_depth)
        self._logits = out.logits[:, -1]
        self.steps += 1

    def _finish(self, seq: Sequence, reason: str) -> None:
        piece = seq._text.finish()
        if piece:
            seq.sink(("text", piece))
        seq.sink(("done", reason))

    def _drop_all_but(self, keep: list[int]) -> None:
        self._rows = [self._rows[r] for r in keep]
        if not keep:
            self._cache = self._logits = self._languages = self._tasks = None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.model.device)
        self._cache = self._cache.select(index)
        self._logits, self._languages, self._tasks = (t.index_select(0, index)
                                                      for t in (self._logits, self._languages, self._tasks))

    def _admit(self, joining: list[Sequence]) -> None:
        """Prefill the new prompts together, then merge their cache rows into the running batch's."""
        device = self.model.device
        languages = torch.tensor([s.language_id for s in joining], dtype=torch.long, device=device)
        tasks = torch.tensor([s.task_id for s in joining], dtype=torch.long, device=device)
        prompts = [s.prompt_ids for s in joining]
        cache = self.model.new_cache(len(joining), max(map(len, prompts)),
                                     segments=self.model.depth_cap(self.adaptive_depth))
        logits = prefill(self.model, prompts, languages, tasks, cache, adaptive_depth=self.adaptive_depth)
        rows = self._rows + joining
        # room for every row's remaining tokens (the last sampled token of a row is never written)
        room = max(s.max_new_tokens - len(s.new_ids) for s in rows)
        caches = ([self._cache] if self._rows else []) + [cache]
        self._cache = type(cache).concat(caches, room)
        if self._rows:
            logits, languages, tasks = (torch.cat([a, b]) for a, b in
                                        ((self._logits, logits), (self._languages, languages), (self._tasks, tasks)))
        self._rows, self._logits, self._languages, self._tasks = rows, logits, languages, tasks
