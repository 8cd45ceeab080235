"""What an asset's page shows: a table's schema, size and first rows; headline numbers as floats (the UI plots
float metadata across materialisations); the report's headline summary."""

from __future__ import annotations

import dagster as dg

from hrm_assets.versions import hash_version
from resources.warehouse import Warehouse

PREVIEW_ROWS = 5
PREVIEW_CHARS = 60
# (benchmark, metric) shown per model as floats and in the report's summary, when the report has them
HEADLINE_METRICS = (("humaneval", "pass@1"), ("polyglot-whole", "pass_rate_2"), ("livecodebench", "pass@1"),
                    ("synthetic-instances", "exec_exact_match"), ("synthetic-instances", "repair_fix_rate"),
                    ("code-bpb", "bits_per_byte_python"), ("multi-file", "resolve_rate"),
                    ("git-conflicts", "resolve_rate"), ("docs", "docstring_rouge_l"))


def _cell(value) -> str:
    text = " ".join(str(value).split())
    text = text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"
    return text.replace("|", "\\|")


def timing_columns(names) -> list[str]:
    """Columns that measure the run (wall times), left out of a table's data version."""
    return [n for n in names if n.endswith("wall_s") or n == "seconds"]


def table_metadata(warehouse: Warehouse, name: str, partition: str | None = None) -> dict:
    """Column schema, row count, bytes and a markdown preview of the first rows, read from the parquet
    footer and first row group only."""
    import pyarrow.parquet as pq

    files = warehouse.table_files(name, partition)
    schema = pq.read_schema(files[0])
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    first = next(pq.ParquetFile(files[0]).iter_batches(batch_size=PREVIEW_ROWS), None)
    head = first.to_pylist() if first is not None else []
    preview = "| " + " | ".join(schema.names) + " |\n|" + "---|" * len(schema.names) + "\n" + "".join(
        "| " + " | ".join(_cell(r.get(c)) for c in schema.names) + " |\n" for r in head)
    return {
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema]),
        "dagster/row_count": rows,
        "bytes": dg.MetadataValue.float(float(sum(f.stat().st_size for f in files))),
        "preview": dg.MetadataValue.md(preview if head else "(no rows)"),
    }


def table_result(warehouse: Warehouse, name: str, partition: str | None = None, metadata: dict | None = None,
                 check_results: list | None = None, data_version: dg.DataVersion | None = None,
                 ) -> dg.MaterializeResult:
    """The result of an asset that wrote the table `name`: its metadata over the table's, and its data
    version (unless given) the hash of the table, its timing columns left out."""
    return dg.MaterializeResult(metadata={**table_metadata(warehouse, name, partition), **(metadata or {})},
                                check_results=check_results,
                                data_version=data_version or table_version(warehouse, name, partition))


def table_version(warehouse: Warehouse, name: str, partition: str | None = None) -> dg.DataVersion:
    import pyarrow.parquet as pq

    ignore = timing_columns(pq.read_schema(warehouse.table_files(name, partition)[0]).names)
    return hash_version(warehouse.table_hash(name, partition, ignore))


def as_metadata(values: dict) -> dict:
    """Values as metadata: dicts and lists as JSON, the rest as they are."""
    return {k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v for k, v in values.items()}


def floats(values: dict) -> dict:
    """Numbers as float metadata (plotted across materialisations); None is left out."""
    return {k: dg.MetadataValue.float(float(v)) for k, v in values.items() if v is not None}


def checkpoint_headline(summary: dict) -> dict:
    """A trained checkpoint's numbers worth plotting run over run."""
    losses = summary["final_losses"]
    return floats({"loss": losses.get("loss"), "val_loss": losses.get("val_loss"),
                   "tokens_per_s": summary["tokens_per_s"], "train_flops": summary["train_flops"],
                   "weights_bytes": summary.get("weights_bytes")})


def report_headline(rows) -> dict:
    """`<model>/<benchmark>/<metric>` floats of the HEADLINE_METRICS the report's rows hold."""
    wanted = set(HEADLINE_METRICS)
    return floats({f"{r.model}/{r.benchmark}/{r.metric}": r.value for r in rows if (r.benchmark, r.metric) in wanted})


def report_summary(report_id: str, rows, models: list[str]) -> str:
    """Markdown: one line per model with its headline metrics, the first thing on the report's page."""
    found = {(r.model, r.benchmark, r.metric): r for r in rows}
    columns = [m for m in HEADLINE_METRICS if any((model, *m) in found for model in models)]
    lines = [f"**Report {report_id}**: {len(models)} models, {len(rows)} rows (full tables under `report`)\n",
             "| model | " + " | ".join(f"{b} {m}" for b, m in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for model in models:
        cells = [found.get((model, *c)) for c in columns]
        lines.append(f"| {model} | " + " | ".join(f"{r.value:.3f}" if r else "–" for r in cells) + " |")
    return "\n".join(lines) + "\n"
