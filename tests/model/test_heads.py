"""Heads' decoding: edit blocks copied from the file always apply, decoded tool calls validate against their
schema."""

import pytest
import torch

from model import ModelConfig, build_model
from model.heads import (_prompt_batch, decode_edit_blocks, decode_tool_call, line_edit_probs, snap_edit_blocks,
                         tagged_spans, unique_search)
from model.edits import EditBlock, apply_edit_blocks, format_edit_blocks, parse_edit_blocks
from model.validate import check_edit, check_tool_call
from model.tokenizer import ByteTokenizer
from model.vocab import TOOLS


TOK = ByteTokenizer()
SOURCE = """def area(w, h):
    total = w * h
    return total


def perimeter(w, h):
    total = 2 * (w + h)
    return total
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig.preset("tiny", vocab_size=259, max_seq_len=512)).eval()


def test_line_probs_follow_the_tokens_of_each_line():
    prompt = "Fix it.\n" + SOURCE
    ids = TOK.encode_prompt(prompt)
    logits = torch.full((len(ids),), -8.0)
    second_line = prompt.index("    total = w * h")  # byte tokenizer: token i = character i
    logits[second_line:second_line + len("    total = w * h\n")] = 8.0
    probs = line_edit_probs(TOK, ids, logits, SOURCE)
    assert len(probs) == len(SOURCE.splitlines())
    assert [round(p) for p in probs] == [0, 1, 0, 0, 0, 0, 0, 0]
    assert tagged_spans(probs) == [(1, 2)]
    with pytest.raises(ValueError, match="does not occur"):
        line_edit_probs(TOK, ids, logits, "not in the prompt\n")


def test_unique_search_widens_duplicated_lines_with_context():
    lines = SOURCE.splitlines(keepends=True)
    search = unique_search(lines, (7, 8), SOURCE, 0, len(lines))  # the second "    return total"
    assert SOURCE.count(search) == 1 and search.endswith("    return total\n")
    assert search in SOURCE


@pytest.mark.parametrize("quantile", [0.25, 0.5, 0.75])
def test_decoded_edit_blocks_always_apply(model, quantile):
    prompt = "Fix the bug in this file.\n" + SOURCE
    ids = TOK.encode_prompt(prompt)
    with torch.no_grad():
        logits = model(_prompt_batch(model, [ids], len(ids), "python", "diff_edit")).edit_logits[0]
    probs = line_edit_probs(TOK, ids, logits, SOURCE)
    threshold = float(torch.tensor(probs).quantile(quantile))  # tag a share of the lines of an untrained head
    answer = decode_edit_blocks(model, TOK, prompt, SOURCE, "python", threshold=threshold, max_new_tokens=12)
    blocks = parse_edit_blocks(answer)
    assert len(blocks) == len(tagged_spans(probs, threshold)) >= 1
    assert all(b.search and b.search in SOURCE for b in blocks)  # SEARCH text copied from the file
    apply_edit_blocks(SOURCE, blocks)  # raises if any block does not apply


def test_snap_repairs_a_misremembered_search():
    answer = format_edit_blocks([EditBlock("def perimiter(w, h):\n", "def perimeter(width, h):\n")])
    assert not check_edit(SOURCE, answer).ok
    fixed = snap_edit_blocks(SOURCE, answer)
    assert parse_edit_blocks(fixed)[0].search == "def perimeter(w, h):\n"
    assert check_edit(SOURCE, fixed, "python").ok
    # a SEARCH found only inside a line (indentation dropped) matches no whole lines: snapped too
    unindented = format_edit_blocks([EditBlock("total = w * h\n", "    total = w * h * 2\n")])
    assert parse_edit_blocks(snap_edit_blocks(SOURCE, unindented))[0].search == "    total = w * h\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_decoded_tool_calls_validate(model, tool):
    call = decode_tool_call(model, TOK, "Run the test suite of this project.", tool=tool, max_arg_tokens=6, max_items=2)
    assert call["tool"] == tool
    check = check_tool_call(call)
    assert check.ok, (call, check.errors)


def test_tool_head_picks_a_tool(model):
    call = decode_tool_call(model, TOK, "Install the requests package.", max_arg_tokens=4, max_items=1)
    assert call["tool"] in TOOLS and check_tool_call(call).ok
