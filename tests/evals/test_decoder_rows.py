"""The report's decoder rows: held-out repair and Polyglot diff answered by the edit decoder, tool use by the
tool decoder, each graded by the same grader as the plain answers (attacks: an empty or broken decoder
answer, a task whose unedited program already passes, a prompt whose file does not fit the context, an
example without a first command line)."""

import copy

import pytest
import torch

from datagen import synthetic as sy
from evals import evaluate as ev
from evals.report import wilson_interval
from model.edits import apply_edits, parse_edit_blocks

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MUTANT = ("def solve(values):\n    count = 0\n    for x in values:\n        if x > 0:\n            count -= x\n"
          "    return count\n")
FIXED_LINE = "            count += x"
JS_MUTANT = ("function solve(values) {\n  let count = 0;\n  for (const x of values) {\n    if (x > 0) {\n"
             "      count -= x;\n    }\n  }\n  return count;\n}\n")


def repair_row(task_id: str, mutant: str, line: int, fixed_line: str, language: str = "python",
               calls=("[9, 2, -4, 6]", "[1, -1]"), expected=("17", "1")) -> dict:
    answer, tags = sy.search_replace_block(sy.FILE_NAMES[language], mutant, line, fixed_line)
    failure = f"AssertionError: solve({calls[0]}) returned something else, expected {expected[0]}"
    return {"task_id": task_id, "task_type": "repair", "template": "sum_above", "stage": 3, "language": language,
            "prompt": sy.repair_prompt(language, mutant, failure), "answer": answer, "program": mutant,
            "test_program": sy.test_block(language, list(calls), list(expected)), "edit_tags": tags,
            "split": "test", "heldout": "instances"}


REPAIR = repair_row("repair-1", MUTANT, 4, FIXED_LINE)
TOOL = {"prompt": "Task: show which files changed\nCommands:", "answer": "git status --short\ngit diff",
        "language": "python", "split": "test"}


def polyglot_exercise():
    from evals.polyglot.exercises import Exercise

    return Exercise("python", "double", "Write `double(x)`: it returns twice x.",
                    solution_files={"double.py": "def double(x):\n    return x\n"},
                    test_files={"double_test.py": "from double import double\n\n\ndef test_double():\n"
                                                  "    assert double(3) == 6\n"},
                    reference_files={"double.py": "def double(x):\n    return 2 * x\n"})


POLYGLOT_ANSWER = "double.py\n<<<<<<< SEARCH\n    return x\n=======\n    return 2 * x\n>>>>>>> REPLACE\n"


def training_rows() -> list[dict]:
    """The repair task, the tool-use example and the Polyglot exercise as training examples."""
    from datagen.curriculum import synthetic_examples
    from evals.polyglot.exercises import solver_prompt

    ex = polyglot_exercise()
    prompt = ev.polyglot_prompt(solver_prompt(ex), ex.solution_files, "diff")
    tags = [int(line == "    return x") for line in prompt.split("\n")]
    return synthetic_examples([REPAIR]) + [
        {"task_type": "tool_use", "language": "python", "prompt": TOOL["prompt"], "answer": TOOL["answer"],
         "split": "train", "example_id": "tool-1", "edit_tags": [], "tool_calls": [{"tool": "git", "args": {}}]},
        {"task_type": "repair", "language": "python", "prompt": prompt, "answer": POLYGLOT_ANSWER, "split": "train",
         "example_id": "polyglot-1", "edit_tags": tags, "tool_calls": []}]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from model.tokenizer import train_tokenizer

    texts = [r["prompt"] + r["answer"] for r in training_rows()] + [JS_MUTANT]
    return train_tokenizer(texts * 5, 600, tmp_path_factory.mktemp("tok"))


def tiny_model(tokenizer, arch: str = "hrm", max_seq_len: int = 512):
    from model import ModelConfig, build_model

    torch.manual_seed(0)
    return build_model(ModelConfig.preset("tiny", vocab_size=tokenizer.vocab_size, max_seq_len=max_seq_len,
                                          arch=arch)).eval()


