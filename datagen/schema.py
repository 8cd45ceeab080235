"""The training-example contract: every data asset that feeds training emits rows of this shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

TASK_TYPES = ("codegen", "repair", "diff_edit", "tool_use", "exec_predict", "agent_step", "plan")
LANGUAGES = ("cpp", "go", "java", "javascript", "python", "rust", "none")
SPLITS = ("train", "validation", "test")


@dataclass
class TrainingExample:
    task_type: str
    language: str
    prompt: str
    answer: str
    source_asset: str
    split: str = "train"
    example_id: str = ""
    edit_tags: list[int] = field(default_factory=list)  # 1 per prompt source line the edit touches
    tool_calls: list[dict] = field(default_factory=list)  # [{"tool": ..., "args": {...}}]

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"{self.example_id or self.source_asset}: unknown task_type {self.task_type!r}")
        if self.language not in LANGUAGES:
            raise ValueError(f"{self.example_id or self.source_asset}: unknown language {self.language!r}")
        if self.split not in SPLITS:
            raise ValueError(f"{self.example_id or self.source_asset}: unknown split {self.split!r}")

    def to_dict(self) -> dict:
        return asdict(self)
