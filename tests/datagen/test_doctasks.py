"""Documentation tasks: extraction per language, the split by repository (and its hold-out from training),
the editor's prompt and insertion."""

import ast

import pytest

from datagen import curriculum, doctasks
from datagen.declarations import declarations
from datagen.repositories import doc_test_doc_ids, doc_test_repositories, repository_key

PY = '''import os


@cache
def area(width, height):
    """Return the area of a rectangle of the given width and height."""

    return width * height


class Shape:
    def grow(self, factor):
        """Scale every side of the shape by factor, in place."""
        self.sides = [s * factor for s in self.sides]

    def bare(self):
        return 1
'''
SOURCES = {
    "rust": ("/// Adds one to the number given, wrapping on overflow.\n#[inline]\npub fn add_one(x: u8) -> u8 {\n"
             "    x.wrapping_add(1)\n}\n\n// not a doc comment\npub fn other() {}\n", "add_one"),
    "go": ("package p\n\n// Clamp returns v limited to the range lo to hi.\nfunc Clamp(v, lo, hi int) int {\n"
           "\treturn min(max(v, lo), hi)\n}\n\n// helper is private.\nfunc helper() {}\n", "Clamp"),
    "javascript": ("/**\n * Join the parts with a single slash between them.\n */\nexport function joinPath(a, b) {\n"
                   "  return `${a}/${b}`\n}\n", "joinPath"),
    "java": ("public class Box {\n  /** Returns the width of the box in pixels. */\n  public int width() {\n"
             "    return w;\n  }\n}\n", "width"),
    "cpp": ("namespace ns {\n  /// Swap the two values given by reference.\n  template<typename T>\n"
            "  void swap_values(T& a, T& b) { T t = a; a = b; b = t; }\n}\n", "swap_values"),
}
ANSWERS = {"rust": "Adds one to the number given, wrapping on overflow.",
           "go": "Clamp returns v limited to the range lo to hi.",
           "javascript": "Join the parts with a single slash between them.",
           "java": "Returns the width of the box in pixels.", "cpp": "Swap the two values given by reference."}
SETTINGS = doctasks.DocTaskSettings(readme=False)


def _doc(language, text, origin, doc_id=None):
    return {"doc_id": doc_id or origin, "language": language, "text": text, "origin": origin}


def test_python_docstring_tasks_strip_the_docstring_from_the_prompt():
    tasks = doctasks.file_tasks(_doc("python", PY, "local:/x/lib/python3.11/geom.py"), "train", "python:geom",
                                SETTINGS)
    assert {t["symbol"]: t["answer"] for t in tasks} == {
        "area": "Return the area of a rectangle of the given width and height.",
        "Shape.grow": "Scale every side of the shape by factor, in place."}
    for t in tasks:
        assert t["kind"] == "docstring" and t["task_type"] == "codegen" and t["answer"] not in t["prompt"]
        code = t["prompt"].split("\n", 1)[1]
        ast.parse(code)  # the prompt's code still parses
    area = next(t for t in tasks if t["symbol"] == "area")
    assert area["prompt"].startswith("Write the docstring for `area` in this python code.\n@cache\ndef area(")


@pytest.mark.parametrize("language", sorted(SOURCES))
def test_api_reference_tasks_per_language(language):
    text, symbol = SOURCES[language]
    tasks = doctasks.file_tasks(_doc(language, text, f"local:/src/{language}/f"), "test", f"{language}:x", SETTINGS)
    assert [(t["symbol"].split(".")[-1], t["answer"]) for t in tasks] == [(symbol, ANSWERS[language])]
    task = tasks[0]
    assert task["kind"] == "api_reference" and task["split"] == "test" and ANSWERS[language] not in task["prompt"]
    assert symbol in task["prompt"].split("\n", 1)[1]


def test_repository_keys_of_the_default_trees():
    assert repository_key("rust", "local:/usr/share/cargo/registry/libc-0.2.139/src/unix/mod.rs") == "rust:libc-0.2.139"
    assert repository_key("python", "local:/root/.pyenv/versions/3.11.7/lib/python3.11/email/utils.py") == \
        "python:stdlib/email"
    assert repository_key("python", "local:/v/lib/python3.11/tempfile.py") == "python:stdlib/tempfile"
    assert repository_key("python", "local:/v/lib/python3.11/site-packages/attr/_make.py") == "python:attr"
    assert repository_key("go", "local:/v/lib/python3.11/site-packages/go/src/cmd/go/internal/gover/gover.go") == \
        "go:cmd/go/internal/gover"  # Go's tree inside a Python venv is Go, not Python
    assert repository_key("javascript", "local:/usr/lib/node_modules/npm/lib/utils/x.js") == "javascript:npm/lib/utils"
    assert repository_key("cpp", "local:/usr/include/c++/12/bits/stl_vector.h") == "cpp:bits"
    assert repository_key("cpp", "local:/usr/include/c++/12/vector") == "cpp:."
    assert repository_key("go", "local:/home/me/proj/pkg/a.go") == "go:/home/me/proj/pkg"
    assert repository_key("python", "hf:the-stack#12") == "python:hf:the-stack#12"


