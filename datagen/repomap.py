"""A repository map: the definitions, references and imports of every source file, parsed with tree-sitter,
ranked by relevance to what is being edited and cut to a token budget.

It gives a model the shape of a repository it cannot read whole: which files define what, one signature line
per definition, most relevant files first. Relevance is a personalised PageRank over the file graph (an edge
A -> B when A uses a name that B defines, weighted by how rare the name is: a name defined in many files says
little about which one is meant), personalised on the focus files and on the files defining a name the query
mentions (a problem statement, the code around a cursor). The idea is Aider's repository map; this is our own
version over the six languages of model/vocab.py.

Files are only parsed, never executed; tree-sitter is error-tolerant, so a file with syntax errors still yields
what it can. Symbolic links, binary and huge files, hidden, vendored and build directories are skipped.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from model.vocab import LANGUAGES

EXTENSIONS = {
    "python": (".py",), "javascript": (".js", ".mjs", ".cjs", ".jsx"), "go": (".go",), "rust": (".rs",),
    "java": (".java",), "cpp": (".cpp", ".cc", ".cxx", ".hpp", ".hh", ".hxx", ".h"),
}
assert set(EXTENSIONS) == set(LANGUAGES) - {"none"}, "one extension list per model language"
LANGUAGE_OF_SUFFIX = {ext: lang for lang, exts in EXTENSIONS.items() for ext in exts}
SKIP_DIRS = {"node_modules", "vendor", "third_party", "build", "dist", "target", "__pycache__", "venv", "env",
             "site-packages", "bazel-out", "out"}
MAX_FILE_BYTES = 512 * 1024  # generated or minified sources past this say nothing a signature list can show
MAX_SIGNATURE_CHARS = 160
TEST_EDGE_WEIGHT = 0.1
_TEST_FILE = re.compile(r"(^|/)(tests?|testing|__tests__)/|(^|/)test_[^/]*$|_test\.[a-z]+$|Test\.java$"
                        r"|\.(test|spec)\.js$")

# Definition node types per language -> kind. "class" covers structs, traits, interfaces, enums, impls.
_DEFS = {
    "python": {"function_definition": "function", "class_definition": "class"},
    "javascript": {"function_declaration": "function", "generator_function_declaration": "function",
                   "class_declaration": "class", "method_definition": "method", "variable_declarator": "function"},
    "go": {"function_declaration": "function", "method_declaration": "method", "type_spec": "class",
           "method_elem": "method"},
    "rust": {"function_item": "function", "function_signature_item": "function", "struct_item": "class",
             "enum_item": "class", "trait_item": "class", "union_item": "class", "mod_item": "module",
             "macro_definition": "function"},
    "java": {"class_declaration": "class", "interface_declaration": "class", "enum_declaration": "class",
             "record_declaration": "class", "method_declaration": "method", "constructor_declaration": "method"},
    "cpp": {"function_definition": "function", "class_specifier": "class", "struct_specifier": "class",
            "enum_specifier": "class", "namespace_definition": "module"},
}
_CLASS_LIKE = {"class_definition", "class_declaration", "class_specifier", "struct_specifier", "impl_item",
               "trait_item", "interface_declaration", "enum_declaration", "record_declaration", "class_body"}
_IDENTIFIERS = {"identifier", "type_identifier", "field_identifier", "property_identifier", "namespace_identifier",
                "package_identifier", "constant", "shorthand_property_identifier"}
_IMPORTS = {"python": ("import_statement", "import_from_statement"), "javascript": ("import_statement",),
            "go": ("import_spec",), "rust": ("use_declaration", "extern_crate_declaration"),
            "java": ("import_declaration",), "cpp": ("preproc_include",)}


@dataclass(frozen=True)
class Definition:
    name: str
    kind: str  # function | method | class | module
    line: int  # 1-based
    signature: str  # the definition's first line (its indentation shows nesting)


@dataclass
class FileSymbols:
    path: str  # relative to the repository root, "/"-separated
    language: str
    definitions: list[Definition] = field(default_factory=list)
    references: Counter = field(default_factory=Counter)  # name -> uses
    imports: list[str] = field(default_factory=list)
    parse_errors: bool = False


def is_test_file(path: str) -> bool:
    """A test file by its path, in any of the six languages' usual layouts."""
    return bool(_TEST_FILE.search(path))


