"""The jail's cost, end to end through `Sandbox.run`: per language, a hello world compiled and run in the jail
against the same commands run bare on the host; and the start-up of trivial jailed commands.

  .venv/bin/python bench/sandbox.py [--runs 10] [--languages go,rust] [--startup-runs 40]
                                    [--baseline OTHER/resources/sandbox.py]

Languages: each hello world (a new source each repetition, so neither side finds its own program in a
build cache) goes through `resources.programs.single_file_phases` and `Sandbox.run` with its compile step,
as `hrm sandbox run` does; bare runs the same compile and run scripts with `sh -c` in a fresh host folder,
with the same toolchains, their jail environment mapped to host paths, and warm caches (Go's on the host
built once before timing, as the jail's prebuilt one is). Jail and bare alternate run by run, so both see
the same load. The ratio is the median jail wall time ÷ the median bare wall time; the goal is ≤ 1.5.

Start-up: trivial commands; with --baseline, another copy of resources/sandbox.py (an older checkout, say)
runs them interleaved with this one (A B A B ...); that ratio is ours / theirs.

Bare runs execute only this file's own hello worlds outside the jail. Prints progress on stderr and one
JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COMMANDS = {"true": ["true"], "python3 -c pass": ["python3", "-c", "pass"]}
GOAL = 1.5
# Each repetition's program prints its own number, so no build cache holds it yet.
HELLO = {
    "python": 'print("hello", {n})\n',
    "javascript": 'console.log("hello", {n});\n',
    "cpp": '#include <iostream>\nint main() {{ std::cout << "hello " << {n} << std::endl; }}\n',
    "rust": 'fn main() {{ println!("hello {{}}", {n}); }}\n',
    "go": 'package main\n\nimport "fmt"\n\nfunc main() {{ fmt.Println("hello", {n}) }}\n',
    "java": 'public class Hello {{ public static void main(String[] a) {{ System.out.println("hello " + {n}); }} }}\n',
}


def _load(path: str):
    spec = importlib.util.spec_from_file_location("baseline_sandbox", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _median_ms(ts: list[float]) -> float:
    return round(statistics.median(ts) * 1000, 2)


class Bare:
    """The jail's toolchain environment on the host: jail paths mapped back to the host paths bound there,
    and the jail's /tmp to a folder of our own (holding warm caches for the whole bench)."""

    def __init__(self, scratch: Path):
        from resources.toolchains import all_toolchains

        self.scratch = scratch
        self.tmp = scratch / "tmp"
        (self.tmp / "home").mkdir(parents=True)
        self.binds: list[tuple[str, str]] = [("/tmp", str(self.tmp))]
        path, env = [], {}
        for tc in all_toolchains():
            if tc.available:
                self.binds += [(dest, src) for src, dest in tc.binds]
                path += tc.path
                env.update(tc.env)
        self.binds.sort(key=lambda b: -len(b[0]))  # the longest jail prefix first
        self.env = {"HOME": self._host("/tmp/home"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                    "TMPDIR": str(self.tmp), **{k: self._host(v) for k, v in env.items()}}
        self.env["PATH"] = ":".join([self._host(p) for p in path] + ["/usr/local/bin", "/usr/bin", "/bin"])
        home = self._host("/opt/hrm-home")  # the cargo configuration every jail's HOME starts from
        if home != "/opt/hrm-home" and Path(home).is_dir():
            shutil.copytree(home, self.tmp / "home", dirs_exist_ok=True)

    def _host(self, value: str) -> str:
        for jail, host in self.binds:
            if value == jail or value.startswith(jail + "/"):
                return host + value[len(jail):]
        return value

    def run(self, files: dict[str, str], build: list[str] | None, run: list[str]) -> subprocess.CompletedProcess:
        work = Path(tempfile.mkdtemp(dir=self.scratch))
        for name, content in files.items():
            (work / name).write_text(content)
        script = run[2] if build is None else f"{build[2]} && {run[2]}"  # both are ["sh", "-c", script]
        script = script.replace("/tmp/", f"{self.tmp}/")
        done = subprocess.run(["sh", "-c", script], cwd=work, env=self.env, capture_output=True, text=True,
                              timeout=300)
        shutil.rmtree(work)
        return done


def languages_bench(languages: list[str], runs: int) -> dict:
    from resources import toolcache
    from resources.programs import single_file_phases
    from resources.sandbox import Sandbox
    from resources.toolchains import toolchain

    sb = Sandbox(uid_base=64500, timeout_s=120, compile_timeout_s=300)
    with tempfile.TemporaryDirectory(prefix="hrm-bench-bare-") as scratch:
        bare = Bare(Path(scratch))
        out: dict = {}
        for language in languages:
            if not toolchain(language).available:
                out[language] = {"skipped": toolchain(language).reason}
                continue
            jail_ts, bare_ts, compile_ts = [], [], []
            for n in range(runs + 1):  # the first of each is a warm-up (page cache, the bare Go cache)
                files, build, run = single_file_phases(language, HELLO[language].format(n=1000 + n))
                expected = f"hello {1000 + n}\n"
                t0 = time.perf_counter()
                r = sb.run(run, files=files, compile=build)
                t1 = time.perf_counter()
                b = bare.run(files, build, run)
                t2 = time.perf_counter()
                if (r.status, r.stdout) != ("ok", expected) or (b.returncode, b.stdout) != (0, expected):
                    raise SystemExit(f"{language}: jail {r}; bare {b}")
                if n:
                    jail_ts.append(t1 - t0)
                    bare_ts.append(t2 - t1)
                    compile_ts.append(r.compile_wall_s or 0.0)
            jail_ms, bare_ms = _median_ms(jail_ts), _median_ms(bare_ts)
            out[language] = {"jail_ms": jail_ms, "bare_ms": bare_ms, "ratio": round(jail_ms / bare_ms, 3),
                             "jail_compile_ms": _median_ms(compile_ts) if build else None}
            print(f"[bench sandbox] {language}: {out[language]}", file=sys.stderr)
    return {"languages": out, "go_cache": str(toolcache.go_cache() or "none (cold: run scripts/setup.sh as root)")}


def startup_bench(runs: int, baseline: str | None) -> dict:
    from resources import sandbox

    variants = {"current": sandbox.Sandbox(uid_base=64500)}
    if baseline:
        variants["baseline"] = _load(baseline).Sandbox(uid_base=64700)
    times: dict[str, dict[str, list[float]]] = {v: {c: [] for c in COMMANDS} for v in variants}
    for sb in variants.values():  # warm the page cache and the toolchain detection
        sb.run(["true"])
    for i in range(runs):
        for label, command in COMMANDS.items():
            for name, sb in variants.items():
                t0 = time.perf_counter()
                result = sb.run(command)
                times[name][label].append(time.perf_counter() - t0)
                if result.status != "ok":
                    raise SystemExit(f"{name} {label}: {result}")
        if (i + 1) % 10 == 0:
            print(f"[bench sandbox] start-up {i + 1}/{runs}", file=sys.stderr)
    out: dict = {}
    for name in variants:
        out[name] = {label: _median_ms(ts) for label, ts in times[name].items()}
    if "baseline" in out:
        out["ratio"] = {label: round(out["current"][label] / out["baseline"][label], 3) for label in COMMANDS}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="hello-world repetitions per language and side")
    ap.add_argument("--languages", default=",".join(HELLO), help="comma-separated; empty: none")
    ap.add_argument("--startup-runs", type=int, default=40, help="start-up repetitions; 0: none")
    ap.add_argument("--baseline", default=None, help="path of another resources/sandbox.py to compare start-up with")
    args = ap.parse_args()

    from resources.sandbox import Sandbox

    languages = [lang for lang in args.languages.split(",") if lang]
    unknown = [lang for lang in languages if lang not in HELLO]
    if unknown:
        raise SystemExit(f"unknown languages {unknown}; expected some of {', '.join(HELLO)}")
    out: dict = {"runs": args.runs, "load_before": round(os.getloadavg()[0], 2)}
    if languages:
        out.update(languages_bench(languages, args.runs))
        ratios = {lang: v["ratio"] for lang, v in out["languages"].items() if "ratio" in v}
        out["ratio"] = ratios
        out["goal"] = GOAL
        out["meets_goal"] = all(r <= GOAL for r in ratios.values())
    if args.startup_runs:
        out["startup"] = startup_bench(args.startup_runs, args.baseline)
        out["startup_runs"] = args.startup_runs
    out["load_after"] = round(os.getloadavg()[0], 2)
    out["layers"] = Sandbox().layers()
    out["unit"] = "ms (median wall time; jail: Sandbox.run end to end; bare: sh -c on the host)"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
