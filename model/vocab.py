"""Closed vocabularies shared by the model, the tokenizer and the data: languages, task types, tools.

The order is part of the checkpoint format (ids index embedding rows), so only append.
LANGUAGES and TASK_TYPES match datagen/schema.py.
"""

LANGUAGES = ("cpp", "go", "java", "javascript", "python", "rust", "none")
TASK_TYPES = ("codegen", "repair", "diff_edit", "tool_use", "exec_predict", "agent_step", "plan")
TOOLS = ("none", "git", "pip", "npm", "cargo", "mvn", "make", "cmake", "shell", "fs")


def _lookup(table: tuple[str, ...], kind: str, name: str) -> int:
    try:
        return table.index(name)
    except ValueError:
        raise ValueError(f"unknown {kind} {name!r}; expected one of {', '.join(table)}") from None


def language_id(name: str) -> int:
    return _lookup(LANGUAGES, "language", name)


def task_id(name: str) -> int:
    return _lookup(TASK_TYPES, "task type", name)


def tool_id(name: str) -> int:
    return _lookup(TOOLS, "tool", name)
