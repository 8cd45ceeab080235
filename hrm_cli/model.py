"""`hrm train` (train HRM-Code or its baseline from token shards: `training.run`, the program torchrun
launches) and `hrm generate` (stream from a checkpoint)."""

from __future__ import annotations

import sys
from pathlib import Path

from training import run as training_run


def register(sub) -> None:
    t = sub.add_parser("train", help="train a model from parquet token shards (resumes from --out if present)",
                       description=training_run.DESCRIPTION)
    training_run.add_arguments(t)
    t.set_defaults(handler=training_run.run)

    g = sub.add_parser("generate", help="stream a completion from a checkpoint to stdout")
    g.add_argument("--checkpoint", required=True, type=Path)
    g.add_argument("--prompt", required=True)
    g.add_argument("--language", default="none")
    g.add_argument("--task", default="codegen")
    g.add_argument("--max-new-tokens", type=int, default=256)
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable); not printed")
    g.add_argument("--quantization", choices=["int8", "nf4"], default=None)
    g.add_argument("--adapter", type=Path, default=None, help="a LoRA adapter directory merged into the checkpoint")
    g.add_argument("--no-adaptive-depth", action="store_true", help="run every token at full depth")
    g.add_argument("--seed", type=int, default=None, help="sampling seed")
    g.set_defaults(handler=_generate)


def _generate(args) -> int:
    from model.checkpoint import load_checkpoint
    from model.generate import stream

    try:
        model, tokenizer = load_checkpoint(args.checkpoint, quantization=args.quantization, adapter=args.adapter)
    except (FileNotFoundError, ValueError) as exc:
        print(f"hrm generate: {exc}", file=sys.stderr)
        return 2
    if tokenizer is None:
        print(f"hrm generate: {args.checkpoint} has no tokenizer/ (train with --tokenizer)", file=sys.stderr)
        return 2
    try:
        for piece in stream(model, tokenizer, args.prompt, language=args.language, task=args.task, stop=args.stop,
                            max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                            top_k=args.top_k, adaptive_depth=not args.no_adaptive_depth, seed=args.seed):
            sys.stdout.write(piece)
            sys.stdout.flush()
    except ValueError as exc:
        print(f"\nhrm generate: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write("\n")
    return 0
