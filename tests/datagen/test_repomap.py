"""The repository map on a small two-file project per language: definitions, references and imports found
by the real tree-sitter grammars, ranking, the token budget, and the files it must skip."""

import os

import pytest

from datagen.repomap import approx_tokens, build_repo_map, repo_context

# language -> {path: source}; in each, `main` uses `compute_total` (and a type) defined in the other file.
PROJECTS = {
    "python": {
        "pkg/util.py": "import os\n\nclass Ledger:\n    def add(self, x):\n        return x\n\n"
                       "def compute_total(items):\n    return sum(items)\n",
        "pkg/main.py": "from pkg.util import compute_total, Ledger\n\ndef main():\n"
                       "    return compute_total([1, 2]) + Ledger().add(1)\n",
    },
    "javascript": {
        "src/util.js": "export class Ledger {\n  add(x) { return x; }\n}\n"
                       "export function compute_total(items) { return items.length; }\n",
        "src/main.js": "import { compute_total, Ledger } from './util.js';\n"
                       "const twice = (x) => 2 * x;\nconst limit = 3;\n"
                       "function main() { return twice(compute_total([1])) + new Ledger().add(1); }\n",
    },
    "go": {
        "util/util.go": "package util\n\ntype Ledger struct{}\n\nfunc (l *Ledger) Add(x int) int { return x }\n\n"
                        "func compute_total(items []int) int { return len(items) }\n",
        "main.go": "package main\n\nimport \"example.com/m/util\"\n\n"
                   "func main() { l := Ledger{}; _ = compute_total(nil) + l.Add(1); _ = util.X }\n",
    },
    "rust": {
        "src/util.rs": "pub struct Ledger;\n\nimpl Ledger {\n    pub fn add(&self, x: i32) -> i32 { x }\n}\n\n"
                       "pub fn compute_total(items: &[i32]) -> i32 { items.len() as i32 }\n",
        "src/main.rs": "use crate::util::compute_total;\nmod util;\n\n"
                       "fn main() { let l = Ledger; let _ = compute_total(&[1]) + l.add(1); }\n",
    },
    "java": {
        "src/Ledger.java": "package p;\n\npublic class Ledger {\n    public int add(int x) { return x; }\n"
                           "    public static int compute_total(int[] items) { return items.length; }\n}\n",
        "src/Main.java": "package p;\n\nimport java.util.List;\n\npublic class Main {\n"
                         "    int main() { return Ledger.compute_total(new int[0]) + new Ledger().add(1); }\n}\n",
    },
    "cpp": {
        "src/util.hpp": "#pragma once\nstruct Ledger {\n    int add(int x) { return x; }\n};\n"
                        "int compute_total(int n);\n",
        "src/util.cpp": "#include \"util.hpp\"\nint compute_total(int n) { return n; }\n",
        "src/main.cpp": "#include \"util.hpp\"\n#include <vector>\n"
                        "int main() { Ledger l; return compute_total(1) + l.add(1); }\n",
    },
}
IMPORTS = {"python": "pkg.util", "javascript": "./util.js", "go": "example.com/m/util", "rust": "crate::util::compute_total",
           "java": "java.util.List", "cpp": "util.hpp"}
MAIN = {"python": "pkg/main.py", "javascript": "src/main.js", "go": "main.go", "rust": "src/main.rs",
        "java": "src/Main.java", "cpp": "src/main.cpp"}


def write(root, files):
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


@pytest.mark.parametrize("language", sorted(PROJECTS))
def test_definitions_references_imports(tmp_path, language):
    write(tmp_path, PROJECTS[language])
    repo_map = build_repo_map(tmp_path)
    assert set(repo_map.files) == set(PROJECTS[language])
    defs = {d.name: d for f in repo_map.files.values() for d in f.definitions}
    assert {"compute_total", "Ledger"} <= set(defs), defs
    assert defs["compute_total"].kind == ("method" if language == "java" else "function")  # java: a static method
    assert defs["Ledger"].kind == "class"
    assert "compute_total" in defs["compute_total"].signature
    add = defs.get("add") or defs.get("Add")
    assert add is not None and add.kind == "method"
    main = repo_map.files[MAIN[language]]
    assert main.references["compute_total"] >= 1
    assert IMPORTS[language] in main.imports, main.imports
    if language == "javascript":  # an arrow function bound to a name is a definition, a number is not
        assert defs["twice"].kind == "function" and "limit" not in defs
    # the caller's edge goes to the file defining compute_total
    assert any(target != MAIN[language] for target in repo_map.graph()[MAIN[language]])


