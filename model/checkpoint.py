"""Checkpoint directories: written atomically, loaded for inference or to resume training exactly.

Layout: model.safetensors, config.json (ModelConfig), train_config.json, tokenizer/ (copied),
optimizer.pt, rng.pt (per-rank RNG states), trainer_state.json (step, tokens, sampler position, history),
and quantized/<scheme>/ once the weights are quantized (model/quantized_artifacts.py).
optimizer.pt and rng.pt are our own files and load with torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"
TRAIN_CONFIG = "train_config.json"
TOKENIZER_DIR = "tokenizer"
OPTIMIZER = "optimizer.pt"
RNG = "rng.pt"
TRAINER_STATE = "trainer_state.json"


def _old_path(directory: Path) -> Path:
    return directory.with_name(f".{directory.name}.old")


def is_checkpoint(directory: str | Path) -> bool:
    directory = Path(directory)
    return (directory / WEIGHTS).is_file() and (directory / MODEL_CONFIG).is_file()


def recover(directory: str | Path) -> None:
    """Finish a save interrupted between its two renames: the previous checkpoint waits at .<name>.old."""
    directory = Path(directory)
    old = _old_path(directory)
    if old.is_dir():
        if is_checkpoint(directory):
            shutil.rmtree(old)
        else:
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(old, directory)


def unwrap(model):
    """The plain module under torch.compile and DDP wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def save_checkpoint(out_dir: str | Path, model, model_config, *, train_config: dict | None = None,
                    tokenizer_dir: str | Path | None = None, optimizer=None, rng_states: list | None = None,
                    trainer_state: dict | None = None) -> Path:
    """Write every file into a temporary sibling directory, then swap it in with renames."""
    import torch
    from safetensors.torch import save_model

    out = Path(out_dir)
    recover(out)
    if out.exists() and any(out.iterdir()) and not is_checkpoint(out):
        raise ValueError(f"{out}: exists and holds files that are not a checkpoint; choose an empty --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(unwrap(model), str(tmp / WEIGHTS))  # handles tied weights
    (tmp / MODEL_CONFIG).write_text(json.dumps(model_config.to_dict(), indent=1))
    if train_config is not None:
        (tmp / TRAIN_CONFIG).write_text(json.dumps(train_config, indent=1))
    if tokenizer_dir is None and (out / TOKENIZER_DIR).is_dir():
        tokenizer_dir = out / TOKENIZER_DIR  # a resumed run without --tokenizer keeps the one it has
    if tokenizer_dir is not None:
        shutil.copytree(tokenizer_dir, tmp / TOKENIZER_DIR)
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER)
    if rng_states is not None:
        torch.save(rng_states, tmp / RNG)
    if trainer_state is not None:
        (tmp / TRAINER_STATE).write_text(json.dumps(trainer_state))
    for path in tmp.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    if out.exists():
        os.replace(out, _old_path(out))
    os.replace(tmp, out)
    if _old_path(out).exists():
        shutil.rmtree(_old_path(out))
    return out


def load_model_config(directory: str | Path):
    from model.config import ModelConfig

    path = Path(directory) / MODEL_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint (no {MODEL_CONFIG})")
    try:
        return ModelConfig.from_dict(json.loads(path.read_text()))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_weights(model, directory: str | Path) -> None:
    from safetensors.torch import load_model

    path = Path(directory) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint (no {WEIGHTS})")
    load_model(unwrap(model), str(path), strict=True)


def load_checkpoint(directory: str | Path, quantization: str | None = None, device=None, *,
                    require_artifact: bool = False, adapter: str | Path | None = None):
    """(model in eval mode, CodeTokenizer or None when the checkpoint has no tokenizer/).

    With `quantization`, the saved artifact `quantized/<scheme>/` is loaded when present (it must match
    this checkpoint's weights: model.quantized_artifacts.ArtifactError otherwise); without one, the fp32
    weights are quantized in memory, or FileNotFoundError when `require_artifact`.

    With `adapter` (a directory written by model.lora.save_adapter), the adapter is merged into the fp32
    weights (model.lora.AdapterError when it was trained on other weights than this checkpoint's); with
    `quantization` too, the merged weights are quantized in memory (the saved artifact is of the base)."""
    from model import build_model
    from model.tokenizer import CodeTokenizer

    directory = Path(directory)
    recover(directory)
    model = build_model(load_model_config(directory))
    if adapter is not None:
        from model.lora import load_adapter
        from model.quantized_artifacts import sha256_file

        if quantization is not None and require_artifact:
            raise FileNotFoundError(f"{adapter}: an adapter is merged into the fp32 weights, so no saved "
                                    f"{quantization} artifact can hold it")
        load_weights(model, directory)
        load_adapter(model, adapter, sha256_file(directory / WEIGHTS), bake=True)
        if quantization is not None:
            from model.quantize import quantize_model

            model = quantize_model(model.eval(), quantization, device=device)
        elif device is not None:
            model = model.to(device)
    elif quantization is not None:
        from model.quantize import KINDS, quantize_model
        from model.quantized_artifacts import artifact_dir, find_artifact, load_quantized, sha256_file

        if quantization not in KINDS:
            raise ValueError(f"quantization={quantization!r}: expected one of {KINDS}")
        artifact = find_artifact(directory, quantization)
        if artifact is not None:
            weights = directory / WEIGHTS
            if not weights.is_file():
                raise FileNotFoundError(f"{weights}: not a checkpoint (no {WEIGHTS})")
            model = load_quantized(model, artifact, sha256_file(weights), quantization)
            if device is not None:
                model = model.to(device)
        elif require_artifact:
            raise FileNotFoundError(f"{artifact_dir(directory, quantization)}: no {quantization} artifact for this "
                                    "checkpoint (write one with model.checkpoint.quantize_checkpoint)")
        else:
            load_weights(model, directory)
            model = quantize_model(model.eval(), quantization, device=device)
    else:
        load_weights(model, directory)
        if device is not None:
            model = model.to(device)
    model.eval()
    tokenizer = CodeTokenizer.load(directory / TOKENIZER_DIR) if (directory / TOKENIZER_DIR).is_dir() else None
    return model, tokenizer


def quantize_checkpoint(directory: str | Path, scheme: str) -> Path:
    """Quantize the checkpoint's fp32 weights and save them as `quantized/<scheme>/` beside them (atomically,
    replacing an older artifact); returns that directory."""
    from model import build_model
    from model.quantize import quantize_model
    from model.quantized_artifacts import save_quantized, sha256_file

    directory = Path(directory)
    recover(directory)
    source = sha256_file(directory / WEIGHTS)
    model = build_model(load_model_config(directory))
    load_weights(model, directory)
    return save_quantized(quantize_model(model.eval(), scheme, device="cpu"), directory, scheme, source)


def load_training_state(directory: str | Path, model, optimizer) -> tuple[dict, list | None]:
    """Restore weights and optimizer in place; return (trainer_state, rng_states)."""
    import torch

    directory = Path(directory)
    load_weights(model, directory)
    optimizer.load_state_dict(torch.load(directory / OPTIMIZER, weights_only=True))
    rng = torch.load(directory / RNG, weights_only=True) if (directory / RNG).is_file() else None
    return json.loads((directory / TRAINER_STATE).read_text()), rng
