"""SWE data: repos and SWE-smith tasks, jailed agent trajectories, tool-use workflows, multi-agent scenarios.

Entry point for the training-data side: `training_examples(warehouse)` -> list[TrainingExample].
"""

from datagen.swe.examples import training_examples

__all__ = ["training_examples"]
