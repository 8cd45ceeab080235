"""The Polyglot assets on an ephemeral instance with a temporary warehouse."""

import json

import dagster as dg
import pytest

from hrm_assets.polyglot import (polyglot_benchmark, polyglot_problems, polyglot_reference_failures_known,
                                 polyglot_reference_report)
from resources.warehouse import Warehouse

pytestmark = pytest.mark.slow  # materialises the Polyglot assets

ALL = [polyglot_benchmark, polyglot_problems, polyglot_reference_report, polyglot_reference_failures_known]


def _materialize(selection, resources, instance, **kw):
    return dg.materialize(ALL, selection=selection, resources=resources, instance=instance,
                          raise_on_error=False, **kw)


def test_polyglot_assets_end_to_end(polyglot_bundle, sandbox, tmp_path):
    warehouse = Warehouse(root=str(tmp_path / "data"))
    resources = {"warehouse": warehouse, "sandbox": sandbox}
    instance = dg.DagsterInstance.ephemeral()

    res = _materialize([polyglot_benchmark], resources, instance, run_config={
        "ops": {"polyglot_benchmark": {"config": {"source": str(polyglot_bundle)}}}})
    assert res.success
    meta = res.get_asset_materialization_events()[0].materialization.metadata
    assert meta["total_exercises"].value == 225 and meta["counts"].value["java"] == 47

    for language in ("cpp", "go", "java", "javascript", "python", "rust"):
        res = _materialize(dg.AssetSelection.assets(polyglot_problems) | dg.AssetSelection.checks_for_assets(
            polyglot_problems), resources, instance, partition_key=language)
        assert res.success, language
        evaluation, = res.get_asset_check_evaluations()
        assert evaluation.passed, evaluation.metadata
    assert evaluation.metadata["total_rows"].value == 225
    with warehouse.connect() as con:
        counts = dict(con.execute("SELECT language, count(*) FROM polyglot_problems GROUP BY 1").fetchall())
        assert counts == {"cpp": 26, "go": 39, "java": 47, "javascript": 49, "python": 34, "rust": 30}
        empty = con.execute("SELECT count(*) FROM polyglot_problems WHERE len(trim(instructions)) = 0").fetchone()
        assert empty == (0,)

    res = _materialize([polyglot_reference_report], resources, instance, run_config={
        "ops": {"polyglot_reference_report": {"config": {"exercises": "python/bowling,javascript/bowling"}}}})
    assert res.success
    meta = res.get_asset_materialization_events()[0].materialization.metadata
    assert meta["passed"].value == 2 and meta["passes_by_language"].value == {"javascript": 1, "python": 1}
    assert "hangman" in meta["expected_failures"].value
    with warehouse.connect() as con:
        assert con.execute("SELECT count(*) FROM polyglot_reference_results WHERE status = 'pass'").fetchone() == (2,)

    # A stub missing from the clone, or a test file linked to a host file, is quarantined with the reason;
    # the blocking check then fails on the row count and the staged partition is not published.
    published = warehouse.table_hash("polyglot_problems", "python")
    practice = warehouse.path("clones", "polyglot-benchmark") / "python/exercises/practice"
    (practice / "bowling/bowling.py").unlink()
    (practice / "zipper/zipper_test.py").unlink()
    (practice / "zipper/zipper_test.py").symlink_to("/etc/shadow")
    res = _materialize(dg.AssetSelection.assets(polyglot_problems) | dg.AssetSelection.checks_for_assets(
        polyglot_problems), resources, instance, partition_key="python")
    assert not res.success and not res.get_asset_materialization_events()
    evaluation, = res.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["rows"].value == 32
    assert warehouse.table_hash("polyglot_problems", "python") == published
    quarantine = warehouse.path("quarantine", "polyglot_problems-python.jsonl").read_text().splitlines()
    rejected = {r["path"]: r["reason"] for r in map(json.loads, quarantine)}
    assert set(rejected) == {"python/exercises/practice/bowling", "python/exercises/practice/zipper"}
    assert "zipper_test.py: a symbolic link" in rejected["python/exercises/practice/zipper"]
