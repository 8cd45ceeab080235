"""Synthetic tasks: mutations round-trip through SEARCH/REPLACE, and ground truth comes from the sandbox."""

import random

import pytest

from datagen import batch_run, synthetic
from datagen.repair_grading import repair_fixed
from model.edits import apply_edits
from resources.programs import single_file_job


def test_mutations_search_replace_round_trip():
    rs = synthetic._r_sum_above(random.Random(3), "python")
    muts = synthetic.mutations(rs.code, random.Random(0))
    assert {m[0] for m in muts} == {"flipped operator", "off by one", "wrong variable"}
    kind, i, old, new = muts[0]
    lines = rs.code.split("\n")
    lines[i] = new
    mutant = "\n".join(lines)
    block, tags = synthetic.search_replace_block("main.py", mutant, i, old)
    assert apply_edits(mutant, block) == rs.code
    assert tags[i] == 1 and sum(tags) == 1
    with pytest.raises(ValueError):
        apply_edits(rs.code + "zzz", "no block here")


@pytest.mark.slow
def test_synthetic_tasks_ground_truth_comes_from_the_sandbox(sandbox):
    cfg = synthetic.SyntheticConfig(exec_per_template=1, repair_per_template=1, languages=("python", "javascript"),
                                    heldout_exec_tasks=1, heldout_repair_tasks=1)
    result = synthetic.generate_synthetic_tasks(sandbox, cfg)
    assert not result.rejected
    ex = [t for t in result.tasks if t["task_type"] == "exec_predict"]
    assert len([t for t in ex if t["heldout"] != "instances"]) == 2 * len(synthetic.EXEC_TEMPLATES)
    for t in ex:  # running the program alone gives the answer its batch recorded
        files, cmd = single_file_job(t["language"], t["program"])
        assert sandbox.run(cmd, files=files).stdout == t["answer"]
    rep = [t for t in result.tasks if t["task_type"] == "repair"]
    assert len([t for t in rep if t["heldout"] != "instances"]) == 2 * len(synthetic.REPAIR_TEMPLATES)
    for t in rep[:4]:
        assert repair_fixed(sandbox, t["language"], t["program"], t["answer"], t["test_program"])
        # the unfixed mutant really fails its test
        files, cmd = single_file_job(t["language"], synthetic.with_tests(t["program"], t["test_program"]))
        alone = sandbox.run(cmd, files=files)
        assert alone.status == "failed"
        assert t["prompt"].rstrip().endswith(batch_run._error_line(alone.stderr))  # the same failure text
        assert not repair_fixed(sandbox, t["language"], t["program"], "no edit", t["test_program"])
    held = {t["template"] for t in result.tasks if t["heldout"] == "templates"}
    assert held == set(cfg.heldout_templates)
    assert not held & {t["template"] for t in result.tasks if t["split"] != "test"}
