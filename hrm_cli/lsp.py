"""`hrm lsp`: a Language Server Protocol server over stdio for any model spec (lsp/server.py, docs/lsp.md)."""

from __future__ import annotations

from lsp.settings import add_arguments


def register(sub) -> None:
    s = sub.add_parser("lsp", help="serve completions, code actions and test diagnostics to an editor (LSP, stdio)",
                       description="Completions and inline completions from the model, code actions that apply its "
                                   "SEARCH/REPLACE edits or add a docstring, and diagnostics from the file's tests "
                                   "run in the Sandbox on save. Speaks LSP over stdin/stdout.")
    add_arguments(s)
    s.set_defaults(handler=_lsp)


def _lsp(args) -> int:
    from lsp.server import run

    return run(args)
