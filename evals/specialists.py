"""Specialists against the generalist on their own domain, paired item by item (evals.stats.paired_sign_test).

A specialist is a LoRA adapter over the generalist (training/adapters.py), loaded through its model spec
`local:CKPT+ADAPTER`. Its domain score, both models on the same held-out items:

- a language: `code-bpb` bits per byte of that language's held-out corpus files (evals/bpb.py, the report's
  benchmark), one paired item per file (lower is better);
- `exec_predict`: `synthetic-instances` exec_exact_match on the held-out exec tasks, one item per task;
- `repair`: `synthetic-instances` repair_fix_rate_snap on the held-out repair tasks (needs the Sandbox);
- any slice: `validation_answer_loss`, the mean LM loss per answer token (nats) of each of the slice's
  validation-split training examples, one item per example (lower is better); the domain score of the
  slices that have no benchmark of their own (tool_use, plan, ...).

The test is one-sided (does the specialist beat the generalist), exact, and counts the items each model wins.
"""

from __future__ import annotations

from evals import bpb
from evals.evaluate import Candidate, CodeFile, EvalSettings, eval_repair_snap, eval_synthetic
from evals.stats import bootstrap_mean_interval, paired_sign_test, problem_scores


def _compare(metric: str, base: dict[str, float], new: dict[str, float], higher_is_better: bool,
             base_value: float, new_value: float, base_ci, new_ci) -> dict:
    test = paired_sign_test(base, new, higher_is_better=higher_is_better)
    return {"metric": metric, "higher_is_better": higher_is_better, "n": test["paired"],
            "generalist": round(base_value, 4), "generalist_ci": [round(x, 4) for x in base_ci],
            "specialist": round(new_value, 4), "specialist_ci": [round(x, 4) for x in new_ci],
            "delta": round(new_value - base_value, 4), "items_better": len(test["better"]),
            "items_worse": len(test["worse"]), "p_value": test["p_value"]}


