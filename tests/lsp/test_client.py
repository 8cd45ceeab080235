"""A real LSP client (pygls's LanguageClient) drives `python -m lsp` over stdio: initialize, open, complete,
code actions resolved and applied, diagnostics from the tests on save, shutdown. The model is a scripted
OpenAI-compatible endpoint (`openai:` spec) where exact edits are asserted, and a real tiny checkpoint
(`local:` spec) for the protocol with real decoding."""

import ast
import asyncio

import pytest
from lsprotocol import types


CALC = "def add(a, b):\n    return a - b\n\n\ndef scale(x, k):\n    return x * k\n"
TESTS = "from calc import add, scale\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\ndef test_scale():\n    assert scale(2, 3) == 6\n"
FIX = "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n"


def workspace(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "calc.py").write_text(CALC)
    (root / "test_calc.py").write_text(TESTS)
    return root


async def actions_at(session, rel, line):
    return await session.client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(session.uri(rel)), types.Range(types.Position(line, 0), types.Position(line, 0)),
        types.CodeActionContext(diagnostics=[])))


@pytest.mark.slow
def test_complete_fix_a_failing_test_and_document_a_function_end_to_end(client, tmp_path, stub, sandbox):
    root = workspace(tmp_path)
    stub.answers = [("Fix the bug", FIX), ("Write the docstring for `scale`", 'Scale x by "k", a \\ b.""" + 1\n    import os\n')]
    stub.default = "return a + b\n    # done\n"

    async def scenario():
        s = await client.start(stub.spec, root, tmp_path / "requests.jsonl")
        try:
            text = s.open("calc.py")
            # completion: the model's continuation, cut at the end of the line, inserted at the cursor
            got = await s.client.text_document_completion_async(types.CompletionParams(
                types.TextDocumentIdentifier(s.uri("calc.py")), types.Position(1, 4)))
            assert [i.text_edit.new_text for i in got.items] == ["return a + b"]
            assert "Complete this python function.\ndef add(a, b):\n    " in stub.prompts[-1]
            inline = await s.client.text_document_inline_completion_async(types.InlineCompletionParams(
                types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
                types.TextDocumentIdentifier(s.uri("calc.py")), types.Position(1, 4)))
            assert inline.items[0].insert_text == "return a + b\n    # done"

            # save: the failing test becomes a diagnostic on the saved file
            s.save("calc.py")
            found = await s.next_diagnostics("calc.py")
            assert [d.code for d in found] == ["test_calc.py::test_add"] and found[0].severity == 1
            assert "assert -1 == 3" in found[0].message

            # add docstring: the model's text up to its closing quotes, escaped; the code after them is dropped
            offered = await actions_at(s, "calc.py", 5)
            doc_action = next(a for a in offered if a.title == "HRM: add docstring")
            resolved = await s.client.code_action_resolve_async(doc_action)
            text = client.apply(text, resolved.edit.changes[s.uri("calc.py")])
            namespace = {}
            exec(compile(text, "calc.py", "exec"), namespace)  # our own test text, not workspace code
            assert namespace["scale"].__doc__ == 'Scale x by "k", a \\ b.' and "import os" not in text
            s.change("calc.py", text, 2)

            # fix this test failure: the SEARCH/REPLACE answer as a workspace edit
            offered = await actions_at(s, "calc.py", 1)
            fix = next(a for a in offered if a.title == "HRM: fix this test failure")
            assert fix.edit is None  # resolved lazily: the tests and the model run only when it is chosen
            resolved = await s.client.code_action_resolve_async(fix)
            assert list(resolved.edit.changes) == [s.uri("calc.py")]
            text = client.apply(text, resolved.edit.changes[s.uri("calc.py")])
            assert "return a + b" in text and "return a - b" not in text
            (root / "calc.py").write_text(text)
            s.change("calc.py", text, 3)
            s.save("calc.py")
            assert list(await s.next_diagnostics("calc.py")) == []  # fixed: the diagnostics clear
        finally:
            await client.stop(s)
        return s

    s = asyncio.run(scenario())
    rows = s.log_rows()
    methods = {r["method"] for r in rows}
    assert {"textDocument/completion", "textDocument/inlineCompletion", "codeAction/resolve",
            "textDocument/didSave", "textDocument/codeAction"} <= methods
    assert all(isinstance(r["ms"], float) and r["outcome"] in ("ok", "no_edit") for r in rows)