def approx_tokens(text: str) -> int:
    """Tokens of `text` at about three characters a token (code runs 2.5-4): the default budget measure."""
    return (len(text) + 2) // 3


# --- parsing ---------------------------------------------------------------------------------------------
_PARSERS: dict = {}


def parser_for(language: str):
    """A cached tree-sitter parser for one of the six languages."""
    if language not in _PARSERS:
        import importlib

        import tree_sitter

        grammar = importlib.import_module(f"tree_sitter_{language}")
        _PARSERS[language] = tree_sitter.Parser(tree_sitter.Language(grammar.language()))
    return _PARSERS[language]


def parse_source(path: str, language: str, source: bytes) -> FileSymbols:
    """The definitions, references and imports of one file's bytes."""
    tree = parser_for(language).parse(source)
    out = FileSymbols(path, language, parse_errors=tree.root_node.has_error)
    lines = source.split(b"\n")
    def_names: set[tuple[int, int]] = set()  # byte spans of names that define, not use
    stack = [(tree.root_node, False)]
    while stack:
        node, in_class = stack.pop()
        kind = _DEFS[language].get(node.type)
        if kind is not None:
            name_node = _definition_name(node, language)
            if name_node is not None and _defines(node, language):
                if kind == "function" and in_class:
                    kind = "method"
                def_names.add((name_node.start_byte, name_node.end_byte))
                row = node.start_point[0]
                signature = lines[row].decode("utf-8", "replace").rstrip().expandtabs(4)[:MAX_SIGNATURE_CHARS]
                out.definitions.append(Definition(_text(name_node), kind, row + 1, signature))
        if node.type in _IMPORTS[language]:
            out.imports.extend(_import_names(node, language))
            continue  # imported names are not uses
        if node.type in _IDENTIFIERS and (node.start_byte, node.end_byte) not in def_names:
            out.references[_text(node)] += 1
        nested = in_class or node.type in _CLASS_LIKE
        stack.extend((child, nested) for child in reversed(node.children))
    out.definitions.sort(key=lambda d: d.line)
    return out


def _text(node) -> str:
    return node.text.decode("utf-8", "replace")


def _definition_name(node, language: str):
    name = node.child_by_field_name("name")
    if name is not None:
        return name
    if language == "cpp" and node.type == "function_definition":
        declarator = node.child_by_field_name("declarator")
        while declarator is not None and declarator.type not in ("identifier", "field_identifier",
                                                                 "destructor_name", "operator_name"):
            if declarator.type == "qualified_identifier":
                declarator = declarator.child_by_field_name("name")
            else:
                declarator = declarator.child_by_field_name("declarator")
        return declarator
    return None


def _defines(node, language: str) -> bool:
    """A C++ `struct S;` or `class C;` declares without defining; a JavaScript variable defines a function only
    when its value is one (`const f = (x) => x`)."""
    if language == "cpp" and node.type in ("class_specifier", "struct_specifier", "enum_specifier"):
        return node.child_by_field_name("body") is not None
    if node.type == "variable_declarator":
        value = node.child_by_field_name("value")
        return value is not None and value.type in ("arrow_function", "function_expression", "function",
                                                    "generator_function")
    return True


def _import_names(node, language: str) -> list[str]:
    if language == "python":
        if node.type == "import_from_statement":
            module = node.child_by_field_name("module_name")
            return [_text(module)] if module is not None else []
        return [_text(c.child_by_field_name("name") or c) for c in node.named_children
                if c.type in ("dotted_name", "aliased_import")]
    if language in ("javascript", "go", "cpp"):
        source = node.child_by_field_name("source" if language == "javascript" else "path")
        return [_text(source).strip("\"'`<>")] if source is not None else []
    if language == "rust":
        target = node.child_by_field_name("argument") or node.child_by_field_name("name")
        return [_text(target)] if target is not None else []
    text = _text(node).removeprefix("import").strip().rstrip(";").strip()  # java
    return [text.removeprefix("static").strip()]


