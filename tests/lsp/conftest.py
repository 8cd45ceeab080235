"""A real LSP client (pygls) driving `python -m lsp` over stdio, and a scripted OpenAI-compatible endpoint for
exact answers: the server reaches it through its ordinary `openai:` spec path (inference/remote.py)."""

import asyncio
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


class StubEndpoint:
    """GET /v1/models, POST /v1/completions. `answers`: [(text the prompt contains, answer)], first match wins,
    else `default`; `delay_s` delays every answer; `prompts` records what was asked."""

    def __init__(self):
        self.answers: list[tuple[str, str]] = []
        self.default = ""
        self.delay_s = 0.0
        self.prompts: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, body: dict):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send({"object": "list", "data": [{"id": "stub", "object": "model", "created": 0,
                                                         "owned_by": "tests"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["prompt"]
                stub.prompts.append(prompt)
                time.sleep(stub.delay_s)
                text = next((a for key, a in stub.answers if key in prompt), stub.default)
                self._send({"id": "c", "object": "text_completion", "created": 0, "model": "stub",
                            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.spec = f"openai:http://127.0.0.1:{self.httpd.server_address[1]}/v1#stub"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def stub():
    s = StubEndpoint()
    yield s
    s.httpd.shutdown()


class Session:
    """An initialized pygls LanguageClient talking to `python -m lsp` in a subprocess."""

    def __init__(self, client, root: Path, log_file: Path):
        self.client, self.root, self.log_file = client, root, log_file
        self.diagnostics: dict[str, asyncio.Queue] = {}

    def uri(self, rel: str) -> str:
        return (self.root / rel).resolve().as_uri()

    def open(self, rel: str, language: str = "python", text: str | None = None) -> str:
        from lsprotocol import types

        text = (self.root / rel).read_text() if text is None else text
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(self.uri(rel), language, 1, text)))
        return text

    def change(self, rel: str, text: str, version: int) -> None:
        from lsprotocol import types

        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version, self.uri(rel)),
            [types.TextDocumentContentChangeWholeDocument(text)]))

    def save(self, rel: str) -> None:
        from lsprotocol import types

        self.client.text_document_did_save(types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(self.uri(rel))))

    async def next_diagnostics(self, rel: str, timeout: float = 90.0) -> list:
        return await asyncio.wait_for(self._queue(self.uri(rel)).get(), timeout)

    def _queue(self, uri: str) -> asyncio.Queue:
        return self.diagnostics.setdefault(uri, asyncio.Queue())

    def log_rows(self) -> list[dict]:
        return [json.loads(l) for l in self.log_file.read_text().splitlines()] if self.log_file.exists() else []


async def start_session(spec: str, root: Path, log_file: Path, resolve_edits: bool = True,
                        entry: tuple[str, ...] = ("-m", "lsp")) -> Session:
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    client = LanguageClient("hrm-lsp-tests", "1")
    session = Session(client, root, log_file)

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def diagnostics(params: types.PublishDiagnosticsParams):
        session._queue(params.uri).put_nowait(params.diagnostics)

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def log_message(params):
        pass

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    await client.start_io(sys.executable, *entry, "--model", spec, "--workspace", str(root), "--log-file",
                          str(log_file), "--max-new-tokens", "16", cwd=str(REPO_ROOT), env=env)
    code_action = types.CodeActionClientCapabilities(
        code_action_literal_support=types.ClientCodeActionLiteralOptions(
            types.ClientCodeActionKindOptions([types.CodeActionKind.QuickFix, types.CodeActionKind.RefactorRewrite])),
        resolve_support=types.ClientCodeActionResolveOptions(["edit"]) if resolve_edits else None,
        data_support=True)
    capabilities = types.ClientCapabilities(text_document=types.TextDocumentClientCapabilities(
        code_action=code_action, publish_diagnostics=types.PublishDiagnosticsClientCapabilities(),
        synchronization=types.TextDocumentSyncClientCapabilities(did_save=True)))
    result = await client.initialize_async(types.InitializeParams(
        capabilities=capabilities, root_uri=root.resolve().as_uri(), process_id=os.getpid(),
        workspace_folders=[types.WorkspaceFolder(root.resolve().as_uri(), "ws")]))
    assert result.server_info.name == "hrm-lsp"
    client.initialized(types.InitializedParams())
    return session


async def stop_session(session: Session) -> None:
    await asyncio.wait_for(session.client.shutdown_async(None), 30)
    session.client.exit(None)
    await asyncio.wait_for(session.client.stop(), 30)


def apply_text_edits(text: str, edits, encoding: str = "utf-16") -> str:
    """The text after an LSP client applies `edits` (non-overlapping; positions in UTF-16 units)."""
    lines = text.split("\n")

    def offset(pos):
        if pos.line >= len(lines):
            return len(text)
        start = sum(len(l) + 1 for l in lines[:pos.line])
        units, i = 0, 0
        for i, ch in enumerate(lines[pos.line] + "\0"):
            if units >= pos.character:
                return start + i
            units += 2 if ord(ch) > 0xFFFF else 1
        return start + len(lines[pos.line])

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        a, b = offset(edit.range.start), offset(edit.range.end)
        text = text[:a] + edit.new_text + text[b:]
    return text


@pytest.fixture
def client():
    """The helpers above, for the tests (conftest modules are not imported by name under importlib mode)."""
    import types

    return types.SimpleNamespace(start=start_session, stop=stop_session, apply=apply_text_edits)
