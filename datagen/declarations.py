"""Documented declarations of a source file: where each function or type starts and ends, and the human
documentation written for it (a Python docstring, or the doc comment just above a declaration).

Python is read with `ast`; Rust, Go, JavaScript, Java and C++ with tree-sitter grammars (exact declaration
extents and names, where a line scan would guess at templates, attributes and nested classes). Only text is
parsed: nothing here runs the code.

Doc comments taken per language: Rust `///` lines or `/** */`; Go the `//` lines just above (Go's doc
convention); JavaScript and Java `/** */`; C++ `///` or `//!` lines or `/** */`. A comment counts as a
declaration's documentation when it ends on the line above the declaration (or above its attributes).
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from functools import lru_cache

TREE_SITTER_LANGUAGES = ("rust", "go", "javascript", "java", "cpp")
_DECLS = {
    "rust": {"function_item", "function_signature_item", "struct_item", "enum_item", "trait_item", "type_item",
             "union_item", "macro_definition", "const_item", "static_item"},
    "go": {"function_declaration", "method_declaration", "type_declaration"},
    "javascript": {"function_declaration", "generator_function_declaration", "class_declaration",
                   "method_definition"},
    "java": {"method_declaration", "constructor_declaration", "class_declaration", "interface_declaration",
             "enum_declaration", "record_declaration"},
    "cpp": {"function_definition", "declaration", "class_specifier", "struct_specifier", "field_declaration"},
}
_WRAPPERS = {"export_statement", "template_declaration"}  # a doc comment sits above these, not inside
_ATTRIBUTES = {"attribute_item"}  # Rust attributes between a doc comment and its item
_BODIES = {"block", "statement_block", "compound_statement", "function_body"}  # never searched for members
_COMMENTS = {"comment", "line_comment", "block_comment"}


@dataclass
class Declaration:
    """A function or type. Lines are 0-based and inclusive; `start` includes decorators and attributes."""

    symbol: str  # qualified: Class.method
    name: str
    start: int
    end: int
    indent: str
    public: bool
    is_function: bool
    doc: str | None = None  # markers stripped, dedented
    doc_start: int | None = None  # the lines holding the documentation (Python: the docstring statement)
    doc_end: int | None = None
    body_start: int | None = None  # Python: the first line of the body (where a docstring goes)
    body_inline: bool = False  # Python: the body starts on the header's line (`def f(): return 1`)


# --- Python ----------------------------------------------------------------------------------------------
def tidy(text: str) -> str:
    """Documentation text as compared and stored: dedented (`inspect.cleandoc`), no trailing spaces, no
    leading or trailing blank lines."""
    return "\n".join(line.rstrip() for line in inspect.cleandoc(text).split("\n")).strip("\n")


def first_line(statement: ast.stmt) -> int:
    """The 1-based first line of a statement, its decorators included (ast's lineno is the `def` line)."""
    return min([statement.lineno] + [d.lineno for d in getattr(statement, "decorator_list", ())])


def python_declarations(text: str) -> list[Declaration]:
    """Module-level functions and classes and their members (functions nested in functions are left out)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.split("\n")
    out: list[Declaration] = []

    def visit(body: list, prefix: str) -> None:
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            line = lines[node.lineno - 1]
            first = node.body[0]
            decl = Declaration(symbol=prefix + node.name, name=node.name, start=start, end=node.end_lineno - 1,
                               indent=line[:len(line) - len(line.lstrip())],
                               public=not node.name.startswith("_") or node.name.startswith("__") and
                               node.name.endswith("__"), is_function=not isinstance(node, ast.ClassDef),
                               body_start=first_line(first) - 1,
                               body_inline=bool(lines[first.lineno - 1][:first.col_offset].strip()))
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                decl.doc = tidy(first.value.value)
                decl.doc_start, decl.doc_end = first.lineno - 1, first.end_lineno - 1
            out.append(decl)
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return out


# --- tree-sitter languages -------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _parser(language: str):
    import tree_sitter

    module = {"rust": "tree_sitter_rust", "go": "tree_sitter_go", "javascript": "tree_sitter_javascript",
              "java": "tree_sitter_java", "cpp": "tree_sitter_cpp"}[language]
    grammar = __import__(module)
    return tree_sitter.Parser(tree_sitter.Language(grammar.language()))


def _text(node) -> str:
    return node.text.decode("utf-8", "replace") if node is not None else ""


def _name(language: str, node) -> str:
    """The declared name, or "" where the node declares no function or type (a C++ variable, a Go const)."""
    if language == "go" and node.type == "type_declaration":
        spec = next((c for c in node.named_children if c.type in ("type_spec", "type_alias")), None)
        return _text(spec.child_by_field_name("name")) if spec else ""
    if language == "cpp" and node.type in ("function_definition", "declaration", "field_declaration"):
        declarator = node.child_by_field_name("declarator")
        while declarator is not None and declarator.type in ("pointer_declarator", "reference_declarator"):
            declarator = declarator.child_by_field_name("declarator") or (declarator.named_children or [None])[-1]
        if declarator is None or declarator.type != "function_declarator":
            return ""
        return _text(declarator.child_by_field_name("declarator")).split("::")[-1]
    if language == "cpp" and node.child_by_field_name("body") is None:
        return ""  # `class C;`: a forward declaration documents nothing
    return _text(node.child_by_field_name("name"))


def _public(language: str, node, anchor, name: str) -> bool:
    if language == "rust":
        vis = next((c for c in anchor.named_children if c.type == "visibility_modifier"), None)
        parent = node.parent.parent if node.parent is not None else None
        in_trait = parent is not None and (parent.type == "trait_item" or
                                           parent.type == "impl_item" and parent.child_by_field_name("trait"))
        return _text(vis).startswith("pub") or bool(in_trait)
    if language == "go":
        return name[:1].isupper()
    if language == "java":
        mods = next((c for c in node.named_children if c.type == "modifiers"), None)
        return any(w in _text(mods).split() for w in ("public", "protected"))
    return not name.startswith(("_", "#"))


def _is_doc_comment(language: str, text: str) -> bool:
    if language == "go":
        return text.startswith("//") and not text.startswith("//go:")
    if language == "rust":
        return text.startswith("///") and not text.startswith("////") or text.startswith("/**")
    if language == "cpp":
        return text.startswith(("///", "//!", "/**")) and not text.startswith("/***")
    return text.startswith("/**") and not text.startswith("/***")


def strip_comment(text: str) -> str:
    """A comment's words: `//`, `///`, `//!`, `/**`, `*/` and leading ` * ` removed, then dedented."""
    text = text.strip()
    if text.startswith("/*"):
        body = re.sub(r"^/\*+!?", "", text)
        body = re.sub(r"\*+/$", "", body)
        lines = [re.sub(r"^\s*\*(?!/) ?", "", line) for line in body.split("\n")]
    else:
        lines = [re.sub(r"^\s*//[/!]? ?", "", line) for line in text.split("\n")]
    return tidy("\n".join(lines))


def _doc_comment(language: str, anchor) -> tuple[str | None, int | None, int | None, int]:
    """(doc, first line, last line, the group's first line): the doc comments that end on the line above
    `anchor` (or above the attributes in front of it)."""
    start = anchor.start_point.row
    prev = anchor.prev_named_sibling
    while prev is not None and prev.type in _ATTRIBUTES and prev.end_point.row >= start - 1:
        start, prev = prev.start_point.row, prev.prev_named_sibling
    comments = []
    while prev is not None and prev.type in _COMMENTS and _is_doc_comment(language, _text(prev)):
        if prev.end_point.row - (1 if prev.end_point.column == 0 else 0) < (comments[-1].start_point.row if comments
                                                                         else start) - 1:
            break  # a blank line between: not this declaration's comment
        comments.append(prev)
        if _text(prev).startswith("/*"):
            break  # one block comment is the whole doc
        prev = prev.prev_named_sibling
    if not comments:
        return None, None, None, start
    comments.reverse()
    raw = "\n".join(_text(c).rstrip("\n") for c in comments)
    end = comments[-1].end_point.row - (1 if comments[-1].end_point.column == 0 else 0)
    return strip_comment(raw), comments[0].start_point.row, end, start


def tree_sitter_declarations(language: str, text: str) -> list[Declaration]:
    """Function and type declarations (members of classes, impls, traits and namespaces included)."""
    source = text.encode("utf-8")
    root = _parser(language).parse(source).root_node
    lines = text.split("\n")
    out: list[Declaration] = []

    def visit(node, prefix: str) -> None:
        for child in node.named_children:
            if child.type in _DECLS[language]:
                name = _name(language, child)
                anchor = child.parent if child.parent.type in _WRAPPERS else child
                if name:
                    doc, doc_start, doc_end, start = _doc_comment(language, anchor)
                    line = lines[anchor.start_point.row]
                    out.append(Declaration(
                        symbol=prefix + name, name=name, start=start, end=child.end_point.row,
                        indent=line[:len(line) - len(line.lstrip())], public=_public(language, child, anchor, name),
                        is_function="function" in child.type or "method" in child.type or
                        child.type in ("declaration", "field_declaration", "constructor_declaration"),
                        doc=doc, doc_start=doc_start, doc_end=doc_end))
                    if child.type not in ("function_item", "function_declaration", "method_declaration",
                                          "function_definition", "method_definition", "constructor_declaration"):
                        visit(child, f"{prefix}{name}.")
                continue
            if child.type in _BODIES:
                continue
            if child.type == "impl_item":
                visit(child, f"{prefix}{_text(child.child_by_field_name('type'))}.")
            else:
                visit(child, prefix)

    visit(root, "")
    return out


def declarations(language: str, text: str) -> list[Declaration]:
    """The declarations of one file of `language` (python or a tree-sitter language)."""
    if language == "python":
        return python_declarations(text)
    if language in TREE_SITTER_LANGUAGES:
        return tree_sitter_declarations(language, text)
    raise ValueError(f"no declaration reader for language {language!r}")
