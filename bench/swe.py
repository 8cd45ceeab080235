"""SWE benchmark: SWE-smith tasks generated+validated per minute, and N concurrent jailed SWE-ReX sessions.

  .venv/bin/python bench/swe.py [--repo addict==2.4.0] [--max-bugs 60] [--sessions 32] [--commands 10]

Prints progress on stderr and one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 4)


def bench_tasks(repo_spec: str, max_bugs: int, root: str) -> dict:
    from datagen.swe.repos import baseline_row, parse_repo_spec
    from datagen.swe.tasks import TaskSettings, build_tasks
    from resources.sandbox import default_sandbox

    sandbox = default_sandbox()
    t0 = time.monotonic()
    row = baseline_row(sandbox, parse_repo_spec(repo_spec), root)
    prep = time.monotonic() - t0
    t1 = time.monotonic()
    rows, rejected, stats = build_tasks(sandbox, row, TaskSettings(max_bugs=max_bugs))
    minutes = (time.monotonic() - t1) / 60
    print(f"[bench swe] {repo_spec}: {stats}", file=sys.stderr)
    return {"repo": repo_spec, "prepare_s": round(prep, 2), "baseline_tests": row["n_tests"],
            "candidates": stats["candidates"], "tasks": stats["tasks"], "generate_s": stats["generate_s"],
            "validate_s": stats["validate_s"], "sandbox_concurrency": sandbox.concurrency,
            "candidates_validated_per_minute": round(stats["candidates"] / minutes, 1),
            "tasks_per_minute": round(stats["tasks"] / minutes, 1)}


def bench_sessions(n: int, commands: int) -> dict:
    from resources.sandbox import Sandbox
    from resources.swerex import SweRexSessions

    sessions = SweRexSessions(startup_timeout_s=120, command_timeout_s=120)
    sandbox = Sandbox()
    barrier = threading.Barrier(n)
    startups, latencies, failures, lock = [], [], [], threading.Lock()
    script = ["echo hello", "pwd", "ls /work", "python3 -c 'print(sum(range(1000)))'", "cd /tmp && touch f && ls",
              "export X=$((RANDOM % 7)); echo $X", "id -u", "cat /etc/hostname 2>/dev/null || hostname"]

    def worker(i: int):
        barrier.wait()  # all sessions start at once
        try:
            with sessions.open(files={"hello.txt": f"session {i}\n"}, sandbox=sandbox) as s:
                with lock:
                    startups.append(s.startup_s)
                for k in range(commands):
                    r = s.run(script[k % len(script)])
                    with lock:
                        latencies.append(r.wall_s)
                        if r.status != "ok":
                            failures.append(f"session {i} command {k}: {r.status} {r.output[-200:]}")
        except Exception as exc:  # a session that could not start counts as a failure
            with lock:
                failures.append(f"session {i}: {type(exc).__name__}: {str(exc)[-300:]}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    for f in failures[:10]:
        print(f"[bench swe] FAILURE {f}", file=sys.stderr)
    return {"sessions": n, "commands_per_session": commands, "wall_s": round(wall, 2),
            "startup_p50_s": _pct(startups, 0.5), "startup_p95_s": _pct(startups, 0.95),
            "startup_max_s": round(max(startups), 4) if startups else None,
            "command_p50_s": _pct(latencies, 0.5), "command_p95_s": _pct(latencies, 0.95),
            "command_mean_s": round(statistics.mean(latencies), 4) if latencies else None,
            "commands_ok": len(latencies) - sum(1 for f in failures if "command" in f),
            "failures": len(failures)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default="addict==2.4.0")
    ap.add_argument("--max-bugs", type=int, default=60)
    ap.add_argument("--sessions", type=int, default=32)
    ap.add_argument("--commands", type=int, default=10)
    ap.add_argument("--skip-tasks", action="store_true")
    args = ap.parse_args()
    out = {"bench": "swe", "cpus": os.cpu_count(), "load_avg_1m_start": round(os.getloadavg()[0], 2)}
    if not args.skip_tasks:
        with tempfile.TemporaryDirectory(prefix="hrm-bench-swe-") as root:
            out["tasks"] = bench_tasks(args.repo, args.max_bugs, root)
    out["swerex"] = bench_sessions(args.sessions, args.commands)
    out["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))
    return 0 if out["swerex"]["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
