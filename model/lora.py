"""LoRA adapters on the model's linear layers: a frozen base, a trainable low-rank update, saved alone.

A wrapped layer computes base(x) + scale * B(A(x)) with A [rank, in], B [out, rank] and scale = alpha / rank
(Hu et al. 2021). B starts at zero, so an adapter that has not trained is exactly the base model. Only A
and B train (`add_lora` freezes every other parameter). `merge_lora` folds scale * B @ A into the base
weight (same outputs, no extra matmuls), `unmerge_lora` takes it out again; `bake_lora` merges and puts
the plain nn.Linear back, for inference and quantization.

An adapter directory holds `adapter.safetensors` (the A and B tensors, by module name) and `adapter.json`
(format, rank, alpha, targets, the wrapped modules, the sha256 of the base checkpoint's weights it was
trained on, the sha256 of adapter.safetensors, and free-form metadata). `load_adapter` refuses an adapter
whose recorded base hash is not the model's, or whose tensors are not the ones the json names. Only
safetensors and JSON are read: nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from model.quantize import shared_weight_ids
from model.quantized_artifacts import sha256_file

FORMAT = "hrm-lora-adapter"
VERSION = 1
ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter.json"
# the trunk's linear layers (HRM's L and H blocks, the baseline's blocks): attention and SwiGLU
DEFAULT_TARGETS = ("attn.qkv", "attn.out", "mlp.gate_up", "mlp.down")


class AdapterError(ValueError):
    """An adapter that does not belong to this base model, or is damaged."""


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = DEFAULT_TARGETS  # module-name suffixes of the nn.Linear layers to wrap

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1:
            raise ValueError(f"LoRAConfig.rank={self.rank!r}: must be a positive integer")
        if not self.alpha > 0:
            raise ValueError(f"LoRAConfig.alpha={self.alpha!r}: must be > 0")
        if not self.targets:
            raise ValueError("LoRAConfig.targets: name at least one module suffix")
        object.__setattr__(self, "targets", tuple(self.targets))


class LoRALinear(nn.Module):
    """base(x) + (alpha / rank) * B(A(x)); the base layer is frozen, B starts at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.rank, self.scale = rank, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own init
        self.merged = False

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    def delta(self) -> torch.Tensor:
        """The update scale * B @ A, shaped like the base weight."""
        return (self.lora_B @ self.lora_A) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        return y + F.linear(F.linear(x, self.lora_A.to(x.dtype)), self.lora_B.to(x.dtype)) * self.scale

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base.weight += self.delta().to(self.base.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight -= self.delta().to(self.base.weight.dtype)
            self.merged = False


def add_lora(model: nn.Module, config: LoRAConfig) -> list[str]:
    """Freeze every parameter of `model` and wrap each nn.Linear whose name ends with one of config.targets;
    the wrapped names. ValueError when nothing matches, or a match is a tied weight."""
    for p in model.parameters():
        p.requires_grad_(False)
    shared = shared_weight_ids(model)  # a tied head: merging into one would change both
    names = [name for name, m in model.named_modules()
             if type(m) is nn.Linear and any(name == t or name.endswith("." + t) for t in config.targets)]
    if not names:
        raise ValueError(f"LoRA targets {config.targets} match no nn.Linear of the model")
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        base = getattr(parent, attr)
        if id(base.weight) in shared:
            raise ValueError(f"LoRA target {name}: its weight is tied to another module")
        setattr(parent, attr, LoRALinear(base, config.rank, config.alpha))
    return names


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's tensors by name (`<module>.lora_A`, `<module>.lora_B`), detached on the CPU."""
    out = {}
    for name, m in lora_modules(model).items():
        out[f"{name}.lora_A"] = m.lora_A.detach().cpu().contiguous()
        out[f"{name}.lora_B"] = m.lora_B.detach().cpu().contiguous()
    return out


def merge_lora(model: nn.Module) -> None:
    for m in lora_modules(model).values():
        m.merge()


def unmerge_lora(model: nn.Module) -> None:
    for m in lora_modules(model).values():
        m.unmerge()


def bake_lora(model: nn.Module) -> nn.Module:
    """Merge every adapter into its base weight and put the plain nn.Linear back: the model is then an
    ordinary model (quantizable, as fast as the base); returns it."""
    for name, m in lora_modules(model).items():
        m.merge()
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, m.base)
    return model


