"""Benchmark: all 225 Polyglot reference solutions through the evaluator, in parallel.

Usage: .venv/bin/python bench/polyglot.py [--source SRC] [--workers N] [--warm-cache]
SRC defaults to $HRM_POLYGLOT_SOURCE, else ../shared/mirrors/polyglot-benchmark.bundle. The shared
builds (Catch main, Go cache) start cold in a fresh folder unless --warm-cache reuses the usual one,
so the figure includes them. Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from evals.polyglot.evaluate import default_cache_dir  # noqa: E402
from evals.polyglot.exercises import PINNED_COMMIT  # noqa: E402
from evals.polyglot.pipeline import open_checkout, run_evaluation, select_exercises  # noqa: E402
from resources.sandbox import default_sandbox  # noqa: E402

DEFAULT_BUNDLE = REPO_ROOT.parent / "shared" / "mirrors" / "polyglot-benchmark.bundle"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=os.environ.get("HRM_POLYGLOT_SOURCE") or str(DEFAULT_BUNDLE))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--languages", default="")
    parser.add_argument("--warm-cache", action="store_true", help="reuse the shared builds of earlier runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="polyglot-bench-") as scratch:
        setup_start = time.monotonic()
        checkout, commit = open_checkout(args.source, Path(scratch) / "polyglot-benchmark", PINNED_COMMIT)
        languages = [s for s in args.languages.split(",") if s]
        exercises, _ = select_exercises(checkout, languages or None, commit=commit)
        cache = default_cache_dir() if args.warm_cache else Path(scratch) / "cache"
        sandbox = default_sandbox(concurrency=args.workers)
        setup_s = time.monotonic() - setup_start
        load_before = os.getloadavg()[0]
        start = time.monotonic()
        report = run_evaluation(exercises, sandbox, "reference", cache_dir=cache,
                                progress=lambda r: print(f"{time.monotonic() - start:6.1f}s {r.language}/"
                                                         f"{r.exercise}: {r.status} ({r.seconds:.1f} s)",
                                                         file=sys.stderr, flush=True),
                                log=lambda m: print(m, file=sys.stderr, flush=True))
        wall = time.monotonic() - start
    # CPU of every test run (the report guard's children, reaped) and shared build (the jail's shell's
    # `times`): with the machine shared by other work, cpu / workers is what the run would take on idle
    # cores if perfectly parallel.
    shared_cpu = sum(b["cpu_s"] or 0.0 for b in report["shared_builds"].values())
    cpu = report["cpu_s"] + shared_cpu
    cpu_by_language = {lang: s["cpu_s"] for lang, s in report["languages"].items()}
    print(json.dumps({
        "bench": "polyglot_reference", "exercises": report["counts"]["total"], "passed": report["counts"]["pass"],
        "passes_by_language": {lang: s["counts"]["pass"] for lang, s in report["languages"].items()},
        "totals_by_language": {lang: s["counts"]["total"] for lang, s in report["languages"].items()},
        "failures": [f"{f['language']}/{f['exercise']}: {f['reason'][:120]}" for f in report["failures"]],
        "wall_s": round(wall, 1), "clone_and_extract_s": round(setup_s, 1), "jail_cpu_s": round(cpu, 1),
        "idle_estimate_s": round(cpu / max(1, min(args.workers, os.cpu_count() or 1)), 1),
        "cpu_s_by_language": cpu_by_language, "shared_builds": report["shared_builds"], "workers": args.workers,
        "cores": os.cpu_count(), "cold_shared_builds": not args.warm_cache,
        "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "commit": commit}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
