"""`hrm materialize`: materialise the asset graph (or a selection) on the persistent instance.

Runs go into $DAGSTER_HOME (default: the repo's .dagster_home), so the UI shows them with lineage.
Assets run in topological order; each partitioned asset gets one run per partition key; runs of
unpartitioned neighbours are grouped. A failed step or blocking check stops the whole command.
"""

from __future__ import annotations

import json
import os
import socket
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
    import dagster as dg

    from hrm_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    for run_id in release_abandoned_runs(instance):
        print(f"[hrm materialize] run {run_id} was killed before it finished: marked failed, "
              "its pool slots freed", file=sys.stderr)
    plan = build_plan(defs, instance, args.select, args.partition)
    if args.list:
        for keys, partition in plan:
            print(f"{','.join(keys)}" + (f" [{partition}]" if partition else ""))
        return 0
    summary = run_plan(defs, instance, plan)
    print(json.dumps(summary))
    return 0 if summary["success"] else 1


def build_plan(defs, instance, select: str | None, only_partition: str | None):
    """[(asset keys, partition or None)] in an order that respects every dependency."""
    graph = defs.resolve_asset_graph()
    wanted = _selected_keys(graph, select)
    plan, pending = [], []
    for key in graph.toposorted_asset_keys:
        if key not in wanted or not graph.get(key).is_materializable:
            continue
        pdef = graph.get(key).partitions_def
        if pdef is None:
            pending.append(key.to_user_string())
            continue
        if pending:
            plan.append((pending, None))
            pending = []
        _register_default_partitions(graph.get(key), pdef, instance)
        keys = pdef.get_partition_keys(dynamic_partitions_store=instance)
        for pk in keys:
            if only_partition is None or pk == only_partition:
                plan.append(([key.to_user_string()], pk))
    if pending:
        plan.append((pending, None))
    return plan


def run_plan(defs, instance, plan) -> dict:
    import dagster as dg

    # The definitions as declared (the resolved graph's copies already carry bound resources).
    assets = [*(defs.assets or []), *(defs.asset_checks or [])]
    resources = defs.resources
    runs, start = [], time.monotonic()
    for keys, partition in plan:
        label = ",".join(keys) + (f" [{partition}]" if partition else "")
        print(f"[hrm materialize] {label}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        result = dg.materialize(assets, instance=instance, resources=resources, partition_key=partition,
                                selection=dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys]),
                                raise_on_error=False,
                                tags={"hrm/launched_by": "hrm materialize", "hrm/pid": str(os.getpid()),
                                      "hrm/host": socket.gethostname()})
        failed_checks = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        runs.append({"assets": keys, "partition": partition, "success": result.success,
                     "run_id": result.run_id, "seconds": round(time.monotonic() - t0, 2),
                     "failed_checks": failed_checks})
        if not result.success:
            for step, message in _step_failures(result):
                print(f"[hrm materialize] step {step} failed: {message}", file=sys.stderr)
            print(f"[hrm materialize] FAILED: {label} (run {result.run_id}; details in the UI)", file=sys.stderr)
            break
    return {"success": all(r["success"] for r in runs) and len(runs) == len(plan),
            "runs": runs, "wall_s": round(time.monotonic() - start, 2)}


def release_abandoned_runs(instance) -> list[str]:
    """Runs this command started whose process is gone (killed): without a daemon they would keep
    their `gpu` pool slot forever and block every later training step."""
    import dagster as dg

    released = []
    records = instance.get_run_records(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
        tags={"hrm/launched_by": "hrm materialize"}))
    for record in records:
        run = record.dagster_run
        pid = int(run.tags.get("hrm/pid", "0") or 0)
        if run.tags.get("hrm/host") != socket.gethostname() or (pid and _process_alive(pid)):
            continue
        instance.report_run_failed(run)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
    return released


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _step_failures(result) -> list[tuple[str, str]]:
    failures = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            message = error.message.strip() if error else "unknown error"
            cause = error.cause if error else None
            while cause is not None:  # the user code's own exception is the innermost cause
                message = cause.message.strip()
                cause = cause.cause
            failures.append((event.step_key, message[-2000:]))
    return failures


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


def _register_default_partitions(node, pdef, instance) -> None:
    """Dynamic partitions start with the keys an asset declares in metadata `hrm/default_partitions`."""
    import dagster as dg

    if not isinstance(pdef, dg.DynamicPartitionsDefinition):
        return
    defaults = node.metadata.get("hrm/default_partitions")
    if defaults is None:
        return
    values = defaults.value if hasattr(defaults, "value") else defaults
    keys = json.loads(values) if isinstance(values, str) else list(values)
    missing = [k for k in keys if not instance.has_dynamic_partition(pdef.name, k)]
    if missing:
        instance.add_dynamic_partitions(pdef.name, missing)
