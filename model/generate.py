"""Batched generation with one KV cache per recurrence pass: greedy or temperature / top-k / top-p sampling,
stop ids and stop strings, adaptive depth, a memory cap, and a streaming iterator.

Id level: generate_ids / stream_ids. Text level: generate / stream take any tokenizer with encode(str),
decode(ids), eos_id and, optionally, encode_prompt(str) (used when present, so the prompt ends with <|answer|>).
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

from model.vocab import language_id, task_id


def _as_ids(values, batch_size: int, device) -> torch.Tensor:
    if isinstance(values, int):
        values = [values] * batch_size
    if len(values) != batch_size:
        raise ValueError(f"expected {batch_size} language/task ids, got {len(values)}")
    return torch.tensor(list(values), dtype=torch.long, device=device)


def sample_next(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """logits [B, V] -> token ids [B]. temperature 0 = greedy."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest prefix whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def _check_lengths(model, prompts, max_new_tokens, forced=None) -> None:
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    if forced is not None and len(forced) != len(prompts):
        raise ValueError(f"expected one forced answer prefix per prompt ({len(prompts)}), got {len(forced)}")
    longest = max(len(p) + (len(forced[r]) if forced else 0) for r, p in enumerate(prompts)) + max_new_tokens
    if longest > model.config.max_seq_len:
        raise ValueError(f"prompt (and forced answer prefix) + max_new_tokens={max_new_tokens} reaches {longest} "
                         f"tokens, above the model's max_seq_len={model.config.max_seq_len}")