def save_adapter(directory: str | Path, model: nn.Module, config: LoRAConfig, base_sha256: str,
                 metadata: dict | None = None) -> Path:
    """Write the adapter's tensors and adapter.json into `directory` (a temporary sibling renamed in place)."""
    from safetensors.torch import save_file

    state = adapter_state(model)
    if not state:
        raise ValueError("the model has no LoRA modules to save")
    if any(m.merged for m in lora_modules(model).values()):
        raise ValueError("save the adapter unmerged (unmerge_lora first)")
    out = Path(directory)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(state, str(tmp / ADAPTER_WEIGHTS))
    doc = {"format": FORMAT, "version": VERSION, "rank": config.rank, "alpha": config.alpha,
           "targets": list(config.targets), "modules": sorted(lora_modules(model)), "base_sha256": base_sha256,
           "adapter_sha256": sha256_file(tmp / ADAPTER_WEIGHTS), "metadata": metadata or {}}
    (tmp / ADAPTER_CONFIG).write_text(json.dumps(doc, indent=1))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def read_adapter_config(directory: str | Path) -> dict:
    path = Path(directory) / ADAPTER_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not an adapter (no {ADAPTER_CONFIG})")
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise AdapterError(f"{path}: format {doc.get('format')!r} v{doc.get('version')}, expected {FORMAT!r} "
                           f"v{VERSION}")
    return doc


def load_adapter(model: nn.Module, directory: str | Path, base_sha256: str, *, bake: bool = True) -> dict:
    """Wrap `model` with the adapter in `directory` and load its tensors; with `bake`, merge it into the base
    weights (an ordinary model, no LoRA modules left). AdapterError when the adapter was trained on other
    base weights (`base_sha256`: the sha256 of the model's model.safetensors), its file's hash is not the one
    recorded, or its tensors are not those of its modules. Returns adapter.json's content."""
    from safetensors.torch import load_file

    directory = Path(directory)
    doc = read_adapter_config(directory)
    if doc["base_sha256"] != base_sha256:
        raise AdapterError(f"{directory}: trained on base weights {doc['base_sha256'][:12]}, not on this "
                           f"checkpoint's {base_sha256[:12]}")
    weights = directory / ADAPTER_WEIGHTS
    if not weights.is_file() or sha256_file(weights) != doc["adapter_sha256"]:
        raise AdapterError(f"{weights}: missing, or its sha256 is not the one {ADAPTER_CONFIG} records")
    config = LoRAConfig(rank=int(doc["rank"]), alpha=float(doc["alpha"]), targets=tuple(doc["targets"]))
    names = add_lora(model, config)
    if sorted(names) != sorted(doc["modules"]):
        raise AdapterError(f"{directory}: adapts modules {doc['modules'][:3]}..., this model has {names[:3]}...")
    state = load_file(str(weights))
    modules = lora_modules(model)
    expected = {f"{n}.lora_{x}" for n in modules for x in "AB"}
    if set(state) != expected:
        raise AdapterError(f"{weights}: tensors {sorted(set(state) ^ expected)[:4]} missing or unexpected")
    with torch.no_grad():
        for name, m in modules.items():
            for x in "AB":
                param, tensor = getattr(m, f"lora_{x}"), state[f"{name}.lora_{x}"]
                if tensor.shape != param.shape:
                    raise AdapterError(f"{weights}: {name}.lora_{x} has shape {tuple(tensor.shape)}, "
                                       f"expected {tuple(param.shape)}")
                param.copy_(tensor)
    if bake:
        bake_lora(model)
    return doc
