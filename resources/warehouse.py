"""Parquet tables under one data directory, with DuckDB views over them.

Every write goes to a temp file in the same directory and is renamed into place, so a crash
never leaves a half-written table and never loses the one already materialised.

Write-audit-publish: inside `with warehouse.staging(name, partition):` that table is written to and read from
`<root>/staging/tables/...` instead of its published path, so the code that builds it and the checks that
audit it run unchanged; `publish(name, partition)` then renames the staged file over the published one. A table
whose audit fails is never published: readers (and later runs) keep seeing the previous version. While one
partition is staged, the whole partitioned table (`read_table(name)`, `partitions(name)`) is the published
partitions with the staged one in place of its published version, so an audit over all partitions sees the
table as it would be after publishing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable

import dagster as dg
from pydantic import PrivateAttr

from resources.settings import env_str

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> str:
    return env_str("HRM_DATA_DIR")


class Warehouse(dg.ConfigurableResource):
    """Tables: `<root>/tables/<name>/part=<partition>/data.parquet` (or `data.parquet` unpartitioned)."""

    root: str = default_data_dir()
    _staged: set = PrivateAttr(default_factory=set)  # (name, partition) redirected to staging

    # --- paths ----------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        p = Path(self.root).joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def table_file(self, name: str, partition: str | None = None) -> Path:
        """Where the table is read and written: its staging file while `staging(name, partition)` is open."""
        if (name, partition) in self._staged:
            return self.staging_file(name, partition)
        return self.published_file(name, partition)

    def published_file(self, name: str, partition: str | None = None) -> Path:
        base = Path(self.root) / "tables" / name
        return (base / f"part={partition}" / "data.parquet") if partition else (base / "data.parquet")

    def staging_file(self, name: str, partition: str | None = None) -> Path:
        base = Path(self.root) / "staging" / "tables" / name
        return (base / f"part={partition}" / "data.parquet") if partition else (base / "data.parquet")

    # --- write-audit-publish --------------------------------------------------------------
    @contextmanager
    def staging(self, name: str, partition: str | None = None):
        """Within the block, `name` (`partition`) is written to and read from its staging file (yielded)."""
        key = (name, partition)
        stale = self.staging_file(name, partition)
        stale.unlink(missing_ok=True)  # a staged file left by an earlier failed audit is not this run's
        self._staged.add(key)
        try:
            yield stale
        finally:
            self._staged.discard(key)

    def stage_table(self, name: str, rows: Any, partition: str | None = None) -> Path:
        """Write rows to the staging file of `name`, leaving the published table alone."""
        target = self.staging_file(name, partition)
        write_parquet_atomic(target, rows)
        return target

    def publish(self, name: str, partition: str | None = None) -> Path:
        """Move the staged table over the published one (one rename: readers see the old or the new file)."""
        staged, target = self.staging_file(name, partition), self.published_file(name, partition)
        if not staged.exists():
            raise FileNotFoundError(f"table {name!r}{f' partition {partition!r}' if partition else ''}: nothing "
                                    f"staged at {staged}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
        return target

    # --- tables ---------------------------------------------------------------------------
    def write_table(self, name: str, rows: Any, partition: str | None = None) -> Path:
        """Write rows (pyarrow Table, pandas DataFrame or list of dicts) atomically; returns the path."""
        target = self.table_file(name, partition)
        write_parquet_atomic(target, rows)
        return target

    def read_table(self, name: str, partition: str | None = None):
        """One partition, or (partition=None on a partitioned table) all partitions with a `part` column."""
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        f = self.table_file(name, partition)
        if f.exists():
            return pq.read_table(f)
        base = Path(self.root) / "tables" / name
        if partition is None and self._staged_partitions(name):
            return self._read_partitions(name)
        if partition is None and base.is_dir() and any(base.glob("part=*/data.parquet")):
            return ds.dataset(str(base), format="parquet", partitioning="hive").to_table()
        raise FileNotFoundError(f"table {name!r}{f' partition {partition!r}' if partition else ''} "
                                f"not materialised (expected {f})")

    def has_table(self, name: str, partition: str | None = None) -> bool:
        return self.table_file(name, partition).exists()

    def partitions(self, name: str) -> list[str]:
        """The published partitions of `name`, and any partition of it being staged that has been written."""
        base = Path(self.root) / "tables" / name
        published = {p.name.split("=", 1)[1] for p in base.glob("part=*") if (p / "data.parquet").exists()}
        return sorted(published | self._staged_partitions(name))

    def _staged_partitions(self, name: str) -> set[str]:
        return {p for n, p in self._staged if n == name and p is not None and self.staging_file(n, p).exists()}

    def _read_partitions(self, name: str):
        """Every partition as this run sees it (a staged one from staging) with a string `part` column."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = []
        for p in self.partitions(name):
            t = pq.read_table(self.table_file(name, p))
            tables.append(t.append_column("part", pa.array([p] * t.num_rows, pa.string())))
        return pa.concat_tables(tables, promote_options="default")

    def table_files(self, name: str, partition: str | None = None) -> list[Path]:
        """The parquet file of one partition, or (partition=None on a partitioned table) of every partition."""
        f = self.table_file(name, partition)
        if f.exists():
            return [f]
        if partition is None:
            files = [self.table_file(name, p) for p in self.partitions(name)]
            if files:
                return files
        raise FileNotFoundError(f"table {name!r}{f' partition {partition!r}' if partition else ''} "
                                f"not materialised (expected {f})")

    def table_hash(self, name: str, partition: str | None = None, ignore: Iterable[str] = ()) -> str:
        """sha256 of the table's parquet bytes (of every partition, in order, when partition=None on a
        partitioned table): equal tables written by the same pyarrow hash alike. With `ignore`, of the rows
        without those columns (timings that differ run to run), read back and hashed in Arrow IPC form."""
        base = Path(self.root) / "tables" / name
        files = self.table_files(name, partition)
        if not ignore:
            return content_hash(files, base)
        import pyarrow as pa
        import pyarrow.parquet as pq

        digest = hashlib.sha256()
        for f in files:
            table = pq.read_table(f)
            table = table.drop_columns([c for c in ignore if c in table.column_names])
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            digest.update(f"{f.relative_to(base)}\0".encode() + sink.getvalue().to_pybytes())
        return digest.hexdigest()

    def read_partition_rows(self, name: str) -> list[dict]:
        """Rows of every partition, read one by one (partitions may infer different types for empty lists)."""
        return [r for p in self.partitions(name) for r in self.read_table(name, partition=p).to_pylist()]

    # --- DuckDB ---------------------------------------------------------------------------
    def connect(self, database: str | None = None):
        """A DuckDB connection with one view per table (partitioned tables get a `part` column)."""
        import duckdb

        con = duckdb.connect(database or ":memory:")
        tables = Path(self.root) / "tables"
        for t in sorted(tables.iterdir()) if tables.is_dir() else []:
            if (t / "data.parquet").exists():
                src = f"read_parquet('{t / 'data.parquet'}')"
            elif any(t.glob("part=*/data.parquet")):
                src = f"read_parquet('{t}/part=*/data.parquet', hive_partitioning=true, union_by_name=true)"
            else:
                continue
            con.execute(f'CREATE OR REPLACE VIEW "{t.name}" AS SELECT * FROM {src}')
        return con

    def query(self, sql: str, params: Iterable | None = None):
        with self.connect() as con:
            return con.execute(sql, list(params or [])).fetch_arrow_table()

    def history_db(self) -> Path:
        """The DuckDB file for append-only history tables (benchmark reports)."""
        return self.path("warehouse.duckdb")

    # --- where each stage keeps its files -------------------------------------------------
    def tokenizer_dir(self) -> Path:
        """The current tokenizer (written by the `tokenizer` asset, read by shards and training)."""
        return self.path("tokenizer", "current")

    def shard_path(self, stage: str) -> Path:
        """The token shard of one curriculum stage (the `curriculum_shards` partition)."""
        return self.table_file("curriculum_shards", stage)

    def checkpoint_dir(self, name: str, *parts: str) -> Path:
        """`checkpoints/<name>/...`: the runs of a checkpoint asset (and of quantized_models)."""
        return self.path("checkpoints", name, *parts)

    def publish_checkpoint(self, name: str, summary: dict) -> Path:
        """checkpoints/<name>/latest.json: where downstream assets and sensors find the newest checkpoint."""
        target = self.checkpoint_dir(name, "latest.json")
        write_text_atomic(target, json.dumps(summary, indent=1))
        return target

    def latest_checkpoint(self, name: str) -> dict:
        """The summary `publish_checkpoint` wrote for `name`."""
        path = Path(self.root) / "checkpoints" / name / "latest.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: {name} has not been materialised")
        return json.loads(path.read_text())

    def polyglot_checkout(self) -> Path:
        """The git clone of the Polyglot benchmark (the `polyglot_benchmark` asset)."""
        return self.path("clones", "polyglot-benchmark")

    # --- quarantine -----------------------------------------------------------------------
    def write_quarantine(self, name: str, rejected: list[dict], partition: str | None = None) -> Path:
        """Rejected rows with their reason, as JSON lines next to the table."""
        target = Path(self.root) / "quarantine" / (f"{name}-{partition}.jsonl" if partition else f"{name}.jsonl")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, "".join(json.dumps(r, default=str) + "\n" for r in rejected))
        return target


def write_parquet_atomic(target: Path, rows: Any) -> None:
    """Rows (pyarrow Table, pandas DataFrame or list of dicts) to `target`, all or nothing."""
    import pyarrow.parquet as pq

    table = _to_arrow(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def content_hash(paths: Iterable[Path], relative_to: Path) -> str:
    """sha256 over each file's path (relative to `relative_to`) and bytes; a directory counts as all the
    files under it, in sorted order."""
    digest = hashlib.sha256()
    files = []
    for p in paths:
        files += sorted(f for f in Path(p).rglob("*") if f.is_file()) if Path(p).is_dir() else [Path(p)]
    for f in files:
        digest.update(f"{f.relative_to(relative_to)}\0{f.stat().st_size}\0".encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_text_atomic(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, target)


def _to_arrow(rows: Any):
    import pyarrow as pa

    if isinstance(rows, pa.Table):
        return rows
    if hasattr(rows, "to_arrow"):  # datasets / polars
        return rows.to_arrow()
    try:
        import pandas as pd

        if isinstance(rows, pd.DataFrame):
            return pa.Table.from_pandas(rows, preserve_index=False)
    except ImportError:
        pass
    return pa.Table.from_pylist(list(rows))
