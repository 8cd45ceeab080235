"""The protocol handlers: completion and inline completion, code actions (listed, resolved, or run as
commands), diagnostics on save. Each takes the HrmLanguageServer (lsp/server.py) first; server.py wires them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from lsprotocol import types

from lsp import actions, context, diagnostics
from lsp.model import Generation

ACTION_FIX, ACTION_DOCSTRING = "hrm.fixTestFailure", "hrm.addDocstring"


async def complete(server, params, method: str, multiline: bool):
    """(the model's continuation at the cursor cut for the request, or ""; the model language)."""
    doc = server.ls.workspace.get_text_document(params.text_document.uri)
    language = context.model_language(doc.language_id, doc.uri)
    at = doc.offset_at_position(params.position)
    win = context.window(doc.source, at)
    project = server.context_provider(doc.uri, doc.source, (params.position.line, params.position.character))
    prompt = context.completion_prompt(language, win, project)
    g = Generation(prompt.prompt, prompt.answer_prefix, language=language, task="codegen",
                   max_new_tokens=server.settings.max_new_tokens)
    text = await server.generate(method, doc.uri, method, g, line=params.position.line)
    text = context.cut_completion(text, win.suffix, multiline) if text else ""
    return text, language


async def completion(server, params: types.CompletionParams):
    """textDocument/completion: one item inserting the rest of the line at the cursor."""
    text, _ = await complete(server, params, types.TEXT_DOCUMENT_COMPLETION, multiline=False)
    if not text.strip():
        return types.CompletionList(is_incomplete=True, items=[])
    here = types.Range(params.position, params.position)
    item = types.CompletionItem(label=text.strip()[:80], kind=types.CompletionItemKind.Text,
                                detail="hrm", filter_text="", sort_text="0",
                                text_edit=types.TextEdit(here, text))
    return types.CompletionList(is_incomplete=True, items=[item])


async def inline_completion(server, params: types.InlineCompletionParams):
    """textDocument/inlineCompletion (LSP 3.18): the continuation up to the first blank line."""
    text, _ = await complete(server, params, types.TEXT_DOCUMENT_INLINE_COMPLETION, multiline=True)
    if not text.strip():
        return types.InlineCompletionList(items=[])
    here = types.Range(params.position, params.position)
    return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=text, range=here)])


async def code_action(server, params: types.CodeActionParams):
    """textDocument/codeAction: the actions that apply here, without their edits (computed on resolve)."""
    start = time.perf_counter()
    uri = params.text_document.uri
    doc = server.ls.workspace.get_text_document(uri)
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
    if not _client_resolves_edits(server.ls):
        # such a client runs a command instead; the server then sends the edit as workspace/applyEdit
        for a in found:
            a.command = types.Command(a.title, a.data["action"], arguments=[a.data])
            a.data = None
    server.note(types.TEXT_DOCUMENT_CODE_ACTION, uri, start, "ok", actions=len(found))
    return found


async def run_command(server, *arguments):
    """workspace/executeCommand for a client without resolve: compute the edit, send it as applyEdit."""
    action = types.CodeAction("", data=arguments[0] if arguments else {})
    resolved = await resolve_action(server, action)
    if resolved.edit is None:
        return {"applied": False}
    result = await server.ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(resolved.edit, label="hrm"))
    return {"applied": bool(result.applied)}


async def resolve_action(server, action):
    """codeAction/resolve: the action with its edit, or without one when there is no safe edit (logged)."""
    data = action.data if isinstance(action.data, dict) else {}
    uri, kind = str(data.get("uri", "")), data.get("action")
    start = time.perf_counter()
    try:
        if kind == ACTION_DOCSTRING:
            action.edit = await docstring_edit(server, uri, int(data.get("line", 0)))
        elif kind == ACTION_FIX:
            action.edit = await fix_edit(server, uri)
        else:
            raise actions.EditRefused(f"unknown code action {kind!r}")
    except actions.EditRefused as exc:
        server.note(types.CODE_ACTION_RESOLVE, uri, start, "no_edit", action=kind, reason=str(exc)[:300])
        return action
    outcome = "ok" if action.edit is not None else "superseded"
    server.note(types.CODE_ACTION_RESOLVE, uri, start, outcome, action=kind)
    return action


