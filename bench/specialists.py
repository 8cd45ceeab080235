"""Specialist adapters against the generalist: the two plain calls of the `specialist_adapters` asset
(training.adapters.train_specialists, evals.specialists.score_specialists) on a materialised warehouse,
with other settings than the default run's, and nothing published.

    .venv/bin/python bench/specialists.py --data .hrm_data --specialists rust,go,python --steps 20
    .venv/bin/python bench/specialists.py --data .hrm_data --specialists repair --steps 60 --sandbox

Adapters go to <data>/checkpoints/specialist_adapters/<fingerprint>/ (reused when there with the same inputs);
the repair domain score needs --sandbox. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals.evaluate import preset_settings  # noqa: E402
from evals.specialists import score_specialists  # noqa: E402
from resources.warehouse import Warehouse  # noqa: E402
from training.adapters import AdapterSettings, train_specialists  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a warehouse with hrm_checkpoint and training_examples")
    p.add_argument("--specialists", default="rust")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--sandbox", action="store_true", help="grade repair in the Sandbox")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    warehouse = Warehouse(root=str(Path(args.data).resolve()))
    settings = AdapterSettings(specialists=tuple(args.specialists.split(",")), steps=args.steps,
                               batch_size=args.batch, rank=args.rank, lr=args.lr)
    t0, c0 = time.perf_counter(), time.process_time()
    manifest = train_specialists(settings, warehouse, log=lambda m: print(m, file=sys.stderr))
    t1, c1 = time.perf_counter(), time.process_time()
    sandbox = None
    if args.sandbox:
        from resources.sandbox import Sandbox

        sandbox = Sandbox(timeout_s=30, concurrency=2)
    scores = score_specialists(manifest, warehouse, sandbox, preset_settings("smoke", bpb_files_per_language=0),
                               log=lambda m: print(m, file=sys.stderr))
    t2, c2 = time.perf_counter(), time.process_time()
    out = {"train_wall_s": round(t1 - t0, 1), "train_cpu_s": round(c1 - c0, 1), "score_wall_s": round(t2 - t1, 1),
           "score_cpu_s": round(c2 - c1, 1), "base_sha256": manifest["base_sha256"][:12],
           "specialists": {n: {"steps": i["steps"], "examples": i["examples"], "first_loss": i["first_loss"],
                               "final_loss": i["final_loss"], "adapter_dir": i["adapter_dir"], **scores.get(n, {})}
                           for n, i in manifest["specialists"].items()}}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
