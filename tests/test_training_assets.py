"""Checkpoints train through the curriculum and resume after an interruption; quantized models and the
benchmark report materialise on a tiny configuration and write the DuckDB history."""

import json

import dagster as dg
import pytest

from resources.warehouse import Warehouse

FUNCS = "\n".join(f'def helper_{i}(value):\n    """Scale value by {i}."""\n    doubled = value * {i}\n'
                  f'    return doubled + {i}\n' for i in range(12))
TINY = json.dumps({"max_seq_len": 256})  # the tiny preset (hidden 64): nf4 fails on hidden 32


@pytest.fixture(scope="module")
def data_warehouse(tmp_path_factory, sandbox):
    """Corpus, synthetic tasks, tokenizer, examples and shards, built by the plain functions."""
    from datagen import pipeline as dp
    from hrm_assets import training_data as td

    src = tmp_path_factory.mktemp("src")
    for i in range(3):
        (src / f"m{i}.py").write_text(FUNCS.replace("helper_", f"m{i}_").replace("Scale", f"Scale{i}"))
    wh = Warehouse(root=str(tmp_path_factory.mktemp("wh")))
    dp.build_code_corpus(dp.CorpusSettings(sources=json.dumps({"python": [str(src)]}), min_bytes=50), wh)
    dp.build_synthetic_tasks(td.SyntheticTasksConfig(exec_per_template=1, repair_per_template=1, heldout_exec_tasks=1,
                                                      heldout_repair_tasks=1).to_settings(),
                             sandbox, wh)
    dp.build_tokenizer(dp.TokenizerSettings(vocab_size=400), wh)
    dp.build_training_examples(dp.ExamplesSettings(), wh)
    for stage in dp.STAGE_KEYS:
        dp.build_curriculum_shard(dp.ShardSettings(max_seq_len=256), wh, stage)
    return wh


def _settings(**changes):
    from training.pipeline import CheckpointSettings

    base = dict(model_overrides=json.loads(TINY), steps_per_stage=6, batch_size=4, checkpoint_every=2,
                max_minutes=0.0, warmup_steps=1)
    return CheckpointSettings(**{**base, **changes})


class Interrupt(Exception):
    pass


def test_curriculum_training_resumes_where_it_was_killed(data_warehouse, tmp_path):
    from model.tokenizer import CodeTokenizer
    from training import phases
    from training.pipeline import build_configs

    tok_dir = data_warehouse.tokenizer_dir()
    mc, tc = build_configs(_settings(), "hrm", CodeTokenizer.load(tok_dir).vocab_size)
    tc.log_every = 2
    shards = phases.stage_shards(data_warehouse)
    assert [s for s, _ in shards] == ["1", "2", "3"]  # stage 4 has no feeding asset here

    def kill_in_phase_2(stage, step, metrics):  # runs before that step's checkpoint is written
        if stage == "2" and step == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        phases.train_curriculum(mc, tc, shards, tmp_path / "run", tok_dir, on_step=kill_in_phase_2)
    done = phases.train_curriculum(mc, tc, shards, tmp_path / "run", tok_dir)
    phases = {p["stage"]: p for p in done["phases"]}
    assert phases["1"]["resumed_from_step"] == 6  # finished before the kill: nothing left to do
    assert phases["2"]["resumed_from_step"] == 2  # the checkpoint written at step 2
    assert phases["3"]["resumed_from_step"] == 0
    assert all(p["steps"] == 6 for p in done["phases"])
    assert [h["global_step"] for h in done["history"]] == list(range(2, 19, 2))
    assert done["tokens_seen"] > 0 and "loss" in done["final_losses"]


