"""The language server's model: a model spec (inference/specs.py) turned into text generation that can be
cancelled while it runs.

- `local:` specs load the checkpoint once and decode on inference/engine.py's continuous-batching engine, so
  requests from several documents share batches; a cancelled request's row leaves the batch at the next step.
- `openai:` specs call the endpoint through inference/remote.py, as evaluation does; an HTTP call cannot be
  stopped halfway, so a cancelled request's answer is dropped when it arrives.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from inference.specs import ModelSpec, load_local, parse_spec
from model.vocab import language_id, task_id

POLL_S = 0.01  # how often a waiting request looks at its cancel flag


class Cancelled(Exception):
    """The request was cancelled or superseded before its answer was complete."""


@dataclass(frozen=True)
class Generation:
    prompt: str
    answer_prefix: str = ""  # text the answer starts with (the code before the cursor); the model continues it
    language: str = "none"  # model/vocab.py LANGUAGES
    task: str = "codegen"  # model/vocab.py TASK_TYPES
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()


class LocalModel:
    """A checkpoint on this machine's CPU or GPU, decoding on a BatchEngine."""

    def __init__(self, spec: ModelSpec, max_batch: int = 8):
        from inference.engine import BatchEngine

        model, tokenizer = load_local(spec)
        if tokenizer is None:
            raise ValueError(f"{spec.text}: the checkpoint has no tokenizer/, so it cannot complete text")
        self.name, self.tokenizer = spec.text, tokenizer
        self.engine = BatchEngine(model, tokenizer, max_batch=max_batch, max_queue=64)

    def prompt_ids(self, g: Generation) -> list[int]:
        """Prompt, <|answer|>, answer prefix; cut from the front (the project context goes first) to leave
        room for max_new_tokens, never cutting the answer token or the prefix's last tokens."""
        limit = self.engine.max_seq_len - g.max_new_tokens
        if limit < 2:
            raise ValueError(f"{self.name}: max_new_tokens={g.max_new_tokens} leaves no room for a prompt")
        prefix = self.tokenizer.encode(g.answer_prefix) if g.answer_prefix else []
        prefix = prefix[-(limit - 1):] if len(prefix) > limit - 1 else prefix
        head = self.tokenizer.encode_prompt(g.prompt)
        return head[-(limit - len(prefix)):] + prefix

    def generate(self, g: Generation, cancel: threading.Event | None = None) -> str:
        from inference.engine import Sequence

        pieces, finished, errors = [], threading.Event(), []

        def sink(event):
            if event[0] == "text":
                pieces.append(event[1])
            else:
                if event[0] == "error":
                    errors.append(event[1])
                finished.set()

        max_new = max(1, min(g.max_new_tokens, self.engine.max_seq_len - 2))
        seq = Sequence(prompt_ids=self.prompt_ids(replace(g, max_new_tokens=max_new)),
                       max_new_tokens=max_new, sink=sink, language_id=language_id(g.language),
                       task_id=task_id(g.task), stop=tuple(g.stop))
        self.engine.submit([seq])
        while not finished.wait(POLL_S):
            if cancel is not None and cancel.is_set():
                seq.cancelled = True  # the engine drops the row at its next step
                raise Cancelled()
        if errors:
            raise RuntimeError(f"{self.name}: generation failed: {errors[0]}")
        return "".join(pieces)

    def close(self) -> None:
        self.engine.close()


class EndpointModel:
    """An OpenAI-compatible endpoint (hrm serve, vLLM, llama.cpp, a hosted API); prompt and answer prefix go
    as one text."""

    def __init__(self, spec: ModelSpec):
        from inference.remote import OpenAIEndpoint

        self.name = spec.text
        self.endpoint = OpenAIEndpoint(spec, workers=1, timeout_s=120.0)

    def generate(self, g: Generation, cancel: threading.Event | None = None) -> str:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        text = self.endpoint.complete([g.prompt + g.answer_prefix], [g.language], g.task,
                                      max_new_tokens=g.max_new_tokens, stop=g.stop)[0][0]
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        return text

    def close(self) -> None:
        pass


def load_model(spec_text: str):
    """A LocalModel or EndpointModel for a spec; ValueError naming the spec when it is not one."""
    spec = parse_spec(spec_text)
    return LocalModel(spec) if spec.kind == "local" else EndpointModel(spec)
