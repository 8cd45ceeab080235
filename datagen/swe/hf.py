"""SWE-smith data on the Hugging Face hub (`SWE-bench/SWE-smith`, `SWE-bench/SWE-smith-trajectories`) or in
local files of the same rows (.jsonl, .json, .parquet, or a directory of them).

Records are only parsed as JSON/parquet, never unpickled. Rows that break the schema are returned
with a reason naming the file and row, for the caller to quarantine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

_INSTANCE_ID = re.compile(r"^[\w.-]+__[\w.-]+\.[0-9a-f]{8}\.[\w.-]+$")
_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


def read_records(source: str, default_split: str = "train") -> Iterator[tuple[str, dict]]:
    """(where, record) pairs; `where` is `file:row` (or `hf:name:split:row`)."""
    path = Path(source).expanduser()
    if path.exists():
        files = sorted(p for p in path.rglob("*") if p.suffix in _FILE_SUFFIXES) if path.is_dir() else [path]
        if not files:
            raise FileNotFoundError(f"{path}: no .jsonl/.json/.parquet files of SWE-smith rows")
        for f in files:
            yield from _read_file(f)
        return
    if "/" not in source or source.startswith((".", "/")):
        raise FileNotFoundError(f"{source}: no such file, and not a Hugging Face dataset name (owner/name)")
    name, _, split = source.partition(":")
    from datasets import load_dataset

    try:
        ds = load_dataset(name, split=split or default_split)
    except Exception as exc:
        raise RuntimeError(f"could not load the Hugging Face dataset {name!r} (split {split or default_split!r}): "
                           f"{exc}. Offline, download its files elsewhere and pass their local path.") from exc
    for i, rec in enumerate(ds):
        yield f"hf:{name}:{split or default_split}:{i}", dict(rec)


def _read_file(f: Path) -> Iterator[tuple[str, dict]]:
    if f.suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, rec in enumerate(pq.read_table(f).to_pylist()):
            yield f"{f}:{i}", rec
    elif f.suffix == ".jsonl":
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                try:
                    yield f"{f}:{i + 1}", json.loads(line)
                except json.JSONDecodeError as exc:
                    yield f"{f}:{i + 1}", {"__error__": f"invalid JSON: {exc}"}
    else:
        data = json.loads(f.read_text(encoding="utf-8"))
        for i, rec in enumerate(data if isinstance(data, list) else [data]):
            yield f"{f}:{i}", rec


def load_swesmith_tasks(source: str) -> tuple[list[dict], list[dict]]:
    """Rows of the HF SWE-smith schema (+ our categorisation columns) and rejected rows with reasons."""
    from unidiff import PatchSet

    rows, rejected = [], []
    for where, rec in read_records(source):
        reason = _task_problem(rec)
        if reason:
            rejected.append({"where": where, "instance_id": rec.get("instance_id"), "reason": reason})
            continue
        f2p, p2p = _str_list(rec["FAIL_TO_PASS"]), _str_list(rec["PASS_TO_PASS"])
        try:
            files = [p.path for p in PatchSet(rec["patch"])]
        except Exception as exc:
            rejected.append({"where": where, "instance_id": rec["instance_id"], "reason": f"patch does not parse: {exc}"})
            continue
        iid = rec["instance_id"]
        bug_type = iid.rsplit(".", 1)[-1].rsplit("__", 1)[0]
        rows.append({"instance_id": iid, "repo": rec["repo"], "patch": rec["patch"], "FAIL_TO_PASS": f2p,
                     "PASS_TO_PASS": p2p, "problem_statement": rec.get("problem_statement") or "",
                     "image_name": rec.get("image_name") or "", "base_commit": _commit8(iid),
                     "bug_type": bug_type, "files": files, "entity": "", "entity_kind": "", "complexity": 0,
                     "n_fail_to_pass": len(f2p), "n_pass_to_pass": len(p2p), "n_files": len(files),
                     "source": "hf", "source_repo": rec["repo"], "validation_wall_s": 0.0})
    return rows, rejected


def _task_problem(rec: dict) -> str | None:
    if "__error__" in rec:
        return rec["__error__"]
    missing = [k for k in ("instance_id", "repo", "patch", "FAIL_TO_PASS", "PASS_TO_PASS") if k not in rec]
    if missing:
        return f"missing fields {missing}"
    if not isinstance(rec["instance_id"], str) or not _INSTANCE_ID.match(rec["instance_id"]):
        return f"instance_id {rec['instance_id']!r} is not <owner>__<repo>.<commit8>.<bug_type>__<hash>"
    for key in ("FAIL_TO_PASS", "PASS_TO_PASS"):
        if _str_list(rec[key]) is None:
            return f"{key} is not a list of test ids"
    if not _str_list(rec["FAIL_TO_PASS"]):
        return "FAIL_TO_PASS is empty"
    if not isinstance(rec["patch"], str) or "\n+++ " not in "\n" + rec["patch"]:
        return "patch is not a unified diff"
    return None


def _commit8(instance_id: str) -> str:
    m = re.search(r"\.([0-9a-f]{8})\.", instance_id)
    return m.group(1) if m else ""


def _str_list(value) -> list[str] | None:
    """Lists, or JSON-encoded lists as some SWE-bench dumps store them."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None
