"""Quantized weights on disk, loaded without quantizing again.

`<checkpoint>/quantized/<scheme>/` holds two files, written into a temporary sibling directory and renamed:

- `model.safetensors`: per quantized module its int8 weight and per-row absmax scale (`<module>.weight`,
  `<module>.weight.scale`), or its packed nf4 weight, block absmax and code book (`<module>.weight`,
  `<module>.weight.absmax`, `<module>.weight.quant_map`, and the absmax's own `nested_absmax` /
  `nested_quant_map` when bitsandbytes compressed them); every other tensor (norms, biases, the tied
  embedding, the small heads) in fp32 under its state-dict name.
- `manifest.json`: format and version, scheme, the sha256 of the source checkpoint's `model.safetensors`
  and of this `model.safetensors`, every tensor's dtype and shape, per quantized module its class, shape
  and scale range (and the nf4 block layout), and the names tied to another tensor.

Loading checks both hashes, then every tensor's presence, dtype and shape, and builds the bitsandbytes
modules around the stored tensors: no quantization kernel runs. Only safetensors and JSON are read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

FORMAT = "hrm-quantized-weights"
VERSION = 1
ARTIFACT_DIR = "quantized"
WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"
NF4_STATE_TENSORS = ("absmax", "quant_map", "nested_absmax", "nested_quant_map")


class ArtifactError(ValueError):
    """A quantized artifact that does not belong to its checkpoint, or is damaged."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def artifact_dir(checkpoint_dir: str | Path, scheme: str) -> Path:
    return Path(checkpoint_dir) / ARTIFACT_DIR / scheme


def find_artifact(checkpoint_dir: str | Path, scheme: str) -> Path | None:
    """The checkpoint's `scheme` artifact directory, or None; a save cut off between its two renames left the
    previous artifact at `.<scheme>.old`, which is put back."""
    target = artifact_dir(checkpoint_dir, scheme)
    old = target.with_name(f".{scheme}.old")
    if old.is_dir() and not target.is_dir():
        os.replace(old, target)
    return target if target.is_dir() else None


# --- export ----------------------------------------------------------------------------------------------
def _int8_module(name: str, module) -> tuple[dict, dict]:
    scale = getattr(module.weight, "SCB", None)
    if scale is None:  # Linear8bitLt moves its scales into `state` on the first forward
        scale = getattr(getattr(module, "state", None), "SCB", None)
    if scale is None or module.weight.dtype.is_floating_point:
        raise ArtifactError(f"{name}: {type(module).__name__} holds no int8 weights (not quantized yet)")
    tensors = {f"{name}.weight": module.weight.data, f"{name}.weight.scale": scale.float()}
    entry = {"class": type(module).__name__, "shape": list(module.weight.shape),
             "scale": {"tensor": f"{name}.weight.scale", "kind": "per-row absmax (w ≈ q · scale / 127)",
                       "min": float(scale.min()), "max": float(scale.max())}}
    return tensors, entry


def _nf4_module(name: str, module) -> tuple[dict, dict]:
    state = module.weight.quant_state
    if state is None:
        raise ArtifactError(f"{name}: {type(module).__name__} holds no nf4 weights (not quantized yet)")
    if getattr(state, "packing_format_for_cpu", False):
        # bitsandbytes repacks nf4 weights for its CPU kernel on the first forward, lossily (bf16 absmax)
        raise ArtifactError(f"{name}: its nf4 weights were repacked by a forward pass; export the model "
                            "straight after quantize_model")
    parts = state.as_dict(packed=False)
    tensors = {f"{name}.weight": module.weight.data}
    layout = {}
    for key, value in parts.items():
        if key in NF4_STATE_TENSORS:
            tensors[f"{name}.weight.{key}"] = value
        else:
            layout[key] = list(value) if isinstance(value, tuple) else value
    entry = {"class": type(module).__name__, "shape": list(state.shape), "quant_state": layout,
             "scale": {"tensor": f"{name}.weight.absmax", "kind": f"block absmax, blocks of {state.blocksize}"
                       + (" (itself 8-bit, nested)" if state.nested else "")}}
    return tensors, entry


