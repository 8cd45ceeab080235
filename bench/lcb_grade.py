"""Our sandboxed LCB grader vs lcb_runner's own evaluation code, on the same problems and generations.

Problems: HumanEval recast as LCB call-based problems (literal `assert candidate(...) == ...` lines
as tests) plus stdin problems in AtCoder style written here, each with correct, wrong, crashing
and slow (time-limit) generations. lcb_runner's code comes from PyPI `nvidia-livecodebench`,
installed into .toolchains/lcb-venv (created here when missing) and run in-process there, as
lcb_runner does; ours runs every generation in the bubblewrap sandbox.

usage: python bench/lcb_grade.py [--workers 2] [--timeout 6] [--slow 8] [--json OUT]
The last line printed is one JSON object: throughput of each, their ratio, verdict agreement, and
the same comparison again without the slow generations (`without_slow`). A generation that runs
into its time limit holds a core for the whole limit under both graders, so `time_limit_floor_s`
(our seconds in such generations / workers) is a floor no faithful grader can beat, and
`throughput_ratio_bound` the ratio a grader with zero cost elsewhere would reach.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evals import humaneval  # noqa: E402
from evals.lcb.grader import grade_generations  # noqa: E402
from evals.lcb.records import LcbProblem  # noqa: E402

LCB_VENV = REPO / ".toolchains" / "lcb-venv"
LCB_PACKAGES = ["numpy", "tqdm"]  # all that livecodebench.evaluation imports beyond the stdlib


def ensure_lcb_venv() -> Path:
    python = LCB_VENV / "bin" / "python"
    probe = [str(python), "-c", "import livecodebench.evaluation"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"[bench] creating {LCB_VENV} with nvidia-livecodebench (lcb_runner's code)", file=sys.stderr)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(LCB_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", "nvidia-livecodebench==26.3"], check=True)
    subprocess.run(pip + LCB_PACKAGES, check=True)
    subprocess.run(probe, check=True)
    return python


# --- stdin problems: (name, input generator, trusted solver, programs by kind) -----------------
def _ints(rng, n, lo=-10**9, hi=10**9):
    return [rng.randint(lo, hi) for _ in range(n)]


def _array_input(rng, n):
    return f"{n}\n{' '.join(map(str, _ints(rng, n)))}\n"


READ_ARRAY = "n = int(input())\na = list(map(int, input().split()))\n"


def _max_subarray(a):
    best, cur = a[0], 0
    for x in a:
        cur = max(x, cur + x)
        best = max(best, cur)
    return best


def _range_queries_input(rng, n):
    q = n
    a = _ints(rng, n, -1000, 1000)
    lines = [f"{n} {q}", " ".join(map(str, a))]
    for _ in range(q):
        l = rng.randint(1, n)
        lines.append(f"{l} {rng.randint(l, n)}")
    return "\n".join(lines) + "\n"


def _range_queries(text):
    it = iter(text.split("\n"))
    n, q = map(int, next(it).split())
    a = list(map(int, next(it).split()))
    pre = [0]
    for x in a:
        pre.append(pre[-1] + x)
    out = []
    for _ in range(q):
        l, r = map(int, next(it).split())
        out.append(str(pre[r] - pre[l - 1]))
    return "\n".join(out) + "\n"


def _pairs_input(rng, n):
    a = _ints(rng, n, 1, 50)
    return f"{n} {rng.randint(2, 100)}\n{' '.join(map(str, a))}\n"


def _pairs(text):
    first, second = text.split("\n")[:2]
    _, k = map(int, first.split())
    seen, count = Counter(), 0
    for x in map(int, second.split()):
        count += seen[k - x]
        seen[x] += 1
    return f"{count}\n"


def _words_input(rng, n):
    words = ["".join(rng.choice("ab") for _ in range(rng.randint(1, 6))) for _ in range(n)]
    return f"{n}\n" + "\n".join(words) + "\n"


def _is_pal(w):
    return w == w[::-1]


def _fib(n, mod=10**9 + 7):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, (a + b) % mod
    return a


STDIN_FAMILIES = [
    ("sum", _array_input, lambda t: f"{sum(map(int, t.split()[1:]))}\n", {
        "correct": READ_ARRAY + "print(sum(a))",
        "wrong": READ_ARRAY + "print(sum(a[1:]))",
        "crash": READ_ARRAY + "print(a[n])",
        "slow": READ_ARRAY + "s = 0\nfor i in range(n):\n    s = sum(a[:i + 1])\nprint(s)",
        "numpy": READ_ARRAY + "import numpy as np\nprint(int(np.array(a, dtype=np.int64).sum()))",
    }),
    ("sort", _array_input, lambda t: " ".join(map(str, sorted(map(int, t.split()[1:])))) + "\n", {
        "correct": READ_ARRAY + "print(*sorted(a))",
        "wrong": READ_ARRAY + "print(*sorted(a, reverse=True))",
        "crash": READ_ARRAY + "print(*sorted(a), sep=separator)",
        "slow": READ_ARRAY + "for i in range(n):\n    for j in range(n - 1 - i):\n        if a[j] > a[j + 1]:\n"
                             "            a[j], a[j + 1] = a[j + 1], a[j]\nprint(*a)",
        "numpy": READ_ARRAY + "import numpy as np\nprint(*np.sort(np.array(a)).tolist())",
    }),
    ("max_subarray", _array_input, lambda t: f"{_max_subarray(list(map(int, t.split()[1:])))}\n", {
        "correct": "import sys\n\ndef main():\n    data = sys.stdin.read().split()\n    n = int(data[0])\n"
                   "    best, cur = -10**30, 0\n    for x in map(int, data[1:n + 1]):\n"
                   "        cur = max(x, cur + x)\n        best = max(best, cur)\n    print(best)\n\n"
                   "if __name__ == '__main__':\n    main()\n",
        "wrong": READ_ARRAY + "best = cur = 0\nfor x in a:\n    cur = max(0, cur + x)\n    best = max(best, cur)\nprint(best)",
        "crash": READ_ARRAY + "def f(i):\n    return a[i] + f(i + 1)\nprint(f(0))",
        "slow": READ_ARRAY + "print(max(sum(a[i:j + 1]) for i in range(n) for j in range(i, n)))",
    }),
    ("range_sum", _range_queries_input, _range_queries, {
        "correct": "import sys\ninput = sys.stdin.readline\nn, q = map(int, input().split())\n"
                   "a = list(map(int, input().split()))\npre = [0]\nfor x in a:\n    pre.append(pre[-1] + x)\n"
                   "out = []\nfor _ in range(q):\n    l, r = map(int, input().split())\n"
                   "    out.append(pre[r] - pre[l - 1])\nprint('\\n'.join(map(str, out)))",
        "wrong": "n, q = map(int, input().split())\na = list(map(int, input().split()))\nfor _ in range(q):\n"
                 "    l, r = map(int, input().split())\n    print(sum(a[l:r]))",
        "crash": "n, q = map(int, input().split())\na = list(map(int, input().split()))\nfor _ in range(q + 1):\n"
                 "    l, r = map(int, input().split())\n    print(sum(a[l - 1:r]))",
        "slow": "n, q = map(int, input().split())\na = list(map(int, input().split()))\nfor _ in range(q):\n"
                "    l, r = map(int, input().split())\n    s = 0\n    for i in range(l - 1, r):\n"
                "        s += sum(a[i:i + 1])\n    print(s)",
    }),
    ("count_pairs", _pairs_input, _pairs, {
        "correct": "from collections import Counter\nn, k = map(int, input().split())\nseen = Counter()\nc = 0\n"
                   "for x in map(int, input().split()):\n    c += seen[k - x]\n    seen[x] += 1\nprint(c)",
        "wrong": "n, k = map(int, input().split())\na = list(map(int, input().split()))\n"
                 "print(sum(1 for i in range(n) for j in range(n) if i != j and a[i] + a[j] == k))",
        "crash": "n, k = map(int, input().split())\na = list(map(int, input().split()))\nprint(a.count(k) / (n - n))",
        "slow": "n, k = map(int, input().split())\na = list(map(int, input().split()))\nc = 0\n"
                "for i in range(n):\n    for j in range(i + 1, n):\n        c += a[i] + a[j] == k\nprint(c)",
    }),
    ("palindromes", _words_input,
     lambda t: "\n".join("Yes" if _is_pal(w) else "No" for w in t.split("\n")[1:] if w) + "\n", {
        "correct": "n = int(input())\nfor _ in range(n):\n    w = input().strip()\n    print('Yes' if w == w[::-1] else 'No')",
        "wrong": "n = int(input())\nfor _ in range(n):\n    w = input().strip()\n    print('YES' if w == w[::-1] else 'NO')",
        "crash": "n = int(input())\nfor _ in range(n):\n    w = input().strip()\n    print('Yes' if w == w.reverse() else 'No')",
        "slow": "n = int(input())\nws = [input().strip() for _ in range(n)]\nfor w in ws:\n"
                "    ok = all(w[i] == w[-1 - i] for i in range(len(w)))\n    for _ in range(3000):\n"
                "        ok = ok and all(w[i] == w[-1 - i] for i in range(len(w)))\n    print('Yes' if ok else 'No')",
    }),
    ("fib_mod", lambda rng, n: f"{n}\n", lambda t: f"{_fib(int(t))}\n", {
        "correct": "n = int(input())\na, b = 0, 1\nfor _ in range(n):\n    a, b = b, (a + b) % (10**9 + 7)\nprint(a)",
        "wrong": "n = int(input())\na, b = 0, 1\nfor _ in range(n):\n    a, b = b, (a + b) % (10**9 + 9)\nprint(a)",
        "crash": "import sys\nfrom functools import lru_cache\nsys.setrecursionlimit(100)\nn = int(input())\n"
                 "@lru_cache(None)\ndef f(k):\n    return k if k < 2 else (f(k - 1) + f(k - 2)) % (10**9 + 7)\nprint(f(n))",
        "slow": "n = int(input())\ndef f(k):\n    return k if k < 2 else (f(k - 1) + f(k - 2))\nprint(f(n) % (10**9 + 7))",
    }),
    ("average", lambda rng, n: f"{n}\n{' '.join(str(rng.randint(0, 10**6)) for _ in range(n))}\n",
     lambda t: f"{sum(map(int, t.split()[1:])) / int(t.split()[0]):.6f}\n", {
        "correct": READ_ARRAY + "print(f'{sum(a) / n:.6f}')",
        "wrong": READ_ARRAY + "print(sum(a) // n)",
        "crash": READ_ARRAY + "import statistics\nprint(statistics.fmean(a, weights=n))",
        "slow": READ_ARRAY + "t = 0\nfor i in range(n):\n    t = sum(a[:i + 1])\nprint(f'{t / n:.6f}')",
    }),
]
SIZES = [1, 2, 3, 5, 8, 10, 20, 50, 100, 200, 1000, 5000, 20000, 50000, 100000]
FIB_SIZES = [1, 2, 3, 5, 10, 20, 25, 28, 30, 32, 35, 40, 1000, 100000, 200000]


def stdin_problems(seed: int = 1):
    rng = random.Random(seed)
    out = []
    for name, make_input, solve, programs in STDIN_FAMILIES:
        tests = []
        for size in (FIB_SIZES if name == "fib_mod" else SIZES):
            text = make_input(rng, size)
            tests.append({"input": text, "output": solve(text.strip() if name == "fib_mod" else text),
                          "testtype": "stdin"})
        problem = LcbProblem(question_id=f"bench_{name}", question_title=name, question_content=name,
                             platform="atcoder", contest_id="bench", contest_date="2024-09-01T00:00:00",
                             difficulty="medium", starter_code="", public_tests=tests[:2], private_tests=tests[2:])
        out.append((problem, programs))
    return out


def build_workload(slow: int, seed: int = 1):
    """[(problem, [(kind, code), ...])]: correct, wrong, crashing and `slow` time-limit generations."""
    rng = random.Random(seed)
    work = []
    stdin = stdin_problems(seed)
    for i, (problem, programs) in enumerate(stdin):
        kinds = ["correct", "wrong", "crash"] + (["numpy"] if "numpy" in programs else []) + (["slow"] if i < slow else [])
        work.append((problem, [("correct" if k == "numpy" else k, programs[k]) for k in kinds]))
    he = humaneval.as_lcb_call_problems(humaneval.load_problems())
    slow_he = max(0, slow - len(stdin))
    for i, (problem, reference) in enumerate(he):
        gens = [("correct", reference), ("wrong", _return_none(reference, problem.func_name))]
        if i % 8 == 0:
            gens.append(("crash", reference + "\nraise RuntimeError('broken at import')\n"))
        if i % 8 == 4:
            gens.append(("correct", f"Here is my answer.\n```python\n{reference}\n\nclass Solution:\n"
                         f"    def {problem.func_name}(self, *args):\n        return {problem.func_name}(*args)\n```\n"))
        if i < slow_he:
            gens.append(("slow", reference + f"\n_orig = {problem.func_name}\n"
                         f"def {problem.func_name}(*args):\n    while True:\n        pass\n"))
        work.append((problem, gens))
    rng.shuffle(work)
    return work


def _return_none(program: str, name: str) -> str:
    return program + f"\n_orig = {name}\ndef {name}(*args):\n    _orig(*args)\n    return None\n"


def run_reference(python: Path, work, workers: int, timeout: int) -> list[list[tuple[list, dict]]]:
    """lcb_runner's (results, metadata) for every generation, grouped like `work`."""
    from evals.lcb.extraction import code_for_grading

    # codegen_metrics asserts every problem has as many generations as the first, so each
    # generation goes in as its own one-generation sample; grading is per generation anyway.
    # lcb_runner's runner extracts fenced code before grading; its evaluator gets extracted code.
    samples, generations = [], []
    for problem, gens in work:
        sample = {"input_output": json.dumps(problem.evaluation_sample())}
        for _, code in gens:
            samples.append(sample)
            generations.append([code_for_grading(code)])
    job = {"samples": samples, "generations": generations, "workers": workers, "timeout": timeout}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(job))
        proc = subprocess.run([str(python), str(REPO / "bench" / "lcb_reference.py"), str(src), str(dst)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"lcb_runner reference failed:\n{proc.stderr[-3000:]}")
        out = json.loads(dst.read_text())
    flat = [(out["results"][str(i)][0], json.loads(out["metadata"][i][0])) for i in range(len(samples))]
    grouped, i = [], 0
    for _, gens in work:
        grouped.append(flat[i:i + len(gens)])
        i += len(gens)
    return grouped, out["wall_s"]


def same_codes(ours: list, theirs: list, their_meta: dict) -> bool:
    """Per-test codes equal; lcb_runner records [-2] + error_code -5 where its child died without a
    result (global timeout, SystemExit, missing function), which we report as -1s or -5."""
    if their_meta.get("error_code") == -5 and theirs == [-2]:
        return ours == [-5] or (ours and all(r == -1 for r in ours))
    return ours == theirs


def compare(python: Path, work, workers: int, timeout: int) -> tuple[dict, list]:
    """Grade `work` with ours, then with lcb_runner; (figures, disagreements)."""
    from resources.sandbox import Sandbox

    n_gen = sum(len(g) for _, g in work)
    sandbox = Sandbox(concurrency=workers)
    start = time.perf_counter()
    ours = grade_generations([p for p, _ in work], {p.question_id: [c for _, c in g] for p, g in work}, sandbox,
                             timeout=timeout)
    ours_s = time.perf_counter() - start
    print(f"[bench] ours: {ours_s:.1f}s", file=sys.stderr)

    ref, ref_s = run_reference(python, work, workers, timeout)
    print(f"[bench] lcb_runner: {ref_s:.1f}s", file=sys.stderr)

    verdicts = codes = total = 0
    disagreements = []
    their_pass = 0
    for (problem, gens), mine, theirs in zip(work, ours, ref):
        for g, (kind, _) in enumerate(gens):
            total += 1
            their_codes, their_meta = theirs[g]
            their_ok = all(r > 0 for r in their_codes)
            their_pass += their_ok
            v = mine["graded_list"][g] == their_ok
            c = same_codes(mine["results"][g], their_codes, their_meta)
            verdicts += v
            codes += c
            if not (v and c):
                disagreements.append({"question_id": problem.question_id, "kind": kind, "ours": mine["results"][g],
                                      "lcb_runner": their_codes, "ours_meta": mine["metadata"][g],
                                      "lcb_meta": their_meta})
    # Seconds our jails spent in generations that ran into a time limit: both graders must wait those
    # out on a core each, so `workers` of them at a time is the fastest any faithful grader can go.
    limited = [wall or 0.0 for q in ours for res, wall in zip(q["results"], q["wall_s"])
               if any(r in (-1, -3) for r in res)]
    limited_s = sum(limited)
    figures = {
        "ours_wall_s": round(ours_s, 2), "lcb_runner_wall_s": round(ref_s, 2),
        "ours_generations_per_s": round(n_gen / ours_s, 2),
        "lcb_runner_generations_per_s": round(n_gen / ref_s, 2),
        "throughput_ratio": round(ref_s / ours_s, 3),
        "verdict_agreement": round(verdicts / total, 4), "result_code_agreement": round(codes / total, 4),
        "disagreements": len(disagreements),
        "ours_pass_rate": round(sum(sum(q["graded_list"]) for q in ours) / n_gen, 4),
        "lcb_runner_pass_rate": round(their_pass / n_gen, 4),
        "time_limited_generations": len(limited),
        "time_limit_floor_s": round(limited_s / workers, 2),
    }
    if limited_s:
        figures["throughput_ratio_bound"] = round(ref_s / (limited_s / workers), 3)
    return figures, disagreements


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=6)
    ap.add_argument("--slow", type=int, default=8, help="generations that exceed the time limit")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures and disagreements here")
    args = ap.parse_args()

    python = ensure_lcb_venv()
    work = build_workload(args.slow)
    n_gen = sum(len(g) for _, g in work)
    kinds = Counter(k for _, gens in work for k, _ in gens)
    n_tests = sum(len(p.public_tests) + len(p.private_tests) for p, _ in work)
    print(f"[bench] {len(work)} problems ({n_tests} tests), {n_gen} generations {dict(kinds)}, "
          f"workers {args.workers}, timeout {args.timeout}s", file=sys.stderr)
    figures, disagreements = compare(python, work, args.workers, args.timeout)

    # The same comparison without the slow generations shows what each grader itself costs.
    quick = [(p, [(k, c) for k, c in gens if k != "slow"]) for p, gens in work]
    print("[bench] again without the slow generations", file=sys.stderr)
    quick_figures, quick_disagreements = compare(python, [w for w in quick if w[1]], args.workers, args.timeout)
    disagreements += quick_disagreements

    figures = {
        "problems": len(work), "generations": n_gen, "tests": n_tests, "workers": args.workers,
        "timeout_s": args.timeout, "kinds": dict(kinds), **figures,
        "without_slow": {k: quick_figures[k] for k in ("ours_wall_s", "lcb_runner_wall_s", "throughput_ratio",
                                                       "verdict_agreement", "result_code_agreement")},
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if args.json:
        args.json.write_text(json.dumps({**figures, "disagreement_list": disagreements[:50]}, indent=1))
    for d in disagreements[:10]:
        print(f"[bench] disagreement: {json.dumps(d)[:600]}", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
