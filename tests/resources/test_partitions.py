"""resources/partitions.py: the one home of every partitioning; assets and sensors use its definitions."""

import ast
from pathlib import Path

import dagster as dg
import pytest

from resources import partitions

REPO_ROOT = Path(__file__).resolve().parents[2]
ALL = (partitions.lcb_releases, partitions.swe_repos, partitions.curriculum_stages, partitions.polyglot_languages,
       partitions.agent_policies)
CODE_FOLDERS = ("hrm_assets", "sensors", "evals", "datagen", "training", "resources", "hrm_cli", "model", "bench",
                "agents")


def test_static_keys_are_those_of_the_code_that_owns_them():
    from datagen.curriculum import STAGES
    from evals.polyglot.exercises import LANGUAGES

    assert partitions.curriculum_stages.get_partition_keys() == list(STAGES)
    assert partitions.polyglot_languages.get_partition_keys() == list(LANGUAGES)


def test_agent_policy_keys_come_from_the_configuration_and_each_names_a_policy(monkeypatch):
    from agents.rollouts import CHECKPOINT_KEYS

    assert set(partitions.AGENT_POLICY_KEYS) == {"oracle", *CHECKPOINT_KEYS}
    monkeypatch.setenv("HRM_AGENT_POLICIES", "oracle, baseline")
    assert partitions.configured_agent_policies() == ["oracle", "baseline"]
    monkeypatch.setenv("HRM_AGENT_POLICIES", "oracle,local:/ckpt")
    with pytest.raises(ValueError, match="subset of oracle, hrm, baseline"):
        partitions.configured_agent_policies()


def test_every_partitioned_asset_uses_a_shared_definition():
    from hrm_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    used = {}
    for key in graph.get_all_asset_keys():
        pdef = graph.get(key).partitions_def
        if pdef is not None:
            assert any(pdef == shared for shared in ALL), f"{key.to_user_string()} has its own {pdef}"
            used[key.to_user_string()] = pdef
    assert used == {"livecodebench_raw": partitions.lcb_releases, "lcb_problems": partitions.lcb_releases,
                    "swe_repos": partitions.swe_repos, "swesmith_tasks": partitions.swe_repos,
                    "curriculum_shards": partitions.curriculum_stages,
                    "polyglot_problems": partitions.polyglot_languages, "agent_rollouts": partitions.agent_policies}


def partition_spellings(root: Path = REPO_ROOT) -> list[str]:
    """PartitionsDefinitions built outside resources/partitions.py, and dynamic partition names spelled as
    strings in asset and sensor code."""
    found = []
    names = {partitions.LCB_RELEASE}
    for folder in CODE_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel == "resources/partitions.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    if func.endswith("PartitionsDefinition"):
                        found.append(f"{rel}:{node.lineno}: builds a {func}")
                elif isinstance(node, ast.Constant) and node.value in names and folder in ("hrm_assets", "sensors"):
                    found.append(f"{rel}:{node.lineno}: spells {node.value!r}")
    return found


def test_partitions_are_defined_once_and_never_respelled():
    assert partition_spellings() == []


def test_the_spelling_scan_finds_a_local_definition_and_a_name(tmp_path):
    (tmp_path / "sensors").mkdir()
    (tmp_path / "sensors" / "source_data.py").write_text(
        "import dagster as dg\nlocal = dg.DynamicPartitionsDefinition(name='lcb_release')\n"
        "def f(instance):\n    return instance.get_dynamic_partitions('lcb_release')\n")
    assert sorted(partition_spellings(tmp_path)) == [
        "sensors/source_data.py:2: builds a DynamicPartitionsDefinition",
        "sensors/source_data.py:2: spells 'lcb_release'",
        "sensors/source_data.py:4: spells 'lcb_release'"]


def test_the_lcb_sensor_adds_its_release_to_the_assets_partitions(tmp_path, monkeypatch):
    from hrm_assets.lcb import livecodebench_raw
    from sensors.source_data import new_lcb_release_sensor

    (tmp_path / "test.jsonl").write_text("")
    monkeypatch.setenv("HRM_LCB_SOURCE", str(tmp_path))
    with dg.instance_for_test() as instance:
        result = new_lcb_release_sensor(dg.build_sensor_context(instance=instance))
        request = result.dynamic_partitions_requests[0]
        assert request.partitions_def_name == livecodebench_raw.partitions_def.name == partitions.LCB_RELEASE
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        keys = livecodebench_raw.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
        assert keys == [result.run_requests[0].partition_key] == ["release_v1"]
