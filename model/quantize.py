"""Weight quantization with bitsandbytes (int8 Linear8bitLt, nf4 Linear4bit; both run on CPU) and 8-bit
quantization-aware training (fake-quant in the forward pass, straight-through gradients).

Quantized modules are built empty, given the fp32 state dict, and only then moved with `.to(device)`:
bitsandbytes quantizes during that move, and refuses a 4-bit move before the weights are loaded.
"""

from __future__ import annotations

import torch
from torch import nn

KINDS = ("int8", "nf4")


def shared_weight_ids(model: nn.Module) -> set[int]:
    """ids of parameters used by more than one module (a tied embedding / LM head keeps its fp32 weight)."""
    seen: dict[int, int] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            seen[id(p)] = seen.get(id(p), 0) + 1
    return {pid for pid, count in seen.items() if count > 1}


def _quantized_linear(linear: nn.Linear, kind: str) -> nn.Module:
    import bitsandbytes as bnb

    bias = linear.bias is not None
    if kind == "int8":
        new = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=bias, has_fp16_weights=False)
    else:
        new = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=bias,
                                compute_dtype=torch.float32, quant_type="nf4")
    new.load_state_dict({k: v.detach().float() for k, v in linear.state_dict().items()})
    return new


def _quantized_embedding(embedding: nn.Embedding, kind: str) -> nn.Module:
    import bitsandbytes as bnb

    cls = bnb.nn.Embedding8bit if kind == "int8" else bnb.nn.EmbeddingNF4
    new = cls(embedding.num_embeddings, embedding.embedding_dim)
    new.load_state_dict({"weight": embedding.weight.detach().float()})
    return new


def quantize_model(model: nn.Module, kind: str, *, device=None, embeddings: bool = True,
                   skip: tuple[str, ...] = ()) -> nn.Module:
    """Replace every nn.Linear (and, with `embeddings`, every nn.Embedding) by its bitsandbytes version.

    Modules whose weight is shared with another module, or whose name contains a string in `skip`, stay
    fp32. The model is changed in place, put in eval mode and returned.
    """
    if kind not in KINDS:
        raise ValueError(f"quantization={kind!r}: expected one of {KINDS}")
    if device is None:
        device = next(model.parameters()).device
    shared = shared_weight_ids(model)
    targets = []
    for name, module in model.named_modules():
        if any(s in name for s in skip) or not hasattr(module, "weight") or id(module.weight) in shared:
            continue
        if type(module) in (nn.Linear, FakeQuantLinear):
            # bitsandbytes' CPU nf4 kernel packs rows in blocks of 32: tiny heads (Q, edit, tool) stay fp32
            if kind == "nf4" and module.out_features % 32:
                continue
            targets.append((name, _quantized_linear(module, kind)))
        elif embeddings and type(module) is nn.Embedding and module.padding_idx is None and not module.sparse:
            targets.append((name, _quantized_embedding(module, kind)))
    for name, new in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new.to(device))
    return model.eval()


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every distinct parameter and persistent buffer, with bitsandbytes' quantization statistics
    (int8 row scales, nf4 block absmax and codebooks); RoPE tables and other non-persistent buffers excluded."""
    seen: set[int] = set()

    def size(t) -> int:
        if not isinstance(t, torch.Tensor) or t.numel() == 0 or t.data_ptr() in seen:
            return 0
        seen.add(t.data_ptr())
        return t.numel() * t.element_size()

    total = 0
    for module in model.modules():
        tensors = list(module.parameters(recurse=False))
        tensors += [b for name, b in module.named_buffers(recurse=False)
                    if name not in module._non_persistent_buffers_set]
        for t in tensors:
            total += size(t) + size(getattr(t, "SCB", None))
            state = getattr(t, "quant_state", None)
            while state is not None:  # nf4 statistics may themselves be quantized (nested)
                total += size(state.absmax) + size(state.code)
                state = getattr(state, "state2", None)
    return total


def fake_quant_int8(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Symmetric absmax int8 round trip along `dim` (per row), with a straight-through gradient."""
    scale = x.detach().abs().amax(dim=dim, keepdim=True).clamp(min=1e-8) / 127.0
    q = torch.clamp(torch.round(x / scale), -127, 127) * scale
    return x + (q - x).detach()


class FakeQuantLinear(nn.Linear):
    """nn.Linear whose forward sees int8-rounded weights (per output row) and activations (per token),
    as Linear8bitLt computes them; parameters and state-dict keys are those of nn.Linear."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(fake_quant_int8(x), fake_quant_int8(self.weight), self.bias)


def enable_qat(model: nn.Module) -> int:
    """Switch every plain nn.Linear to FakeQuantLinear in place; returns how many were switched."""
    count = 0
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = FakeQuantLinear
            count += 1
    return count


def disable_qat(model: nn.Module) -> None:
    for module in model.modules():
        if type(module) is FakeQuantLinear:
            module.__class__ = nn.Linear
