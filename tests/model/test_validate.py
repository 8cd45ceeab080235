"""Output validation: edit answers apply and leave a file that parses, tool calls match their schema,
whole files parse where a parser is at hand."""

import pytest

from model.edits import EditBlock, apply_edit_blocks, format_edit_blocks, parse_edit_blocks
from model.validate import check_edit, check_source, check_tool_call, validate_output

SOURCE = """def area(w, h):
    total = w * h
    return total


def perimeter(w, h):
    total = 2 * (w + h)
    return total
"""


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
