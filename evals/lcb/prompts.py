"""Prompts in lcb_runner's formats (lcb_runner/prompts/*.py, the generic chat style).

Each builder returns chat messages [{"role": "system", ...}, {"role": "user", ...}].
"""

from __future__ import annotations

import ast
import json

CODEGEN_SYSTEM = ("You are an expert Python programmer. You will be given a question (problem specification) and "
                  "will generate a correct Python program that matches the specification and passes all tests.")
WITH_STARTER = ("You will use the following starter code to write the solution to the problem and enclose your "
                "code within delimiters.")
WITHOUT_STARTER = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly "
                   "test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when "
                   "the python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.")
ANSWER_LINE = "### Answer: (use the provided format with backticks)\n\n"

REPAIR_SYSTEM = ("You are a helpful programming assistant and an expert Python programmer. You are helping a user "
                 "write a program to solve a problem. The user has written some code, but it has some errors and "
                 "is not passing the tests. You will help the user by first giving a concise (at most 2-3 "
                 "sentences) textual explanation of what is wrong with the code. After you have pointed out what "
                 "is wrong with the code, you will then generate a fixed version of the program. You must put the "
                 "entired fixed program within code delimiters only for once.")
REPAIR_FORMAT = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly "
                 "test on the sample inputs). Enclose your code within delimiters as follows.")
REPAIR_REPEAT = ("First reason about the code providing a textual explanation of what is wrong with the code and "
                 "then generate a fixed of the program enclosed code delimiters.")

TEST_OUTPUT_SYSTEM = ("You are a helpful programming assistant and an expert Python programmer. You are helping a "
                      "user to write a test case to help to check the correctness of the function. The user has "
                      "written a input for the testcase. You will calculate the output of the testcase and write "
                      "the whole assertion statement in the markdown code block with the correct output.")

EXECUTION_SYSTEM = "You are an expert at Python programming, code execution, test case generation, and fuzzing."
EXECUTION_DIRECT = """You are given a Python function and an assertion containing an input to the function. Complete the assertion with a literal (no unsimplified expressions, no function calls) containing the output when executing the provided code on the given input, even if the function is incorrect or incomplete. Do NOT output any extra information. Provide the full assertion with the correct output in [ANSWER] and [/ANSWER] tags, following the examples.

[PYTHON]
def repeatNumber(number : int) -> int:
    return number
assert repeatNumber(number = 17) == ??
[/PYTHON]
[ANSWER]
assert repeatNumber(number = 17) == 17
[/ANSWER]

[PYTHON]
def addCharacterA(string : str) -> str:
    return string + "a"
assert addCharacterA(string = "x9j") == ??
[/PYTHON]
[ANSWER]
assert addCharacterA(string = "x9j") == "x9ja"
[/ANSWER]

[PYTHON]
{code}
assert {input} == ??
[/PYTHON]
[ANSWER]
"""
EXECUTION_COT = """You are given a Python function and an assertion containing an input to the function. Complete the assertion with a literal (no unsimplified expressions, no function calls) containing the output when executing the provided code on the given input, even if the function is incorrect or incomplete. Do NOT output any extra information. Execute the program step by step before arriving at an answer, and provide the full assertion with the correct output in [ANSWER] and [/ANSWER] tags, following the examples.

[PYTHON]
def performOperation(s):
    s = s + s
    return "b" + s + "a"
assert performOperation(s = "hi") == ??
[/PYTHON]
[THOUGHT]
Let's execute the code step by step:

1. The function performOperation is defined, which takes a single argument s.
2. The function is called with the argument "hi", so within the function, s is initially "hi".
3. Inside the function, s is concatenated with itself, so s becomes "hihi".
4. The function then returns a new string that starts with "b", followed by the value of s (which is now "hihi"), and ends with "a".
5. The return value of the function is therefore "bhihia".
[/THOUGHT]
[ANSWER]
assert performOperation(s = "hi") == "bhihia"
[/ANSWER]

[PYTHON]
{code}
assert {input} == ??
[/PYTHON]
[THOUGHT]
"""


