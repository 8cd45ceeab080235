"""LiveCodeBench: sources, the four scenarios and a sandboxed grader with lcb_runner's semantics.

Plain functions for assets, the `hrm lcb` command and benches:
  load_release / load_records   code_generation_lite records -> LcbProblem (+ quarantined rows)
  grade_generations / evaluate  sandboxed grading, per-test result codes, pass@k
  pass_at_k                     the unbiased estimator
"""

from evals.lcb.grader import evaluate, grade_generations
from evals.lcb.metrics import mean_pass_at_k, pass_at_k
from evals.lcb.records import LcbProblem, filter_window
from evals.lcb.source import load_records, load_release

__all__ = ["LcbProblem", "evaluate", "filter_window", "grade_generations", "load_records", "load_release",
           "mean_pass_at_k", "pass_at_k"]
