"""Output heads: the LM head (direct code), the edit-tag head (which prompt lines an edit touches) and the
tool head (which tool to call), plus their decoding modes: SEARCH/REPLACE blocks whose SEARCH text is copied
from the file, and tool calls written as command lines (the training format) and read into the tool's schema.
Text a decoder forces (the answer so far) is fed as answer tokens, causally, as in training."""

from __future__ import annotations

import bisect
import difflib
import shlex

import torch
from torch import nn

from model.config import ModelConfig
from model.edits import (DIVIDER, REPLACE, SEARCH, EditBlock, apply_edit_blocks, format_edit_blocks, line_matches,
                         parse_edit_blocks)
from model.layers import RMSNorm
from model.validate import TOOL_SCHEMAS
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


def file_name_in_prompt(prompt: str, source: str) -> str | None:
    """The file name of a `### NAME` line right before `source` in the prompt (the repair prompts' format)."""
    at = prompt.find(source)
    if at < 0:
        return None
    header = prompt[:at].rstrip("\n").rsplit("\n", 1)[-1]
    return header[4:].strip() or None if header.startswith("### ") else None


def decode_edit_blocks(model, tokenizer, prompt: str, source: str, language: str = "none", task: str = "repair",
                       *, threshold: float = 0.5, max_new_tokens: int = 128, file_name: str | None = None,
                       **gen) -> str:
    """Edit mode: the edit head picks the touched lines of `source`; each run becomes a SEARCH block copied
    verbatim from the file (widened until unique), and the LM writes its REPLACE part. Every block applies.

    The answer has the training format (`model.edits.format_edit_blocks`: each block after a file name line,
    the name found in the prompt's `### NAME` line unless given). The blocks so far, the file name line and
    the SEARCH part up to the divider are fed as answer tokens (causally, as in training), not as prompt."""
    from model.generate import encode_prompt, stream

    prompt_ids = encode_prompt(tokenizer, prompt)
    with torch.no_grad():
        out = model(_prompt_batch(model, [prompt_ids], len(prompt_ids), language, task))
    probs = line_edit_probs(tokenizer, prompt_ids, out.edit_logits[0], source)
    if file_name is None:
        file_name = file_name_in_prompt(prompt, source)
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    spans = tagged_spans(probs, threshold)
    answer, current, blocks = "", "".join(lines), []
    for n, span in enumerate(spans):
        lo = spans[n - 1][1] if n else 0
        hi = spans[n + 1][0] if n + 1 < len(spans) else len(lines)
        search = unique_search(lines, span, current, lo, hi)
        # the forced text ends at the divider: the newline after it (and the indentation it may merge with in
        # the tokenizer) is the model's to write, as in the training answers' tokens
        forced = answer + format_edit_blocks([EditBlock(search, "")], file_name).split(DIVIDER)[0] + DIVIDER
        replace = "".join(stream(model, tokenizer, "", language, task, stop=[REPLACE, DIVIDER, SEARCH[:7]],
                                 max_new_tokens=max_new_tokens, prompt_ids=prompt_ids,
                                 forced_ids=list(tokenizer.encode(forced)), **gen))
        replace = replace[1:] if replace.startswith("\n") else replace
        if replace and not replace.endswith("\n"):
            replace += "\n"
        blocks.append(EditBlock(search, replace))
        current = apply_edit_blocks(current, [blocks[-1]])
        answer = format_edit_blocks(blocks, file_name)
    return answer


def snap_edit_blocks(source: str, answer: str) -> str:
    """Repair free-form blocks: replace each SEARCH that matches no whole lines of the file by the file span of
    the same length that matches it best, so blocks the LM wrote from memory apply. An answer that does not
    parse is returned as it is (the grader fails it)."""
    try:
        parsed = parse_edit_blocks(answer)
    except ValueError:
        return answer
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    fixed, text = [], "".join(lines)
    for block in parsed:
        if not block.search or line_matches(text, block.search):
            fixed.append(block)
            continue
        size = max(1, len(block.search.splitlines()))
        candidates = ["".join(lines[i:i + size]) for i in range(max(1, len(lines) - size + 1))]
        best = max(candidates, key=lambda c: difflib.SequenceMatcher(None, c, block.search).ratio())
        fixed.append(EditBlock(best, block.replace))
    return format_edit_blocks(fixed)


# -- tool decoding: a command line in the training format, read back into the tool's schema ----------------
# The tool-use training answers are shell command lines ("git status --short", "python3 -m pip install x",
# "mkdir -p out"); their tool labels come from the program that starts them.
PROGRAMS = {"git": ("git",), "pip": ("pip", "python3 -m pip"), "npm": ("npm",), "cargo": ("cargo",), "mvn": ("mvn",),
            "make": ("make",), "cmake": ("cmake",)}
