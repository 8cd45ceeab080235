"""Held-out gain of an RL run: GRPO (training/rl.py) from a warehouse's published hrm_checkpoint with the given
settings, then the parent and the result scored on the held-out synthetic test split with the report's own code
(evals.pipeline.evaluate_model, benchmark `synthetic`, preset `smoke`: every held-out task) and compared problem
by problem with the report's one-sided sign test (evals.stats.paired_comparisons). The `rl-long` preset of
docs/rl.md is `--steps 200 --tasks exec_predict --lr 1e-4`. JSON last line.

    .venv/bin/python bench/rl_gain.py --data .hrm_data --out /tmp/rl-long --steps 200 --tasks exec_predict
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    from evals.evaluate import preset_settings
    from evals.pipeline import evaluate_model
    from evals.stats import paired_comparisons
    from resources.sandbox import default_sandbox
    from resources.settings import env_str
    from resources.warehouse import Warehouse
    from training.rl import RLSettings, train_rl

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=env_str("HRM_DATA_DIR"), help="warehouse with hrm_checkpoint and synthetic_tasks")
    p.add_argument("--out", required=True, help="directory for the RL checkpoint (reused when it is there)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--tasks", default="exec_predict")
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    wh = Warehouse(root=args.data)
    parent = wh.latest_checkpoint("hrm_checkpoint")
    settings = RLSettings(steps=args.steps, prompts_per_step=args.prompts, group_size=args.group, envs=args.envs,
                          lr=args.lr, task_types=tuple(args.tasks.split(",")), eval_tasks=48, eval_every=50,
                          max_minutes=0.0, seed=args.seed)
    sandbox = default_sandbox().with_concurrency(args.envs)
    out = Path(args.out)
    summary_file = out / "rl_summary.json"
    if not summary_file.exists():
        t0 = time.monotonic()
        summary = train_rl(parent["checkpoint_dir"], wh.read_table("synthetic_tasks").to_pylist(), sandbox,
                           out / "checkpoint", settings, log=lambda m: print(m, flush=True))
        summary["train_wall_s"] = round(time.monotonic() - t0, 1)
        summary_file.write_text(json.dumps(summary, default=str))
    summary = json.loads(summary_file.read_text())
    scored = {}
    for name, spec in (("hrm", "hrm"), ("hrm-rl", f"local:{out / 'checkpoint'}")):
        scored[name] = evaluate_model(spec, "synthetic", preset_settings("smoke"), wh, sandbox)["rows"]
    (out / "scored.json").write_text(json.dumps(scored))  # the rows with their per-problem results
    comparisons = [{k: v for k, v in c.items() if k != "problems"}
                   for c in paired_comparisons(scored, [("hrm-rl", "hrm")])]
    for c in comparisons:
        print(json.dumps(c), flush=True)
    print(json.dumps({"bench": "rl_gain", "parent": parent["weights_sha256"][:12], "settings": vars(args),
                      "train_wall_s": summary.get("train_wall_s"), "samples": summary["samples"],
                      "heldout_validation_curve": summary["heldout"], "comparisons": comparisons}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