def _corpus():
    """Forty crates of three files each, every file with two documented functions."""
    rows = []
    for crate in range(40):
        for f in range(3):
            text = "".join(f"/// Returns the value number {k} of file {f} in crate {crate}.\npub fn v{k}() -> u32 {{\n"
                           f"    {k}\n}}\n\n" for k in range(2))
            rows.append(_doc("rust", text, f"local:/usr/share/cargo/registry/c{crate}-1.0.0/src/f{f}.rs",
                             doc_id=f"c{crate}-{f}"))
    return rows


def test_held_out_by_repository_and_never_trained_on():
    corpus = _corpus()
    rows, stats = doctasks.build_doc_tasks(corpus, SETTINGS)
    test = set(stats["test_repositories"])
    assert test and len(test) < 40 and doctasks.split_problems(rows) == []
    assert {r["repository"] for r in rows if r["split"] == "test"} == test
    assert not {r["repository"] for r in rows if r["split"] == "train"} & test
    # the test repositories' files are held out of training: no completion example shows their doc comments
    held = curriculum.heldout_doc_ids(corpus)
    assert doc_test_doc_ids(corpus) <= held
    trained = [e for e in curriculum.corpus_examples(corpus) if e["split"] == "train"]
    test_answers = {r["answer"] for r in rows if r["split"] == "test"}
    assert trained and not any(a in e["prompt"] or a in e["answer"] for e in trained for a in test_answers)
    # and no train task comes from a file the completion examples hold out
    train_origins = {r["origin"] for r in rows if r["split"] == "train"}
    assert not {d["origin"] for d in corpus if d["doc_id"] in held} & train_origins


def test_the_split_is_stable_and_bounded():
    corpus = _corpus()
    assert doc_test_repositories(corpus) == doc_test_repositories(list(reversed(corpus)))
    test_files = doc_test_doc_ids(corpus)
    assert 0 < len(test_files) <= len(corpus) * 0.1
    big = corpus + [_doc("rust", "pub fn x() {}\n", f"local:/usr/share/cargo/registry/huge-1.0.0/src/{i}.rs")
                    for i in range(200)]
    assert "rust:huge-1.0.0" not in doc_test_repositories(big)  # one crate cannot take a language's training data


def test_caps_per_repository_and_kind():
    rows, _ = doctasks.build_doc_tasks(_corpus(), doctasks.DocTaskSettings(per_repository=1, readme=False))
    per_repo = {}
    for r in rows:
        per_repo[r["repository"]] = per_repo.get(r["repository"], 0) + 1
    assert set(per_repo.values()) == {1}


def test_insert_docstring_round_trips_and_replaces():
    for symbol, text in (("bare", "Return one, always."), ("Shape.grow", "Grow it.\n\nEvery side, in place.")):
        out = doctasks.insert_docstring("python", PY, symbol, text)
        ast.parse(out)
        assert doctasks.find_declaration("python", out, symbol).doc == text
        assert out.count('"""') == PY.count('"""') + (2 if symbol == "bare" else 0)
    out = doctasks.insert_docstring("python", PY, "area", "New.")
    assert '    """New."""\n\n    return width' in out  # right under the header, the blank line kept after it


@pytest.mark.parametrize("language", sorted(SOURCES))
def test_insert_doc_comment_round_trips(language):
    text, symbol = SOURCES[language]
    new = "Say what it does.\n\nAnd why, in a second paragraph."
    out = doctasks.insert_docstring(language, text, symbol, new)
    assert doctasks.find_declaration(language, out, symbol).doc == new
    assert ANSWERS[language] not in out  # replaced, not added


def test_a_docstring_holding_triple_quotes_or_backslashes_is_escaped():
    for text in ('Breaks """ out; import os', 'Ends in a quote "', 'Path C:\\temp\\', 'Regex \\d+ here'):
        out = doctasks.insert_docstring("python", PY, "bare", text)
        tree = ast.parse(out)  # still one function with one docstring: nothing broke out
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
        bare = next(n for n in cls.body if getattr(n, "name", "") == "bare")
        assert ast.get_docstring(bare) == text and len(bare.body) == 2
    out = doctasks.insert_docstring("java", SOURCES["java"][0], "width", "Closes */ early")
    assert doctasks.find_declaration("java", out, "width").doc == "Closes *\\/ early"


