"""The default run (`bash scripts/main.sh`) trains what the registry's defaults say: a preset that exists,
a baseline with the same parameter count, a training config that validates, shards its context holds."""

from pathlib import Path

import pytest

from resources.settings import SETTINGS

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry_defaults(monkeypatch):
    """The environment main.sh gives a run: no HRM_* setting overridden."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def _default_configs(arch: str):
    from hrm_assets.training import CheckpointConfig
    from training.pipeline import build_configs

    return build_configs(CheckpointConfig().to_settings(), arch, SETTINGS["HRM_TOKENIZER_VOCAB_SIZE"].default)


def test_main_sh_leaves_the_training_settings_to_the_registry():
    main = (REPO_ROOT / "scripts" / "main.sh").read_text()
    assert "hrm materialize" in main and "source scripts/env.sh" in main
    script = main + (REPO_ROOT / "scripts" / "env.sh").read_text()  # the environment main.sh and ui.sh share
    assert not [name for name in SETTINGS if name.startswith(("HRM_MODEL_", "HRM_TRAIN_", "HRM_SYNTH_",
                                                              "HRM_SHARD_", "HRM_CORPUS_")) and name in script]
    assert 'export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"' in script


def test_the_default_preset_trains_hrm_and_a_parameter_matched_baseline(registry_defaults):
    from model import build_model
    from model.config import PRESETS

    assert SETTINGS["HRM_MODEL_PRESET"].default == "cpu-default" and "cpu-default" in PRESETS
    hrm_config, train_config = _default_configs("hrm")
    baseline_config, _ = _default_configs("baseline")
    hrm, baseline = build_model(hrm_config), build_model(baseline_config)
    assert hrm_config.arch == "hrm" and baseline_config.arch == "baseline"
    assert hrm.num_parameters() > 1_000_000  # not the 0.35M test model
    assert abs(baseline.num_parameters() / hrm.num_parameters() - 1) < 0.05
    assert hrm_config.vocab_size == SETTINGS["HRM_TOKENIZER_VOCAB_SIZE"].default
    # every shard example fits the context, so none is cut in training
    assert hrm_config.max_seq_len >= SETTINGS["HRM_SHARD_MAX_TOKENS"].default
    assert train_config.dtype == "bf16" and train_config.task_weights == {"repair": 3.0, "exec_predict": 2.0}
    assert train_config.max_steps == SETTINGS["HRM_TRAIN_STEPS_PER_STAGE"].default
    # segments and ACT stay off in the default: one segment per token, fixed depth
    assert hrm_config.segments == 1 and not hrm_config.act


@pytest.mark.parametrize("preset", ["cpu-default", "cpu-long"])
def test_cpu_presets_have_a_baseline_within_five_percent(preset):
    from model import build_model
    from model.config import ModelConfig

    hrm = build_model(ModelConfig.preset(preset))
    baseline = build_model(ModelConfig.preset(preset, arch="baseline"))
    assert abs(baseline.num_parameters() / hrm.num_parameters() - 1) < 0.05
