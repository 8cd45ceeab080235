"""`hrm eval`: the same benchmark code for a local checkpoint and for `hrm serve` of that checkpoint through the
openai: spec; greedy answers, hence per-problem results, are identical."""

import json

import pytest

from hrm_cli.main import main
from inference.engine import BatchEngine
from inference.server import BackgroundServer, create_app
from model.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


@pytest.mark.slow
def test_openai_spec_against_hrm_serve_equals_the_local_checkpoint(tiny_checkpoint, data_warehouse, tmp_path,
                                                                    recorded):
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
    assert {k for k in local_rows if k[0] == "humaneval"} and {k[0] for k in local_rows} > {"humaneval"}
    assert remote_rows == {k: v for k, v in local_rows.items() if k in remote_rows}
    # the endpoint has no weights: only the weight-reading steps are missing, and the notes say so
    assert {k[0] for k in local_rows} - {k[0] for k in remote_rows} <= {"code-bpb"}
    assert "endpoint" in remote["notes"]
    assert local["checkpoint_hash"] and remote["quantization"] == "endpoint"


def test_bad_specs_and_unreachable_endpoints_are_clear_errors(tmp_path, capsys):
    for spec, why in (("gpt-4", "expected a model spec"), (f"local:{tmp_path}@int4", "quantization"),
                      ("openai:ftp://x#m", "http(s)"), ("openai:http://127.0.0.1:9/v1", "model id"),
                      ("openai:http://127.0.0.1:9/v1#m", "cannot list")):
        assert main(["eval", "--model", spec, "--benchmark", "humaneval", "--data-dir", str(tmp_path),
                     "--json", str(tmp_path / "o.json")]) == 2
        assert why in capsys.readouterr().err, spec