def test_docstring_prompt_is_the_task_format():
    task = next(t for t in doctasks.file_tasks(_doc("python", PY, "local:/l/lib/python3.11/g.py"), "train", "r",
                                               SETTINGS) if t["symbol"] == "Shape.grow")
    assert doctasks.docstring_prompt("python", PY, "grow") == task["prompt"]
    text, symbol = SOURCES["rust"]
    assert doctasks.docstring_prompt("rust", text, symbol) == \
        "Write the documentation comment for `add_one` in this rust code.\n#[inline]\npub fn add_one(x: u8) -> u8 {\n" \
        "    x.wrapping_add(1)\n}\n"
    with pytest.raises(ValueError, match="no python declaration named 'nope'"):
        doctasks.docstring_prompt("python", PY, "nope")
    with pytest.raises(ValueError, match="does not parse"):  # a file mid-edit in the editor
        doctasks.insert_docstring("python", "def f(:\n    pass\n", "f", "Doc.")


def test_long_python_bodies_are_cut_at_a_statement_and_still_parse():
    body = "".join(f"    x{i} = compute({i}, 'a fairly long argument string')\n" for i in range(80))
    code = f'def long(a):\n    """Compute many things for the caller."""\n{body}    return a\n'
    prompt = doctasks.docstring_prompt("python", code, "long", max_chars=400)
    code_part = prompt.split("\n", 1)[1]
    assert len(code_part) <= 420 and code_part.rstrip().endswith("...")
    ast.parse(code_part)


def test_coverage_counts_public_documented_declarations():
    assert doctasks.doc_coverage("python", PY) == (2, 4)  # area, Shape.grow of area, Shape, grow, bare
    cov = doctasks.repository_coverage([_doc("go", SOURCES["go"][0], "local:/g/go/src/p/a.go")])
    assert cov == {"go:p": {"documented": 1, "public": 1, "coverage": 1.0}}


def test_readme_sections_take_prose_under_headings():
    text = ("# crate\n\n[![badge](x)](y)\n\nA fast crate that does one thing well.\n\n## Usage\n\n```rust\n"
            "# not a heading\nfn main() {}\n```\n\n## License\n\nMIT\n")
    sections = doctasks.readme_sections(text, doctasks.DocTaskSettings())
    assert sections == [("crate", "A fast crate that does one thing well.")]


def test_declarations_reject_unknown_languages():
    with pytest.raises(ValueError, match="no declaration reader"):
        declarations("cobol", "x")


def test_a_body_on_the_header_line_gives_no_task_and_is_refused():
    code = 'def short(x): """Return x as it was given to us."""; return x\n\n\ndef other(y):\n    return y\n'
    tasks = doctasks.file_tasks(_doc("python", code, "local:/l/lib/python3.11/s.py"), "train", "r", SETTINGS)
    assert tasks == []
    assert "def short(x):" in doctasks.docstring_prompt("python", code, "short")  # nothing cut away
    with pytest.raises(ValueError, match="header's line"):
        doctasks.insert_docstring("python", code, "short", "New.")
    assert doctasks.find_declaration("python", doctasks.insert_docstring("python", code, "other", "Give y back."),
                                     "other").doc == "Give y back."


def test_declaration_at_the_cursor_is_the_innermost():
    lines = PY.split("\n")
    grow_line = next(i for i, line in enumerate(lines) if "self.sides = " in line)
    assert doctasks.declaration_at("python", PY, grow_line).symbol == "Shape.grow"
    assert doctasks.declaration_at("python", PY, lines.index("class Shape:")).symbol == "Shape"
    assert doctasks.declaration_at("python", PY, 0) is None  # the import line
    text, _ = SOURCES["rust"]
    assert doctasks.declaration_at("rust", text, 0).symbol == "add_one"  # on its doc comment


def test_rows_follow_the_training_example_contract():
    rows, _ = doctasks.build_doc_tasks(_corpus(), SETTINGS)
    examples, rejected = curriculum.build_training_examples(curriculum.external_examples("doc_tasks", rows))
    assert rejected == [] and len(examples) == len(rows)
    assert {e["task_type"] for e in examples} == {"codegen"} and {e["split"] for e in examples} == {"train", "test"}
