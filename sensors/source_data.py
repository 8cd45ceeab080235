"""Notice new source data and re-materialise what reads it: a new LiveCodeBench release in the configured
source (HRM_LCB_SOURCE), a new commit of the Polyglot benchmark source (HRM_POLYGLOT_SOURCE) when
HRM_POLYGLOT_FOLLOW_UPSTREAM asks to follow it (by default the benchmark stays at its pinned commit, so reports
stay comparable)."""

import re
from pathlib import Path

import dagster as dg

from evals.polyglot.exercises import PINNED_COMMIT
from resources.fetchers import remote_head
from resources.partitions import lcb_releases
from resources.settings import env_bool, env_str


def newest_lcb_release(source: str) -> str | None:
    """`release_vN` for the highest testN file in a local LCB source directory (test.jsonl is N=1)."""
    path = Path(source).expanduser() if source else None
    if path is None or not path.is_dir():
        return None
    numbers = []
    for p in path.iterdir():
        m = re.fullmatch(r"test(\d*)\.(jsonl|parquet)", p.name)
        if m:
            numbers.append(int(m.group(1) or 1))
        elif p.is_dir() and re.fullmatch(r"release_v\d+", p.name):
            numbers.append(int(p.name.split("_v")[1]))
    return f"release_v{max(numbers)}" if numbers else None


@dg.sensor(name="new_lcb_release", minimum_interval_seconds=3600, default_status=dg.DefaultSensorStatus.RUNNING,
           target=dg.AssetSelection.assets("livecodebench_raw", "lcb_problems"),
           description="A newer LiveCodeBench release file in HRM_LCB_SOURCE adds its partition and loads it.")
def new_lcb_release_sensor(context: dg.SensorEvaluationContext):
    release = newest_lcb_release(env_str("HRM_LCB_SOURCE"))
    if release is None:
        return dg.SkipReason("HRM_LCB_SOURCE is not a local directory with LiveCodeBench release files")
    if release == context.cursor:
        return dg.SkipReason(f"{release} already seen")
    known = context.instance.get_dynamic_partitions(lcb_releases.name)
    adds = [] if release in known else [lcb_releases.build_add_request([release])]
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"lcb-{release}", partition_key=release)],
                           dynamic_partitions_requests=adds, cursor=release)


def materialised_commit(instance) -> str | None:
    records = instance.fetch_materializations(dg.AssetKey("polyglot_benchmark"), limit=1).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get("commit")
    return getattr(value, "value", value)


@dg.sensor(name="new_polyglot_commit", minimum_interval_seconds=6 * 3600,
           default_status=dg.DefaultSensorStatus.RUNNING, target=dg.AssetSelection.assets("polyglot_benchmark"),
           description="With HRM_POLYGLOT_FOLLOW_UPSTREAM=1, a Polyglot benchmark source whose HEAD differs from "
                       "the materialised clone is re-cloned at that commit (problems and the corpus follow); "
                       "otherwise the benchmark stays at its pinned commit.")
def new_polyglot_commit_sensor(context: dg.SensorEvaluationContext):
    if not env_bool("HRM_POLYGLOT_FOLLOW_UPSTREAM"):
        return dg.SkipReason(f"the Polyglot benchmark is pinned at {PINNED_COMMIT[:12]}; set "
                             "HRM_POLYGLOT_FOLLOW_UPSTREAM=1 to follow the source's HEAD")
    source = env_str("HRM_POLYGLOT_SOURCE")
    head = remote_head(source)
    if head is None:
        return dg.SkipReason(f"cannot read HEAD of {source}")
    have = materialised_commit(context.instance)
    if head == have or head == context.cursor:
        return dg.SkipReason(f"polyglot source HEAD {head[:12]} already materialised or requested")
    context.update_cursor(head)
    return dg.RunRequest(run_key=f"polyglot-{head}", tags={"hrm/polyglot_commit": head},
                         run_config={"ops": {"polyglot_benchmark": {"config": {"source": source, "commit": head}}}})


# Without a sensor turned on, automation conditions are never evaluated; this one starts RUNNING (Dagster's
# own default_automation_condition_sensor starts stopped) and replaces it, as it targets every asset.
data_chain_automation = dg.AutomationConditionSensorDefinition(
    "data_chain_automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Evaluates the assets' automation conditions: new upstream data flows down the data chain "
                "(corpus, tokenizer, examples, shards, Polyglot problems) once the upstream blocking checks pass.")
