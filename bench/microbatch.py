"""Length-cut and packed micro-batches against padded ones: wall time of the same training steps on
materialised shards.

    .venv/bin/python bench/microbatch.py --data .hrm_data --steps 15 --rounds 3

Each round trains `--steps` steps of the preset from scratch three times: uncut, cut (micro_batch_tokens) and
packed (pack, rows of up to max_seq_len tokens, cut by the same budget), with the same seed, so the same
examples; the last line is one JSON object with every wall time, the medians and their ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resources.warehouse import Warehouse  # noqa: E402
from training.phases import stage_shards  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=".hrm_data")
    p.add_argument("--preset", default="cpu-default")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--tokens", type=int, default=2048, help="micro_batch_tokens of the cut runs")
    args = p.parse_args(argv)

    from model import ModelConfig
    from model.train import TrainConfig, train

    warehouse = Warehouse(root=str(Path(args.data).resolve()))
    files = [path for _, path in stage_shards(warehouse)]
    model_config = ModelConfig.preset(args.preset, vocab_size=2048)
    runs: dict[str, list[dict]] = {"uncut": [], "cut": [], "packed": []}
    for r in range(args.rounds):
        for name, budget in (("uncut", 0), ("cut", args.tokens), ("packed", args.tokens)):
            cfg = TrainConfig(max_steps=args.steps, batch_size=args.batch, lr=2e-3, warmup_steps=5, dtype="bf16",
                              seed=r, task_weights={"repair": 3, "exec_predict": 2}, micro_batch_tokens=budget,
                              pack=name == "packed", checkpoint_every=10 ** 6, log_every=args.steps)
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                result = train(model_config, cfg, files, Path(d) / "run", tokenizer_dir=warehouse.tokenizer_dir())
                runs[name].append({"wall_s": round(time.perf_counter() - t0, 2), "tokens": result.tokens_seen,
                                   "loss": round(result.final_metrics["loss"], 4)})
    medians = {name: statistics.median(x["wall_s"] for x in v) for name, v in runs.items()}
    print(json.dumps({"preset": args.preset, "steps": args.steps, "runs": runs, "median_wall_s": medians,
                      "speedup": round(medians["uncut"] / medians["cut"], 2),
                      "packed_speedup": round(medians["uncut"] / medians["packed"], 2),
                      "packed_vs_cut": round(medians["cut"] / medians["packed"], 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
