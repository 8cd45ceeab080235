"""Multi-file figures: repository-map build time per root (`--map ROOT ...`), or multifile_tasks built on a
scratch warehouse holding a copy of an existing warehouse's swe_repos and swesmith_tasks, every gold answer
graded in the Sandbox, and (with `--model SPEC`) a model's resolve rate on the held-out tasks. JSON last line.

    .venv/bin/python bench/multifile.py --map /path/to/repo [/another]
    .venv/bin/python bench/multifile.py --from .hrm_data [--bugs-per-task 2] [--model local:CKPT_DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def map_times(roots: list[str], repeats: int = 3) -> list[dict]:
    from datagen.repomap import build_repo_map

    out = []
    for root in roots:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            repo_map = build_repo_map(root)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        repo_map.render(query="fix the cache expiry", budget_tokens=1024)
        out.append({"root": root, "files": len(repo_map.files), "languages": sorted({f.language for f in
                                                                                     repo_map.files.values()}),
                    "definitions": sum(len(f.definitions) for f in repo_map.files.values()),
                    "build_s_median": round(statistics.median(times), 3),
                    "rank_render_s": round(time.perf_counter() - t0, 3)})
    return out


def tasks_and_scores(source: str, bugs_per_task: int, model: str) -> dict:
    from datagen.swe.multifile import MultiFileSettings, build_multifile
    from evals.evaluate import EvalSettings
    from evals.multifile import eval_multifile, grade_multifile, load_multifile_suite
    from resources.sandbox import default_sandbox
    from resources.warehouse import Warehouse

    sandbox = default_sandbox()
    with tempfile.TemporaryDirectory(prefix="hrm-multifile-") as scratch:
        for table in ("swe_repos", "swesmith_tasks"):
            shutil.copytree(Path(source) / "tables" / table, Path(scratch) / "tables" / table)
        warehouse = Warehouse(root=scratch)
        t0 = time.monotonic()
        built = build_multifile(MultiFileSettings(bugs_per_task=bugs_per_task), sandbox, warehouse)
        build_s = time.monotonic() - t0
        rows = warehouse.read_table("multifile_tasks").to_pylist()
        repos = {k: warehouse.read_table("swe_repos", partition=k).to_pylist()[0]
                 for k in {r["source_repo"] for r in rows}}
        t0 = time.monotonic()
        gold = sandbox.map(lambda r: grade_multifile(sandbox, repos[r["source_repo"]], r, r["answer"]), rows)
        out = {"tasks": built["rows"], "by_split": built["by_split"], "by_repo": built["by_repo"],
               "rejected": built["rejected"], "build_s": round(build_s, 1),
               "interface_tasks": sum(".rename_api__" in r["instance_id"] for r in rows),
               "gold_resolved": sum(ok for ok, _ in gold), "gold_failures": [w for ok, w in gold if not ok][:3],
               "gold_grade_s": round(time.monotonic() - t0, 1),
               "prompt_chars_median": statistics.median(len(r["prompt"]) for r in rows)}
        if model:
            from evals.pipeline import candidate_from_spec
            from inference.specs import parse_spec

            held_out, repos, note = load_multifile_suite(warehouse)
            (result,) = eval_multifile(candidate_from_spec(parse_spec(model)), held_out, repos, sandbox, EvalSettings())
            out["model"] = {k: result[k] for k in ("value", "n", "ci_low", "ci_high")}
        return out


def main(argv=None) -> int:
    from resources.settings import env_str

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--map", nargs="+", default=None, help="roots to build the repository map of")
    p.add_argument("--from", dest="source", default=env_str("HRM_DATA_DIR"), help="the warehouse to copy from")
    p.add_argument("--bugs-per-task", type=int, default=2)
    p.add_argument("--model", default="", help="a model spec to score on the held-out tasks (local:CKPT_DIR)")
    args = p.parse_args(argv)
    result = {"repo_map": map_times(args.map)} if args.map else tasks_and_scores(args.source, args.bugs_per_task,
                                                                                 args.model)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
