"""AgentTasks from the project's task tables: `swesmith_tasks` rows, Polyglot exercises (every language the
machine has a toolchain for) and synthetic repair tasks (Python: pytest's own summary grades them).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from agents.loop import AgentTask
from datagen.polyglot.exercise import Exercise
from datagen.polyglot.harness import TEST_TIMEOUT_S, session_command, test_workspace, unsupported_reason
from datagen.repair_grading import repair_cases
from datagen.repomap import build_repo_map
from datagen.swe.examples import reverse_patch
from datagen.swe.multifile import patched_files
from datagen.swe.repos import ENV_MOUNT, PreparedRepo, runner_command, test_command
from model.edits import apply_edits

# pytest through the graders' runner (datagen.swe.repos.RUNNER): the agent reads its output, `verify` its report
PYTEST = shlex.join(runner_command(f"{ENV_MOUNT}/bin/python", ["-rA", "--tb=short", "--color=no", "-q", "-p",
                                                               "no:cacheprovider"]))


def from_swesmith(task: dict, repo: PreparedRepo, repo_map_tokens: int = 0) -> AgentTask:
    """A swesmith_tasks row on its prepared repo: the bug committed on top of the clean checkout. With
    repo_map_tokens, the problem statement is followed by the repository map (datagen/repomap.py) ranked for
    the statement's names: files and their signatures as the agent finds them, with the bug in (a map of the
    clean checkout would show a function the bug removed), ranked from the statement only."""
    f2p, p2p = list(task["FAIL_TO_PASS"]), list(task["PASS_TO_PASS"])
    timeout = min(300.0, max(30.0, 10 * float(task.get("validation_wall_s") or 3.0)))
    statement = task["problem_statement"]
    if repo_map_tokens > 0:
        try:
            buggy = patched_files(repo.repo_dir, task["patch"]) if task.get("patch") else {}
            context = build_repo_map(repo.repo_dir, overrides=buggy).render((), statement, repo_map_tokens)
        except ValueError:  # a patch that adds or removes files: no map rather than one of the clean code
            context = ""
        if context:
            statement += f"\n\nRepository map (files ranked for this issue, with their definitions):\n{context}"
    return AgentTask(instance_id=task["instance_id"], problem_statement=statement,
                     test_command=shlex.join(test_command(repo)), fail_to_pass=f2p, pass_to_pass=p2p,
                     repo_dir=repo.repo_dir, setup_patch=task["patch"], env_dir=repo.env_dir,
                     env={"PYTHONPATH": repo.pythonpath},
                     test_files=sorted({t.split("::")[0] for t in f2p + p2p}),
                     gold_patch=reverse_patch(task["patch"]), language="python", source="swesmith_tasks",
                     timeout_s=timeout)


def from_polyglot(row: dict) -> AgentTask:
    """A polyglot_problems row of any language: the stubs, build and editor files and the tests (skipped ones
    enabled); run_tests is the benchmark's test feedback loop and the evaluator's harness grades the result.
    ValueError where this machine cannot run the language's tests."""
    ex = Exercise.from_row(row)
    why = unsupported_reason(ex.language)
    if why:
        raise ValueError(f"polyglot {ex.key}: {why}")
    statement = (f"{ex.instructions}\n\nModify {', '.join(sorted(ex.solution_files))} so that the tests in "
                 f"{', '.join(sorted(ex.test_files))} pass. Don't change the names of existing functions or classes; "
                 "use only the standard library. Only your changes to those files are graded.")
    files = test_workspace(ex, {})
    reference = {p: ex.reference_files.get(p, stub) for p, stub in ex.solution_files.items()}
    return AgentTask(instance_id=f"polyglot.{ex.key.replace('/', '.')}", problem_statement=statement,
                     test_command=session_command(ex), fail_to_pass=[], pass_to_pass=[], files=files,
                     test_files=sorted(set(files) - set(ex.solution_files)),
                     gold_patch=file_diff(ex.solution_files, reference),
                     language=ex.language, source="polyglot_problems", timeout_s=TEST_TIMEOUT_S, exercise=row)


def from_synthetic_repair(row: dict, env_dir: str) -> AgentTask:
    """A synthetic repair task (Python): the mutant as solution.py, its hidden calls as pytest tests."""
    if row["task_type"] != "repair" or row["language"] != "python":
        raise ValueError(f"synthetic task {row['task_id']}: only python repair tasks run as agent tasks so far")
    tests = "from solution import solve\n\n" + "".join(
        f"\ndef test_case_{i}():\n    got = solve({args})\n    assert got == {expected}\n"
        for i, (args, expected) in enumerate(repair_cases("python", row["test_program"])))
    program = row["program"]
    return AgentTask(instance_id=f"synthetic.{row['task_id']}",
                     problem_statement="A test of the function `solve` in solution.py fails. Find and fix the bug; "
                                       "the tests are in test_solution.py.",
                     test_command=PYTEST, fail_to_pass=[], pass_to_pass=[],
                     files={"solution.py": program, "test_solution.py": tests}, env_dir=env_dir,
                     env={"PYTHONPATH": "/work"}, test_files=["test_solution.py"],
                     gold_patch=file_diff({"solution.py": program}, {"solution.py": apply_edits(program, row["answer"])}),
                     language="python", source="synthetic_tasks", timeout_s=30.0)


def file_diff(before: dict[str, str], after: dict[str, str]) -> str:
    """The unified diff (git's format) taking files `before` to `after`; our own text, diffed by git on the host
    in a throwaway repo with hooks and config off."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}
    git = ["git", "-c", "core.hooksPath=/dev/null", "-c", "user.name=hrm", "-c", "user.email=hrm@hrm.invalid"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run(git + ["init", "-q"], cwd=root, check=True, env=env)
        for files in (before, after):
            for path in set(before) | set(after):
                target = root / path
                target.parent.mkdir(parents=True, exist_ok=True)
                if path in files:
                    target.write_text(files[path])
                elif target.exists():
                    target.unlink()
            subprocess.run(git + ["add", "-A"], cwd=root, check=True, env=env)
            if files is before:
                subprocess.run(git + ["commit", "-qm", "before", "--allow-empty"], cwd=root, check=True, env=env)
        return subprocess.run(git + ["diff", "--cached"], cwd=root, check=True, env=env, capture_output=True,
                              text=True).stdout