def export_quantized(model) -> tuple[dict, dict, dict]:
    """(tensors, modules, aliases) of a model that `quantize_model` just quantized."""
    import bitsandbytes as bnb

    exporters = {bnb.nn.Linear8bitLt: _int8_module, bnb.nn.Embedding8bit: _int8_module,
                 bnb.nn.Linear4bit: _nf4_module, bnb.nn.Embedding4bit: _nf4_module}
    tensors, modules, aliases, names_of = {}, {}, {}, {}
    for mname, module in model.named_modules():
        exporter = next((f for cls, f in exporters.items() if isinstance(module, cls)), None)
        if exporter is not None:
            own, modules[mname] = exporter(mname, module)
            tensors.update(own)
        quantized_weight = exporter is not None
        own_tensors = [(n, p) for n, p in module.named_parameters(recurse=False)
                       if not (quantized_weight and n == "weight")]
        own_tensors += [(n, b) for n, b in module.named_buffers(recurse=False)
                        if n not in module._non_persistent_buffers_set]
        for pname, tensor in own_tensors:
            full = f"{mname}.{pname}" if mname else pname
            if id(tensor) in names_of:  # a tied weight is stored once
                aliases[full] = names_of[id(tensor)]
                continue
            names_of[id(tensor)] = full
            tensors[full] = tensor.detach()
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, modules, aliases


def save_quantized(model, checkpoint_dir: str | Path, scheme: str, source_sha256: str) -> Path:
    """Write `<checkpoint_dir>/quantized/<scheme>/` (weights, then manifest) into a temporary sibling and swap
    it in with renames; returns it."""
    tensors, modules, aliases = export_quantized(model)
    target = artifact_dir(checkpoint_dir, scheme)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{scheme}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_files(tmp, tensors, modules, aliases, scheme, source_sha256)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.with_name(f".{scheme}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)
    return target


def _write_files(tmp: Path, tensors: dict, modules: dict, aliases: dict, scheme: str, source_sha256: str) -> None:
    import bitsandbytes as bnb
    from safetensors.torch import save_file

    save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT, "scheme": scheme})
    manifest = {"format": FORMAT, "version": VERSION, "scheme": scheme, "source_sha256": source_sha256,
                "weights_file": WEIGHTS, "weights_sha256": sha256_file(tmp / WEIGHTS),
                "bitsandbytes": bnb.__version__, "created_at": time.time(),
                "tensors": {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
                            for k, v in sorted(tensors.items())},
                "modules": modules, "aliases": aliases}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    for path in tmp.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


# --- load ------------------------------------------------------------------------------------------------
def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no quantized artifact here")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not a JSON manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ArtifactError(f"{path}: not a {FORMAT} v{VERSION} manifest")
    for key in ("scheme", "source_sha256", "weights_sha256", "tensors", "modules", "aliases"):
        if key not in manifest:
            raise ArtifactError(f"{path}: the manifest has no {key!r}")
    return manifest


