"""doc_tasks materialises from a small code_corpus table, publishes behind its split check, and shows counts,
held-out repositories and documentation coverage."""

import dagster as dg
import pytest

from resources.warehouse import Warehouse

pytestmark = pytest.mark.slow  # materialises an asset


def _crate(n: int, f: int) -> dict:
    text = "".join(f"/// Returns the value number {k} of file {f} in crate {n}.\npub fn v{k}() -> u32 {{\n"
                   f"    {k}\n}}\n\n" for k in range(2)) + "pub fn undocumented() {}\n"
    return {"doc_id": f"c{n}-{f}", "language": "rust", "text": text, "sha256": f"{n}-{f}", "n_bytes": len(text),
            "n_lines": text.count("\n") + 1, "origin": f"local:/nowhere/cargo/registry/c{n}-1.0.0/src/f{f}.rs"}


def test_doc_tasks_materialises_with_its_check_and_metadata(tmp_path):
    from hrm_assets.docs import doc_tasks

    warehouse = Warehouse(root=str(tmp_path))
    warehouse.write_table("code_corpus", [_crate(n, f) for n in range(30) for f in range(2)])
    result = dg.materialize([doc_tasks], resources={"warehouse": warehouse},
                            run_config={"ops": {"doc_tasks": {"config": {"readme": False}}}})
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    meta = result.asset_materializations_for_node("doc_tasks")[0].metadata
    rows = warehouse.read_table("doc_tasks").to_pylist()
    skipped = meta["files_skipped_completion_heldout"].value  # train files whose bodies code-bpb holds out
    assert meta["dagster/row_count"].value == len(rows) == 2 * (60 - skipped) and skipped < 10
    assert meta["test_repositories"].value and set(meta["counts"].value) == {"api_reference/rust/test",
                                                                              "api_reference/rust/train"}
    assert meta["coverage/rust"].value == pytest.approx(2 / 3)
    assert {r["repository"] for r in rows if r["split"] == "test"} == set(meta["test_repositories"].value)
