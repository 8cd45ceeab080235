"""Pulling the answer out of model output, as lcb_runner does (lcb_runner/utils/extraction_utils.py)."""

from __future__ import annotations

FENCE = "```"


def extract_code(model_output: str) -> str:
    """Text between the last two lines containing a triple backtick; "" when there are fewer than two."""
    lines = model_output.split("\n")
    fences = [i for i, line in enumerate(lines) if FENCE in line]
    if len(fences) < 2:
        return ""
    return "\n".join(lines[fences[-2] + 1: fences[-1]])


def code_for_grading(generation: str, extract: str = "auto") -> str:
    """`auto`: fenced output -> last block, plain code as is (lcb_runner's custom-evaluator input is
    already extracted code); `fenced`: always extract (lcb_runner's runner); `none`: as is."""
    if extract == "none":
        return generation
    if extract == "fenced":
        return extract_code(generation)
    if extract != "auto":
        raise ValueError(f"extract must be auto, fenced or none, not {extract!r}")
    fences = sum(FENCE in line for line in generation.split("\n"))
    return extract_code(generation) if fences >= 2 else generation


def extract_test_output_code(model_output: str) -> str:
    """Test-output prediction: the last line starting with `assert`, else the first fenced block."""
    lines = model_output.split("\n")
    asserts = [i for i, line in enumerate(lines) if line.startswith("assert")]
    if asserts:
        return lines[asserts[-1]]
    python_fences = [i for i, line in enumerate(lines) if "```python" in line or "```Python" in line]
    fences = [i for i, line in enumerate(lines) if FENCE in line]
    if python_fences:
        start = python_fences[0]
        fences = [start] + [i for i in fences if i > start]
    if len(fences) < 2:
        return ""
    return "\n".join(lines[fences[0] + 1: fences[1]])


def extract_execution_answer(model_output: str, cot: bool = False) -> str:
    """Code execution: the value after `==`, up to [/ANSWER] or the end of the first line."""
    if cot and "[ANSWER]" in model_output:
        model_output = model_output.split("[ANSWER]")[1].strip()
    if "==" in model_output:
        model_output = model_output.split("==")[1].strip()
    if "[/ANSWER]" in model_output:
        model_output = model_output.split("[/ANSWER]")[0].strip()
    else:
        model_output = model_output.split("\n")[0].strip()
    return model_output.strip()
