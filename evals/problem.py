"""The evaluation-problem contract: Polyglot, LCB, HumanEval and synthetic tasks all map to it,
so one generation loop serves every benchmark."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

GRADING_MODES = ("polyglot_tests", "lcb_stdin", "lcb_call", "humaneval_check", "exec_output", "repair_tests")


@dataclass
class EvalProblem:
    benchmark: str  # polyglot | livecodebench | humaneval | synthetic
    problem_id: str
    language: str  # cpp, go, java, javascript, python, rust
    prompt: str  # the text the model sees
    grading_mode: str
    visible_files: dict[str, str] = field(default_factory=dict)  # path -> content shown to the model
    hidden_tests: dict[str, str] = field(default_factory=dict)  # path -> content, never shown
    reference_solution: dict[str, str] = field(default_factory=dict)
    date: str | None = None  # ISO date (LCB contest date) for contamination windows
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.grading_mode not in GRADING_MODES:
            raise ValueError(f"{self.benchmark}/{self.problem_id}: unknown grading_mode {self.grading_mode!r}")

    def to_dict(self) -> dict:
        return asdict(self)
