"""Measuring a quantized checkpoint against fp32: held-out loss on synthetic tasks, weight bytes, tokens/s."""

from __future__ import annotations

import time

from datagen.curriculum import tokenize_examples
from model.vocab import language_id, task_id


def heldout_batch(warehouse, tokenizer, max_seq_len: int, limit: int):
    """A padded batch of held-out synthetic tasks (split "test"), for teacher-forced loss."""
    from model.data import Example, collate

    rows = [r for r in warehouse.read_table("synthetic_tasks").to_pylist() if r["split"] == "test"]
    examples = [{"prompt": r["prompt"], "answer": r["answer"], "language": r["language"], "task_type": r["task_type"],
                 "split": "test", "example_id": r["task_id"], "edit_tags": [], "tool_calls": "[]"} for r in rows]
    shard, _ = tokenize_examples(examples, tokenizer, max_seq_len)
    shard = shard[:limit]
    if not shard:
        raise ValueError("no held-out synthetic task fits the model's context")
    examples = [Example(r["input_ids"], r["prompt_len"], language_id(r["language"]), task_id(r["task_type"]), [], -1,
                        r["example_id"]) for r in shard]
    return collate(examples), len(shard)


def measure(model, tokenizer, batch, speed_prompts: list[list[int]], new_tokens: int) -> dict:
    """Held-out loss on `batch`, weight bytes, and greedy decoding speed on `speed_prompts`."""
    import torch

    from model.generate import generate_ids
    from model.quantize import weight_bytes

    with torch.no_grad():
        loss = float(model(batch).loss)
    t0 = time.perf_counter()
    out = generate_ids(model, speed_prompts, language_id("python"), task_id("exec_predict"),
                       max_new_tokens=new_tokens, eos_id=None)
    seconds = time.perf_counter() - t0
    return {"heldout_loss": round(loss, 5), "bytes": weight_bytes(model),
            "tokens_per_s": round(sum(len(o) for o in out) / seconds, 2)}
