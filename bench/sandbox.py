"""Jail start-up cost: median wall time of trivial jailed commands, end to end through `Sandbox.run`.

  .venv/bin/python bench/sandbox.py [--runs 40] [--baseline OTHER/resources/sandbox.py]

With --baseline, another copy of resources/sandbox.py (an older checkout, say) runs the same commands
interleaved with this one (A B A B ...), so both see the same machine load; the ratio is ours / theirs.
Prints progress on stderr and one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COMMANDS = {"true": ["true"], "python3 -c pass": ["python3", "-c", "pass"]}


def _load(path: str):
    spec = importlib.util.spec_from_file_location("baseline_sandbox", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--baseline", default=None, help="path of another resources/sandbox.py to compare with")
    args = ap.parse_args()

    from resources import sandbox

    variants = {"current": sandbox.Sandbox(uid_base=64500)}
    if args.baseline:
        variants["baseline"] = _load(args.baseline).Sandbox(uid_base=64700)
    times: dict[str, dict[str, list[float]]] = {v: {c: [] for c in COMMANDS} for v in variants}
    for sb in variants.values():  # warm the page cache and the toolchain detection
        sb.run(["true"])
    for i in range(args.runs):
        for label, command in COMMANDS.items():
            for name, sb in variants.items():
                t0 = time.perf_counter()
                result = sb.run(command)
                times[name][label].append(time.perf_counter() - t0)
                if result.status != "ok":
                    raise SystemExit(f"{name} {label}: {result}")
        if (i + 1) % 10 == 0:
            print(f"[bench sandbox] {i + 1}/{args.runs}", file=sys.stderr)
    out: dict = {"runs": args.runs, "layers": variants["current"].layers()}
    for name in variants:
        out[name] = {label: round(statistics.median(ts) * 1000, 2) for label, ts in times[name].items()}
    if "baseline" in out:
        out["ratio"] = {label: round(out["current"][label] / out["baseline"][label], 3) for label in COMMANDS}
    out["unit"] = "ms (median wall time of Sandbox.run)"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
