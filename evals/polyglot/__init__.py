"""Aider Polyglot benchmark: exercise extraction, the Sandbox test runners, the evaluator and metrics."""
