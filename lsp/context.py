"""Prompts from the surrounding file and the project: the window of text around the cursor, the model's
language for a document, and a pluggable project-context provider.

The completion prompt follows the model's codegen training rows ("Complete this <language> function." then the
code so far, the answer continuing it), so the code before the cursor is the *answer prefix*: a local model
continues it after its <|answer|> token; an endpoint receives prompt and prefix as one text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Callable, Iterable

from model.vocab import LANGUAGES

# the client's languageId, else the file's extension -> the model's language (model/vocab.py)
LANGUAGE_IDS = {"python": "python", "javascript": "javascript", "javascriptreact": "javascript",
                "typescript": "javascript", "go": "go", "rust": "rust", "java": "java", "cpp": "cpp", "c": "cpp",
                "cuda-cpp": "cpp"}
EXTENSIONS = {".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
              ".jsx": "javascript", ".ts": "javascript", ".go": "go", ".rs": "rust", ".java": "java", ".cc": "cpp",
              ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".h": "cpp", ".c": "cpp"}
PREFIX_CHARS = 3000  # code before the cursor that goes into a prompt (the model's context is small)
SUFFIX_CHARS = 1000
CONTEXT_CHARS = 1200  # project context, all documents together
HEAD_LINES = 20  # lines of each other open document in the default project context

# (uri, text, (line, character)) -> project context text ("" for none)
ContextProvider = Callable[[str, str, tuple[int, int]], str]


def model_language(language_id: str | None, uri: str) -> str:
    """The model's language for a document: its languageId, else its extension, else "none"."""
    language = LANGUAGE_IDS.get((language_id or "").lower()) or EXTENSIONS.get(PurePosixPath(uri).suffix.lower())
    return language if language in LANGUAGES else "none"


def column_units(text: str, encoding: str = "utf-16") -> int:
    """Length of `text` in the negotiated position encoding's units (LSP: utf-16 by default)."""
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass"))
    if encoding == "utf-32":
        return len(text)
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


@dataclass(frozen=True)
class Window:
    prefix: str  # up to the cursor
    suffix: str  # from the cursor


def window(text: str, at: int, prefix_chars: int = PREFIX_CHARS, suffix_chars: int = SUFFIX_CHARS) -> Window:
    """The text around the cursor at string offset `at`; the prefix starts at a line start, so the model sees
    whole lines."""
    start = max(0, at - prefix_chars)
    if start > 0:
        newline = text.find("\n", start, at)
        start = newline + 1 if newline >= 0 else start
    return Window(text[start:at], text[at:at + suffix_chars])


def open_documents_context(documents: Callable[[], Iterable[tuple[str, str, str]]],
                           head_lines: int = HEAD_LINES, budget: int = CONTEXT_CHARS) -> ContextProvider:
    """The default project context: the first lines of the other open documents of the same language.
    `documents()` yields (uri, language, text) of the open documents."""

    def provide(uri: str, text: str, position: tuple[int, int]) -> str:
        own = dict((u, lang) for u, lang, _ in documents()).get(uri, model_language(None, uri))
        parts, left = [], budget
        for other, language, body in sorted(documents()):
            if other == uri or language != own or left <= 0:
                continue
            head = "\n".join(body.split("\n")[:head_lines])
            part = f"### {PurePosixPath(other).name}\n{head}\n"[:left]
            parts.append(part)
            left -= len(part)
        return "".join(parts)

    return provide


class RepoMapContext:
    """The project context from the workspace's repository map (datagen/repomap.py: tree-sitter definitions,
    references and imports of the six languages): the files most relevant to the edited one (personalised
    PageRank from it and the names around the cursor), as paths and signature lines within `budget_tokens`.
    Open documents are parsed as the editor holds them; a file unchanged on disk keeps its parse between
    requests. A workspace of more than `max_files` source files, or a file outside any workspace, falls back to
    `fallback` (the heads of the other open documents)."""

    def __init__(self, locate: Callable[[str], tuple | None], documents: Callable[[], Iterable[tuple[str, str, str]]],
                 fallback: ContextProvider, budget_tokens: int = 256, max_files: int = 3000):
        self.locate, self.documents, self.fallback = locate, documents, fallback
        self.budget_tokens, self.max_files = budget_tokens, max_files
        self._maps: dict = {}  # root -> its last RepoMap

    def __call__(self, uri: str, text: str, position: tuple[int, int]) -> str:
        from datagen import repomap

        where = self.locate(uri)
        if where is None or self.budget_tokens <= 0:
            return self.fallback(uri, text, position)
        root, rel = where
        files = repomap.source_files(root)
        if len(files) > self.max_files:
            return self.fallback(uri, text, position)
        overrides = {rel: text}
        for other, _, body in self.documents():
            found = self.locate(other)
            if found and found[0] == root:
                overrides[found[1]] = body
        built = repomap.build_repo_map(root, files, overrides=overrides, previous=self._maps.get(root))
        self._maps[root] = built
        lines = text.split("\n")
        query = "\n".join(lines[max(0, position[0] - 20):position[0] + 1])
        return built.render([rel], query, self.budget_tokens, include_focus=False)


@dataclass(frozen=True)
class CompletionPrompt:
    prompt: str  # the instruction, with the project context before it
    answer_prefix: str  # the code before the cursor, which the answer continues
    suffix: str


def completion_prompt(language: str, win: Window, project_context: str = "") -> CompletionPrompt:
    context = f"{project_context.rstrip()}\n" if project_context.strip() else ""
    shown = language if language != "none" else "code"
    return CompletionPrompt(f"{context}Complete this {shown} function.\n", win.prefix, win.suffix)


def cut_completion(text: str, suffix: str, multiline: bool) -> str:
    """The model's continuation cut at a sensible stop: the end of the line (the next line when the cursor ends
    its line and the model starts a new one), or with `multiline` the first blank line; without trailing text
    that the line already has after the cursor (a closing bracket)."""
    if multiline:
        blank = text.find("\n\n")
        text = (text[:blank] if blank >= 0 else text).rstrip()
    else:
        first, _, rest = text.partition("\n")
        if not first.strip() and rest.strip() and not suffix.split("\n", 1)[0].strip():
            # at a line's end the model often starts a new line: offer that line, after the line break
            text = "\n" + rest.lstrip("\n").split("\n", 1)[0]
        else:
            text = first
    rest = suffix.split("\n", 1)[0].strip()
    if rest and "\n" not in text and text.rstrip().endswith(rest):
        text = text.rstrip()[:-len(rest)]
    return text
