"""Quantized weights saved as artifacts (model/quantized_artifacts.py): a round trip equals quantizing in
memory, loading runs no quantization kernel, and a damaged, foreign or pickled artifact is refused with
the file named."""

import copy
import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import build_model
from model import quantized_artifacts as qa
from model.checkpoint import WEIGHTS, load_checkpoint, quantize_checkpoint, save_checkpoint
from model.config import ModelConfig
from model.quantize import quantize_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KINDS = ("int8", "nf4")


def tiny_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    config = ModelConfig.preset("tiny", max_seq_len=64, vocab_size=300)
    model = build_model(config).eval()
    save_checkpoint(path, model, config)
    return model


@pytest.fixture
def checkpoint(tmp_path):
    out = tmp_path / "ckpt"
    return out, tiny_checkpoint(out)


BATCH = {"input_ids": torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(1)),
         "prompt_len": torch.tensor([5, 9])}


def logits(model):
    with torch.no_grad():
        return model(dict(BATCH)).logits


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_saved_artifact_loads_to_the_model_quantized_in_memory(checkpoint, kind):
    out, fp32 = checkpoint
    in_memory = quantize_model(copy.deepcopy(fp32), kind)
    directory = quantize_checkpoint(out, kind)
    assert directory == out / "quantized" / kind and sorted(p.name for p in directory.iterdir()) == [
        "manifest.json", "model.safetensors"]
    loaded, _ = load_checkpoint(out, quantization=kind, require_artifact=True)
    assert [type(m).__name__ for m in loaded.modules()] == [type(m).__name__ for m in in_memory.modules()]
    assert torch.equal(logits(loaded), logits(in_memory))
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["scheme"] == kind and manifest["source_sha256"] == qa.sha256_file(out / WEIGHTS)
    assert manifest["weights_sha256"] == qa.sha256_file(directory / "model.safetensors")
    stored = load_file(str(directory / "model.safetensors"))
    assert {k: [str(v.dtype).removeprefix("torch."), list(v.shape)] for k, v in stored.items()} == {
        k: [s["dtype"], s["shape"]] for k, s in manifest["tensors"].items()}
    qtype = torch.int8 if kind == "int8" else torch.uint8
    for name, entry in manifest["modules"].items():
        assert stored[f"{name}.weight"].dtype == qtype and entry["scale"]["tensor"] in stored
    assert sum(v.numel() * v.element_size() for v in stored.values()) < 0.5 * sum(
        p.numel() * p.element_size() for p in fp32.parameters())


def counting(monkeypatch, owner, name, calls):
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


@pytest.mark.parametrize("kind", KINDS)
def test_loading_an_artifact_runs_no_quantization(checkpoint, monkeypatch, kind):
    import bitsandbytes.functional as bf

    from model import quantize

    out, _ = checkpoint
    calls = []
    for owner, name in ((bf, "int8_vectorwise_quant"), (bf, "quantize_4bit"), (quantize, "quantize_model")):
        counting(monkeypatch, owner, name, calls)
    load_checkpoint(out, quantization=kind)  # no artifact yet: quantized in memory, and the counters see it
    assert "quantize_model" in calls and {"int8_vectorwise_quant", "quantize_4bit"} & set(calls)
    quantize_checkpoint(out, kind)
    calls.clear()
    model, _ = load_checkpoint(out, quantization=kind)
    assert calls == []
    logits(model)


def test_a_missing_artifact_is_named_when_required(checkpoint):
    out, _ = checkpoint
    with pytest.raises(FileNotFoundError, match=r"quantized/int8: no int8 artifact"):
        load_checkpoint(out, quantization="int8", require_artifact=True)
    with pytest.raises(ValueError, match="quantization"):
        load_checkpoint(out, quantization="int3")


