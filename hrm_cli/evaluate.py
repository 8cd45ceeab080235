"""`hrm eval`: one model spec on one benchmark from the shell, with the code `benchmark_report` runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from evals.pipeline import BENCHMARK_STEPS


def register(sub) -> None:
    e = sub.add_parser("eval", help="evaluate a model spec on a benchmark (the report's code, from the shell)",
                       description="Model specs: local:CKPT_DIR[+ADAPTER_DIR][@int8|@nf4] or openai:BASE_URL#MODEL "
                                   "(key from HRM_OPENAI_API_KEY or OPENAI_API_KEY). Problems come from the warehouse "
                                   "(HRM_DATA_DIR); benchmarks not materialised there are listed as not evaluated.")
    e.add_argument("--model", required=True, help="model spec")
    e.add_argument("--benchmark", required=True, choices=list(BENCHMARK_STEPS))
    e.add_argument("--preset", default="smoke", choices=["smoke", "standard", "full"])
    e.add_argument("--samples", type=int, default=None, help="samples per problem (HumanEval and LCB)")
    e.add_argument("--temperature", type=float, default=None, help="sampling temperature (HumanEval)")
    e.add_argument("--workers", type=int, default=8, help="concurrent requests to an endpoint")
    e.add_argument("--data-dir", default=None, help="the warehouse to read problems from (default: HRM_DATA_DIR)")
    e.add_argument("--json", required=True, type=Path, help="write the result here")
    e.set_defaults(handler=_eval)


def _eval(args) -> int:
    from evals.evaluate import preset_settings
    from evals.pipeline import evaluate_model
    from resources.sandbox import default_sandbox
    from resources.warehouse import Warehouse

    overrides = {}
    if args.samples is not None:
        overrides.update(humaneval_n=args.samples, lcb_n=args.samples)
    if args.temperature is not None:
        overrides["humaneval_temperature"] = args.temperature
    try:
        settings = preset_settings(args.preset, **overrides)
        warehouse = Warehouse(root=args.data_dir) if args.data_dir else Warehouse()
        result = evaluate_model(args.model, args.benchmark, settings, warehouse, default_sandbox(),
                                workers=args.workers, log=lambda m: print(m, file=sys.stderr))
    except (ValueError, FileNotFoundError, ConnectionError) as exc:
        print(f"hrm eval: {exc}", file=sys.stderr)
        return 2
    result["preset"] = args.preset
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_name(args.json.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(args.json)
    for row in result["rows"]:
        low, high = row.get("ci_low"), row.get("ci_high")
        interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        print(f"{row['benchmark']:24} {row['metric']:36} {row['value']:.4g}{interval}  n={row.get('n')}")
    for name, why in result["notes"].items():
        print(f"not evaluated: {name}: {why}")
    return 0
