"""`hrm lsp`: a Language Server Protocol server over any model spec (docs/lsp.md)."""
