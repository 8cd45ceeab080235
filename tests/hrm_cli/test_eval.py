"""`hrm eval`: the same benchmark code for a local checkpoint and for `hrm serve` of that checkpoint through the
openai: spec; greedy answers, hence per-problem results, are identical."""

import json
from pathlib import Path

import pytest

from hrm_cli.main import main
from inference.engine import BatchEngine
from inference.server import BackgroundServer, create_app
from model.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FIXTURES = Path(__file__).parents[1] / "fixtures" / "lcb"


def run_eval(spec, benchmark, data_dir, out, *extra):
    assert main(["eval", "--model", spec, "--benchmark", benchmark, "--data-dir", str(data_dir), "--json", str(out),
                 "--samples", "1", "--temperature", "0", *extra]) == 0
    return json.loads(out.read_text())


def per_problem(result):
    return {(r["benchmark"], r["metric"]): (r["value"], r.get("n"), r.get("problems"))
            for r in result["rows"] if r["benchmark"] != "generation"}


@pytest.fixture
def recorded(monkeypatch):
    """Every completion the benchmarks receive, in order (the real generation loop, recorded)."""
    import evals.evaluate as ev

    calls, real = [], ev.complete

    def complete(c, prompts, *args, **kwargs):
        out = real(c, prompts, *args, **kwargs)
        calls.append((list(prompts), out))
        return out

    monkeypatch.setattr(ev, "complete", complete)
    return calls


@pytest.fixture
def every_benchmark(data_warehouse, polyglot_bundle, tmp_path):
    """The shared warehouse (corpus, synthetic tasks) plus a Polyglot python exercise cloned from the bundle and
    the LCB fixture problems of all four scenarios, so `--benchmark all` has something in every benchmark."""
    import shutil

    from evals.lcb import pipeline as lcb
    from evals.polyglot.exercises import PINNED_COMMIT
    from evals.polyglot.pipeline import clone_benchmark, write_problems
    from resources.warehouse import Warehouse

    root = tmp_path / "wh"
    shutil.copytree(data_warehouse.root, root)
    wh = Warehouse(root=str(root))
    checkout = tmp_path / "polyglot"
    clone_benchmark(str(polyglot_bundle), checkout, PINNED_COMMIT)
    write_problems(wh, checkout, "python")
    lcb.write_release(wh, str(FIXTURES / "code_generation_plain.jsonl"), "release_v1")
    lcb.write_problems(wh, "release_v1")
    lcb.write_test_output_problems(wh, str(FIXTURES / "test_generation.jsonl"))
    lcb.write_execution_problems(wh, str(FIXTURES / "execution.jsonl"))
    return wh


@pytest.mark.slow
def test_openai_spec_against_hrm_serve_equals_the_local_checkpoint(tiny_checkpoint, every_benchmark, tmp_path,
                                                                    recorded):
    data_warehouse = every_benchmark
    local = run_eval(f"local:{tiny_checkpoint}", "all", data_warehouse.root, tmp_path / "local.json")
    local_calls = list(recorded)
    recorded.clear()
    model, tok = load_checkpoint(tiny_checkpoint)
    engine = BatchEngine(model, tok)
    with BackgroundServer(create_app(engine, tok, "hrm")) as base_url:
        remote = run_eval(f"openai:{base_url}#hrm", "all", data_warehouse.root, tmp_path / "remote.json")
    engine.close()
    texts = [t for _, out in local_calls for row in out for t in row]
    assert len(local_calls) >= 3 and sum(bool(t.strip()) for t in texts) > len(texts) / 2  # real answers
    assert recorded == local_calls  # the same prompts got the same answers
    local_rows, remote_rows = per_problem(local), per_problem(remote)
    benchmarks = {k[0].split("/")[0] for k in local_rows}
    assert {"humaneval", "livecodebench", "polyglot-whole", "polyglot-diff", "synthetic-instances"} <= benchmarks
    assert {k[1] for k in local_rows if k[0] == "livecodebench"} >= {
        "pass@1", "self_repair_pass@1", "test_output_pass@1", "execution_pass@1", "execution_cot_pass@1"}
    assert all(v[2] for k, v in local_rows.items() if k[0] in ("humaneval", "livecodebench"))  # per-problem results
    assert remote_rows == {k: v for k, v in local_rows.items() if k in remote_rows}
    # the endpoint has no weights: only the weight-reading steps are missing, and the notes say so
    assert {k[0] for k in local_rows} - {k[0] for k in remote_rows} <= {"code-bpb"}
    assert "endpoint" in remote["notes"]
    assert local["checkpoint_hash"] and remote["quantization"] == "endpoint"


@pytest.mark.slow
def test_bad_specs_and_unreachable_endpoints_are_clear_errors(tmp_path, capsys):
    for spec, why in (("gpt-4", "expected a model spec"), (f"local:{tmp_path}@int4", "quantization"),
                      ("openai:ftp://x#m", "http(s)"), ("openai:http://127.0.0.1:9/v1", "model id"),
                      ("openai:http://127.0.0.1:9/v1#m", "cannot list")):
        assert main(["eval", "--model", spec, "--benchmark", "humaneval", "--data-dir", str(tmp_path),
                     "--json", str(tmp_path / "o.json")]) == 2
        assert why in capsys.readouterr().err, spec


@pytest.mark.slow
def test_the_report_takes_model_specs_next_to_warehouse_names(tiny_checkpoint, data_warehouse, sandbox, tmp_path):
    import shutil

    from evals.evaluate import preset_settings
    from evals.pipeline import build_report
    from evals.report import load_problems
    from resources.warehouse import Warehouse

    shutil.copytree(data_warehouse.root, tmp_path / "wh")
    wh = Warehouse(root=str(tmp_path / "wh"))
    model, tok = load_checkpoint(tiny_checkpoint)
    engine = BatchEngine(model, tok)
    specs = [f"local:{tiny_checkpoint}", f"local:{tiny_checkpoint}@int8"]
    with BackgroundServer(create_app(engine, tok, "hrm")) as base_url:
        specs.append(f"openai:{base_url}#hrm")
        report = build_report(specs, preset_settings("smoke", flops_curve=()), wh, sandbox)
    engine.close()
    by_model = {}
    for row in report["rows"]:
        by_model.setdefault(row.model, {})[(row.benchmark, row.metric)] = row
    assert set(by_model) == set(specs)
    assert by_model[specs[1]][("synthetic-instances", "exec_exact_match")].quantization == "int8"
    local, remote = by_model[specs[0]], by_model[specs[2]]
    assert ("code-bpb", "bits_per_byte_python") in local and ("code-bpb", "bits_per_byte_python") not in remote
    # sampled rows too: sample j of problem i draws with seed + i * n + j on both sides
    assert all(remote[k].value == local[k].value for k in remote if k[0] != "generation")
    problems = load_problems(wh.history_db(), report["report_id"])
    assert {key[0] for key in problems} == set(specs)