@pytest.mark.slow
def test_a_newer_completion_supersedes_the_older_and_cancel_request_is_honoured(client, tmp_path, stub):
    root = workspace(tmp_path)
    stub.default = "return a + b\n"
    stub.delay_s = 0.8

    async def scenario():
        s = await client.start(stub.spec, root, tmp_path / "requests.jsonl")
        try:
            s.open("calc.py")
            here = types.TextDocumentIdentifier(s.uri("calc.py"))
            first = s.client.text_document_completion_async(types.CompletionParams(here, types.Position(1, 4)))
            first = asyncio.ensure_future(first)
            await asyncio.sleep(0.3)  # the first is with the model now
            second = await s.client.text_document_completion_async(types.CompletionParams(here, types.Position(1, 4)))
            assert list((await first).items) == [] and [i.text_edit.new_text for i in second.items] == ["return a + b"]

            future = s.client.protocol.send_request(types.TEXT_DOCUMENT_COMPLETION,
                                                    types.CompletionParams(here, types.Position(1, 4)), msg_id="doomed")
            await asyncio.sleep(0.3)
            s.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="doomed"))
            with pytest.raises(Exception, match="cancel"):
                await asyncio.wait_for(asyncio.wrap_future(future), 30)
            await asyncio.sleep(1.0)  # the cancelled request's log line is written when its model call returns
        finally:
            await client.stop(s)
        return s

    rows = [r for r in asyncio.run(scenario()).log_rows() if r["method"] == "textDocument/completion"]
    assert [r["outcome"] for r in rows] == ["superseded", "ok", "cancelled"]


@pytest.mark.slow
def test_a_tiny_checkpoint_completes_over_the_protocol(client, tmp_path, tiny_checkpoint, one_torch_thread):
    root = workspace(tmp_path)

    async def scenario():
        s = await client.start(f"local:{tiny_checkpoint}", root, tmp_path / "requests.jsonl")
        try:
            s.open("calc.py")
            here = types.TextDocumentIdentifier(s.uri("calc.py"))
            got = await s.client.text_document_completion_async(types.CompletionParams(here, types.Position(1, 4)))
            assert isinstance(got, types.CompletionList)
            assert all("\n" not in i.text_edit.new_text and i.text_edit.range.start == types.Position(1, 4)
                       for i in got.items)
            inline = await s.client.text_document_inline_completion_async(types.InlineCompletionParams(
                types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked), here, types.Position(5, 0)))
            assert isinstance(inline, types.InlineCompletionList)
            offered = await actions_at(s, "calc.py", 1)
            assert {a.title for a in offered} == {"HRM: add docstring", "HRM: fix this test failure"}
        finally:
            await client.stop(s)
        return s

    rows = asyncio.run(scenario()).log_rows()
    model_rows = [r for r in rows if r["method"].startswith("textDocument/") and "completion" in r["method"].lower()]
    assert [r["outcome"] for r in model_rows] == ["ok", "ok"] and all(r["ms"] > 0 for r in model_rows)


def test_a_bad_model_spec_is_refused_before_serving(capsys):
    from hrm_cli.main import main

    assert main(["lsp", "--model", "gpt-4"]) == 2
    assert "expected local:CKPT_DIR" in capsys.readouterr().err