FS_COMMANDS = {"read": "cat", "list": "ls", "mkdir": "mkdir -p", "delete": "rm", "move": "mv", "copy": "cp",
               "write": "printf"}


def continuation_logprobs(model, prefix: list[int], options: list[list[int]], prompt_len: int, language: str,
                          task: str, adaptive_depth: bool = False) -> list[float]:
    """Log-probability of each option's tokens after `prefix`, in one batched forward (positions from
    prompt_len on are answer tokens: causal)."""
    with torch.no_grad():
        logits = model(_prompt_batch(model, [prefix + o for o in options], prompt_len, language, task),
                       adaptive_depth=adaptive_depth).logits
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


def _line(text: str, rest: str) -> str:
    """The command line: the forced text and the generated rest, one space apart if the rest lacks one."""
    return (text + (rest if not rest or rest[0].isspace() else " " + rest)).strip()


def _words(text: str) -> list[str]:
    """Shell words of a command line (plain whitespace split when quotes do not balance)."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return [w.replace("\n", " ") for w in words if w.strip() and "\x00" not in w]


def decode_tool_call(model, tokenizer, prompt: str, language: str = "none", task: str = "tool_use", *,
                     tool: str | None = None, max_arg_tokens: int = 24, max_items: int = 6, **gen) -> dict:
    """The tool head picks the tool (unless `tool` is given); the LM then writes a command line as the
    tool-use training answers are written: the program (scored among the tool's programs), an enum such as
    git's subcommand or fs's operation (each allowed value scored with the LM), the rest generated up to the
    end of the line. All of it is answer text after the prompt, fed causally. The result is {"tool": ...,
    "args": {...}, "command": the line}; tool and args pass validate.check_tool_call."""
    from model.generate import encode_prompt, stream

    prompt_ids = encode_prompt(tokenizer, prompt)
    P = len(prompt_ids)
    adaptive = gen.get("adaptive_depth", True)
    if tool is None:
        with torch.no_grad():
            tool = TOOLS[int(model(_prompt_batch(model, [prompt_ids], P, language, task)).tool_logits[0].argmax())]
    elif tool not in TOOL_SCHEMAS:
        raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")

    def choose(texts: list[str]) -> str:
        """The most likely of several answer beginnings (each scored as a whole, as tokenized in training)."""
        if len(texts) == 1:
            return texts[0]
        scores = continuation_logprobs(model, prompt_ids, [list(tokenizer.encode(t)) for t in texts], P, language,
                                       task, adaptive)
        return texts[max(range(len(texts)), key=scores.__getitem__)]

    def rest_of(text: str, stop: str = "\n") -> str:
        """Generated text after the forced answer `text`, up to `stop`."""
        return "".join(stream(model, tokenizer, "", language, task, stop=[stop], max_new_tokens=max_arg_tokens,
                              prompt_ids=prompt_ids, forced_ids=list(tokenizer.encode(text)) if text else None, **gen))

    if tool == "none":
        return {"tool": tool, "args": {}, "command": ""}
    if tool == "shell":
        command = _clean(rest_of(""), "string")
        return {"tool": tool, "args": {"command": command}, "command": command}
    if tool == "fs":
        text = choose(list(FS_COMMANDS.values()))
        op = next(o for o, c in FS_COMMANDS.items() if c == text)
        args: dict = {"op": op}
        if op == "write":
            text += " '"
            args["content"] = _clean(rest_of(text, "'"), "string")
            text += args["content"] + "' >"
        rest = rest_of(text)
        words = _words(rest)
        args["path"] = _clean(words[0] if words else "", "path")
        if op in ("move", "copy"):
            args["dest"] = _clean(words[1] if len(words) > 1 else "", "path")
        return {"tool": tool, "args": args, "command": _line(text, rest)}

    text = choose(list(PROGRAMS[tool]))
    args = {}
    schema = TOOL_SCHEMAS[tool]
    if "subcommand" in schema:
        text = choose([f"{text} {option}" for option in schema["subcommand"].options])
        args["subcommand"] = text.rsplit(" ", 1)[1]
    rest = rest_of(text)
    words = [_clean(w, "string") for w in _words(rest)][:max_items]
    if tool == "mvn":
        args.update(goals=[w for w in words if not w.startswith("-")], args=[w for w in words if w.startswith("-")])
    elif tool == "make":
        targets = [w for w in words if not w.startswith("-") and "=" not in w]
        args.update(targets=targets, args=[w for w in words if w not in targets])
    else:
        args["args"] = words
    return {"tool": tool, "args": args, "command": _line(text, rest)}
