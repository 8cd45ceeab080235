"""`hrm lsp`: a Language Server Protocol server over any model spec (docs/lsp.md).

context.py builds prompts from the document and its project; model.py turns a model spec into completions;
actions.py builds the code actions' workspace edits; diagnostics.py runs a file's tests in the Sandbox;
server.py wires them to the protocol (pygls)."""
