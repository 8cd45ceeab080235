"""`hrm swe …`: the SWE data functions without Dagster.

  hrm swe tasks addict==2.4.0 --max-bugs 20 --out tasks.jsonl   baseline + bugs + validation for one repo
  hrm swe rollout addict==2.4.0 --tasks 2 --policy oracle       agent-loop trajectories for its tasks
  hrm swe tool-use --only git_merge_conflict                    run (and verify) tool-use workflows
  hrm swe shell 'id -u' 'ls /'                                  commands in one jailed SWE-ReX session
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("swe", help="SWE-smith tasks, jailed SWE-ReX sessions, trajectories, tool-use workflows")
    area = p.add_subparsers(dest="swe_command", required=True)
    t = area.add_parser("tasks", help="prepare a repo (spec as in HRM_SWE_REPOS) and make validated tasks")
    t.add_argument("spec")
    t.add_argument("--max-bugs", type=int, default=40)
    t.add_argument("--seed", type=int, default=24)
    t.add_argument("--root", default=None, help="work dir for checkouts/envs (default: <data dir>/swe)")
    t.add_argument("--out", default=None, help="write task rows as JSON lines here")
    t.set_defaults(handler=_tasks)
    r = area.add_parser("rollout", help="agent-loop episodes in jailed sessions on a repo's tasks, verified by "
                                        "their tests")
    r.add_argument("spec")
    r.add_argument("--tasks", type=int, default=2)
    r.add_argument("--policy", default="oracle",
                   help="oracle, local:CKPT_DIR[+ADAPTER_DIR][@int8|@nf4] or openai:BASE_URL#MODEL")
    r.add_argument("--max-steps", type=int, default=8)
    r.add_argument("--root", default=None)
    r.add_argument("--out", default=None)
    r.set_defaults(handler=_rollout)
    u = area.add_parser("tool-use", help="run the tool-use workflows in the sandbox and report which pass")
    u.add_argument("--only", default="", help="comma-separated workflow names")
    u.add_argument("--seed", type=int, default=0)
    u.set_defaults(handler=_tool_use)
    s = area.add_parser("shell", help="run commands, in order, in one jailed SWE-ReX session")
    s.add_argument("commands", nargs="+")
    s.add_argument("--timeout", type=float, default=30)
    s.set_defaults(handler=_shell)


def _root(arg: str | None) -> Path:
    from resources.warehouse import default_data_dir

    return Path(arg or os.path.join(default_data_dir(), "swe"))


def _tasks(args) -> int:
    from datagen.swe.repos import baseline_row, parse_repo_spec
    from datagen.swe.tasks import TaskSettings, build_tasks
    from resources.sandbox import default_sandbox

    sandbox = default_sandbox()
    row = baseline_row(sandbox, parse_repo_spec(args.spec), _root(args.root))
    print(f"baseline: {row['n_passed']}/{row['n_tests']} tests pass ({row['baseline_status']})", file=sys.stderr)
    rows, rejected, stats = build_tasks(sandbox, row, TaskSettings(seed=args.seed, max_bugs=args.max_bugs),
                                        lambda d, n: print(f"\rvalidated {d}/{n}", end="", file=sys.stderr))
    print(file=sys.stderr)
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(json.dumps(stats))
    return 0 if rows else 1


def _rollout(args) -> int:
    from agents.rollouts import RolloutSettings, rollout_rows
    from agents.tasks import from_swesmith
    from datagen.swe.repos import baseline_row, parse_repo_spec, repo_from_row
    from datagen.swe.tasks import TaskSettings, build_tasks
    from resources.sandbox import default_sandbox
    from resources.swerex import default_swe_sessions

    sandbox, sessions = default_sandbox(), default_swe_sessions()
    row = baseline_row(sandbox, parse_repo_spec(args.spec), _root(args.root))
    tasks, _, _ = build_tasks(sandbox, row, TaskSettings(max_bugs=max(4, 3 * args.tasks)))
    repo = repo_from_row(row)
    trajs = rollout_rows(args.policy, [from_swesmith(t, repo) for t in tasks[: args.tasks]],
                         RolloutSettings(tasks=args.tasks, max_steps=args.max_steps), sandbox, sessions)
    if args.out:
        Path(args.out).write_text("".join(json.dumps(t) + "\n" for t in trajs))
    print(json.dumps([{k: t[k] for k in ("traj_id", "status", "resolved", "n_steps", "tokens", "episode_wall_s")}
                      for t in trajs]))
    return 0 if all(t["resolved"] for t in trajs) else 1


def _tool_use(args) -> int:
    from datagen.swe.tool_use import build_tool_use_examples
    from resources.sandbox import default_sandbox

    only = [w for w in args.only.split(",") if w] or None
    kept, rejected = build_tool_use_examples(default_sandbox(), args.seed, 1, only)
    print(json.dumps({"kept": [r["workflow_id"] for r in kept],
                      "rejected": {r["workflow_id"]: r["reason"] for r in rejected}}))
    return 0 if not rejected else 1


def _shell(args) -> int:
    from resources.swerex import default_swe_sessions

    with default_swe_sessions().open() as s:
        for command in args.commands:
            print(json.dumps(s.run(command, timeout_s=args.timeout).to_dict()))
    return 0