def test_ranking_puts_the_definer_of_the_queried_symbol_first(tmp_path):
    files = {f"pkg/mod{i}.py": f"def helper_{i}(x):\n    return x\n" for i in range(6)}
    files["pkg/hub.py"] = "".join(f"from pkg.mod{i} import helper_{i}\n" for i in range(6)) + \
        "def run():\n    return " + " + ".join(f"helper_{i}(1)" for i in range(6)) + "\n"
    files["pkg/parse.py"] = "def parse_config(text):\n    return text\n"
    write(tmp_path, files)
    repo_map = build_repo_map(tmp_path)
    ranked = [path for path, _ in repo_map.rank(query="parse_config returns the wrong value")]
    assert ranked[0] == "pkg/parse.py"
    # with a focus file, the files it uses rank above unrelated ones
    ranked = [path for path, _ in repo_map.rank(focus_files=["pkg/hub.py"])]
    assert ranked[0] == "pkg/hub.py" and ranked.index("pkg/mod0.py") < ranked.index("pkg/parse.py")


def test_render_respects_the_budget(tmp_path):
    files = {f"pkg/mod{i}.py": "".join(f"def function_number_{i}_{j}(a, b):\n    return a\n" for j in range(30))
             for i in range(8)}
    write(tmp_path, files)
    repo_map = build_repo_map(tmp_path)
    full = repo_map.render(budget_tokens=10**6)
    assert sum(not line.startswith(" ") for line in full.splitlines()) == 8
    for budget in (5, 40, 200, 700):
        text = repo_map.render(budget_tokens=budget)
        assert approx_tokens(text) <= budget
    words = repo_map.render(budget_tokens=50, count_tokens=lambda t: len(t.split()))
    assert 0 < len(words.split()) <= 50
    assert repo_context(tmp_path, query="function_number_3_7", budget_tokens=60).startswith("pkg/mod3.py:")


def test_skips_symlinks_binary_huge_hidden_and_vendored_files(tmp_path):
    write(tmp_path, {"a.py": "def kept():\n    pass\n", ".hidden/b.py": "def hidden():\n    pass\n",
                     "node_modules/c.js": "function vendored() {}\n", "notes.txt": "def text(): pass\n"})
    (tmp_path / "bin.py").write_bytes(b"def binary():\n\0\0\0")
    (tmp_path / "huge.py").write_text("x = 1\n" * 200_000)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.py"
    outside.write_text("def secret():\n    pass\n")
    os.symlink(outside, tmp_path / "link.py")
    os.symlink(tmp_path / ".hidden", tmp_path / "linkdir")
    repo_map = build_repo_map(tmp_path)
    assert list(repo_map.files) == ["a.py"]
    assert any(s.startswith("bin.py: binary") for s in repo_map.skipped)
    # files named explicitly are screened the same way
    named = build_repo_map(tmp_path, files=["a.py", "link.py", "huge.py", "../x.py", "notes.txt"])
    assert list(named.files) == ["a.py"] and len(named.skipped) == 4


def test_syntax_errors_are_tolerated(tmp_path):
    write(tmp_path, {"broken.py": "def good(a):\n    return a\n\ndef bad(:\n    pass\n\nclass Fine:\n    pass\n"})
    symbols = build_repo_map(tmp_path).files["broken.py"]
    assert symbols.parse_errors and {"good", "Fine"} <= {d.name for d in symbols.definitions}


def test_a_previous_map_is_reused_for_unchanged_files(tmp_path):
    write(tmp_path, {"a.py": "def one():\n    pass\n", "b.py": "def two():\n    pass\n"})
    first = build_repo_map(tmp_path)
    (tmp_path / "b.py").write_text("def two():\n    pass\n\ndef three():\n    pass\n")
    second = build_repo_map(tmp_path, previous=first)
    assert second.files["a.py"] is first.files["a.py"]  # not parsed again
    assert [d.name for d in second.files["b.py"].definitions] == ["two", "three"]
    # an override is always parsed, and never remembered as the file on disk
    third = build_repo_map(tmp_path, overrides={"a.py": "def edited():\n    pass\n"}, previous=second)
    assert [d.name for d in third.files["a.py"].definitions] == ["edited"] and "a.py" not in third.stamps
