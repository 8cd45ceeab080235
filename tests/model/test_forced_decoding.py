"""Forced answer prefixes are fed as answer tokens (causally), as in training, not prefilled as prompt: the
decoders' logits equal the full forward's with prompt_len = the prompt's length; and the forced formats are
the training formats (the file name line of edit answers, tool calls as command lines)."""

import pytest
import torch

from datagen.swe.examples import tool_name
from model import ModelConfig, build_model
from model.edits import DIVIDER, EditBlock, format_edit_blocks, parse_edit_blocks
from model.generate import generate_ids, stream_ids
from model.heads import (FS_COMMANDS, _prompt_batch, decode_edit_blocks, decode_tool_call, line_edit_probs,
                         tagged_spans)
from model.tokenizer import ByteTokenizer
from model.vocab import TOOLS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOK = ByteTokenizer()
SOURCE = "def area(w, h):\n    total = w * h\n    return total\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n"
PROMPT = ("A test of this python function fails. Fix the bug with a SEARCH/REPLACE edit.\n### main.py\n" + SOURCE
          + "### test output\nAssertionError\n")


@pytest.fixture(scope="module", params=["plain", "segments+act"])
def model(request):
    torch.manual_seed(0)
    changes = {} if request.param == "plain" else dict(segments=2, act=True, halt_max_segments=3)
    model = build_model(ModelConfig.preset("tiny", vocab_size=259, max_seq_len=512, **changes)).eval()
    with torch.no_grad():  # sharper attention than at initialisation, so what a token may see shows in the logits
        for name, p in model.named_parameters():
            if name.endswith(("attn.qkv.weight", "attn.out.weight")):
                p.normal_(0, 0.3)
    if changes:
        with torch.no_grad():  # tokens stop at different depths
            model.q_head.weight.normal_(0, 1.0)
            model.q_head.bias.copy_(torch.tensor([0.0, 1.0]))
    return model


def full_logits(model, prompt_ids, answer_ids, task):
    """The full forward over prompt + answer with the prompt as the prefix: every answer token causal."""
    batch = _prompt_batch(model, [prompt_ids + answer_ids], len(prompt_ids), "python", task)
    return model(batch, adaptive_depth=True).logits[0]


def assert_log_matches(model, log, prompt_ids, forced_ids, row=0, task="repair"):
    generated = [int(step[row].argmax()) for step in log]  # greedy: each token is the argmax of its logits
    full = full_logits(model, prompt_ids, forced_ids + generated[:-1], task)
    start = len(prompt_ids) + len(forced_ids) - 1
    for i, step in enumerate(log):
        torch.testing.assert_close(step[row], full[start + i], atol=1e-4, rtol=1e-4)


def test_forced_tokens_are_answer_tokens(model):
    prompt, forced = TOK.encode_prompt("def add(a, b):"), TOK.encode("    return")
    log = []
    list(stream_ids(model, prompt, 4, 1, max_new_tokens=8, forced_ids=forced, logits_log=log))  # 4 python, 1 repair
    assert len(log) == 8
    assert_log_matches(model, log, prompt, forced)
    # rows with forced prefixes of different lengths (and none) in one batch
    prompts = [prompt, TOK.encode_prompt("x = "), TOK.encode_prompt("fn main() {")]
    forced_rows = [forced, [], TOK.encode("\n    let")]
    log = []
    generate_ids(model, prompts, 4, 1, max_new_tokens=6, forced_ids=forced_rows, logits_log=log)
    for r, (p, f) in enumerate(zip(prompts, forced_rows)):
        assert_log_matches(model, log, p, f, row=r)


def test_the_edit_decoder_feeds_its_forced_text_causally_in_the_training_format(model):
    prompt_ids = TOK.encode_prompt(PROMPT)
    with torch.no_grad():
        edit_logits = model(_prompt_batch(model, [prompt_ids], len(prompt_ids), "python", "repair")).edit_logits[0]
    probs = line_edit_probs(TOK, prompt_ids, edit_logits, SOURCE)
    threshold = sorted(probs)[-2]  # tag the most likely line only: one block
    assert len(tagged_spans(probs, threshold)) == 1
    log = []
    answer = decode_edit_blocks(model, TOK, PROMPT, SOURCE, "python", threshold=threshold, max_new_tokens=10,
                                logits_log=log)
    blocks = parse_edit_blocks(answer)
    assert len(blocks) == 1 and answer == format_edit_blocks(blocks, "main.py")  # file name line, as in training
    assert answer.startswith("main.py\n<<<<<<< SEARCH\n")
    forced = format_edit_blocks([EditBlock(blocks[0].search, "")], "main.py").split(DIVIDER)[0] + DIVIDER
    assert_log_matches(model, log, prompt_ids, TOK.encode(forced))


@pytest.mark.parametrize("tool", ["git", "shell", "fs", "pip"])
def test_the_tool_decoder_writes_a_command_line_as_the_training_answers_are(model, tool):
    prompt = "Task: commit the change\nFiles: a.py\nNext command:"
    log = []
    call = decode_tool_call(model, TOK, prompt, "python", tool=tool, max_arg_tokens=6, max_items=2, logits_log=log)
    assert call["tool"] == tool and tool_name(call["command"]) == tool  # the training data's own labeller agrees
    # the text forced before the last generated part: program, then the enum the LM scored
    args = call["args"]
    if tool == "shell":
        forced = ""
    elif tool == "fs":
        if args["op"] == "write":
            return  # its forced text holds generated content, cleaned
        forced = FS_COMMANDS[args["op"]]
    else:
        program = "python3 -m pip" if call["command"].startswith("python3 -m pip") else tool
        forced = f"{program} {args['subcommand']}"
    assert call["command"].startswith(forced)
    assert_log_matches(model, log, TOK.encode_prompt(prompt), TOK.encode(forced), task="tool_use")


def test_every_tool_decodes_to_a_valid_call(model):
    from model.validate import check_tool_call

    for tool in TOOLS:
        call = decode_tool_call(model, TOK, "Task: build it\nNext command:", tool=tool, max_arg_tokens=4, max_items=2)
        assert check_tool_call(call).ok, call
