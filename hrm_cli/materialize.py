"""`hrm materialize`: materialise the asset graph (or a selection) through the Dagster instance in $DAGSTER_HOME
(default: the repo's .dagster_home), so the UI, run monitoring and the run-status sensors see every run.

The code location is loaded from workspace.yaml, as `dagster dev` loads it. Assets go in dependency order; each
partitioned asset gets one run per partition key, shared with its parents of the same partitioning, and
unpartitioned neighbours share a run (few runs: each starts a process that loads the code location). Each run is submitted through the instance's run coordinator and
launcher and followed in the event log. A failed step or blocking check stops the whole command.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def register(sub) -> None:
    p = sub.add_parser("materialize", help="materialise the whole asset graph (or --select) in order")
    p.add_argument("--select", default=None,
                   help="comma-separated asset keys or group:NAME entries (default: every asset)")
    p.add_argument("--partition", default=None, help="only this partition key for partitioned assets")
    p.add_argument("--list", action="store_true", help="print the plan without running it")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return materialize(str(REPO_ROOT / "workspace.yaml"), args.select, args.partition, args.list)


def materialize(workspace_file: str, select: str | None, partition: str | None, list_only: bool) -> int:
    import dagster as dg

    from hrm_cli import instance_runs

    summary = None
    with _stdout_to_stderr(), dg.DagsterInstance.get() as instance, \
            instance_runs.workspace(instance, workspace_file) as context:
        instance_runs.monitor(context)  # before planning: a killed run's pool slot must not block this one
        graph = context.create_request_context().asset_graph
        register_configured_partitions(graph, instance)
        plan = build_plan(graph, instance, select, partition)
        if not list_only:
            summary = run_plan(context, plan)
    if list_only:
        for keys, pk in plan:
            print(f"{','.join(keys)}" + (f" [{pk}]" if pk else ""))
        return 0
    print(json.dumps(summary))
    return 0 if summary["success"] else 1


@contextlib.contextmanager
def _stdout_to_stderr():
    """The code server and the run processes it starts inherit this process's stdout and log to it; stdout
    is kept for the plan and the JSON summary."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def register_configured_partitions(graph, instance) -> None:
    """What the register_partitions sensor adds, for when no daemon has ticked it yet."""
    from resources.partitions import missing_requests

    for request in missing_requests(graph, instance):
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)


def build_plan(graph, instance, select: str | None, only_partition: str | None):
    """[(asset keys, partition or None)] in an order that respects every dependency. An unpartitioned asset joins
    the last group that runs anything when that group is unpartitioned; a partitioned one joins an earlier group
    of the same partitioning when all its parents come no later (swe_repos and swesmith_tasks: one run per repo)."""
    wanted = _selected_keys(graph, select)
    groups: list[tuple[list[str], object, list[str]]] = []  # (asset keys, partitions def or None, partition keys)
    where: dict = {}  # asset key -> index of its group
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        if key not in wanted or not node.is_materializable:
            continue
        pdef = node.partitions_def
        after = max((where[p] for p in node.parent_keys if p in where), default=-1)
        if pdef is None:
            running = [i for i, (_, d, pks) in enumerate(groups) if d is None or pks]
            joinable = [running[-1]] if running and groups[running[-1]][1] is None and running[-1] >= after else []
        else:
            joinable = [i for i, (_, d, _) in enumerate(groups) if i >= after and d == pdef]
        if joinable:
            where[key] = joinable[0]
            groups[joinable[0]][0].append(key.to_user_string())
            continue
        where[key] = len(groups)
        pks = [] if pdef is None else [pk for pk in pdef.get_partition_keys(dynamic_partitions_store=instance)
                                       if only_partition is None or pk == only_partition]
        groups.append(([key.to_user_string()], pdef, pks))
    return [(keys, pk) for keys, pdef, pks in groups for pk in ([None] if pdef is None else pks)]


def run_plan(context, plan) -> dict:
    from hrm_cli import instance_runs

    instance, daemon = context.instance, instance_runs.Daemon(context)
    tags = {"hrm/launched_by": "hrm materialize"}
    runs, start = [], time.monotonic()
    for keys, partition in plan:
        label = ",".join(keys) + (f" [{partition}]" if partition else "")
        t0 = time.monotonic()
        run = instance_runs.submit(context, keys, partition, tags)
        _echo(f"{label}: run {run.run_id}")
        run, events = instance_runs.follow(daemon, run.run_id, lambda line: _echo(f"  {line}"))
        success = run.status.value == "SUCCESS"
        runs.append({"assets": keys, "partition": partition, "success": success, "run_id": run.run_id,
                     "seconds": round(time.monotonic() - t0, 2),
                     "failed_checks": instance_runs.failed_checks(events)})
        if not success:
            for step, message in instance_runs.failures(events):
                _echo(f"step {step} failed: {message}")
            _echo(f"FAILED: {label} (run {run.run_id}, {run.status.value}; details in the UI)")
            break
    return {"success": all(r["success"] for r in runs) and len(runs) == len(plan),
            "runs": runs, "wall_s": round(time.monotonic() - start, 2)}


def _echo(line: str) -> None:
    print(f"[hrm materialize] {line}", file=sys.stderr, flush=True)


def _selected_keys(graph, select: str | None):
    import dagster as dg

    all_keys = set(graph.get_all_asset_keys())
    if not select:
        return all_keys
    chosen = set()
    for item in (s.strip() for s in select.split(",") if s.strip()):
        if item.startswith("group:"):
            chosen |= {k for k in all_keys if graph.get(k).group_name == item[6:]}
        else:
            key = dg.AssetKey.from_user_string(item)
            if key not in all_keys:
                raise SystemExit(f"hrm materialize: unknown asset {item!r}")
            chosen.add(key)
    return chosen
