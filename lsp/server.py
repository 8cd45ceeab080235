"""The language server (pygls): completions and inline completions from the model, code actions that apply the
model's edits, diagnostics from the file's tests on save; every request's latency logged.

Cancellation: a newer completion request for a document supersedes the older ones of its kind (their cancel flag is set,
so a local model drops their rows at its next decoding step, and their answers come back empty), and
`$/cancelRequest` cancels the handler's task (pygls), which sets the same flag. Model calls and test runs run
in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from lsp import context, diagnostics, features
from lsp.model import Cancelled, Generation, load_model
from lsp.settings import ServerSettings, add_arguments, settings_from_args

class RequestLog:
    """One JSON line per request: ts, method, uri, ms, outcome (ok | cancelled | superseded | no_edit | error),
    and a few request-specific fields."""

    def __init__(self, path: str = ""):
        self._lock = threading.Lock()
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8") if path else sys.stderr

    def record(self, method: str, uri: str, ms: float, outcome: str, **extra) -> dict:
        row = {"ts": round(time.time(), 3), "method": method, "uri": uri, "ms": round(ms, 2), "outcome": outcome,
               **extra}
        with self._lock:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
        return row


class HrmLanguageServer:
    """State of one server: the model (loading in the background from the start), the per-document request
    generations that supersede each other, the last test report of each document."""

    def __init__(self, settings: ServerSettings, sandbox=None, context_provider=None):
        from pygls.lsp.server import LanguageServer

        self.settings = settings
        self.ls = LanguageServer("hrm-lsp", "1", max_workers=4)
        self.log = RequestLog(settings.log_file)
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="hrm-lsp-load")
        self.model_future: Future = self._loader.submit(load_model, settings.model)
        self._sandbox = sandbox
        self._load_reported = False
        self._generation: dict[tuple[str, str], int] = {}
        self._cancels: dict[tuple[str, str], threading.Event] = {}
        self.reports: dict[str, tuple[str, diagnostics.TestReport]] = {}  # uri -> (text tested, report)
        # (uri, text, (line, character)) -> the project context of a completion prompt
        self.context_provider = context_provider or context.RepoMapContext(
            self.locate, self._open_documents, context.open_documents_context(self._open_documents),
            budget_tokens=settings.context_tokens)
        _register(self)

    # --- helpers -----------------------------------------------------------------------------------------
    def _open_documents(self):
        for uri, doc in list(self.ls.workspace.text_documents.items()):
            yield uri, context.model_language(doc.language_id, uri), doc.source

    def encoding(self) -> str:
        encoding = self.ls.workspace.position_encoding
        return str(getattr(encoding, "value", encoding) or "utf-16")

    def sandbox(self):
        if self._sandbox is None:
            from resources.sandbox import default_sandbox

            self._sandbox = default_sandbox()
        return self._sandbox

    def locate(self, uri: str) -> tuple[Path, str] | None:
        """(workspace root, the file's path relative to it) of a file: the --workspace folder, else the client's
        workspace folder holding it, else its own folder; None for a non-file URI."""
        from pygls.uris import to_fs_path

        path = to_fs_path(uri)
        if not path:
            return None
        path = Path(path).resolve()
        roots = [Path(self.settings.workspace)] if self.settings.workspace else []
        roots += [Path(p) for f in self.ls.workspace.folders.values() if (p := to_fs_path(f.uri))]
        if self.ls.workspace.root_path:
            roots.append(Path(self.ls.workspace.root_path))
        for root in roots:
            root = root.resolve()
            if path.is_relative_to(root):
                return root, path.relative_to(root).as_posix()
        return path.parent, path.name

    def file_text(self, root: Path, rel: str) -> str:
        """A workspace file's text as the editor holds it (its open document), else as on disk."""
        from pygls.uris import from_fs_path

        uri = from_fs_path(str(root / rel))
        doc = self.ls.workspace.text_documents.get(uri)
        return doc.source if doc is not None else (root / rel).read_text(encoding="utf-8")

    async def generate(self, method: str, uri: str, lane: str, g: Generation, **extra) -> str | None:
        """The model's text for `g`, or None when a newer request of the same document and lane superseded
        this one, it was cancelled, or the model failed (the log says which)."""
        key = (uri, lane)
        token = self._generation[key] = self._generation.get(key, 0) + 1
        if (older := self._cancels.get(key)) is not None:
            older.set()
        cancel = self._cancels[key] = threading.Event()
        start, outcome, text = time.perf_counter(), "ok", None
        try:
            model = await asyncio.shield(asyncio.wrap_future(self.model_future))  # never cancel the load
            if cancel.is_set():
                raise Cancelled()
            text = await asyncio.to_thread(model.generate, g, cancel)
            if cancel.is_set() or self._generation.get(key) != token:
                raise Cancelled()
            return text
        except Cancelled:
            outcome = "superseded"
            return None
        except asyncio.CancelledError:
            cancel.set()
            outcome = "cancelled"
            raise
        except Exception as exc:  # a model failure is the request's error, logged; the server goes on
            outcome, extra = "error", {**extra, "error": f"{type(exc).__name__}: {exc}"[:300]}
            if self.model_future.done() and self.model_future.exception() is not None and not self._load_reported:
                self._load_reported = True
                self._show_error(f"hrm lsp: the model {self.settings.model} did not load: {exc}")
            return None
        finally:
            if self._cancels.get(key) is cancel:
                del self._cancels[key]
            row = self.log.record(method, uri, (time.perf_counter() - start) * 1000, outcome,
                                  chars=len(text or ""), **extra)
            self._debug(row)

    def _debug(self, row: dict) -> None:
        from lsprotocol import types

        try:
            self.ls.window_log_message(types.LogMessageParams(types.MessageType.Log, json.dumps(row)))
        except Exception:  # noqa: BLE001 - logging must never fail a request
            pass

    def _show_error(self, message: str) -> None:
        from lsprotocol import types

        self.ls.window_show_message(types.ShowMessageParams(types.MessageType.Error, message))

    def note(self, method: str, uri: str, start: float, outcome: str, **extra) -> None:
        self._debug(self.log.record(method, uri, (time.perf_counter() - start) * 1000, outcome, **extra))


def _register(server: HrmLanguageServer) -> None:
    """Wire the handlers of lsp/features.py to the protocol (each gets the server as its first argument)."""
    from functools import partial

    from lsprotocol import types

    ls = server.ls
    ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))(
        partial(features.completion, server))
    ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(
        partial(features.inline_completion, server))
    ls.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.QuickFix, types.CodeActionKind.RefactorRewrite],
        resolve_provider=True))(partial(features.code_action, server))
    ls.feature(types.CODE_ACTION_RESOLVE)(partial(features.resolve_action, server))
    for command in (features.ACTION_FIX, features.ACTION_DOCSTRING):
        ls.command(command)(partial(features.run_command, server))
    ls.feature(types.TEXT_DOCUMENT_DID_SAVE)(partial(features.did_save, server))


def serve_stdio(settings: ServerSettings, context_provider=None) -> None:
    """Run the server over stdin/stdout until the client sends exit. `context_provider`: the project context of
    completion prompts, (uri, text, (line, character)) -> str; default: the workspace's repository map."""
    server = HrmLanguageServer(settings, context_provider=context_provider)
    server.ls.start_io()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lsp", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args) -> int:
    """Serve with the parsed options of `hrm lsp` / `python -m lsp`; 2 (and a line on stderr) for bad options."""
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"hrm lsp: {exc}", file=sys.stderr)
        return 2
    serve_stdio(settings)
    return 0
