"""`hrm lsp`: a Language Server Protocol server over any model spec (docs/lsp.md).

context.py builds prompts from the document and its project; model.py turns a model spec into completions;
actions.py builds the code actions' workspace edits; diagnostics.py runs a file's tests in the Sandbox;
features.py holds the protocol handlers; server.py the server's state, request log and wiring (pygls);
settings.py its options."""
