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
