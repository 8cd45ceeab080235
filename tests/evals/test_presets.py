"""Evaluation presets: smoke is the EvalSettings defaults, full takes every problem, unknown names are refused."""

import pytest

from evals import evaluate as ev


def test_smoke_is_the_defaults_and_overrides_apply():
    assert ev.preset_settings("smoke") == ev.EvalSettings()
    assert ev.preset_settings("full", batch_size=8).batch_size == 8


def test_full_takes_every_problem():
    full = ev.preset_settings("full")
    assert (full.humaneval_problems, full.lcb_problems, full.synthetic_tasks, full.tool_use_examples,
            full.bpb_files_per_language) == (0, 0, 0, 0, 0)
    assert full.polyglot_subset == "all" and set(full.polyglot_formats) == {"whole", "diff"}
    assert full.humaneval_n >= 5  # pass@5 needs 5 samples
    standard = ev.preset_settings("standard")
    assert standard.humaneval_n >= 5 and standard.lcb_problems > ev.EvalSettings().lcb_problems


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ValueError, match="smoke, standard, full"):
        ev.preset_settings("huge")
    with pytest.raises(TypeError):
        ev.preset_settings("smoke", no_such_field=1)


REPORT_FIELDS = {"HRM_EVAL_HUMANEVAL_PROBLEMS": "humaneval_problems", "HRM_EVAL_HUMANEVAL_N": "humaneval_n",
                 "HRM_EVAL_HUMANEVAL_TEMPERATURE": "humaneval_temperature", "HRM_EVAL_MAX_NEW_TOKENS": "max_new_tokens",
                 "HRM_EVAL_POLYGLOT_SUBSET": "polyglot_subset", "HRM_EVAL_POLYGLOT_MAX_NEW_TOKENS": "polyglot_max_new_tokens",
                 "HRM_EVAL_LCB_PROBLEMS": "lcb_problems", "HRM_EVAL_LCB_N": "lcb_n",
                 "HRM_EVAL_SYNTHETIC_TASKS": "synthetic_tasks",
                 "HRM_EVAL_SYNTHETIC_MAX_NEW_TOKENS": "synthetic_max_new_tokens", "HRM_EVAL_DECODERS": "decoders",
                 "HRM_EVAL_BATCH_SIZE": "batch_size", "HRM_EVAL_SEED": "seed"}


@pytest.fixture
def clean_env(monkeypatch):
    for name in [*REPORT_FIELDS, "HRM_EVAL_PRESET", "HRM_EVAL_POLYGLOT_FORMATS"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_settings_defaults_are_the_smoke_preset():
    from resources.settings import SETTINGS

    smoke = ev.preset_settings("smoke")
    for name, field in REPORT_FIELDS.items():
        assert SETTINGS[name].default == getattr(smoke, field), name
    assert tuple(SETTINGS["HRM_EVAL_POLYGLOT_FORMATS"].default.split(",")) == smoke.polyglot_formats
    assert SETTINGS["HRM_EVAL_PRESET"].default == "smoke"


def test_the_report_config_takes_the_preset_and_only_the_variables_that_are_set(clean_env):
    from hrm_assets.evaluation import ReportConfig

    assert ReportConfig().to_settings() == ev.preset_settings("smoke")
    clean_env.setenv("HRM_EVAL_PRESET", "full")
    assert ReportConfig().to_settings() == ev.preset_settings("full")
    clean_env.setenv("HRM_EVAL_HUMANEVAL_N", "3")
    clean_env.setenv("HRM_EVAL_POLYGLOT_FORMATS", "diff")
    clean_env.setenv("HRM_EVAL_SYNTHETIC_TASKS", "7")
    got = ReportConfig().to_settings()
    assert got == ev.preset_settings("full", humaneval_n=3, polyglot_formats=("diff",), synthetic_tasks=7,
                                     tool_use_examples=7)
    assert ReportConfig(humaneval_n=2, preset="standard").to_settings().humaneval_n == 2  # run config over env
    with pytest.raises(ValueError, match="expected one of smoke, standard, full"):
        ReportConfig(preset="nightly").to_settings()