def language_bpb(generalist, specialist, tokenizer, files: list[CodeFile], language: str,
                 s: EvalSettings) -> dict | None:
    """Bits per byte of `language`'s held-out files under both models; None when there are none."""
    picked = [f for f in files if f.language == language]
    if not picked:
        return None
    texts, langs = [f.text for f in picked], [language] * len(picked)
    n_bytes = bpb.file_bytes(texts)
    bits = [bpb.model_file_bits(m, tokenizer, texts, langs, stride=s.bpb_stride or None,
                                batch_size=max(1, s.batch_size // 2)) for m in (generalist, specialist)]
    per_file = [{f.doc_id: b / n for f, b, n in zip(picked, model_bits, n_bytes)} for model_bits in bits]
    ci = [bpb.bootstrap_interval(b, n_bytes, resamples=s.bootstrap_resamples, seed=s.seed) for b in bits]
    return _compare(f"code-bpb/bits_per_byte_{language}", *per_file, False, bpb.ratio(bits[0], n_bytes),
                    bpb.ratio(bits[1], n_bytes), *ci)


def answer_losses(model, tokenizer, rows: list[dict], batch_size: int = 16) -> dict[str, float]:
    """Each example's mean LM loss per answer token (nats), by example id (examples longer than the
    model's context are left out)."""
    import torch
    import torch.nn.functional as F

    from datagen.curriculum import tokenize_examples
    from model.data import IGNORE, Example, collate
    from model.vocab import language_id, task_id

    shard, _ = tokenize_examples(rows, tokenizer, model.config.max_seq_len)
    examples = [Example(r["input_ids"], r["prompt_len"], language_id(r["language"]), task_id(r["task_type"]), [],
                        -1, r["example_id"]) for r in shard]
    out = {}
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            batch = collate(chunk, model.config.pad_token_id)
            labels = batch.pop("labels")
            batch.pop("edit_tags"), batch.pop("tool_labels")
            logits = model({k: v.to(model.device) for k, v in batch.items()}).logits.float()
            nll = F.cross_entropy(logits.transpose(1, 2), labels.to(logits.device), ignore_index=IGNORE,
                                  reduction="none")
            counts = (labels != IGNORE).sum(1).clamp(min=1)
            for e, total, n in zip(chunk, nll.sum(1).tolist(), counts.tolist()):
                out[e.example_id] = total / n
    return out


def validation_loss(generalist, specialist, tokenizer, rows: list[dict], s: EvalSettings) -> dict | None:
    """validation_answer_loss of both models on `rows` (the slice's validation examples); None when empty."""
    if not rows:
        return None
    losses = [answer_losses(m, tokenizer, rows) for m in (generalist, specialist)]
    if not losses[0]:
        return None
    means = [sum(x.values()) / len(x) for x in losses]
    ci = [bootstrap_mean_interval(list(x.values()), s.bootstrap_resamples, s.seed) for x in losses]
    return _compare("validation_answer_loss", *losses, False, *means, *ci)


def synthetic_task(generalist: Candidate, specialist: Candidate, rows: list[dict], task: str, sandbox,
                   s: EvalSettings) -> dict | None:
    """exec_exact_match (exec_predict) or repair_fix_rate_snap (repair, in the Sandbox) on the held-out
    synthetic instances of `task`, both models; None when there are none, or repair has no Sandbox."""
    rows = [r for r in rows if r["task_type"] == task]
    if not rows or (task == "repair" and sandbox is None):
        return None
    scores, values, cis = [], [], []
    for c in (generalist, specialist):
        try:
            got = eval_synthetic(c, rows, sandbox, s)
            if task == "repair":
                got = eval_repair_snap(c, rows, sandbox, s)
        finally:
            c.close()
        row = got[-1]
        scores.append(problem_scores(row["problems"]))
        values.append(row["value"])
        cis.append((row["ci_low"], row["ci_high"]))
    metric = "exec_exact_match" if task == "exec_predict" else "repair_fix_rate_snap"
    return _compare(f"synthetic-instances/{metric}", *scores, True, *values, *cis)


def score_specialist(name: str, kind: str, generalist: Candidate, specialist: Candidate, *, files: list[CodeFile],
                     validation_rows: list[dict], synthetic_rows: list[dict], sandbox, s: EvalSettings) -> dict:
    """{"domain": the domain score (above), "validation": validation_answer_loss}; either may be None."""
    tok = generalist.tokenizer
    validation = validation_loss(generalist.model, specialist.model, tok, validation_rows, s)
    if kind == "language":
        domain = language_bpb(generalist.model, specialist.model, tok, files, name, s)
    elif name in ("exec_predict", "repair"):
        domain = synthetic_task(generalist, specialist, synthetic_rows, name, sandbox, s)
    else:
        domain = None
    return {"domain": domain or validation, "validation": validation}


def score_specialists(manifest: dict, warehouse, sandbox, s: EvalSettings, log=None) -> dict:
    """Score each specialist of training.adapters' manifest against its generalist (the manifest's base
    checkpoint); {name: score_specialist's result}."""
    from evals.evaluate import heldout_code
    from inference.specs import load_local, local_hash, parse_spec

    if not manifest["specialists"]:
        return {}
    base = parse_spec(f"local:{manifest['base_checkpoint']}")
    gen_model, tok = load_local(base)
    generalist = Candidate("generalist", gen_model, tok, checkpoint_hash=local_hash(base))
    examples = warehouse.read_table("training_examples").to_pylist()
    files, synthetic = [], []
    if any(v["slice"] == "language" for v in manifest["specialists"].values()):
        files = heldout_code(warehouse.read_table("code_corpus").to_pylist(), s)
    if any(name in ("exec_predict", "repair") for name in manifest["specialists"]):
        synthetic = [r for r in warehouse.read_table("synthetic_tasks").to_pylist()
                     if r["split"] == "test" and r.get("heldout", "instances") == "instances"]
    out = {}
    for name, info in manifest["specialists"].items():
        spec = parse_spec(info["spec"])
        model, _ = load_local(spec)
        specialist = Candidate(name, model, tok, checkpoint_hash=local_hash(spec))
        key = "language" if info["slice"] == "language" else "task_type"
        validation_rows = [r for r in examples if r[key] == name and r["split"] == "validation"]
        out[name] = score_specialist(name, info["slice"], generalist, specialist, files=files,
                                     validation_rows=validation_rows, synthetic_rows=synthetic, sandbox=sandbox, s=s)
        if log:
            log(f"specialist {name}: {out[name]['domain']}")
    return out