@pytest.mark.slow
def test_a_client_without_resolve_runs_the_command_and_receives_the_edit(client, tmp_path, stub):
    root = workspace(tmp_path)
    stub.answers = [("Write the docstring for `scale`", "Scale x by k.")]

    async def scenario():
        s = await client.start(stub.spec, root, tmp_path / "requests.jsonl", resolve_edits=False)
        applied = []

        @s.client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams):
            applied.append(params.edit)
            return types.ApplyWorkspaceEditResult(applied=True)

        try:
            text = s.open("calc.py")
            offered = await actions_at(s, "calc.py", 4)
            action = next(a for a in offered if a.title == "HRM: add docstring")
            # lsprotocol's client-side hook reads any code action that has a `command` as a bare Command, with
            # the action's command object as its string: read that back (editors read the JSON itself)
            command = (ast.literal_eval(action.command) if isinstance(action, types.Command) else
                       {"command": action.command.command, "arguments": action.command.arguments})
            assert command["command"] == "hrm.addDocstring" and getattr(action, "edit", None) is None
            result = await s.client.workspace_execute_command_async(types.ExecuteCommandParams(
                command["command"], command["arguments"]))
            assert result["applied"] is True
            assert '    """Scale x by k."""\n    return x * k' in client.apply(text, applied[0].changes[s.uri("calc.py")])
        finally:
            await client.stop(s)

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["../outside.py\n" + FIX.split("\n", 1)[1],
                                    "test_calc.py\n<<<<<<< SEARCH\n    assert add(1, 2) == 3\n=======\n    assert True\n"
                                    ">>>>>>> REPLACE\n",
                                    "calc.py\n<<<<<<< SEARCH\n    return a * b\n=======\n    return a + b\n>>>>>>> REPLACE\n",
                                    "<<<<<<< SEARCH\n    return a - b\n=======\n"])
def test_a_hostile_or_broken_fix_gives_no_edit_over_the_protocol(client, tmp_path, stub, sandbox, answer):
    root = workspace(tmp_path)
    (tmp_path / "outside.py").write_text("    return a - b\n")
    stub.answers = [("Fix the bug", answer)]

    async def scenario():
        s = await client.start(stub.spec, root, tmp_path / "requests.jsonl")
        try:
            s.open("calc.py")
            fix = next(a for a in await actions_at(s, "calc.py", 1) if a.title == "HRM: fix this test failure")
            assert (await s.client.code_action_resolve_async(fix)).edit is None
        finally:
            await client.stop(s)
        return s

    rows = asyncio.run(scenario()).log_rows()
    [refused] = [r for r in rows if r["method"] == "codeAction/resolve"]
    assert refused["outcome"] == "no_edit" and refused["reason"]
    assert (root / "calc.py").read_text() == CALC and (root / "test_calc.py").read_text() == TESTS
    assert (tmp_path / "outside.py").read_text() == "    return a - b\n"


@pytest.mark.slow
def test_a_model_that_does_not_load_is_an_error_message_not_a_dead_server(client, tmp_path):
    root = workspace(tmp_path)
    spec = f"openai:http://127.0.0.1:{_closed_port()}/v1#nothing"

    async def scenario():
        s = await client.start(spec, root, tmp_path / "requests.jsonl")
        shown = []
        s.client.feature(types.WINDOW_SHOW_MESSAGE)(lambda params: shown.append(params.message))
        try:
            s.open("calc.py")
            here = types.TextDocumentIdentifier(s.uri("calc.py"))
            for _ in range(2):
                got = await s.client.text_document_completion_async(types.CompletionParams(here, types.Position(1, 4)))
                assert list(got.items) == []
            await asyncio.sleep(0.2)
        finally:
            await client.stop(s)
        return s, shown

    s, shown = asyncio.run(scenario())
    assert len(shown) == 1 and "did not load" in shown[0]
    assert [r["outcome"] for r in s.log_rows()] == ["error", "error"]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_hrm_lsp_serves_over_stdio(client, tmp_path, stub):
    root = workspace(tmp_path)
    stub.default = "return a + b\n"

    async def scenario():
        s = await client.start(stub.spec, root, tmp_path / "requests.jsonl", entry=("-m", "hrm_cli.main", "lsp"))
        try:
            s.open("calc.py")
            got = await s.client.text_document_completion_async(types.CompletionParams(
                types.TextDocumentIdentifier(s.uri("calc.py")), types.Position(1, 4)))
            assert [i.text_edit.new_text for i in got.items] == ["return a + b"]
        finally:
            await client.stop(s)

    asyncio.run(scenario())
