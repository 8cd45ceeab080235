"""The language server (pygls): completions and inline completions from the model, code actions that apply the
model's edits, diagnostics from the file's tests on save; every request's latency logged.

Cancellation: a newer completion request for a document supersedes the older ones (their cancel flag is set,
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

from lsp import actions, context, diagnostics
from lsp.model import Cancelled, Generation, load_model
from lsp.settings import ServerSettings, add_arguments, settings_from_args

ACTION_FIX, ACTION_DOCSTRING = "hrm.fixTestFailure", "hrm.addDocstring"


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
        # the lead can plug a repository map in here: (uri, text, (line, character)) -> context text
        self.context_provider = context_provider or context.open_documents_context(self._open_documents)
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
    from lsprotocol import types

    ls = server.ls

    async def complete(params, method: str, multiline: bool):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        language = context.model_language(doc.language_id, doc.uri)
        at = doc.offset_at_position(params.position)
        win = context.window(doc.source, at)
        project = server.context_provider(doc.uri, doc.source, (params.position.line, params.position.character))
        prompt = context.completion_prompt(language, win, project)
        g = Generation(prompt.prompt, prompt.answer_prefix, language=language, task="codegen",
                       max_new_tokens=server.settings.max_new_tokens)
        text = await server.generate(method, doc.uri, "complete", g, line=params.position.line)
        text = context.cut_completion(text, win.suffix, multiline) if text else ""
        return text, language

    @ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))
    async def completion(params: types.CompletionParams):
        text, _ = await complete(params, types.TEXT_DOCUMENT_COMPLETION, multiline=False)
        if not text.strip():
            return types.CompletionList(is_incomplete=True, items=[])
        here = types.Range(params.position, params.position)
        item = types.CompletionItem(label=text.strip()[:80], kind=types.CompletionItemKind.Text,
                                    detail="hrm", filter_text="", sort_text="0",
                                    text_edit=types.TextEdit(here, text))
        return types.CompletionList(is_incomplete=True, items=[item])

    @ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(params: types.InlineCompletionParams):
        text, _ = await complete(params, types.TEXT_DOCUMENT_INLINE_COMPLETION, multiline=True)
        if not text.strip():
            return types.InlineCompletionList(items=[])
        here = types.Range(params.position, params.position)
        return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=text, range=here)])

    @ls.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.QuickFix, types.CodeActionKind.RefactorRewrite],
        resolve_provider=True))
    async def code_action(params: types.CodeActionParams):
        start = time.perf_counter()
        uri = params.text_document.uri
        doc = ls.workspace.get_text_document(uri)
        language = context.model_language(doc.language_id, uri)
        found = []
        line = params.range.start.line
        if actions.docstring_target(doc.source, language, line) is not None:
            found.append(types.CodeAction("HRM: add docstring", kind=types.CodeActionKind.RefactorRewrite,
                                          data={"action": ACTION_DOCSTRING, "uri": uri, "line": line}))
        located = server.locate(uri)
        if language == "python" and located and diagnostics.file_tests(*located):
            ours = [d for d in params.context.diagnostics if d.source == "hrm"]
            last = server.reports.get(uri)
            if ours or last is None or last[1].status == "failed":
                found.append(types.CodeAction("HRM: fix this test failure", kind=types.CodeActionKind.QuickFix,
                                              diagnostics=ours or None,
                                              data={"action": ACTION_FIX, "uri": uri, "line": line}))
        if not _client_resolves_edits(ls):
            # such a client runs a command instead; the server then sends the edit as workspace/applyEdit
            for a in found:
                a.command = types.Command(a.title, a.data["action"], arguments=[a.data])
                a.data = None
        server.note(types.TEXT_DOCUMENT_CODE_ACTION, uri, start, "ok", actions=len(found))
        return found

    @ls.feature(types.CODE_ACTION_RESOLVE)
    async def code_action_resolve(action: types.CodeAction):
        return await resolve_action(action)

    async def run_command(*arguments):
        action = types.CodeAction("", data=arguments[0] if arguments else {})
        resolved = await resolve_action(action)
        if resolved.edit is None:
            return {"applied": False}
        result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(resolved.edit, label="hrm"))
        return {"applied": bool(result.applied)}

    ls.command(ACTION_FIX)(run_command)
    ls.command(ACTION_DOCSTRING)(run_command)

    async def resolve_action(action):
        data = action.data if isinstance(action.data, dict) else {}
        uri, kind = str(data.get("uri", "")), data.get("action")
        start = time.perf_counter()
        try:
            if kind == ACTION_DOCSTRING:
                action.edit = await docstring_edit(uri, int(data.get("line", 0)))
            elif kind == ACTION_FIX:
                action.edit = await fix_edit(uri)
            else:
                raise actions.EditRefused(f"unknown code action {kind!r}")
        except actions.EditRefused as exc:
            server.note(types.CODE_ACTION_RESOLVE, uri, start, "no_edit", action=kind, reason=str(exc)[:300])
            return action
        outcome = "ok" if action.edit is not None else "superseded"
        server.note(types.CODE_ACTION_RESOLVE, uri, start, outcome, action=kind)
        return action

    def workspace_edit(root: Path, edits: dict[str, tuple[str, str]]):
        from pygls.uris import from_fs_path

        changes = {}
        for rel, (old, new) in edits.items():
            (sl, sc), (el, ec), text = actions.minimal_edit(old, new, server.encoding())
            changes[from_fs_path(str(root / rel))] = [
                types.TextEdit(types.Range(types.Position(sl, sc), types.Position(el, ec)), text)]
        return types.WorkspaceEdit(changes=changes)

    async def docstring_edit(uri: str, line: int):
        doc = ls.workspace.get_text_document(uri)
        language = context.model_language(doc.language_id, uri)
        text = doc.source
        target = actions.docstring_target(text, language, line)
        if target is None:
            raise actions.EditRefused("no undocumented function at the cursor")
        answer = await server.generate("model/docstring", uri, "action",
                                       actions.docstring_prompt(language, target), action=ACTION_DOCSTRING)
        if answer is None:
            return None
        if ls.workspace.get_text_document(uri).source != text:
            raise actions.EditRefused("the document changed while the model wrote the docstring")
        new = actions.docstring_edit(text, language, target, answer)
        root, rel = server.locate(uri) or (Path("/"), uri)
        return workspace_edit(root, {rel: (text, new)})

    async def fix_edit(uri: str):
        located = server.locate(uri)
        if located is None:
            raise actions.EditRefused(f"{uri} is not a file")
        root, rel = located
        doc = ls.workspace.get_text_document(uri)
        text = doc.source
        report = await tests_of(uri, root, rel, text)
        if report.status != "failed":
            raise actions.EditRefused(f"the file's tests did not fail ({report.status}: {report.detail[:200]})")
        output = "\n".join(f"{f.test}: {f.message}\n{f.output}" for f in report.failures)
        answer = await server.generate("model/fix", uri, "action",
                                       actions.repair_prompt("python", rel, text, output), action=ACTION_FIX)
        if answer is None:
            return None
        if ls.workspace.get_text_document(uri).source != text:
            raise actions.EditRefused("the document changed while the model wrote the fix")
        edits = actions.answer_edits(answer, root, rel, lambda r: server.file_text(root, r), set(report.test_files))
        return workspace_edit(root, edits)

    async def tests_of(uri: str, root: Path, rel: str, text: str) -> diagnostics.TestReport:
        """The file's test report for `text`: the last run's when it tested this text, else a new run."""
        last = server.reports.get(uri)
        if last is not None and last[0] == text:
            return last[1]
        report = await asyncio.to_thread(diagnostics.run_file_tests, server.sandbox(), root, rel, {rel: text},
                                         server.settings.test_timeout_s)
        server.reports[uri] = (text, report)
        return report

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(params: types.DidSaveTextDocumentParams):
        uri = params.text_document.uri
        key = (uri, "tests")
        token = server._generation[key] = server._generation.get(key, 0) + 1
        start = time.perf_counter()
        doc = ls.workspace.get_text_document(uri)
        text = doc.source
        located = server.locate(uri)
        if located is None:
            return
        root, rel = located
        try:
            report = await asyncio.to_thread(diagnostics.run_file_tests, server.sandbox(), root, rel, {rel: text},
                                             server.settings.test_timeout_s)
        except Exception as exc:  # the Sandbox missing, say: a warning on the file, not a dead server
            report = diagnostics.TestReport("error", f"{type(exc).__name__}: {exc}")
        if server._generation.get(key) != token:
            server.note(types.TEXT_DOCUMENT_DID_SAVE, uri, start, "superseded")
            return
        server.reports[uri] = (text, report)
        found = test_diagnostics(report, text, rel)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=found,
                                                                            version=doc.version))
        server.note(types.TEXT_DOCUMENT_DID_SAVE, uri, start, "ok", tests=report.status,
                    failures=len(report.failures), test_wall_s=round(report.wall_s, 3))

    def test_diagnostics(report: diagnostics.TestReport, text: str, rel: str) -> list:
        lines = text.split("\n")

        def line_range(line: int):  # 1-based, 0: the first line
            index = min(max(line - 1, 0), max(len(lines) - 1, 0))
            width = context.column_units(lines[index] if lines else "", server.encoding())
            return types.Range(types.Position(index, 0), types.Position(index, width))

        if report.status == "failed":
            return [types.Diagnostic(line_range(f.line if f.path == rel else 0),
                                     f"{f.test} failed: {f.message}", severity=types.DiagnosticSeverity.Error,
                                     source="hrm", code=f.test) for f in report.failures]
        if report.status == "error":
            return [types.Diagnostic(line_range(0), f"the tests could not be judged: {report.detail[:500]}",
                                     severity=types.DiagnosticSeverity.Warning, source="hrm")]
        if report.status == "unsupported":
            return [types.Diagnostic(line_range(0), report.detail, severity=types.DiagnosticSeverity.Information,
                                     source="hrm")]
        return []


def _client_resolves_edits(ls) -> bool:
    """Whether the client resolves a code action's edit lazily (codeAction/resolve with `edit`)."""
    try:
        support = ls.client_capabilities.text_document.code_action.resolve_support
        return support is not None and "edit" in support.properties
    except AttributeError:
        return False


def serve_stdio(settings: ServerSettings) -> None:
    """Run the server over stdin/stdout until the client sends exit."""
    server = HrmLanguageServer(settings)
    server.ls.start_io()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lsp", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"hrm lsp: {exc}", file=sys.stderr)
        return 2
    serve_stdio(settings)
    return 0