# --- the map ---------------------------------------------------------------------------------------------
def source_files(root: str | Path) -> list[str]:
    """Relative paths of the files in the six languages under root, skipping symlinks (files and directories),
    hidden, vendored and build directories, and files over MAX_FILE_BYTES."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow directory links
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        for name in filenames:
            path = Path(dirpath, name)
            if path.suffix in LANGUAGE_OF_SUFFIX and not _skip_reason(root, path, LANGUAGE_OF_SUFFIX[path.suffix]):
                out.append(path.relative_to(root).as_posix())
    return sorted(out)


@dataclass
class RepoMap:
    root: str
    files: dict[str, FileSymbols]  # by relative path
    skipped: list[str] = field(default_factory=list)  # `path: why`
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (mtime_ns, size) of what was parsed

    def definers(self) -> dict[str, set[str]]:
        """Name -> the files defining it."""
        out: dict[str, set[str]] = {}
        for path, symbols in self.files.items():
            for d in symbols.definitions:
                out.setdefault(d.name, set()).add(path)
        return out

    def rank(self, focus_files: Iterable[str] = (), query: str = "") -> list[tuple[str, float]]:
        """Files by relevance, most relevant first: the focus files and the files defining a name the query
        mentions come first, each group by personalised PageRank over the reference graph."""
        definers = self.definers()
        focus = [f for f in focus_files if f in self.files]
        mentioned = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query))
        named = sorted({f for name in mentioned & set(definers) for f in definers[name]})
        scores = personalised_pagerank(self.graph(definers), list(self.files), focus + named)
        direct = set(focus) | set(named)
        return sorted(scores.items(), key=lambda kv: (kv[0] not in direct, -kv[1], kv[0]))

    def graph(self, definers: dict[str, set[str]] | None = None) -> dict[str, dict[str, float]]:
        """Edges A -> B weighted by the uses in A of names B defines, each name's weight shared among its
        definers (a common name such as `get` counts little) and damped by sqrt (ten uses are not ten votes);
        library code does not use its tests, so an edge from it into a test file is a name clash, weighted down."""
        definers = self.definers() if definers is None else definers
        edges: dict[str, dict[str, float]] = {}
        for path, symbols in self.files.items():
            out = edges.setdefault(path, {})
            for name, uses in symbols.references.items():
                if name.startswith("__") and name.endswith("__"):
                    continue  # protocol methods (__init__, __iter__) link every class, not files that use each other
                targets = definers.get(name, set()) - {path}
                for target in targets:
                    weight = math.sqrt(uses) / len(definers[name])
                    if is_test_file(target) and not is_test_file(path):
                        weight *= TEST_EDGE_WEIGHT
                    out[target] = out.get(target, 0.0) + weight
        return edges

    def render(self, focus_files: Iterable[str] = (), query: str = "", budget_tokens: int = 1024,
               count_tokens: Callable[[str], int] | None = None, include_focus: bool = True) -> str:
        """Ranked files, each as its path and its definitions' signature lines, within budget_tokens; without
        include_focus the focus files are left out (a prompt that shows their text already)."""
        count = count_tokens or approx_tokens
        focus_files = list(focus_files)
        parts: list[str] = []
        used = 0
        for path, _ in self.rank(focus_files, query):
            defs = self.files[path].definitions
            if not defs or (not include_focus and path in focus_files):
                continue  # a file that defines nothing shows nothing but its name
            block = file_block(path, defs)
            cost = count(block)
            if used + cost <= budget_tokens:
                parts.append(block)
                used += cost
                continue
            # the first file that does not fit whole: as many of its definitions as fit, then stop
            lo, hi = 0, len(defs)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if used + count(file_block(path, defs[:mid], cut=True)) <= budget_tokens:
                    lo = mid
                else:
                    hi = mid - 1
            if lo:
                parts.append(file_block(path, defs[:lo], cut=True))
            break
        return "".join(parts)


def file_block(path: str, definitions: list[Definition], cut: bool = False) -> str:
    lines = [f"{path}:\n"] + [f"{d.line:>5}| {d.signature}\n" for d in definitions]
    return "".join(lines) + ("  ...\n" if cut else "")


def personalised_pagerank(edges: dict[str, dict[str, float]], nodes: list[str], personal: list[str],
                          damping: float = 0.85, iterations: int = 40) -> dict[str, float]:
    """PageRank whose random jumps (and dangling mass) land on `personal` nodes (all nodes when empty)."""
    if not nodes:
        return {}
    seeds = [n for n in personal if n in set(nodes)] or nodes
    jump = {n: 0.0 for n in nodes}
    for n in seeds:
        jump[n] += 1.0 / len(seeds)
    rank = dict(jump)
    totals = {n: sum(edges.get(n, {}).values()) for n in nodes}
    for _ in range(iterations):
        dangling = sum(rank[n] for n in nodes if totals[n] == 0)
        nxt = {n: (1 - damping + damping * dangling) * jump[n] for n in nodes}
        for n in nodes:
            if totals[n]:
                share = damping * rank[n] / totals[n]
                for target, w in edges[n].items():
                    nxt[target] += share * w
        rank = nxt
    return rank


def build_repo_map(root: str | Path, files: Iterable[str] | None = None,
                   overrides: dict[str, str] | None = None, previous: RepoMap | None = None) -> RepoMap:
    """Parse every source file under root (or the given relative paths) into a RepoMap; `overrides` (path ->
    text) are parsed in place of those files' contents on disk (an edited buffer, a task's buggy files).
    With `previous` (an earlier map of the same root), a file whose modification time and size are unchanged
    keeps its parse: a long-lived consumer (the language server) re-parses only what changed."""
    root = Path(root)
    overrides = dict(overrides or {})
    paths = source_files(root) if files is None else list(files)
    out, skipped, stamps = {}, [], {}
    reuse = previous if previous is not None and Path(previous.root) == root else None
    for rel in dict.fromkeys([*paths, *overrides]):
        path = root / rel
        language = LANGUAGE_OF_SUFFIX.get(path.suffix)
        why = _skip_reason(root, path, language)
        if why and not (rel in overrides and language and _inside(root, rel)):
            skipped.append(f"{rel}: {why}")
            continue
        key = Path(rel).as_posix()
        if rel not in overrides:
            info = path.stat()
            stamps[key] = (info.st_mtime_ns, info.st_size)
            if reuse is not None and reuse.stamps.get(key) == stamps[key] and key in reuse.files:
                out[key] = reuse.files[key]
                continue
        source = overrides[rel].encode() if rel in overrides else path.read_bytes()
        if b"\0" in source[:8192]:
            skipped.append(f"{rel}: binary")
            continue
        out[key] = parse_source(key, language, source)
    return RepoMap(str(root), out, skipped, stamps)


def _inside(root: Path, rel: str) -> bool:
    pure = Path(rel)
    return not pure.is_absolute() and ".." not in pure.parts


def _skip_reason(root: Path, path: Path, language: str | None) -> str:
    if language is None:
        return "not a source file of the six languages"
    if path.is_symlink():
        return "symbolic link"
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "missing"
    if not resolved.is_relative_to(root.resolve()) or not resolved.is_file():
        return "outside the repository or not a file"
    if resolved.stat().st_size > MAX_FILE_BYTES:
        return f"over {MAX_FILE_BYTES} bytes"
    return ""


def repo_context(root: str | Path, focus_files: Iterable[str] = (), query: str = "", budget_tokens: int = 1024,
                 count_tokens: Callable[[str], int] | None = None) -> str:
    """The ranked repository map of root as prompt text within budget_tokens (for prompts, agents, the LSP)."""
    return build_repo_map(root).render(focus_files, query, budget_tokens, count_tokens)
