"""Model specs: one way to name a model everywhere (`--model SPEC`, the report's model list).

- `local:CKPT_DIR[@int8|@nf4]`: one of our checkpoints, fp32 or quantized (its saved artifact when there is
  one, else quantized on load).
- `local:CKPT_DIR+ADAPTER_DIR[@int8|@nf4]`: that checkpoint with a LoRA adapter (model/lora.py, a specialist
  from training/adapters.py) merged into its weights; loading refuses an adapter trained on other weights.
  With a quantization, the merged weights are quantized on load.
- `openai:BASE_URL#MODEL`: any OpenAI-compatible endpoint (hrm serve, vLLM, llama.cpp's server, a hosted API).
  The key comes from HRM_OPENAI_API_KEY, else OPENAI_API_KEY; it is never part of the spec, never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from resources.settings import env_str

QUANTIZATIONS = ("int8", "nf4")
PREFIXES = ("local:", "openai:")


@dataclass(frozen=True)
class ModelSpec:
    text: str  # the spec as written
    kind: str  # "local" | "openai"
    path: str = ""  # local: the checkpoint directory
    quantization: str | None = None  # local: int8 / nf4
    adapter: str = ""  # local: a LoRA adapter directory merged into the checkpoint's weights
    base_url: str = ""  # openai: ends with /v1 (or whatever the endpoint's API root is)
    model: str = ""  # openai: the model id the endpoint serves


def is_spec(text: str) -> bool:
    return text.startswith(PREFIXES)


def parse_spec(text: str) -> ModelSpec:
    """ValueError, naming the spec and the expected forms, when `text` is not a spec."""
    forms = "expected local:CKPT_DIR[+ADAPTER_DIR][@int8|@nf4] or openai:BASE_URL#MODEL"
    if text.startswith("local:"):
        path, quant = text[len("local:"):], None
        if "@" in path:
            path, _, quant = path.rpartition("@")
            if quant not in QUANTIZATIONS:
                raise ValueError(f"model spec {text!r}: quantization must be one of "
                                 f"{', '.join(QUANTIZATIONS)}; {forms}")
        path, plus, adapter = path.partition("+")
        if not path:
            raise ValueError(f"model spec {text!r}: no checkpoint directory; {forms}")
        if plus and not adapter:
            raise ValueError(f"model spec {text!r}: no adapter directory after '+'; {forms}")
        return ModelSpec(text, "local", path=path, quantization=quant, adapter=adapter)
    if text.startswith("openai:"):
        url, sep, model = text[len("openai:"):].partition("#")
        parsed = urlparse(url)
        if not sep or not model or parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"model spec {text!r}: needs an http(s) base URL and a model id; {forms}")
        return ModelSpec(text, "openai", base_url=url.rstrip("/"), model=model)
    raise ValueError(f"model spec {text!r}: {forms}")


def load_local(spec: ModelSpec, device=None):
    """(model, tokenizer or None) of a `local:` spec: the checkpoint, its adapter merged in, quantized as asked."""
    from model.checkpoint import load_checkpoint

    if spec.kind != "local":
        raise ValueError(f"model spec {spec.text!r} is not a local checkpoint")
    return load_checkpoint(spec.path, quantization=spec.quantization, device=device, adapter=spec.adapter or None)


def local_hash(spec: ModelSpec) -> str:
    """The first 12 hex digits of the checkpoint's weights' sha256, `+` those of the adapter's tensors."""
    from pathlib import Path

    from model.checkpoint import WEIGHTS
    from model.quantized_artifacts import sha256_file

    digest = sha256_file(Path(spec.path) / WEIGHTS)[:12]
    if spec.adapter:
        from model.lora import read_adapter_config

        digest += "+" + read_adapter_config(spec.adapter)["adapter_sha256"][:12]
    return digest


def api_key() -> str:
    """The endpoint's key (local servers take any)."""
    return env_str("HRM_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