def workspace_edit(server, root: Path, edits: dict[str, tuple[str, str]]):
    """A WorkspaceEdit of one TextEdit per file over its changed lines."""
    from pygls.uris import from_fs_path

    changes = {}
    for rel, (old, new) in edits.items():
        (sl, sc), (el, ec), text = actions.minimal_edit(old, new, server.encoding())
        changes[from_fs_path(str(root / rel))] = [
            types.TextEdit(types.Range(types.Position(sl, sc), types.Position(el, ec)), text)]
    return types.WorkspaceEdit(changes=changes)


async def docstring_edit(server, uri: str, line: int):
    """The edit that documents the function at `line`; None when superseded."""
    doc = server.ls.workspace.get_text_document(uri)
    language = context.model_language(doc.language_id, uri)
    text = doc.source
    target = actions.docstring_target(text, language, line)
    if target is None:
        raise actions.EditRefused("no undocumented function at the cursor")
    answer = await server.generate("model/docstring", uri, "action",
                                   actions.docstring_prompt(language, text, target, server.settings.doc_prompt_chars),
                                   action=ACTION_DOCSTRING)
    if answer is None:
        return None
    if server.ls.workspace.get_text_document(uri).source != text:
        raise actions.EditRefused("the document changed while the model wrote the docstring")
    new = actions.docstring_edit(text, language, target, answer)
    root, rel = server.locate(uri) or (Path("/"), uri)
    return workspace_edit(server, root, {rel: (text, new)})


async def fix_edit(server, uri: str):
    """The edit the model proposes for the file's failing tests; None when superseded."""
    located = server.locate(uri)
    if located is None:
        raise actions.EditRefused(f"{uri} is not a file")
    root, rel = located
    doc = server.ls.workspace.get_text_document(uri)
    text = doc.source
    report = await tests_of(server, uri, root, rel, text)
    if report.status != "failed":
        raise actions.EditRefused(f"the file's tests did not fail ({report.status}: {report.detail[:200]})")
    output = "\n".join(f"{f.test}: {f.message}\n{f.output}" for f in report.failures)
    answer = await server.generate("model/fix", uri, "action",
                                   actions.repair_prompt("python", rel, text, output), action=ACTION_FIX)
    if answer is None:
        return None
    if server.ls.workspace.get_text_document(uri).source != text:
        raise actions.EditRefused("the document changed while the model wrote the fix")
    edits = actions.answer_edits(answer, root, rel, lambda r: server.file_text(root, r), set(report.test_files))
    return workspace_edit(server, root, edits)


async def tests_of(server, uri: str, root: Path, rel: str, text: str) -> diagnostics.TestReport:
    """The file's test report for `text`: the last run's when it tested this text, else a new run."""
    last = server.reports.get(uri)
    if last is not None and last[0] == text:
        return last[1]
    report = await asyncio.to_thread(diagnostics.run_file_tests, server.sandbox(), root, rel, {rel: text},
                                     server.settings.test_timeout_s)
    server.reports[uri] = (text, report)
    return report


async def did_save(server, params: types.DidSaveTextDocumentParams):
    """textDocument/didSave: run the file's tests in the Sandbox, publish their failures (a newer save wins)."""
    uri = params.text_document.uri
    key = (uri, "tests")
    token = server._generation[key] = server._generation.get(key, 0) + 1
    start = time.perf_counter()
    doc = server.ls.workspace.get_text_document(uri)
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
    found = report_diagnostics(server, report, text, rel)
    server.ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=found,
                                                                        version=doc.version))
    server.note(types.TEXT_DOCUMENT_DID_SAVE, uri, start, "ok", tests=report.status,
                failures=len(report.failures), test_wall_s=round(report.wall_s, 3))


def report_diagnostics(server, report: diagnostics.TestReport, text: str, rel: str) -> list:
    """The diagnostics of a test report on the saved file; none when its tests passed or it has none."""
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
