"""Roles: what a specialist agent is given besides its sub-task. A role is a policy (a model spec, or the
run's policy when None), instructions added to the agent loop's system prompt, and the subset of tools it may
call (agents/tools.py). The tool specialists take the `tool` sub-tasks of a `per_tool` plan: they repair a
build or dependency declaration so the test suite collects, before the code developers start."""

from __future__ import annotations

from dataclasses import dataclass

ALL_TOOLS = ("bash", "view", "search", "edit", "run_tests", "submit")


@dataclass(frozen=True)
class Role:
    name: str
    instructions: str
    tools: tuple[str, ...] = ALL_TOOLS
    policy: str | None = None  # None: the run's policy


ROLES = {
    "deps_engineer": Role(
        "deps_engineer",
        "You are the dependency specialist. The tests fail at collection (ImportError, ModuleNotFoundError, a "
        "version conflict). Read the error with run_tests, then repair the dependency declaration (requirements "
        "files, pyproject's dependencies, package.json) it points to. Change no source code and no tests; submit "
        "when the suite collects.", ("bash", "view", "search", "edit", "run_tests", "submit")),
    "build_engineer": Role(
        "build_engineer",
        "You are the build specialist. The tests fail before any code runs because a build configuration is "
        "broken (pyproject.toml, setup.cfg, setup.py, Makefile). Read the error with run_tests, repair the "
        "configuration file it points to, change no source code and no tests; submit when the suite collects.",
        ("bash", "view", "search", "edit", "run_tests", "submit")),
    "test_runner": Role("test_runner", "Merge the parts and run the full test suite.", ("bash", "run_tests", "submit")),
}


def instructions_for(role: str) -> str:
    return ROLES[role].instructions if role in ROLES else ""


def tools_for(role: str) -> tuple[str, ...] | None:
    return ROLES[role].tools if role in ROLES else None
