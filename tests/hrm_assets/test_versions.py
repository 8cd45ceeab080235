"""Code versions, data versions and what an asset's page shows (hrm_assets/versions.py, metadata.py)."""

import datetime as dt

import dagster as dg
import pytest

from hrm_assets import versions
from hrm_assets.metadata import report_headline, report_summary, table_metadata, table_result
from resources.warehouse import Warehouse

CALLS = {"benchmark_report": "evals.pipeline", "hrm_checkpoint": "training.pipeline", "tokenizer": "datagen.pipeline",
         "humaneval_problems": "evals.humaneval", "lcb_problems": "evals.lcb.pipeline",
         "polyglot_problems": "evals.polyglot.pipeline", "swesmith_tasks": "datagen.swe.pipeline"}


def test_every_asset_has_the_code_version_of_what_it_calls_and_an_owner():
    from hrm_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        version = defs.get_assets_def(key).code_versions_by_key[key]
        assert version and len(version) == 12, key
        node = graph.get(key)
        assert node.owners == ["team:hrm-code"] and node.tags["stage"] == node.group_name, key
    for name, module in CALLS.items():
        key = dg.AssetKey(name)
        assert defs.get_assets_def(key).code_versions_by_key[key] == versions.source_version(module), name


def test_the_closure_follows_imports_inside_functions_and_leaves_config_out():
    closure = versions.source_closure("training.pipeline")
    assert {"training.phases", "model.train", "model.checkpoint", "datagen.pipeline"} <= set(closure)
    assert "resources.settings" not in closure and "resources.warehouse" not in closure
    assert "evals.pipeline" not in closure  # the report's code does not make checkpoints stale
    with pytest.raises(ValueError, match="not project modules"):
        versions.source_closure("dagster")


def _tree(root, files):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_a_change_anywhere_in_the_closure_changes_the_version(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "REPO_ROOT", tmp_path)
    _tree(tmp_path, {"datagen/__init__.py": "", "datagen/step.py": "def f():\n    from model import core\n",
                     "model/__init__.py": "", "model/core.py": "X = 1\n", "model/other.py": "Y = 1\n",
                     "resources/__init__.py": "", "resources/settings.py": "Z = 1\n"})

    def version():
        versions._imports.cache_clear()
        versions.source_version.cache_clear()
        return versions.source_version("datagen.step")

    first = version()
    assert version() == first
    (tmp_path / "model" / "other.py").write_text("Y = 2\n")  # not imported
    (tmp_path / "resources" / "settings.py").write_text("Z = 2\n")
    assert version() == first
    (tmp_path / "model" / "core.py").write_text("X = 2\n")  # imported inside a function
    assert version() != first
    versions._imports.cache_clear()
    versions.source_version.cache_clear()


def test_table_result_versions_the_rows_and_shows_schema_and_preview(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    rows = [{"id": i, "text": f"line|{i}\n" + "x" * 200, "wall_s": float(i)} for i in range(8)]
    wh.write_table("t", rows, partition="p")
    first = table_result(wh, "t", "p", metadata={"extra": 1})
    wh.write_table("t", [{**r, "wall_s": r["wall_s"] + 9} for r in rows], partition="p")  # only timings differ
    assert table_result(wh, "t", "p").data_version == first.data_version
    wh.write_table("t", rows[:7], partition="p")
    assert table_result(wh, "t", "p").data_version != first.data_version

    meta = first.metadata
    assert meta["extra"] == 1 and meta["dagster/row_count"] == 8
    assert [(c.name, c.type) for c in meta["dagster/column_schema"].columns] == [
        ("id", "int64"), ("text", "string"), ("wall_s", "double")]
    preview = meta["preview"].value.splitlines()
    assert preview[0] == "| id | text | wall_s |" and len(preview) == 2 + 5
    assert preview[2].startswith("| 0 | line\\|0 xxx") and "…" in preview[2] and len(preview[2]) < 90
    assert isinstance(meta["bytes"], dg.FloatMetadataValue) and meta["bytes"].value > 0


def test_an_empty_table_has_a_schema_and_no_preview_rows(tmp_path):
    import pyarrow as pa

    wh = Warehouse(root=str(tmp_path))
    wh.write_table("t", pa.table({"a": pa.array([], pa.string())}))
    meta = table_metadata(wh, "t")
    assert meta["dagster/row_count"] == 0 and meta["preview"].value == "(no rows)"


def _row(model, benchmark, metric, value):
    from evals.report import ReportRow

    return ReportRow("r1", dt.datetime(2026, 1, 1), model, "abc", "none", benchmark, metric, value, 10, "c0")


def test_the_report_page_leads_with_a_headline_summary():
    rows = [_row("hrm", "humaneval", "pass@1", 0.25), _row("hrm", "humaneval", "pass@5", 0.5),
            _row("baseline", "synthetic-instances", "exec_exact_match", 0.125)]
    headline = report_headline(rows)
    assert set(headline) == {"hrm/humaneval/pass@1", "baseline/synthetic-instances/exec_exact_match"}
    assert all(isinstance(v, dg.FloatMetadataValue) for v in headline.values())
    summary = report_summary("r1", rows, ["hrm", "baseline"]).splitlines()
    assert summary[0].startswith("**Report r1**: 2 models, 3 rows")
    assert summary[2] == "| model | humaneval pass@1 | synthetic-instances exec_exact_match |"
    assert summary[4:] == ["| hrm | 0.250 | – |", "| baseline | – | 0.125 |"]
    assert versions.report_version(rows) == versions.report_version(list(reversed(rows)))
    assert versions.report_version(rows) != versions.report_version(rows[:2])


@pytest.mark.slow
def test_materialising_twice_gives_the_same_data_version(tmp_path):
    from hrm_assets.humaneval import humaneval_problems

    instance = dg.DagsterInstance.ephemeral()
    wh = Warehouse(root=str(tmp_path))
    seen = []
    for _ in range(2):
        assert dg.materialize([humaneval_problems], resources={"warehouse": wh}, instance=instance).success
        event = instance.get_latest_materialization_event(dg.AssetKey("humaneval_problems"))
        seen.append(event.asset_materialization.tags["dagster/data_version"])
    assert seen[0] == seen[1] == versions.hash_version(wh.table_hash("humaneval_problems")).value
