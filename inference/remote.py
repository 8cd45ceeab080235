"""Completions from an OpenAI-compatible endpoint, as evaluation asks for them: many prompts, n samples each,
sent concurrently (the server batches them), each answer cut before the first stop string.

When the endpoint is `hrm serve` (its /v1/models says owned_by "hrm-code"), each request also carries our
extensions: the language and task embeddings and `truncate: "left"`, so the server fits a long prompt exactly
as local evaluation does and greedy answers equal the local ones.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from inference.specs import ModelSpec, api_key
from model.generate import cut_at_stop

MAX_STOP = 4  # the OpenAI API's limit; further stop strings are applied here


def connect(spec: ModelSpec, key: str = "", timeout_s: float = 600.0):
    """(an OpenAI client for `spec`'s endpoint, whether it is `hrm serve`), after checking that the endpoint
    serves the model: ConnectionError when it cannot be listed, ValueError naming what it serves instead."""
    import openai

    client = openai.OpenAI(base_url=spec.base_url, api_key=key or api_key(), timeout=timeout_s, max_retries=2)
    try:
        served = {m.id: m for m in client.models.list().data}
    except openai.APIError as exc:
        raise ConnectionError(f"{spec.text}: cannot list the endpoint's models: {exc}") from None
    if spec.model not in served:
        raise ValueError(f"{spec.text}: the endpoint serves {sorted(served)}, not {spec.model!r}")
    return client, getattr(served[spec.model], "owned_by", "") == "hrm-code"


class OpenAIEndpoint:
    def __init__(self, spec: ModelSpec, workers: int = 8, timeout_s: float = 600.0, key: str = ""):
        """`key`: the endpoint's key when the caller holds it (a Dagster resource), else api_key()."""
        self.spec, self.workers = spec, workers
        self._client, self.ours = connect(spec, key, timeout_s)
        self.completion_tokens = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the key
        return f"OpenAIEndpoint({self.spec.text!r})"

    def _one(self, prompt: str, language: str, task: str, *, max_new_tokens: int, n: int, temperature: float,
             stop: tuple[str, ...], seed: int) -> list[str]:
        extra = {"language": language, "task": task, "truncate": "left"} if self.ours else {}
        r = self._client.completions.create(model=self.spec.model, prompt=prompt, max_tokens=max_new_tokens, n=n,
                                            temperature=temperature, top_p=0.95 if temperature else 1.0,
                                            stop=list(stop[:MAX_STOP]) or None, seed=seed, extra_body=extra)
        if r.usage is not None:
            with self._lock:
                self.completion_tokens += r.usage.completion_tokens
        texts = [c.text for c in sorted(r.choices, key=lambda c: c.index)]
        if len(texts) != n:
            raise ValueError(f"{self.spec.text}: asked for {n} completions, got {len(texts)}")
        return [cut_at_stop(t, stop)[0] for t in texts]

    def complete(self, prompts: list[str], languages: list[str], task: str, *, max_new_tokens: int, n: int = 1,
                 temperature: float = 0.0, stop: tuple[str, ...] = (), seed: int = 0) -> list[list[str]]:
        """n completions per prompt, in prompt order. Sample j of prompt i has seed + i * n + j (hrm serve gives
        sample j of a request seed + j), as in local evaluation."""
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(lambda i: self._one(prompts[i], languages[i], task, max_new_tokens=max_new_tokens,
                                                     n=n, temperature=temperature, stop=stop, seed=seed + i * n),
                                 range(len(prompts))))
