"""Heads' decoding and output validation: edit blocks copied from the file always apply, decoded tool calls
validate against their schema, whole files parse where a parser is at hand."""

import pytest
import torch

from model import ModelConfig, build_model
from model.heads import (_prompt_batch, decode_edit_blocks, decode_tool_call, line_edit_probs, snap_edit_blocks,
                         tagged_spans, unique_search)
from model.edits import EditBlock, apply_edit_blocks, format_edit_blocks, parse_edit_blocks
from model.validate import check_edit, check_source, check_tool_call, validate_output
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


def test_edit_blocks_parse_apply_and_fail_with_reasons():
    answer = format_edit_blocks([EditBlock("    total = w * h\n", "    total = w * h * 1\n")])
    assert parse_edit_blocks(answer) == [EditBlock("    total = w * h\n", "    total = w * h * 1\n")]
    assert "w * h * 1" in apply_edit_blocks(SOURCE, parse_edit_blocks(answer))
    with pytest.raises(ValueError, match="found 2 times"):
        apply_edit_blocks(SOURCE, [EditBlock("    return total\n", "    return -total\n")])
    with pytest.raises(ValueError, match="not found"):
        apply_edit_blocks(SOURCE, [EditBlock("nothing\n", "x\n")])
    with pytest.raises(ValueError, match="not terminated"):
        parse_edit_blocks("<<<<<<< SEARCH\nx\n=======\n")
    assert check_edit(SOURCE, answer, "python").ok
    broken = format_edit_blocks([EditBlock("    total = w * h\n", "    total = (w * h\n")])
    assert not check_edit(SOURCE, broken, "python").ok  # applies, but the file no longer parses


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


def test_tool_call_validation_rejects_bad_calls():
    assert check_tool_call({"tool": "git", "args": {"subcommand": "status", "args": []}}).ok
    assert check_tool_call('{"tool": "fs", "args": {"op": "write", "path": "src/a.py", "content": "x"}}').ok
    for bad, why in [({"tool": "rm", "args": {}}, "unknown tool"),
                     ({"tool": "git", "args": {"subcommand": "push", "args": []}}, "not one of"),
                     ({"tool": "fs", "args": {"op": "read", "path": "/etc/passwd"}}, "relative path"),
                     ({"tool": "fs", "args": {"op": "write", "path": "a.txt"}}, "missing argument 'content'"),
                     ({"tool": "shell", "args": {"command": "ls", "extra": 1}}, "unknown argument"),
                     ("{not json", "not JSON")]:
        check = check_tool_call(bad)
        assert not check.ok and why in " ".join(check.errors), (bad, check.errors)


@pytest.mark.parametrize("language,good,bad", [
    ("python", "def f(x):\n    return x\n", "def f(x:\n    return x\n"),
    ("cpp", 'int main() { const char* s = "}"; /* { */ return 0; }\n', "int main() { return 0;\n"),
    ("java", "class A { void f() { int[] a = {1}; } }\n", "class A { void f() { ) }\n"),
    ("javascript", "const s = `a ${1} }`; function f() { return [1, 2]; }\n", "function f() { return [1, 2; }\n"),
    ("go", "package main\nfunc main() { s := `}` ; _ = s }\n", "package main\nfunc main() {\n"),
    ("rust", "fn f<'a>(x: &'a str) -> char { let c = '}'; c }\n", "fn f() { let v = vec![1, 2; }\n"),
])
def test_whole_files_parse_where_a_parser_is_at_hand(language, good, bad):
    assert check_source(good, language).ok, check_source(good, language).errors
    check = check_source(bad, language)
    assert not check.ok and language in check.errors[0]


def test_validate_output_dispatches_by_task():
    assert validate_output("codegen", "python", "x = 1\n").ok
    assert not validate_output("codegen", "python", "x = (\n").ok
    assert validate_output("tool_use", "none", '{"tool": "none", "args": {}}').ok
    edit = format_edit_blocks([EditBlock("    total = w * h\n", "    total = h * w\n")])
    assert validate_output("diff_edit", "python", edit, source=SOURCE).ok
