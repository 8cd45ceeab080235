"""Every partitioning of the asset graph, in one place: the assets and the sensors both import it.

A partition key is also the `part=<key>` folder of the warehouse table the asset writes. The static key
lists repeat those of the code that owns them (resources imports no pipeline code); a test holds them equal
to `datagen.curriculum.STAGES` and `evals.polyglot.exercises.LANGUAGES`.
"""

from __future__ import annotations

import json

import dagster as dg

# Dynamic partitions: the keys the configuration names are added by the register_partitions sensor
# (sensors/partitions.py) and by `hrm materialize`, both from the assets' DEFAULT_KEYS metadata; other keys by
# sensors that find new data. The definitions are known by name.
LCB_RELEASE = "lcb_release"  # LiveCodeBench release tags, e.g. release_v6
SWE_REPO = "swe_repos"  # repo spec keys, e.g. pypi__addict

lcb_releases = dg.DynamicPartitionsDefinition(name=LCB_RELEASE)
swe_repos = dg.DynamicPartitionsDefinition(name=SWE_REPO)

CURRICULUM_STAGES = ("1", "2", "3", "4")
POLYGLOT_LANGUAGES = ("cpp", "go", "java", "javascript", "python", "rust")

AGENT_POLICY_KEYS = ("oracle", "hrm", "baseline")  # agents.rollouts.policy_spec maps each to a policy spec


def configured_agent_policies() -> list[str]:
    """The agent_rollouts partition keys HRM_AGENT_POLICIES names (static: read when the definitions load)."""
    from resources.settings import env_str, split_csv

    keys = list(split_csv(env_str("HRM_AGENT_POLICIES")))
    bad = [k for k in keys if k not in AGENT_POLICY_KEYS]
    if bad or not keys:
        raise ValueError(f"HRM_AGENT_POLICIES={env_str('HRM_AGENT_POLICIES')!r}: expected a comma-separated subset "
                         f"of {', '.join(AGENT_POLICY_KEYS)} (other model specs run through agents.rollouts directly)")
    return keys


agent_policies = dg.StaticPartitionsDefinition(configured_agent_policies())
curriculum_stages = dg.StaticPartitionsDefinition(list(CURRICULUM_STAGES))
polyglot_languages = dg.StaticPartitionsDefinition(list(POLYGLOT_LANGUAGES))

# An asset with a dynamic partitioning lists, in this metadata entry, the keys its configuration names
# (hrm_assets/swe.py: HRM_SWE_REPOS; hrm_assets/lcb.py: HRM_LCB_RELEASES when HRM_LCB_SOURCE is set).
DEFAULT_KEYS = "hrm/default_partitions"


def configured_keys(asset_graph) -> dict[str, list[str]]:
    """{dynamic partitions name: keys} from the assets' DEFAULT_KEYS metadata; works on the definitions' own
    asset graph (in a sensor) and on a workspace's remote one (in `hrm materialize`)."""
    wanted: dict[str, list[str]] = {}
    for node in asset_graph.asset_nodes:
        pdef = node.partitions_def
        entry = node.metadata.get(DEFAULT_KEYS)
        if not isinstance(pdef, dg.DynamicPartitionsDefinition) or entry is None:
            continue
        value = getattr(entry, "value", entry)
        keys = json.loads(value) if isinstance(value, str) else list(value)
        known = wanted.setdefault(pdef.name, [])
        known.extend(k for k in keys if k not in known)
    return wanted


def missing_requests(asset_graph, instance) -> list[dg.AddDynamicPartitionsRequest]:
    requests = []
    for name, keys in sorted(configured_keys(asset_graph).items()):
        have = set(instance.get_dynamic_partitions(name))
        missing = [k for k in keys if k not in have]
        if missing:
            requests.append(dg.AddDynamicPartitionsRequest(partitions_def_name=name, partition_keys=missing))
    return requests
