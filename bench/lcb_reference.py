"""Grade with lcb_runner's own evaluation code (run by bench/lcb_grade.py inside .toolchains/lcb-venv).

usage: python bench/lcb_reference.py IN.json OUT.json
IN: {"samples": [{"input_output": ...}], "generations": [[code, ...]], "workers": N, "timeout": T}
OUT: {"results": {index: [[codes per test] per generation]}, "metadata": [...], "wall_s": seconds}
Only the codegen_metrics call is timed, as the bench times only our grading call.
"""

import json
import sys
import time


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        job = json.load(f)
    from livecodebench.evaluation import codegen_metrics  # nvidia-livecodebench's copy of lcb_runner

    start = time.perf_counter()
    metrics, results, metadata = codegen_metrics(job["samples"], job["generations"], k_list=[1],
                                                 num_process_evaluate=job["workers"], timeout=job["timeout"])
    wall = time.perf_counter() - start

    def plain(value):
        return value if isinstance(value, (bool, int)) else bool(value)

    out = {"results": {str(k): [[plain(r) for r in gen] for gen in v] for k, v in results.items()},
           "metadata": metadata, "pass@1": metrics["pass@1"], "wall_s": wall}
    with open(dst, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
