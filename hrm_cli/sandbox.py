"""`hrm sandbox run`: compile and run one untrusted single-file program in the jail; the JSON says which
phase (`compile` or `run`) ended it, each phase under its own time limit.
`hrm sandbox layers`: which of the jail's protections hold on this machine (docs/sandbox.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("sandbox", help="run untrusted programs in the bubblewrap jail")
    s = p.add_subparsers(dest="command", required=True)
    run = s.add_parser("run", help="compile (where needed) and run a single-file program; prints one JSON object")
    run.add_argument("--language", required=True,
                     choices=["python", "javascript", "cpp", "rust", "go", "java", "shell"])
    run.add_argument("--timeout", type=float, default=None,
                     help="wall-clock seconds of the program's run (default HRM_SANDBOX_TIMEOUT_S, 60)")
    run.add_argument("--compile-timeout", type=float, default=None,
                     help="wall-clock seconds of the compile step, apart from --timeout (C++, Rust, Go; "
                          "default HRM_SANDBOX_COMPILE_TIMEOUT_S, 60)")
    run.add_argument("--memory-mb", type=int, default=None,
                     help="memory limit: all the jail holds in RAM (processes, shared memory, files in /work and "
                          "/tmp, kernel memory; where a cgroup can be made) and each process's data segment")
    run.add_argument("--stdin", type=Path, default=None, help="file fed to the program's standard input")
    run.add_argument("file", type=Path)
    run.set_defaults(handler=_run)
    layers = s.add_parser("layers", help="print, as one JSON object, which jail protections hold on this machine")
    layers.set_defaults(handler=_layers)


def _layers(args) -> int:
    from resources.sandbox import SandboxUnavailable, default_sandbox

    sandbox = default_sandbox()
    try:
        sandbox.check_available()
    except SandboxUnavailable as exc:
        print(f"hrm sandbox layers: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(sandbox.layers()))
    return 0


def _run(args) -> int:
    from resources.programs import single_file_phases
    from resources.sandbox import SandboxUnavailable, default_sandbox

    try:
        source = args.file.read_text()
    except OSError as exc:
        print(f"hrm sandbox run: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        files, build, command = single_file_phases(args.language, source)
        stdin = args.stdin.read_bytes() if args.stdin else None
        result = default_sandbox().run(command, files=files, compile=build, timeout_s=args.timeout,
                                       compile_timeout_s=args.compile_timeout, memory_mb=args.memory_mb,
                                       stdin=stdin)
    except (SandboxUnavailable, RuntimeError, OSError) as exc:
        print(f"hrm sandbox run: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict()))
    return 0 if result.status != "error" else 2