def _left_padded(rows: list[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long, device=device)
    valid = torch.zeros(len(rows), width, dtype=torch.bool, device=device)
    for row, p in enumerate(rows):
        if p:
            ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
            valid[row, width - len(p):] = True
    return ids, valid


def prefill(model, prompts: list[list[int]], languages: torch.Tensor, tasks: torch.Tensor, cache,
            forced: list[list[int]] | None = None, adaptive_depth: bool = True) -> torch.Tensor:
    """Feed the prompts (bidirectional prefix) and then each row's forced answer prefix (causal, as answer
    tokens are in training) into `cache`; return the logits [B, V] that predict the next token."""
    ids, valid = _left_padded(prompts, model.config.pad_token_id, model.device)
    logits = model.step(ids, cache, languages, tasks, valid=valid, prompt=True, last_logits_only=True).logits[:, -1]
    if forced and any(forced):
        # each row's forced tokens end the chunk; the padding before them is masked and takes no position
        ids, valid = _left_padded(forced, model.config.pad_token_id, model.device)
        out = model.step(ids, cache, languages, tasks, valid=valid, adaptive_depth=adaptive_depth,
                         last_logits_only=True)
        has_forced = torch.tensor([bool(f) for f in forced], device=model.device)
        logits = torch.where(has_forced[:, None], out.logits[:, -1], logits)
    return logits


def _decode_loop(model, prompts: list[list[int]], language_ids, task_ids, *, max_new_tokens, temperature,
                 top_p, top_k, stop_ids, eos_id, adaptive_depth, seed, stats,
                 finished: list[bool] | None = None, forced: list[list[int]] | None = None,
                 logits_log: list | None = None) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, [B], until every row stopped or max_new_tokens; left-padded batch.
    The caller may set finished[r] (e.g. on a stop string) to end row r early. logits_log (a list) receives
    the logits [B, V] each token is chosen from."""
    device = model.device
    B = len(prompts)
    languages, tasks = _as_ids(language_ids, B, device), _as_ids(task_ids, B, device)
    stops = torch.tensor(sorted({*stop_ids, *([eos_id] if eos_id is not None else [])}), dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None

    width = max(map(len, prompts)) + (max(map(len, forced)) if forced else 0)
    cache = model.new_cache(B, width + max_new_tokens, segments=model.depth_cap(adaptive_depth))
    logits = prefill(model, prompts, languages, tasks, cache, forced, adaptive_depth)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    depth_sum, depth_tokens = 0, 0
    for i in range(max_new_tokens):
        if logits_log is not None:
            logits_log.append(logits)
        token = sample_next(logits, temperature, top_p, top_k, generator)
        done |= torch.isin(token, stops)
        yield token
        if finished is not None:
            done |= torch.tensor(finished, dtype=torch.bool, device=device)
        if bool(done.all()) or i == max_new_tokens - 1:
            break
        out = model.step(token[:, None], cache, languages, tasks, adaptive_depth=adaptive_depth)
        depth_sum += int(out.depth[~done].sum())
        depth_tokens += int((~done).sum())
        logits = out.logits[:, -1]
    if stats is not None:
        cap = model.depth_cap(adaptive_depth)
        stats.update(decoded_tokens=depth_tokens, mean_depth=depth_sum / max(depth_tokens, 1), max_depth=cap,
                     compute_fraction=(depth_sum / max(depth_tokens, 1)) / cap, cache_mb=cache.nbytes() / 2**20)


def _chunks(model, prompts, max_new_tokens, max_memory_mb, adaptive_depth=True, forced=None) -> list[tuple[int, int]]:
    """Split the batch so each chunk's KV cache fits in max_memory_mb."""
    if max_memory_mb is None:
        return [(0, len(prompts))]
    width = max(len(p) for p in prompts) + (max(map(len, forced)) if forced else 0)
    per_row = model.cache_bytes_per_token(model.depth_cap(adaptive_depth)) * (width + max_new_tokens)
    rows = int(max_memory_mb * 2**20 // per_row)
    if rows < 1:
        raise MemoryError(f"one sequence needs {per_row / 2**20:.1f} MB of KV cache, above max_memory_mb={max_memory_mb}; "
                          "lower max_new_tokens or raise the cap")
    return [(s, min(s + rows, len(prompts))) for s in range(0, len(prompts), rows)]


@torch.no_grad()
def generate_ids(model, prompts: list[list[int]], language_ids, task_ids, *, max_new_tokens: int,
                 temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, stop_ids: Sequence[int] = (),
                 eos_id: int | None = None, adaptive_depth: bool = True, max_memory_mb: float | None = None,
                 seed: int | None = None, stats: dict | None = None,
                 stop_when: Callable[[list[int]], bool] | None = None,
                 forced_ids: list[list[int]] | None = None, logits_log: list | None = None) -> list[list[int]]:
    """New token ids per prompt, without the stop/eos token that ended a row. language_ids / task_ids: one id or
    one per prompt. max_memory_mb caps the KV cache: the batch runs in chunks that fit. stats (optional dict)
    receives decoded_tokens, mean_depth (segments per decoded token), max_depth (the most a token may run),
    compute_fraction (mean_depth / max_depth), cache_mb.
    stop_when(row_ids) -> True ends a row early (its ids so far are kept), e.g. on a stop string.
    forced_ids: per prompt, answer tokens fed before decoding (causally, as in training), not returned.
    logits_log (a list): receives the logits [B, V] of each decoding step (one chunk's rows)."""
    _check_lengths(model, prompts, max_new_tokens, forced_ids)
    was_training = model.training
    model.eval()
    stops = {*stop_ids, *([eos_id] if eos_id is not None else [])}
    results: list[list[int]] = []
    chunk_stats = []
    try:
        for start, end in _chunks(model, prompts, max_new_tokens, max_memory_mb, adaptive_depth, forced_ids):
            sub = {} if stats is not None else None
            rows = [[] for _ in range(end - start)]
            finished = [False] * (end - start)
            lang = language_ids if isinstance(language_ids, int) else list(language_ids)[start:end]
            task = task_ids if isinstance(task_ids, int) else list(task_ids)[start:end]
            for token in _decode_loop(model, prompts[start:end], lang, task, max_new_tokens=max_new_tokens,
                                      temperature=temperature, top_p=top_p, top_k=top_k, stop_ids=stop_ids,
                                      eos_id=eos_id, adaptive_depth=adaptive_depth, seed=seed, stats=sub,
                                      finished=finished, forced=forced_ids[start:end] if forced_ids else None,
                                      logits_log=logits_log):
                for r, t in enumerate(token.tolist()):
                    if not finished[r]:
                        if t in stops:
                            finished[r] = True
                        else:
                            rows[r].append(t)
                            finished[r] = stop_when is not None and stop_when(rows[r])
            results.extend(rows)
            if sub is not None:
                chunk_stats.append(sub)
    finally:
        model.train(was_training)
    if stats is not None and chunk_stats:
        tokens = sum(s["decoded_tokens"] for s in chunk_stats)
        mean_depth = sum(s["mean_depth"] * s["decoded_tokens"] for s in chunk_stats) / max(tokens, 1)
        stats.update(decoded_tokens=tokens, mean_depth=mean_depth, max_depth=chunk_stats[0]["max_depth"],
                     compute_fraction=mean_depth / chunk_stats[0]["max_depth"],
                     cache_mb=max(s["cache_mb"] for s in chunk_stats))
    return results


@torch.no_grad()
def stream_ids(model, prompt: list[int], language_id: int, task_id: int, *, max_new_tokens: int,
               temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, stop_ids: Sequence[int] = (),
               eos_id: int | None = None, adaptive_depth: bool = True, max_memory_mb: float | None = None,
               seed: int | None = None, forced_ids: list[int] | None = None,
               logits_log: list | None = None) -> Iterator[int]:
    """Yield new token ids of one prompt as they are decoded; stops before a stop/eos token. forced_ids: answer
    tokens fed first (causally, as in training); logits_log: see generate_ids."""
    forced = [list(forced_ids)] if forced_ids else None
    _check_lengths(model, [prompt], max_new_tokens, forced)
    _chunks(model, [prompt], max_new_tokens, max_memory_mb, adaptive_depth, forced)  # raises if one row does not fit
    stops = {*stop_ids, *([eos_id] if eos_id is not None else [])}
    was_training = model.training
    model.eval()
    try:
        for token in _decode_loop(model, [prompt], language_id, task_id, max_new_tokens=max_new_tokens,
                                  temperature=temperature, top_p=top_p, top_k=top_k, stop_ids=stop_ids,
                                  eos_id=eos_id, adaptive_depth=adaptive_depth, seed=seed, stats=None,
                                  forced=forced, logits_log=logits_log):
            t = int(token[0])
            if t in stops:
                return
            yield t
    finally:
        model.train(was_training)


# -- text level ---------------------------------------------------------------------------------------
def encode_prompt(tokenizer, prompt: str) -> list[int]:
    encode = getattr(tokenizer, "encode_prompt", None)
    return list(encode(prompt)) if encode is not None else list(tokenizer.encode(prompt))


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stop if s and s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)


def generate(model, tokenizer, prompts: list[str], language: str = "none", task: str = "codegen",
             stop: Sequence[str] = (), *, max_new_tokens: int = 256, **kwargs) -> list[str]:
    """Text in, text out; each output is cut before the first stop string."""
    ids = [encode_prompt(tokenizer, p) for p in prompts]
    kwargs.setdefault("eos_id", getattr(tokenizer, "eos_id", None))
    if stop:
        kwargs.setdefault("stop_when", lambda row: cut_at_stop(tokenizer.decode(row[-64:]), stop)[1])
    new = generate_ids(model, ids, language_id(language), task_id(task), max_new_tokens=max_new_tokens, **kwargs)
    return [cut_at_stop(tokenizer.decode(row), stop)[0] for row in new]


class StopText:
    """The text of a growing list of token ids, released piece by piece: text that may still become a stop
    string, or an incomplete UTF-8 character, is held back; `add` returns the new piece and whether a stop
    string ended the text (the stop string itself is never released)."""

    def __init__(self, tokenizer, stop: Sequence[str] = ()):
        self.tokenizer, self.stop = tokenizer, tuple(s for s in stop if s)
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.ids: list[int] = []
        self.emitted = 0

    def add(self, token: int) -> tuple[str, bool]:
        self.ids.append(token)
        text, stopped = cut_at_stop(self.tokenizer.decode(self.ids), self.stop)
        if stopped:
            return self._release(len(text), text), True
        safe = len(text) - self.hold
        while safe > self.emitted and text[safe - 1] == "\ufffd":  # partial multi-byte character
            safe -= 1
        return self._release(safe, text), False

    def finish(self) -> str:
        """The held-back rest, once no more tokens come."""
        text = cut_at_stop(self.tokenizer.decode(self.ids), self.stop)[0]
        return self._release(len(text), text)

    def _release(self, upto: int, text: str) -> str:
        if upto <= self.emitted:
            return ""
        piece, self.emitted = text[self.emitted:upto], upto
        return piece


def stream(model, tokenizer, prompt: str, language: str = "none", task: str = "codegen",
           stop: Sequence[str] = (), *, max_new_tokens: int = 256, prompt_ids: list[int] | None = None,
           **kwargs) -> Iterator[str]:
    """Yield text pieces as they are decoded; ends at eos, max_new_tokens or the first stop string (not
    emitted). Text that may still become a stop string, or an incomplete UTF-8 character, is held back.
    forced_ids (in kwargs): answer tokens fed after the prompt, causally; their text is not yielded."""
    ids = prompt_ids if prompt_ids is not None else encode_prompt(tokenizer, prompt)
    kwargs.setdefault("eos_id", getattr(tokenizer, "eos_id", None))
    text = StopText(tokenizer, stop)
    for token in stream_ids(model, ids, language_id(language), task_id(task), max_new_tokens=max_new_tokens, **kwargs):
        piece, stopped = text.add(token)
        if piece:
            yield piece
        if stopped:
            return
    piece = text.finish()
    if piece:
        yield piece
