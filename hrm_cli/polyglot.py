"""`hrm polyglot eval`: run reference solutions or a folder of answers through the Polyglot evaluator."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("polyglot", help="Aider Polyglot benchmark")
    s = p.add_subparsers(dest="command", required=True)
    ev = s.add_parser("eval", help="evaluate reference solutions or a DIR of answers; writes a JSON report")
    ev.add_argument("--source", required=True, metavar="SRC",
                    help="benchmark checkout, git URL or bundle (cloned at the pinned commit)")
    ev.add_argument("--languages", default="", metavar="L,..", help="comma-separated subset of cpp,go,java,javascript,python,rust")
    ev.add_argument("--exercises", default="", metavar="a,b", help="comma-separated exercise names (or language/name)")
    ev.add_argument("--solutions", default="reference", metavar="reference|DIR",
                    help="'reference', or DIR holding DIR/<language>/<exercise>/ files (whole) or response.md (diff)")
    ev.add_argument("--format", default="whole", choices=["whole", "diff"], help="edit format of the answers")
    ev.add_argument("--workers", type=int, default=None, metavar="N", help="exercises run at once (default: CPU cores)")
    ev.add_argument("--json", required=True, type=Path, dest="json_out", metavar="OUT", help="where to write the report")
    ev.set_defaults(handler=_eval)


def _eval(args) -> int:
    from evals.polyglot.exercises import PINNED_COMMIT
    from evals.polyglot.pipeline import open_checkout, run_evaluation, select_exercises
    from resources.fetchers import FetchError
    from resources.sandbox import SandboxUnavailable, default_sandbox
    from resources.warehouse import default_data_dir, write_text_atomic

    if args.solutions != "reference" and not Path(args.solutions).is_dir():
        print(f"hrm polyglot eval: --solutions {args.solutions}: not 'reference' and not a directory",
              file=sys.stderr)
        return 2
    data = Path(default_data_dir())
    try:
        checkout, commit = open_checkout(args.source, data / "clones" / "polyglot-benchmark", PINNED_COMMIT)
        exercises, rejected = select_exercises(checkout, _csv(args.languages), _csv(args.exercises), commit)
    except (FetchError, ValueError, OSError) as exc:
        print(f"hrm polyglot eval: {exc}", file=sys.stderr)
        return 2
    for bad in rejected:
        print(f"hrm polyglot eval: skipped {bad['path']}: {bad['reason']}", file=sys.stderr)
    if not exercises:
        print("hrm polyglot eval: no exercise matches --languages/--exercises", file=sys.stderr)
    overrides = {"concurrency": args.workers} if args.workers else {}
    sandbox = default_sandbox(**overrides)
    done = []

    def progress(r):
        done.append(r)
        print(f"[{len(done)}/{len(exercises)}] {r.language}/{r.exercise}: {r.status} ({r.seconds:.1f} s)"
              f"{' - ' + r.reason[:160] if r.reason else ''}", file=sys.stderr, flush=True)

    try:
        report = run_evaluation(exercises, sandbox, args.solutions, args.format, progress=progress,
                                log=lambda m: print(f"[polyglot] {m}", file=sys.stderr), rejected=rejected)
    except SandboxUnavailable as exc:
        print(f"hrm polyglot eval: {exc}", file=sys.stderr)
        return 2
    report.update({"source": args.source, "commit": commit})
    write_text_atomic(args.json_out, json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("counts", "pass_rate_1", "pass_rate_2", "percent_cases_well_formed",
                                             "wall_s")}))
    return 0 if exercises else 2


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]
