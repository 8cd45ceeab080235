"""`hrm train` (train HRM-Code or its baseline from token shards) and `hrm generate` (stream from a checkpoint)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    t = sub.add_parser("train", help="train a model from parquet token shards (resumes from --out if present)",
                       description="--config is a preset name (tiny, small, 100m, gpu-base) or a JSON file "
                                   '{"model": "<preset>" | {"preset": "<name>", ...fields}, "train": {...TrainConfig}}. '
                                   "Under torchrun every rank runs this same command (DDP).")
    t.add_argument("--config", required=True, help="preset name or JSON file")
    t.add_argument("--shards", required=True, nargs="+", help="parquet shard files or directories of them")
    t.add_argument("--out", required=True, type=Path, help="checkpoint directory (created, or resumed from)")
    t.add_argument("--tokenizer", type=Path, default=None, help="tokenizer dir copied into the checkpoint")
    t.add_argument("--arch", choices=["hrm", "baseline"], default=None, help="override the config's arch")
    t.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    t.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    t.set_defaults(handler=_train)

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
    g.add_argument("--no-adaptive-depth", action="store_true", help="run every token at full depth")
    g.add_argument("--seed", type=int, default=None, help="sampling seed")
    g.set_defaults(handler=_generate)


def resolve_configs(spec: str):
    """(ModelConfig, TrainConfig) from a preset name or a JSON file."""
    from model.config import PRESETS, ModelConfig
    from model.train import TrainConfig

    if spec in PRESETS:
        return ModelConfig.preset(spec), TrainConfig()
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--config {spec!r}: neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    data = json.loads(path.read_text())
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; expected 'model' and 'train'")
    model = data.get("model", "tiny")
    if isinstance(model, str):
        model_config = ModelConfig.preset(model)
    else:
        fields = dict(model)
        preset = fields.pop("preset", None)
        model_config = ModelConfig.preset(preset, **fields) if preset else ModelConfig.from_dict(fields)
    return model_config, TrainConfig.from_dict(data.get("train", {}))


def shard_files(paths: list[str]) -> list[str]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*.parquet"))
            if not found:
                raise ValueError(f"--shards {p}: no .parquet files inside")
            files += found
        elif p.is_file():
            files.append(str(p))
        else:
            raise ValueError(f"--shards {p}: no such file or directory")
    return files


def _train(args) -> int:
    import dataclasses
    import os

    from model.train import train

    try:
        model_config, train_config = resolve_configs(args.config)
        if args.arch:
            model_config = model_config.with_changes(arch=args.arch)
        if args.max_steps:
            train_config = dataclasses.replace(train_config, max_steps=args.max_steps)
        files = shard_files(args.shards)
    except ValueError as exc:
        print(f"hrm train: {exc}", file=sys.stderr)
        return 2
    main_rank = os.environ.get("RANK", "0") == "0"

    def progress(step: int, metrics: dict) -> None:
        print(f"step {step}/{train_config.max_steps} loss {metrics['loss']:.4f} lr {metrics['lr']:.2e} "
              f"grad_norm {metrics['grad_norm']:.3f} tok/s {metrics.get('tokens_per_s', 0):.0f}", file=sys.stderr,
              flush=True)

    result = train(model_config, train_config, files, args.out, tokenizer_dir=args.tokenizer,
                   resume=not args.no_resume, callback=progress)
    if main_rank:
        summary = dataclasses.asdict(result)
        summary.pop("loss_history")
        print(json.dumps(summary))
    return 0


def _generate(args) -> int:
    from model.checkpoint import load_checkpoint
    from model.generate import stream

    try:
        model, tokenizer = load_checkpoint(args.checkpoint, quantization=args.quantization)
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