@pytest.fixture(scope="module")
def learned(tokenizer):
    """A tiny HRM that learned the three examples through the training pipeline's own tokenization
    (edit tags on the buggy line, the tool label): its decoders write the right answers."""
    from datagen.curriculum import tokenize_examples
    from model.data import Example, collate
    from model.vocab import language_id, task_id

    shard, too_long = tokenize_examples(training_rows(), tokenizer, 512)
    assert not too_long
    batch = collate([Example(r["input_ids"], r["prompt_len"], language_id(r["language"]), task_id(r["task_type"]),
                             r["edit_tags"], r["tool_label"], r["example_id"]) for r in shard])
    model = tiny_model(tokenizer).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(150):
        loss = model(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    metrics = model.eval()(batch).metrics
    assert metrics["lm_acc"] == 1.0 and metrics["edit_acc"] == 1.0 and metrics["tool_acc"] == 1.0, metrics
    return model


def settings(**changes) -> ev.EvalSettings:
    base = dict(synthetic_max_new_tokens=24, repair_max_new_tokens=40, polyglot_max_new_tokens=24,
                polyglot_formats=("diff",), polyglot_tries=1, batch_size=4)
    return ev.EvalSettings(**{**base, **changes})


def by_key(rows: list[dict]) -> dict:
    return {(r["benchmark"], r["metric"]): r for r in rows}


DECODER_KEYS = {("synthetic-instances", "repair_fix_rate_edit_decoder"),
                ("synthetic-instances", "repair_fix_rate_snap"),
                ("polyglot-diff", "pass_rate_1_edit_decoder"),
                ("polyglot-diff", "percent_cases_well_formed_edit_decoder"),
                ("tool-use", "first_call_exact_match_tool_decoder")}


# --- the rows ---------------------------------------------------------------------------------------------
@pytest.mark.slow  # runs a Polyglot exercise's tests and the repair grader in the jail
def test_decoder_rows_follow_the_plain_rows_with_their_intervals(learned, tokenizer, sandbox, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("HRM_POLYGLOT_CACHE", str(tmp_path / "cache"))
    suite = ev.EvalSuite(synthetic={"synthetic-instances": [REPAIR]}, polyglot=[polyglot_exercise()],
                         tool_use=[TOOL])
    c = ev.Candidate("hrm", learned, tokenizer)
    logged = []
    rows = by_key(ev.evaluate_candidate(c, suite, sandbox, settings(), log=logged.append))
    assert DECODER_KEYS <= set(rows)
    # the plain rows keep their names
    assert {("synthetic-instances", "repair_fix_rate"), ("polyglot-diff", "pass_rate_1"),
            ("tool-use", "first_call_exact_match")} <= set(rows)
    for key in DECODER_KEYS:  # the learned answers pass through the decoders and the graders
        row = rows[key]
        assert (row["value"], row["n"]) == (1.0, 1), row
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(wilson_interval(1, 1)), row
    assert c.decoder_errors == []
    # every rate row names its problems; Polyglot adds a row per language that names none
    assert rows[("polyglot-diff", "pass_rate_1_edit_decoder")]["problems"] == [
        {"problem": "python/double", "sample": 1, "passed": True, "error_kind": ""}]
    assert rows[("synthetic-instances", "repair_fix_rate_snap")]["problems"] == [
        {"problem": "repair-1", "sample": 0, "passed": True, "error_kind": ""}]
    assert rows[("polyglot-diff/python", "pass_rate_1")]["n"] == 1
    assert "problems" not in rows[("polyglot-diff/python", "pass_rate_1")]
    assert "problems" not in rows[("generation", "tokens_per_s")]
    assert any(line.startswith("hrm synthetic-instances/edit-decoder: ") for line in logged)
    # decoder rows sit right after their plain rows
    order = [(r["benchmark"], r["metric"]) for r in ev.evaluate_candidate(c, suite, sandbox, settings(),
                                                                            only=("synthetic-instances",
                                                                                  "synthetic-instances/edit-decoder"))]
    assert order[:2] == [("synthetic-instances", "repair_fix_rate"),
                         ("synthetic-instances", "repair_fix_rate_edit_decoder")]
    order = [(r["benchmark"], r["metric"]) for r in ev.evaluate_candidate(c, suite, sandbox, settings(),
                                                                            only=("synthetic-instances/snap",))]
    assert order[0] == ("synthetic-instances", "repair_fix_rate_snap")
    # the decoder rows come from the decoders: without the edit and tool heads' choices they fail, while
    # plain sampling, which does not read those heads, still passes
    headless = copy.deepcopy(learned)
    with torch.no_grad():
        headless.heads.edit.bias.fill_(-20.0)  # no line tagged
        headless.heads.tool.bias.copy_(torch.tensor([20.0] + [-20.0] * (headless.heads.tool.bias.numel() - 1)))
    c = ev.Candidate("hrm", headless, tokenizer)
    rows = by_key(ev.evaluate_candidate(c, suite, sandbox, settings(polyglot_formats=())))
    assert rows[("synthetic-instances", "repair_fix_rate")]["value"] == 1.0
    assert rows[("synthetic-instances", "repair_fix_rate_edit_decoder")]["value"] == 0.0
    [failed] = rows[("synthetic-instances", "repair_fix_rate_edit_decoder")]["problems"]
    assert not failed["passed"] and failed["error_kind"] in ("no_apply", "wrong_answer", "bad_output")
    assert rows[("tool-use", "first_call_exact_match")]["value"] == 1.0
    assert rows[("tool-use", "first_call_exact_match_tool_decoder")]["value"] == 0.0


def test_setting_off_removes_the_decoder_rows_and_the_curve_never_runs_them(tokenizer, sandbox):
    suite = ev.EvalSuite(synthetic={"synthetic-instances": [REPAIR]}, tool_use=[TOOL])
    c = ev.Candidate("hrm", tiny_model(tokenizer), tokenizer)
    on = by_key(ev.evaluate_candidate(c, suite, sandbox, settings()))
    assert {("synthetic-instances", "repair_fix_rate_edit_decoder"),
            ("tool-use", "first_call_exact_match_tool_decoder")} <= set(on)
    assert ("synthetic-instances", "repair_fix_rate_snap") in on
    for row in on.values():
        if row["metric"].endswith((ev.EDIT_DECODER, ev.TOOL_DECODER, ev.SNAP)):
            assert row["n"] == 1 and (row["ci_low"], row["ci_high"]) == pytest.approx(
                wilson_interval(row["value"] * row["n"], row["n"])), row
    off = ev.evaluate_candidate(c, suite, sandbox, settings(decoders=False))
    assert [r["metric"] for r in off if r["metric"].endswith((ev.EDIT_DECODER, ev.TOOL_DECODER, ev.SNAP))] == []
    assert {("synthetic-instances", "repair_fix_rate"), ("tool-use", "first_call_exact_match")} <= set(by_key(off))
    # the FLOPs curve scores earlier checkpoints with only=settings.flops_curve: no decoder step
    curve = ev.evaluate_candidate(c, suite, sandbox, settings(), only=ev.EvalSettings().flops_curve)
    assert [r["metric"] for r in curve if r["benchmark"] != "generation"] == ["repair_fix_rate"]


@pytest.mark.parametrize("raw, expected", [(None, True), ("0", False), ("1", True)])
def test_the_registry_setting_reaches_the_report_settings(monkeypatch, raw, expected):
    from hrm_assets.evaluation import ReportConfig

    if raw is None:
        monkeypatch.delenv("HRM_EVAL_DECODERS", raising=False)
    else:
        monkeypatch.setenv("HRM_EVAL_DECODERS", raw)
    assert ReportConfig().to_settings().decoders is expected
    assert ev.EvalSettings().decoders is True


# --- what the decoders write ------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["hrm", "baseline"])
@pytest.mark.parametrize("language, mutant", [("python", MUTANT), ("javascript", JS_MUTANT)])
def test_edit_decoder_answers_to_repair_prompts_parse_and_apply_strictly(tokenizer, arch, language, mutant):
    model = tiny_model(tokenizer, arch)  # untrained: the head tags some lines, the LM writes noise
    row = repair_row("r", mutant, 4, "x", language)
    c = ev.Candidate(arch, model, tokenizer)
    answers = [ev.edit_decoder_answer(c, row["prompt"], {None: mutant}, language, 8)]
    with torch.no_grad():
        model.heads.edit.weight.zero_()
        model.heads.edit.bias.fill_(20.0)  # every line tagged: at least one block
    answers.append(ev.edit_decoder_answer(c, row["prompt"], {None: mutant}, language, 8))
    assert c.decoder_errors == []
    for answer in answers:
        blocks = parse_edit_blocks(answer)
        if blocks:
            apply_edits(mutant, answer)  # raises unless every SEARCH matches whole lines exactly once
            # the training format: the file name line before each block
            assert answer.startswith(sy.FILE_NAMES[language] + "\n<<<<<<< SEARCH\n")
    assert parse_edit_blocks(answers[-1])


# --- attacks: a malformed decoder answer is never a pass --------------------------------------------------
def test_an_empty_decoder_answer_fails_a_task_whose_unedited_program_passes(tokenizer, sandbox):
    from datagen.repair_grading import repair_verdict

    fixed = MUTANT.replace("count -= x", "count += x")
    row = repair_row("already-right", fixed, 4, FIXED_LINE)  # the "mutant" already passes its tests
    noop = "main.py\n<<<<<<< SEARCH\n    return count\n=======\n    return count\n>>>>>>> REPLACE\n"
    assert repair_verdict(sandbox, "python", fixed, noop, row["test_program"]) == (True, "")
    model = tiny_model(tokenizer)
    with torch.no_grad():
        model.heads.edit.weight.zero_()
        model.heads.edit.bias.fill_(-20.0)  # no line tagged: the decoder writes no block
    c = ev.Candidate("hrm", model, tokenizer)
    assert ev.edit_decoder_answer(c, row["prompt"], {None: fixed}, "python", 8) == ""
    [result] = ev.eval_repair_edit_decoder(c, [row], sandbox, settings())
    assert (result["metric"], result["value"], result["n"]) == ("repair_fix_rate_edit_decoder", 0.0, 1)


def test_a_decoder_answer_that_breaks_the_program_fails(tokenizer, sandbox):
    model = tiny_model(tokenizer)
    with torch.no_grad():
        model.heads.edit.weight.zero_()
        model.heads.edit.bias.fill_(20.0)  # the whole file as SEARCH; the untrained LM writes its REPLACE
    c = ev.Candidate("hrm", model, tokenizer)
    answer = ev.edit_decoder_answer(c, REPAIR["prompt"], {None: MUTANT}, "python", 8)
    assert apply_edits(MUTANT, answer) != MUTANT  # well formed, applies, and is not a fix
    [result] = ev.eval_repair_edit_decoder(c, [REPAIR], sandbox, settings(synthetic_max_new_tokens=8))
    assert result["value"] == 0.0


def test_a_file_that_does_not_fit_the_context_is_a_recorded_failure(tokenizer, sandbox):
    c = ev.Candidate("hrm", tiny_model(tokenizer, max_seq_len=64), tokenizer)  # no room for the file and its answer
    [result] = ev.eval_repair_edit_decoder(c, [REPAIR], sandbox, settings())
    assert (result["value"], result["n"]) == (0.0, 1)
    assert len(c.decoder_errors) == 1 and c.decoder_errors[0].startswith("edit decoder, file: ")


SNAPPED_FIX = "main.py\n<<<<<<< SEARCH\n            count -= y\n=======\n            count += x\n>>>>>>> REPLACE\n"


@pytest.mark.parametrize("answer, fixed", [
    (SNAPPED_FIX, True),  # SEARCH one character off the buggy line: snapped to it, the fix applies
    (SNAPPED_FIX.replace("count += x", "count -= x"), False),  # snapped, but REPLACE keeps the bug
    (SNAPPED_FIX.replace("count += x", "count += x +"), False),  # snapped, REPLACE breaks the program
    (SNAPPED_FIX.replace("            count -= y", "    return count"), False),  # the wrong line, exactly
    ("main.py\n<<<<<<< SEARCH\n            count -= y\n=======\n", False),  # a block cut short
    ("", False), ("count += x", False)])  # no block at all
def test_snap_rows_move_search_text_only_and_the_strict_grader_decides(tokenizer, sandbox, monkeypatch, answer,
                                                                      fixed):
    monkeypatch.setattr(ev, "complete", lambda c, prompts, *a, **k: [[answer] for _ in prompts])
    c = ev.Candidate("hrm", tiny_model(tokenizer), tokenizer)
    [plain] = [r for r in ev.eval_synthetic(c, [REPAIR], sandbox, settings()) if r["metric"] == "repair_fix_rate"]

    def no_second_decoding(*args, **kwargs):
        raise AssertionError("the snap row re-decoded the plain row's greedy answers")

    monkeypatch.setattr(ev, "complete", no_second_decoding)
    [snap] = ev.eval_repair_snap(c, [REPAIR], sandbox, settings())
    assert plain["value"] == 0.0  # the plain row grades the answer as written: its SEARCH is not in the file
    assert (snap["metric"], snap["value"], snap["n"]) == ("repair_fix_rate_snap", float(fixed), 1)


def test_tool_decoder_failures_never_match(tokenizer):
    model = tiny_model(tokenizer)
    c = ev.Candidate("hrm", model, tokenizer)
    with torch.no_grad():
        model.heads.tool.weight.zero_()
        model.heads.tool.bias.copy_(torch.tensor([20.0] + [0.0] * (model.heads.tool.bias.numel() - 1)))
    assert ev.tool_decoder_command(c, TOOL["prompt"], "python", 8) == ""  # tool "none": no command
    [none] = ev.eval_tool_use(c, [TOOL], settings(), tool_decoder=True)
    assert (none["value"], none["n"]) == (0.0, 1)
    # an example without a first command line is not scored, so an empty command cannot match it
    assert ev.eval_tool_use(c, [{**TOOL, "answer": " \n\n"}], settings(), tool_decoder=True) == []
    assert ev.eval_tool_use(c, [{**TOOL, "answer": " \n\n"}, TOOL], settings(), tool_decoder=True)[0]["n"] == 1


def test_fit_prompt_text_keeps_the_tail_within_the_limit(tokenizer):
    from model.generate import encode_prompt

    prompt = REPAIR["prompt"]
    assert ev.fit_prompt_text(tokenizer, prompt, 10_000) == prompt
    cut = ev.fit_prompt_text(tokenizer, prompt, 20)
    assert len(encode_prompt(tokenizer, cut)) <= 20 and prompt.endswith(cut.lstrip("\ufffd")) and cut != prompt
    with pytest.raises(ValueError, match="no room"):
        ev.fit_prompt_text(tokenizer, prompt, 1)
