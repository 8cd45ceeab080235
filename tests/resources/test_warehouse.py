"""Where each stage keeps its files: the Warehouse methods every asset, sensor and CLI command uses."""

import pytest

from resources.warehouse import Warehouse


def test_stage_paths_keep_the_data_directory_layout(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    assert wh.tokenizer_dir() == tmp_path / "tokenizer" / "current"
    assert wh.shard_path("3") == tmp_path / "tables" / "curriculum_shards" / "part=3" / "data.parquet"
    assert wh.checkpoint_dir("hrm_checkpoint", "abc") == tmp_path / "checkpoints" / "hrm_checkpoint" / "abc"
    assert wh.polyglot_checkout() == tmp_path / "clones" / "polyglot-benchmark"


def test_published_checkpoint_is_what_latest_checkpoint_reads(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="hrm_checkpoint has not been materialised"):
        wh.latest_checkpoint("hrm_checkpoint")
    path = wh.publish_checkpoint("hrm_checkpoint", {"checkpoint_dir": "x", "weights_sha256": "ab" * 32})
    assert path == tmp_path / "checkpoints" / "hrm_checkpoint" / "latest.json"
    assert wh.latest_checkpoint("hrm_checkpoint") == {"checkpoint_dir": "x", "weights_sha256": "ab" * 32}
    assert not list(path.parent.glob(".tmp-*"))  # written through a temp file and renamed


def test_partition_rows_are_read_one_partition_at_a_time(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    wh.write_table("t", [{"k": "a", "files": []}], partition="p1")  # an empty list: no element type to infer
    wh.write_table("t", [{"k": "b", "files": ["x.py"]}], partition="p2")
    assert wh.read_partition_rows("t") == [{"k": "a", "files": []}, {"k": "b", "files": ["x.py"]}]
    assert wh.read_partition_rows("missing") == []


def test_table_hash_follows_the_rows_not_the_write(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    wh.write_table("t", [{"k": "a", "v": 1}])
    first = wh.table_hash("t")
    wh.write_table("t", [{"k": "a", "v": 1}])  # rewritten with the same rows
    assert wh.table_hash("t") == first and len(first) == 64
    wh.write_table("t", [{"k": "a", "v": 2}])
    assert wh.table_hash("t") != first
    with pytest.raises(FileNotFoundError, match="'missing' not materialised"):
        wh.table_hash("missing")


def test_table_hash_of_a_partition_and_of_the_whole_table(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    wh.write_table("t", [{"k": "a"}], partition="p1")
    wh.write_table("t", [{"k": "b"}], partition="p2")
    p1, whole = wh.table_hash("t", "p1"), wh.table_hash("t")
    assert p1 != wh.table_hash("t", "p2") and whole not in (p1, wh.table_hash("t", "p2"))
    wh.write_table("t", [{"k": "c"}], partition="p2")
    assert wh.table_hash("t", "p1") == p1 and wh.table_hash("t") != whole
    assert [f.parent.name for f in wh.table_files("t")] == ["part=p1", "part=p2"]


def test_table_hash_can_leave_timing_columns_out(tmp_path):
    wh = Warehouse(root=str(tmp_path))
    wh.write_table("t", [{"k": "a", "wall_s": 1.5}], partition="p")
    first, with_timing = wh.table_hash("t", "p", ignore=["wall_s"]), wh.table_hash("t", "p")
    wh.write_table("t", [{"k": "a", "wall_s": 2.5}], partition="p")
    assert wh.table_hash("t", "p", ignore=["wall_s"]) == first and wh.table_hash("t", "p") != with_timing
    wh.write_table("t", [{"k": "b", "wall_s": 2.5}], partition="p")
    assert wh.table_hash("t", "p", ignore=["wall_s"]) != first
