"""Output heads: the LM head (direct code), the edit-tag head (which prompt lines an edit touches) and the
tool head (which tool to call), plus their decoding modes: SEARCH/REPLACE blocks whose SEARCH text is copied
from the file, and tool calls whose arguments are decoded against a schema."""

from __future__ import annotations

import bisect
import difflib
import json

import torch
from torch import nn

from model.config import ModelConfig
from model.edits import (DIVIDER, REPLACE, SEARCH, EditBlock, apply_edit_blocks, format_edit_blocks, line_matches,
                         parse_edit_blocks)
from model.layers import RMSNorm
from model.validate import TOOL_SCHEMAS, is_required
from model.vocab import TOOLS, language_id, task_id


class OutputHeads(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.lm = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.edit = nn.Linear(config.hidden_size, 1)  # per prompt token: touched by the edit
        self.tool = nn.Linear(config.hidden_size, config.num_tools)  # at the last prompt token

    def lm_logits(self, state: torch.Tensor) -> torch.Tensor:
        return self.lm(self.norm(state))


# -- edit decoding: SEARCH text copied from the file ------------------------------------------------
def _prompt_batch(model, ids: list[list[int]], prompt_len: int, language: str, task: str) -> dict:
    device = model.device
    width = max(map(len, ids))
    rows = [row + [model.config.pad_token_id] * (width - len(row)) for row in ids]
    return {"input_ids": torch.tensor(rows, device=device),
            "prompt_len": torch.full((len(ids),), prompt_len, device=device),
            "language_ids": torch.full((len(ids),), language_id(language), device=device),
            "task_ids": torch.full((len(ids),), task_id(task), device=device)}


def token_char_ends(tokenizer, ids: list[int]) -> tuple[str, list[int]]:
    """The decoded text and, per token, the character offset where it ends."""
    pieces = [tokenizer.decode([i]) for i in ids]
    text = tokenizer.decode(ids)
    if "".join(pieces) == text:  # tokens decode independently (no multi-byte character split across tokens)
        ends, total = [], 0
        for piece in pieces:
            total += len(piece)
            ends.append(total)
        return text, ends
    text, ends = "", []
    for i in range(len(ids)):
        text = tokenizer.decode(ids[:i + 1])
        ends.append(len(text))
    return text, ends


def line_edit_probs(tokenizer, prompt_ids: list[int], edit_logits: torch.Tensor, source: str) -> list[float]:
    """Mean edit-tag probability of the prompt tokens on each line of `source` (found inside the prompt)."""
    text, ends = token_char_ends(tokenizer, prompt_ids)
    offset = text.find(source)
    if offset < 0:
        raise ValueError("the source file does not occur in the decoded prompt; pass the file text the prompt contains")
    lines = source.splitlines(keepends=True)
    line_starts = [0]
    for line in lines[:-1]:
        line_starts.append(line_starts[-1] + len(line))
    sums, counts = [0.0] * len(lines), [0] * len(lines)
    probs = torch.sigmoid(edit_logits.float()).tolist()
    start = 0
    for i, end in enumerate(ends):
        a, b = max(start - offset, 0), min(end - offset, len(source))  # the token's characters in `source`
        start = end
        if b <= a:
            continue
        for n in range(bisect.bisect_right(line_starts, a) - 1, bisect.bisect_right(line_starts, b - 1)):
            sums[n] += probs[i]
            counts[n] += 1
    return [s / c if c else 0.0 for s, c in zip(sums, counts)]


def tagged_spans(line_probs: list[float], threshold: float = 0.5) -> list[tuple[int, int]]:
    """Runs of consecutive lines tagged as touched: [(first, end), ...]."""
    spans, start = [], None
    for n, p in enumerate(line_probs + [0.0]):
        if p > threshold and start is None:
            start = n
        elif p <= threshold and start is not None:
            spans.append((start, n))
            start = None
    return spans


def unique_search(lines: list[str], span: tuple[int, int], text: str, lo: int, hi: int) -> str:
    """lines[span] verbatim, widened by context lines within [lo, hi) until it occurs once in `text`."""
    a, b = span
    search = "".join(lines[a:b])
    while text.count(search) > 1 and (a > lo or b < hi):
        if b < hi:
            b += 1
        if text.count("".join(lines[a:b])) > 1 and a > lo:
            a -= 1
        search = "".join(lines[a:b])
    return search


def decode_edit_blocks(model, tokenizer, prompt: str, source: str, language: str = "none", task: str = "diff_edit",
                       *, threshold: float = 0.5, max_new_tokens: int = 128, **gen) -> str:
    """Edit mode: the edit head picks the touched lines of `source`; each run becomes a SEARCH block copied
    verbatim from the file (widened until unique), and the LM writes its REPLACE part. Every block applies."""
    from model.generate import encode_prompt, stream

    prompt_ids = encode_prompt(tokenizer, prompt)
    with torch.no_grad():
        out = model(_prompt_batch(model, [prompt_ids], len(prompt_ids), language, task))
    probs = line_edit_probs(tokenizer, prompt_ids, out.edit_logits[0], source)
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    spans = tagged_spans(probs, threshold)
    answer, current, blocks = "", "".join(lines), []
    for n, span in enumerate(spans):
        lo = spans[n - 1][1] if n else 0
        hi = spans[n + 1][0] if n + 1 < len(spans) else len(lines)
        search = unique_search(lines, span, current, lo, hi)
        forced = answer + f"{SEARCH}\n{search}{DIVIDER}\n"
        ids = prompt_ids + list(tokenizer.encode(forced))
        replace = "".join(stream(model, tokenizer, "", language, task, stop=[REPLACE, DIVIDER, SEARCH[:7]],
                                 max_new_tokens=max_new_tokens, prompt_ids=ids, **gen))
        if replace and not replace.endswith("\n"):
            replace += "\n"
        blocks.append(EditBlock(search, replace))
        current = apply_edit_blocks(current, [blocks[-1]])
        answer = format_edit_blocks(blocks)
    return answer


def snap_edit_blocks(source: str, answer: str) -> str:
    """Repair free-form blocks: replace each SEARCH that matches no whole lines of the file by the file span of
    the same length that matches it best, so blocks the LM wrote from memory apply."""
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    fixed, text = [], "".join(lines)
    for block in parse_edit_blocks(answer):
        if not block.search or line_matches(text, block.search):
            fixed.append(block)
            continue
        size = max(1, len(block.search.splitlines()))
        candidates = ["".join(lines[i:i + size]) for i in range(max(1, len(lines) - size + 1))]
        best = max(candidates, key=lambda c: difflib.SequenceMatcher(None, c, block.search).ratio())
        fixed.append(EditBlock(best, block.replace))
    return format_edit_blocks(fixed)


# -- tool decoding: arguments decoded against the tool's schema ---------------------------------------
def continuation_logprobs(model, prefix: list[int], options: list[list[int]], prompt_len: int, language: str,
                          task: str) -> list[float]:
    """Log-probability of each option's tokens after `prefix`, in one batched forward."""
    with torch.no_grad():
        logits = model(_prompt_batch(model, [prefix + o for o in options], prompt_len, language, task)).logits
    logp = logits.float().log_softmax(-1)
    scores = []
    for r, option in enumerate(options):
        positions = range(len(prefix) - 1, len(prefix) - 1 + len(option))
        scores.append(sum(float(logp[r, p, t]) for p, t in zip(positions, option)))
    return scores


def _clean(value: str, kind: str) -> str:
    value = value.replace("\x00", "").replace("\n", " ").strip()
    if kind == "path":
        value = "/".join(part for part in value.split("/") if part not in ("", "..")) or "."
    return value or "."


def decode_tool_call(model, tokenizer, prompt: str, language: str = "none", task: str = "tool_use", *,
                     tool: str | None = None, max_arg_tokens: int = 24, max_items: int = 6, **gen) -> dict:
    """The tool head picks the tool (unless `tool` is given); each argument is then decoded in the schema's order: enums by scoring
    every allowed value with the LM, strings by generation up to the closing quote (then sanitised), lists
    item by item. The result is {"tool": ..., "args": {...}} and passes validate.check_tool_call."""
    from model.generate import encode_prompt, stream

    prompt_ids = encode_prompt(tokenizer, prompt)
    P = len(prompt_ids)
    if tool is None:
        with torch.no_grad():
            tool = TOOLS[int(model(_prompt_batch(model, [prompt_ids], P, language, task)).tool_logits[0].argmax())]
    elif tool not in TOOL_SCHEMAS:
        raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")
    args: dict = {}
    text = '{"tool": ' + json.dumps(tool) + ', "args": {'

    def ids_of(s: str) -> list[int]:
        return prompt_ids + list(tokenizer.encode(s))

    def choose(options: list[str]) -> str:
        scores = continuation_logprobs(model, ids_of(text), [list(tokenizer.encode(o)) for o in options], P, language, task)
        return options[max(range(len(options)), key=scores.__getitem__)]

    def string_value() -> str:
        return "".join(stream(model, tokenizer, "", language, task, stop=['"'], max_new_tokens=max_arg_tokens,
                              prompt_ids=ids_of(text + '"'), **gen))

    first = True
    for name, arg in TOOL_SCHEMAS[tool].items():
        if not is_required(arg, args) and arg.kind != "strings":
            continue
        text += ("" if first else ", ") + json.dumps(name) + ": "
        first = False
        if arg.kind == "enum":
            args[name] = json.loads(choose([json.dumps(o) for o in arg.options]))
            text += json.dumps(args[name])
        elif arg.kind in ("string", "path"):
            args[name] = _clean(string_value(), arg.kind)
            text += json.dumps(args[name])
        else:
            items: list[str] = []
            text += "["
            while len(items) < max_items and choose(["]", '"'] if not items else ["]", ', "']) != "]":
                if items:
                    text += ", "
                item = _clean(string_value(), "string")
                items.append(item)
                text += json.dumps(item)
            args[name] = items
            text += "]"
    return {"tool": tool, "args": args}
