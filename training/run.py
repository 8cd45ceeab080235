"""Train one model from token shards: the program torchrun starts on every rank.

    python -m training.run --config tiny --shards <dir> --out <checkpoint dir>
    torchrun --standalone --nproc-per-node 8 -m training.run --config gpu.json --shards ... --out ...

`hrm train` is this same program behind the command line (same flags, same output). Progress goes to
stderr; rank 0 prints the result as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from model.config import PRESETS, ModelConfig

DESCRIPTION = (f"--config is a preset name ({', '.join(PRESETS)}) or a JSON file "
               '{"model": "<preset>" | {"preset": "<name>", ...fields}, "train": {...TrainConfig}}. '
               "Under torchrun every rank runs this same command (DDP).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="preset name or JSON file")
    parser.add_argument("--shards", required=True, nargs="+", help="parquet shard files or directories of them")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint directory (created, or resumed from)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer dir copied into the checkpoint")
    parser.add_argument("--arch", choices=["hrm", "baseline"], default=None, help="override the config's arch")
    parser.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    parser.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")


def resolve_configs(spec: str):
    """(ModelConfig, TrainConfig) from a preset name or a JSON file."""
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


def run(args: argparse.Namespace) -> int:
    """Train as `args` (the flags of `add_arguments`) say; 2 for a bad config or shard path."""
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.run", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