def _chat(system: str, user: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def prompt_text(messages: list[dict]) -> str:
    """The text our model is prompted with for lcb_runner's chat messages: the user turn alone. The model
    has no chat template or system role (its prompts carry a task and language id instead), so every
    scenario drops the system message the same way."""
    roles = [m["role"] for m in messages]
    if roles != ["system", "user"]:
        raise ValueError(f"expected a system and a user message, got {roles}")
    return messages[1]["content"]


def codegen_user_prompt(question_content: str, starter_code: str) -> str:
    prompt = f"### Question:\n{question_content}\n\n"
    if starter_code:
        prompt += f"### Format: {WITH_STARTER}\n```python\n{starter_code}\n```\n\n"
    else:
        prompt += f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return prompt + ANSWER_LINE


def codegen_messages(problem) -> list[dict]:
    return _chat(CODEGEN_SYSTEM, codegen_user_prompt(problem.question_content, problem.starter_code))


def repair_feedback(metadata) -> str:
    """The feedback lcb_runner writes for a failed generation's metadata ("" when it passed)."""
    meta = json.loads(metadata) if isinstance(metadata, str) else dict(metadata)
    code = meta.get("error_code")
    if code is None:
        return ""
    if code == -1:  # lcb_runner's wording for -1 (it calls it a compilation error)
        return f"The above code is incorrect and got the following compilation error.\n{meta.get('error', '')}"
    if code == -2:
        return (f"The above code is incorrect and got a wrong answer.\nInput: {meta.get('inputs')}\n"
                f"Generated Output: {meta.get('output')}\nExpected: {meta.get('expected')}")
    if code == -3:
        return (f"The above code is incorrect and got time limit exceeded.\n{meta.get('error')}\n"
                f"Input: {meta.get('inputs')}\nExpected: {meta.get('expected')}")
    if code == -4:
        return (f"The above code is incorrect and got a runtime error.\nInput: {meta.get('inputs')}\n"
                f"Expected: {meta.get('expected')}\n{meta.get('error')}")
    if code == -5:  # lcb_runner has no wording for runner errors (it raises); ours reuses the runtime-error one
        return f"The above code is incorrect and got a runtime error.\n{meta.get('error', '')}"
    raise ValueError(f"no self-repair feedback for error_code {code}")


def repair_messages(question_content: str, code: str, metadata) -> list[dict]:
    user = (f"### Question:\n{question_content}\n\n### Answer:\n```python\n{code}\n```\n\n"
            + repair_feedback(metadata) + "\n" + f"### Format: {REPAIR_FORMAT}\n```python\n# YOUR CODE HERE\n```\n\n"
            + ANSWER_LINE + "\n\n" + REPAIR_REPEAT)
    return _chat(REPAIR_SYSTEM, user)


def function_name_from_starter(starter_code: str) -> str | None:
    names = [n.name for n in ast.walk(ast.parse(starter_code)) if isinstance(n, ast.FunctionDef)]
    if len(names) > 1:
        raise ValueError(f"starter code defines {len(names)} functions; expected one")
    return names[0] if names else None


def test_output_messages(question_content: str, starter_code: str, testcase_input: str) -> list[dict]:
    func = function_name_from_starter(starter_code)
    call = f"assert {func}({', '.join(testcase_input.split(chr(10)))}) == # TODO"
    user = (f"Problem:\n{question_content}Function:\n```\n{starter_code}\n```\n"
            f"Please complete the following test case:\n\n```\n{call}\n```\n")
    return _chat(TEST_OUTPUT_SYSTEM, user)


def execution_messages(code: str, input_expr: str, cot: bool = False) -> list[dict]:
    return _chat(EXECUTION_SYSTEM, (EXECUTION_COT if cot else EXECUTION_DIRECT).format(code=code, input=input_expr))
