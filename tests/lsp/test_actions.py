"""Code actions' edits, attacked: answers that leave the workspace, edit tests or runner config, do not parse
or do not apply give no edit; docstrings with quotes, backslashes or code stay docstrings."""

import ast
import os

import pytest

from lsp.actions import (EditRefused, answer_edits, docstring_edit, docstring_prompt, docstring_target,
                         minimal_edit, repair_prompt)

CALC = "def add(a, b):\n    return a - b\n"
BLOCK = "<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n"


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "calc.py").write_text(CALC)
    (root / "pkg" / "util.py").write_text("X = 1\n")
    (root / "test_calc.py").write_text("from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    (root / "conftest.py").write_text("")
    (tmp_path / "outside.py").write_text("    return a - b\n")
    return root


def edits(ws, answer, current="calc.py"):
    return answer_edits(answer, ws, current, lambda rel: (ws / rel).read_text(), {"test_calc.py"})


def test_a_good_answer_edits_the_named_file_and_an_unnamed_block_the_current_one(ws):
    assert edits(ws, "calc.py\n" + BLOCK) == {"calc.py": (CALC, CALC.replace("a - b", "a + b"))}
    assert edits(ws, "Here is the fix:\n" + BLOCK)["calc.py"][1] == CALC.replace("a - b", "a + b")
    fenced = edits(ws, "calc.py\n```python\n" + BLOCK + "```\n")
    assert fenced["calc.py"][1] == CALC.replace("a - b", "a + b")
    two = edits(ws, "### pkg/util.py\n<<<<<<< SEARCH\nX = 1\n=======\nX = 2\n>>>>>>> REPLACE\n`calc.py`\n" + BLOCK)
    assert two["pkg/util.py"][1] == "X = 2\n" and "a + b" in two["calc.py"][1]


@pytest.mark.parametrize("name", ["../outside.py", "/etc/passwd", str("/tmp/x.py"), "pkg/../../outside.py"])
def test_a_path_outside_the_workspace_gives_no_edit(ws, name):
    with pytest.raises(EditRefused, match="outside the workspace"):
        edits(ws, f"{name}\n" + BLOCK)


def test_a_link_out_of_the_workspace_gives_no_edit(ws):
    os.symlink(ws.parent / "outside.py", ws / "link.py")
    with pytest.raises(EditRefused, match="link"):
        edits(ws, "link.py\n" + BLOCK)
    (ws.parent / "elsewhere").mkdir()
    (ws.parent / "elsewhere" / "calc.py").write_text(CALC)
    os.symlink(ws.parent / "elsewhere", ws / "dir")
    with pytest.raises(EditRefused, match="link"):
        edits(ws, "dir/calc.py\n" + BLOCK)


@pytest.mark.parametrize("name", ["test_calc.py", "conftest.py", "tests/test_x.py", "pytest.ini", "pytest/__init__.py"])
def test_edits_to_tests_or_runner_config_give_no_edit(ws, name):
    with pytest.raises(EditRefused, match="test file or test configuration"):
        edits(ws, f"{name}\n<<<<<<< SEARCH\nassert add(1, 2) == 3\n=======\nassert True\n>>>>>>> REPLACE\n")


def test_an_unnamed_block_on_a_test_file_gives_no_edit(ws):
    with pytest.raises(EditRefused, match="test file"):
        edits(ws, "<<<<<<< SEARCH\n    assert add(1, 2) == 3\n=======\n    assert True\n>>>>>>> REPLACE\n",
              current="test_calc.py")


@pytest.mark.parametrize("answer, why", [
    ("", "no SEARCH/REPLACE block"),
    ("just prose, no edit", "no SEARCH/REPLACE block"),
    ("<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n", "malformed"),  # never closed
    ("<<<<<<< SEARCH\n    return a - b\n>>>>>>> REPLACE\n", "malformed"),  # no divider
    ("<<<<<<< SEARCH\n    return a * b\n=======\n    return a + b\n>>>>>>> REPLACE\n", "not found"),
    ("<<<<<<< SEARCH\nreturn a - b\n=======\nreturn a + b\n>>>>>>> REPLACE\n", "not found"),  # indentation differs
    ("<<<<<<< SEARCH\n    return a - b\n=======\n    return a - b\n>>>>>>> REPLACE\n", "changes nothing"),
    ("missing.py\n" + BLOCK, "not a file"),
])
def test_malformed_or_non_applying_answers_give_no_edit(ws, answer, why):
    with pytest.raises(EditRefused, match=why):
        edits(ws, answer)


def test_one_failing_block_voids_the_whole_answer(ws):
    good = "pkg/util.py\n<<<<<<< SEARCH\nX = 1\n=======\nX = 2\n>>>>>>> REPLACE\n"
    with pytest.raises(EditRefused):
        edits(ws, good + "calc.py\n<<<<<<< SEARCH\nnope\n=======\nx\n>>>>>>> REPLACE\n")


def test_conflict_markers_left_in_the_replacement_are_refused(ws):
    with pytest.raises(EditRefused, match="malformed"):
        edits(ws, "<<<<<<< SEARCH\n    return a - b\n=======\n<<<<<<< SEARCH\n>>>>>>> REPLACE\n")


def test_a_file_without_a_final_newline_keeps_it_missing(ws):
    (ws / "calc.py").write_text(CALC.rstrip("\n"))
    old, new = edits(ws, BLOCK.replace("a + b", "a + b  # fixed"))["calc.py"]
    assert not new.endswith("\n") and new.endswith("# fixed")


@pytest.mark.parametrize("old, new", [("a\nb\nc\n", "a\nB\nc\n"), ("a\nb", "a\nb\nc"), ("a\n", "x\na\n"),
                                      ("a\nb\n", "a\n"), ("", "x\n"), ("a\nb", "a\nc"), ("a😀\nb", "a😀\nc\nd")])
def test_the_minimal_edit_reproduces_the_new_text(old, new, client):
    from lsprotocol import types

    (sl, sc), (el, ec), text = minimal_edit(old, new)
    edit = types.TextEdit(types.Range(types.Position(sl, sc), types.Position(el, ec)), text)
    assert client.apply(old, [edit]) == new


def test_the_repair_prompt_has_the_training_rows_form():
    g = repair_prompt("python", "calc.py", CALC, "E assert -1 == 3")
    assert g.prompt.startswith("A test of this python function fails. Fix the bug with a SEARCH/REPLACE edit.\n"
                               "### calc.py\ndef add") and g.prompt.endswith("### test output\nE assert -1 == 3\n")
    assert g.task == "repair"


# --- docstrings ---------------------------------------------------------------------------------------------
SOURCE = "import os\n\n\nclass K:\n    @staticmethod\n    def scale(x,\n              k):\n        # why\n        return x * k\n"


def docstring_of(text, name):
    return next(ast.get_docstring(n) for n in ast.walk(ast.parse(text)) if getattr(n, "name", "") == name)


def test_a_docstring_goes_first_in_the_function_at_the_cursor_properly_indented():
    target = docstring_target(SOURCE, "python", 8)
    assert target.name == "scale" and target.indent == " " * 8
    prompt = docstring_prompt("python", SOURCE, target).prompt  # the documentation tasks' own prompt
    assert prompt.startswith("Write the docstring for `K.scale` in this python code.") and "return x * k" in prompt
    new = docstring_edit(SOURCE, "python", target, "Scale x by k.\n\nReturns the product.\n")
    assert docstring_of(new, "scale") == "Scale x by k.\n\nReturns the product."
    assert new.replace('        """Scale x by k.\n\n        Returns the product.\n        """\n', "") == SOURCE


@pytest.mark.parametrize("answer, expected", [
    ('Ends with a quote "', 'Ends with a quote "'),
    ('Has """ inside', "Has"),  # the docstring ends at the model's closing quotes
    ("Back\\slash \\n and \\", "Back\\slash \\n and \\"),
    ('x."""\n    import os; os.system("rm -rf /")\n', "x."),
    ("  \n\tIndented\n      lines  \n", "Indented\nlines"),
])
def test_quotes_backslashes_and_code_in_the_answer_stay_inside_the_docstring(answer, expected):
    target = docstring_target(SOURCE, "python", 6)
    new = docstring_edit(SOURCE, "python", target, answer)
    assert docstring_of(new, "scale") == expected
    tree = ast.parse(new)
    assert sum(isinstance(n, ast.Import) for n in ast.walk(tree)) == 1  # only the file's own `import os`


@pytest.mark.parametrize("answer", ["", "   \n\n", '"""', "\x00\x01"])
def test_an_empty_docstring_gives_no_edit(answer):
    with pytest.raises(EditRefused, match="empty"):
        docstring_edit(SOURCE, "python", docstring_target(SOURCE, "python", 6), answer)


def test_no_docstring_target_where_there_is_one_already_or_no_function():
    assert docstring_target('def f():\n    """Doc."""\n    return 1\n', "python", 2) is None
    assert docstring_target("x = 1\n", "python", 0) is None
    assert docstring_target("def f(): return 1\n", "python", 0) is None
    assert docstring_target("def f(:\n", "python", 0) is None  # does not parse


@pytest.mark.parametrize("language, source, line, expected", [
    ("rust", "pub fn add(a: i32) -> i32 {\n    a\n}\n", 1, "/// Adds one.\npub fn add"),
    ("go", "package m\n\nfunc Add(a int) int {\n\treturn a\n}\n", 3, "// Adds one.\nfunc Add"),
    ("javascript", "export function add(a) {\n  return a;\n}\n", 1, "/**\n * Adds one.\n */\nexport function"),
    ("java", "class A {\n    public int add(int a) {\n        return a;\n    }\n}\n", 2,
     "    /**\n     * Adds one.\n     */\n    public int add"),
    ("cpp", "int add(int a) {\n  return a;\n}\n", 1, "/// Adds one.\nint add"),
])
def test_other_languages_get_a_comment_above_the_function(language, source, line, expected):
    target = docstring_target(source, language, line)
    assert target is not None
    new = docstring_edit(source, language, target, "Adds one.")
    assert expected in new and new.replace(expected.rsplit("\n", 1)[0] + "\n", "", 1) == source


def test_a_comment_cannot_close_its_block_early():
    source = "function f() {\n}\n"
    new = docstring_edit(source, "javascript", docstring_target(source, "javascript", 0), "a */ evil(); /* b")
    assert new.count("*/") == 1