def verify_artifact(directory: str | Path, source_sha256: str, scheme: str | None = None) -> dict:
    """The manifest, once the artifact is shown to come from `source_sha256` and to be undamaged."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    where = directory / MANIFEST
    if scheme is not None and manifest["scheme"] != scheme:
        raise ArtifactError(f"{where}: holds {manifest['scheme']!r} weights, not {scheme!r}")
    if manifest["source_sha256"] != source_sha256:
        raise ArtifactError(f"{where}: quantized from weights {manifest['source_sha256'][:12]}, but the checkpoint's "
                            f"model.safetensors is {source_sha256[:12]}; quantize the checkpoint again")
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise ArtifactError(f"{weights}: missing (the manifest names it)")
    actual = sha256_file(weights)
    if actual != manifest["weights_sha256"]:
        raise ArtifactError(f"{weights}: sha256 {actual[:12]} differs from the manifest's "
                            f"{manifest['weights_sha256'][:12]}: the file is damaged or was changed")
    return manifest


def _read_tensors(weights: Path, manifest: dict) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"{weights}: unreadable safetensors file ({exc})") from None
    expected = manifest["tensors"]
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ArtifactError(f"{weights}: tensors missing {missing[:5]} / not in the manifest {extra[:5]}")
    for name, spec in expected.items():
        t = tensors[name]
        if str(t.dtype).removeprefix("torch.") != spec.get("dtype") or list(t.shape) != spec.get("shape"):
            raise ArtifactError(f"{weights}: {name} is {t.dtype} {list(t.shape)}, the manifest says "
                                f"{spec.get('dtype')} {spec.get('shape')}")
    return tensors


def _take(tensors: dict, name: str, weights: Path):
    if name not in tensors:
        raise ArtifactError(f"{weights}: no tensor {name}")
    return tensors.pop(name)


def _rebuild_module(name: str, entry: dict, old, tensors: dict, weights: Path):
    """The bitsandbytes module `entry` describes, around the stored tensors (no quantization)."""
    import bitsandbytes as bnb
    import torch
    from torch import nn

    cls = entry.get("class")
    linear = cls in ("Linear8bitLt", "Linear4bit")
    want = type(old) is (nn.Linear if linear else nn.Embedding)
    shape = [old.out_features, old.in_features] if linear and want else (
        [old.num_embeddings, old.embedding_dim] if want else None)
    if not want or entry.get("shape") != shape:
        raise ArtifactError(f"{weights}: {name} is a {cls} of shape {entry.get('shape')}, but the model has "
                            f"{type(old).__name__} {shape}")
    q = _take(tensors, f"{name}.weight", weights)
    if cls in ("Linear8bitLt", "Embedding8bit"):
        scale = _take(tensors, f"{name}.weight.scale", weights)
        if q.dtype != torch.int8 or list(scale.shape) != [shape[0]]:
            raise ArtifactError(f"{weights}: {name} needs int8 weights and {shape[0]} row scales")
        if linear:
            new = bnb.nn.Linear8bitLt(shape[1], shape[0], bias=old.bias is not None, has_fp16_weights=False)
        else:
            new = bnb.nn.Embedding8bit(shape[0], shape[1])
        new.weight = bnb.nn.Int8Params(q, requires_grad=False, has_fp16_weights=False, CB=q, SCB=scale)
        return new
    if cls in ("Linear4bit", "EmbeddingNF4"):
        stats = dict(entry.get("quant_state") or {})
        for key in NF4_STATE_TENSORS[:4 if "nested_blocksize" in stats else 2]:
            stats[key] = _take(tensors, f"{name}.weight.{key}", weights)
        if stats.get("quant_type") != "nf4" or list(stats.get("shape") or []) != shape:
            raise ArtifactError(f"{weights}: {name} has no nf4 layout of shape {shape}")
        if linear:
            new = bnb.nn.Linear4bit(shape[1], shape[0], bias=old.bias is not None, compute_dtype=torch.float32,
                                    quant_type="nf4")
        else:
            new = bnb.nn.EmbeddingNF4(shape[0], shape[1])
        try:
            new.weight = bnb.nn.Params4bit.from_prequantized(q, stats, device="cpu", module=new)
        except (KeyError, ValueError, TypeError, AssertionError, AttributeError) as exc:
            raise ArtifactError(f"{weights}: {name}: bad nf4 state ({exc!r})") from None
        return new
    raise ArtifactError(f"{weights}: {name} has an unknown module class {cls!r}")


def load_quantized(model, directory: str | Path, source_sha256: str, scheme: str | None = None):
    """Put the artifact's weights into `model` (fresh from build_model, fp32, on CPU) in place and return it
    in eval mode; ArtifactError naming the file when the artifact does not match or is damaged."""
    directory = Path(directory)
    manifest = verify_artifact(directory, source_sha256, scheme)
    weights = directory / WEIGHTS
    tensors = _read_tensors(weights, manifest)
    for name, entry in manifest["modules"].items():
        try:
            old = model.get_submodule(name)
        except AttributeError:
            raise ArtifactError(f"{weights}: the model has no module {name}") from None
        new = _rebuild_module(name, entry, old, tensors, weights)  # its bias is filled with the fp32 rest below
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, new)
    quantized = set(manifest["modules"])
    named = {}
    for mname, module in model.named_modules():
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if not (mname in quantized and n == "weight")]
        own += [(n, b) for n, b in module.named_buffers(recurse=False) if n not in module._non_persistent_buffers_set]
        for pname, tensor in own:
            named[f"{mname}.{pname}" if mname else pname] = tensor
    aliases = manifest["aliases"]
    for full, tensor in named.items():
        if full in aliases:
            if aliases[full] not in named or named[aliases[full]] is not tensor:
                raise ArtifactError(f"{weights}: {full} is stored as {aliases[full]}, but the model does not tie them")
            continue
        stored = _take(tensors, full, weights)
        if stored.shape != tensor.shape:
            raise ArtifactError(f"{weights}: {full} has shape {list(stored.shape)}, the model {list(tensor.shape)}")
        tensor.data.copy_(stored)
    if tensors:
        raise ArtifactError(f"{weights}: tensors the model does not use: {sorted(tensors)[:5]}")
    return model.eval()
