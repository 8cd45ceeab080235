"""Prompts from the document: the window around the cursor, the language, the project context, the cut."""

import pathlib

from lsp.context import (RepoMapContext, column_units, completion_prompt, cut_completion, model_language,
                         open_documents_context, window)


def test_the_language_comes_from_the_language_id_else_the_extension():
    assert model_language("python", "file:///a.txt") == "python"
    assert model_language("typescriptreact", "file:///a.rs") == "rust"
    assert model_language(None, "file:///a.go") == "go" and model_language("", "file:///a.hpp") == "cpp"
    assert model_language("markdown", "file:///README.md") == "none"


def test_the_window_starts_at_a_line_start_and_the_prompt_has_the_codegen_form():
    text = "".join(f"line {i}\n" for i in range(1000)) + "def f(x):\n    ret"
    win = window(text, len(text), prefix_chars=30)
    assert win.prefix.endswith("def f(x):\n    ret") and win.prefix.startswith("line ") and len(win.prefix) <= 30
    assert win.suffix == ""
    p = completion_prompt("python", win, "### other.py\nimport os\n")
    assert p.prompt == "### other.py\nimport os\nComplete this python function.\n" and p.answer_prefix == win.prefix
    assert completion_prompt("none", window("x", 1)).prompt == "Complete this code function.\n"


def test_project_context_is_the_heads_of_other_open_documents_of_the_same_language():
    docs = [("file:///a.py", "python", "import a\n" * 50), ("file:///b.py", "python", "import b\n"),
            ("file:///c.rs", "rust", "fn c() {}\n")]
    provide = open_documents_context(lambda: iter(docs), head_lines=2, budget=1000)
    got = provide("file:///b.py", "import b\n", (0, 0))
    assert got == "### a.py\nimport a\nimport a\n"
    assert open_documents_context(lambda: iter(docs), budget=5)("file:///b.py", "", (0, 0)) == "### a"


def test_completions_are_cut_at_a_sensible_stop():
    assert cut_completion("a + b)\n    more", ")", multiline=False) == "a + b"
    assert cut_completion("x = 1\ny = 2\n\nz = 3", "", multiline=True) == "x = 1\ny = 2"
    assert cut_completion("\n", "", multiline=False) == ""
    assert cut_completion("\n\n    return x\n    y", "", multiline=False) == "\n    return x"
    assert cut_completion("\n    return x", ")\n", multiline=False) == ""  # mid-line: this line only


def test_columns_count_in_the_negotiated_encoding():
    assert [column_units("a😀é", e) for e in ("utf-16", "utf-8", "utf-32")] == [4, 7, 3]


def test_project_context_is_the_repository_map_ranked_from_the_edited_file(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "money.py").write_text("def convert_currency(amount, rate):\n    return amount * rate\n")
    (tmp_path / "pkg" / "unrelated.py").write_text("class Spinner:\n    def spin(self):\n        pass\n")
    (tmp_path / "pkg" / "report.py").write_text("import os\n")
    unsaved = "from pkg.money import convert_currency\n\ndef total(xs):\n    return convert_currency("
    docs = [((tmp_path / "pkg" / "report.py").as_uri(), "python", unsaved)]

    def locate(uri):
        path = pathlib.Path(uri.removeprefix("file://"))
        return (tmp_path, path.relative_to(tmp_path).as_posix()) if path.is_relative_to(tmp_path) else None

    provide = RepoMapContext(locate, lambda: iter(docs), lambda *a: "FALLBACK", budget_tokens=200)
    got = provide(docs[0][0], unsaved, (3, 30))  # the open buffer, not the file on disk, is parsed
    assert "pkg/money.py" in got
    if "pkg/unrelated.py" in got:
        assert got.index("pkg/money.py") < got.index("pkg/unrelated.py")
    assert "def convert_currency(amount, rate):" in got and "pkg/report.py" not in got  # the edited file is shown already
    assert len(RepoMapContext(locate, lambda: iter(docs), lambda *a: "", budget_tokens=5)(docs[0][0], unsaved,
                                                                                          (3, 30))) <= 40
    assert provide("file:///elsewhere/x.py", "", (0, 0)) == "FALLBACK"
    assert RepoMapContext(locate, lambda: iter(docs), lambda *a: "FALLBACK", max_files=1)(docs[0][0], unsaved,
                                                                                          (3, 30)) == "FALLBACK"