def rewrite(directory, tensors, manifest_edit=None):
    """Write `tensors` as the artifact's weights and make the manifest agree (an attacker who re-hashes)."""
    save_file(tensors, str(directory / "model.safetensors"))
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["weights_sha256"] = qa.sha256_file(directory / "model.safetensors")
    manifest["tensors"] = {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
                           for k, v in tensors.items()}
    if manifest_edit:
        manifest_edit(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_changed_bytes_are_refused_naming_the_file(checkpoint):
    out, _ = checkpoint
    directory = quantize_checkpoint(out, "int8")
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # one bit of one int8 weight
    weights.write_bytes(bytes(data))
    with pytest.raises(qa.ArtifactError, match=rf"{weights}: sha256 .* differs from the manifest"):
        load_checkpoint(out, quantization="int8")


def test_an_artifact_of_other_weights_is_refused(checkpoint, tmp_path):
    out, _ = checkpoint
    quantize_checkpoint(out, "nf4")
    tiny_checkpoint(out, seed=1)  # the checkpoint is retrained; the saved quantized/ is gone with the old dir
    assert not (out / "quantized").exists()
    other = tmp_path / "other"
    tiny_checkpoint(other, seed=2)
    (out / "quantized").mkdir()
    quantize_checkpoint(other, "nf4").rename(out / "quantized" / "nf4")  # an artifact of another model
    with pytest.raises(qa.ArtifactError, match=rf"{out / 'quantized' / 'nf4' / 'manifest.json'}: quantized from "
                                               r"weights \w+, but the checkpoint's model.safetensors is"):
        load_checkpoint(out, quantization="nf4")


def test_a_manifest_of_another_scheme_is_refused(checkpoint):
    out, _ = checkpoint
    (out / "quantized").mkdir()
    quantize_checkpoint(out, "int8").rename(out / "quantized" / "nf4")
    with pytest.raises(qa.ArtifactError, match=r"nf4/manifest.json: holds 'int8' weights, not 'nf4'"):
        load_checkpoint(out, quantization="nf4")


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_tensor_is_refused_even_when_the_hashes_agree(checkpoint, kind):
    out, _ = checkpoint
    directory = quantize_checkpoint(out, kind)
    tensors = load_file(str(directory / "model.safetensors"))
    victim = sorted(k for k in tensors if k.endswith(".weight.scale" if kind == "int8" else ".weight.absmax"))[0]
    del tensors[victim]
    rewrite(directory, tensors)
    with pytest.raises(qa.ArtifactError, match=rf"{directory / 'model.safetensors'}: no tensor {victim}"):
        load_checkpoint(out, quantization=kind)


def test_a_tensor_listed_but_absent_or_of_another_shape_is_refused(checkpoint):
    out, _ = checkpoint
    directory = quantize_checkpoint(out, "int8")
    tensors = load_file(str(directory / "model.safetensors"))
    name = sorted(k for k in tensors if k.endswith(".weight.scale"))[0]
    rewrite(directory, {**tensors, name: tensors[name][:-1].contiguous()})
    module = name.removesuffix(".weight.scale")
    with pytest.raises(qa.ArtifactError, match=rf"model.safetensors: {module} needs int8 weights and 64 row scales"):
        load_checkpoint(out, quantization="int8")
    rewrite(directory, {k: v for k, v in tensors.items() if k != name},
            manifest_edit=lambda m: m["tensors"].update({name: {"dtype": "float32", "shape": [64]}}))
    with pytest.raises(qa.ArtifactError, match=rf"model.safetensors: tensors missing \['{name}'\]"):
        load_checkpoint(out, quantization="int8")


def test_a_pickle_posing_as_the_weights_is_never_unpickled(checkpoint, tmp_path):
    out, _ = checkpoint
    directory = quantize_checkpoint(out, "int8")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    weights = directory / "model.safetensors"
    weights.write_bytes(pickle.dumps(Payload()))
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["weights_sha256"] = qa.sha256_file(weights)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(qa.ArtifactError, match=rf"{weights}: unreadable safetensors file"):
        load_checkpoint(out, quantization="int8")
    assert not marker.exists()


def test_a_broken_manifest_is_refused_naming_it(checkpoint):
    out, _ = checkpoint
    directory = quantize_checkpoint(out, "int8")
    (directory / "manifest.json").write_text("{not json")
    with pytest.raises(qa.ArtifactError, match=rf"{directory / 'manifest.json'}: not a JSON manifest"):
        load_checkpoint(out, quantization="int8")
    (directory / "manifest.json").write_text(json.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(qa.ArtifactError, match="manifest.json: not a hrm-quantized-weights v1 manifest"):
        load_checkpoint(out, quantization="int8")


def test_an_interrupted_save_keeps_the_previous_artifact(checkpoint, monkeypatch):
    out, _ = checkpoint
    directory = quantize_checkpoint(out, "int8")
    before = (directory / "manifest.json").read_text()

    real = qa.sha256_file

    def crash(path):
        if ".int8.tmp-" in str(path):  # hashing the new weights file, written into the temporary directory
            raise OSError("disk full")
        return real(path)

    monkeypatch.setattr(qa, "sha256_file", crash)
    with pytest.raises(OSError, match="disk full"):
        quantize_checkpoint(out, "int8")
    monkeypatch.undo()
    assert (directory / "manifest.json").read_text() == before
    assert sorted(p.name for p in (out / "quantized").iterdir()) == ["int8"]  # no temporary left behind
    load_checkpoint(out, quantization="int8", require_artifact=True)


def test_a_save_cut_off_between_its_renames_leaves_the_previous_artifact_loadable(checkpoint):
    out, _ = checkpoint
    directory = quantize_checkpoint(out, "nf4")
    directory.rename(directory.with_name(".nf4.old"))  # the first rename done, the second not
    load_checkpoint(out, quantization="nf4", require_artifact=True)
    assert sorted(p.name for p in (out / "quantized").iterdir()) == ["nf4"]


def test_an_nf4_model_repacked_by_a_forward_is_not_exported(checkpoint):
    import bitsandbytes as bnb

    _, fp32 = checkpoint
    model = quantize_model(copy.deepcopy(fp32), "nf4")
    logits(model)
    packed = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)
              and getattr(m.weight.quant_state, "packing_format_for_cpu", False)]
    if not packed:
        pytest.skip("this CPU has no avx512-bf16: bitsandbytes keeps the nf4 layout")
    with pytest.raises(qa.ArtifactError, match="repacked by a forward pass"):
        qa.export_quantized(model)


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(40, 64)
        self.proj = torch.nn.Linear(64, 64)
        self.head = torch.nn.Linear(64, 40, bias=False)
        self.head.weight = self.embed.weight
        self.norm = torch.nn.LayerNorm(64)

    def forward(self, ids):
        return self.head(self.norm(self.proj(self.embed(ids))))


@pytest.mark.parametrize("kind", KINDS)
def test_a_tied_weight_is_stored_once_and_stays_tied(tmp_path, kind):
    torch.manual_seed(0)
    reference = quantize_model(Tied(), kind)
    directory = qa.save_quantized(reference, tmp_path, kind, "0" * 64)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["aliases"] == {"head.weight": "embed.weight"}
    loaded = qa.load_quantized(Tied(), directory, "0" * 64, kind)
    assert loaded.head.weight is loaded.embed.weight
    ids = torch.arange(12).view(2, 6)
    with torch.no_grad():
        assert torch.equal(loaded(ids), reference(ids))
    untied = Tied()
    untied.head.weight = torch.nn.Parameter(untied.embed.weight.detach().clone())
    with pytest.raises(qa.ArtifactError, match="head.weight is stored as embed.weight, but the model does not tie"):
        qa.load_quantized(untied, directory, "0" * 64, kind)
