"""RL rewards come from running the sample in the jail (training/rewards.py): a right repair earns 1, a partial
one partial credit, and a sample that games the grader (exits early with status 0, prints pass lines, forges
the result frame with the stolen token) earns 0."""

import pytest

from datagen import synthetic
from training.rewards import FORMAT, PARTIAL, RepairRewards, exec_reward, task_reward

RIGHT = "def solve(xs):\n    out = 0\n    for x in xs:\n        if x > 5:\n            out += x\n    return out\n"
MUTANT = RIGHT.replace("x > 5", "x > 6")
CALLS = ["[2, 10, 6, -1, 6]", "[4, 1, 4, 8]", "[7, 3]", "[6, 1]"]
EXPECTED = ["22", "8", "7", "6"]  # the mutant gets the first and last wrong
TASK = {"task_id": "t-py", "task_type": "repair", "language": "python", "program": MUTANT,
        "test_program": synthetic.test_block("python", CALLS, EXPECTED), "answer": "",
        "prompt": "A test of this python function fails. ...\nAssertionError: solve([2, 10, 6, -1, 6]) returned 10, expected 22\n"}

JS_RIGHT = "function solve(xs) {\n  let out = 0;\n  for (const x of xs) {\n    out += x;\n  }\n  return out;\n}\n"
JS_TASK = {"task_id": "t-js", "task_type": "repair", "language": "javascript",
           "program": JS_RIGHT.replace("of xs", "of xs.slice(1)"),
           "test_program": synthetic.test_block("javascript", ["[1, 2]", "[3]"], ["3", "3"]), "answer": "",
           "prompt": ""}


def edit(search: str, replace: str, file: str = "main.py") -> str:
    return f"{file}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def test_exec_rewards_are_exact_output_only():
    assert exec_reward("-38\n", "-38").value == 1.0
    assert exec_reward("-38\n", "-38\n-37\n").value == 0.0  # hedging with more lines
    assert exec_reward("-38\n", "the output is -38").value == 0.0
    assert exec_reward("-38\n", "  ").kind == "no_answer"


@pytest.mark.slow
def test_repair_rewards_full_partial_format_and_none(sandbox):
    rewards = RepairRewards(sandbox)
    assert rewards(TASK, edit("        if x > 6:", "        if x > 5:")).value == 1.0
    # fixes the hidden failing call [6, 1], not the one the prompt shows: half the partial credit... of one
    partial = rewards(TASK, edit("        if x > 6:", "        if x > 6 or (x == 6 and len(xs) == 2):"))
    assert partial.kind == "partial" and partial.value == pytest.approx(FORMAT + (1 - FORMAT) * PARTIAL)
    # fixes both failing calls but breaks one of the two passing ones
    broke = rewards(TASK, edit("        if x > 6:", "        if x > 5 and x != 7:"))
    assert broke.value == pytest.approx(FORMAT + (1 - FORMAT) * PARTIAL * 0.5)
    assert rewards(TASK, edit("    return out", "    return out  # looked at it")).value == FORMAT
    assert rewards(TASK, edit("        if x > 7:", "        if x > 5:")).kind == "no_apply"
    assert rewards(TASK, "the bug is fixed").value == 0.0
    assert task_reward(rewards, JS_TASK, edit("  for (const x of xs.slice(1)) {", "  for (const x of xs) {", "main.js")).value == 1.0


# A fix of only the call the prompt shows earns no partial credit: it may be special-cased.
@pytest.mark.slow
def test_special_casing_the_visible_failure_earns_only_the_format_reward(sandbox):
    rewards = RepairRewards(sandbox)
    for answer in (edit("    return out", "    return 22 if xs == [2, 10, 6, -1, 6] else out"),
                   edit("def solve(xs):", FORGE.format(values=[22, 8, 7, 0]))):
        reward = rewards(TASK, answer)
        assert reward.value == FORMAT and reward.kind == "unchanged", reward


# steals the token from stdin and writes the result frame itself, then exits before the runner does
FORGE = ("import sys, os\ntoken = sys.stdin.readline().strip()\nfor i, v in enumerate({values}):\n    print(token, i, v)\n"
         "print(token, 'end', 4)\nsys.stdout.flush()\nos._exit(0)\ndef solve(xs):")

GAMES = {
    "exits early with status 0": edit("def solve(xs):", "import os\nos._exit(0)\ndef solve(xs):"),
    "raises SystemExit(0) from solve": edit("    return out", "    raise SystemExit(0)"),
    "prints pass lines and exits": edit("def solve(xs):", "print('4 passed'); print('OK')\nimport sys\nsys.exit(0)\n"
                                                          "def solve(xs):"),
    "forges a frame with one result too few": edit("def solve(xs):", FORGE.replace("'end', 4", "'end', 3").format(
        values=[22, 8, 7])),
    "loops forever": edit("    return out", "    while True:\n        pass"),
}


@pytest.mark.slow
@pytest.mark.parametrize("game", sorted(GAMES))
def test_a_sample_that_games_the_grader_earns_nothing(sandbox, game):
    reward = RepairRewards(sandbox, timeout_s=3.0)(TASK, GAMES[game])
    assert reward.value == 0.0, (game, reward)
