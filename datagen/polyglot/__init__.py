"""Aider Polyglot exercises as data, and how their tests run and are judged in the Sandbox: shared by the
evaluator (evals/polyglot) and the agent loop (agents/tasks.py)."""