def test_checkpoints_quantized_models_and_report(data_warehouse, sandbox):
    from evals import report as rp
    from evals.pipeline import MODELS
    from hrm_assets import evaluation as ev
    from hrm_assets import training as tr

    instance = dg.DagsterInstance.ephemeral()
    tiny = {"model_overrides": TINY, "steps_per_stage": 2, "batch_size": 4, "max_minutes": 0.0, "warmup_steps": 1}
    report_cfg = {"humaneval_problems": 1, "humaneval_n": 5, "max_new_tokens": 8, "synthetic_tasks": 2,
                  "synthetic_max_new_tokens": 8, "batch_size": 8}
    run_config = {"ops": {"hrm_checkpoint": {"config": tiny}, "baseline_checkpoint": {"config": tiny},
                          "quantized_models": {"config": {"eval_tasks": 4, "speed_prompts": 2, "speed_new_tokens": 4}},
                          "benchmark_report": {"config": report_cfg}}}
    result = dg.materialize([tr.hrm_checkpoint, tr.baseline_checkpoint, tr.quantized_models, ev.benchmark_report,
                             ev.no_regression], instance=instance, run_config=run_config,
                            resources={"warehouse": data_warehouse, "sandbox": sandbox})
    assert result.success
    meta = result.asset_materializations_for_node("hrm_checkpoint")[0].metadata
    assert meta["tokens_seen"].value > 0 and meta["loss_curve"].value.startswith("![loss curve](data:image/png;base64,")
    assert set(meta["final_losses"].value) >= {"loss"}
    quant = result.asset_materializations_for_node("quantized_models")[0].metadata["results"].value
    assert quant["int8"]["bytes"] < quant["fp32"]["bytes"] and quant["nf4"]["bytes"] < quant["fp32"]["bytes"]
    report = result.asset_materializations_for_node("benchmark_report")[0].metadata
    values = report["values"].value
    for model in MODELS:
        for metric in ("humaneval/pass@1", "humaneval/pass@5", "synthetic-instances/exec_exact_match",
                       "synthetic-instances/repair_fix_rate", "synthetic-templates/exec_exact_match",
                       "synthetic-templates/repair_fix_rate", "code-bpb/bits_per_byte_python",
                       "code-bpb/gzip_bits_per_byte_python", "code-bpb/xz_bits_per_byte_python",
                       "generation/tokens_per_s"):
            assert f"{model}/{metric}" in values, f"{model}/{metric} missing"
    assert report["flops_curve"].value.startswith("![held-out score vs training FLOPs](data:image/png;base64,")
    assert {(p["model"], p["phase"]) for p in report["flops_curve_points"].value} == {
        (m, s) for m in ("hrm", "baseline") for s in "123"}
    assert "polyglot_problems not materialised" in report["report"].value
    db = data_warehouse.history_db()
    assert len(rp.report_ids(db)) == 1
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_regression"] is True
    assert data_warehouse.read_table("benchmark_report").num_rows == len(values)


def test_torchrun_starts_the_training_module_not_the_command_line(tmp_path):
    from training.phases import torchrun_command

    cmd = torchrun_command(2, tmp_path / "phase-1.config.json", ["s1.parquet", "s2.parquet"], tmp_path / "phase-1",
                           tmp_path / "tok")
    launcher = cmd.index("--nproc_per_node=2")
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    assert cmd[launcher + 1:launcher + 3] == ["-m", "training.run"] and not any("hrm_cli" in c for c in cmd)
    assert cmd[launcher + 3:] == ["--config", str(tmp_path / "phase-1.config.json"), "--shards", "s1.parquet",
                                  "s2.parquet", "--out", str(tmp_path / "phase-1"), "--tokenizer", str(tmp_path / "tok")]


def test_curriculum_phases_under_torchrun_on_two_cpu_ranks(data_warehouse, tmp_path, monkeypatch):
    """The HRM_TORCHRUN_NPROC path: each phase is `python -m training.run` on 2 gloo ranks (DDP)."""
    import torch

    from model.tokenizer import CodeTokenizer
    from training import phases
    from training.pipeline import build_configs

    monkeypatch.chdir(tmp_path)  # the ranks find this checkout's packages from any working directory
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tok_dir = data_warehouse.tokenizer_dir()
    mc, tc = build_configs(_settings(steps_per_stage=2, checkpoint_every=2), "hrm",
                           CodeTokenizer.load(tok_dir).vocab_size)
    shards = phases.stage_shards(data_warehouse)[:2]
    done = phases.train_curriculum(mc, tc, shards, tmp_path / "run", tok_dir, torchrun_nproc=2)
    assert [(p["stage"], p["steps"], p["shards"]) for p in done["phases"]] == [("1", 2, 1), ("2", 2, 2)]
    assert done["tokens_seen"] > 0 and "loss" in done["final_losses"]
    for phase in ("phase-1", "phase-2"):
        rng_states = torch.load(tmp_path / "run" / phase / "rng.pt", weights_only=True)
        assert len(rng_states) == 2  # one RNG state per rank: the phase really ran on two processes
