"""Plans: tasks decomposed into sub-tasks with roles and a dependency graph, by a pluggable planner.

A repository task's gold fix (the reverse of its SWE-smith bug patch) is split per file, or per hunk when
it touches one file; each part is a `fix` sub-task for a specialist of the task's language, and one
`verify` sub-task (merge the parts, run the full tests) depends on all of them. A batch is grouped per
language, so each language's developers form one group. `ModelPlanner` asks a model spec to pick the
decomposition and falls back to the rules when the answer is not one of the choices.

A task whose failure is a build or dependency problem (its patch touches a build or dependency declaration:
pyproject/setup.cfg/setup.py/requirements/Makefile/package.json..., so its tests fail at collection) is
decomposed `per_tool`: one `tool` sub-task per such file for a tool specialist (`deps_engineer` for
dependency lists, `build_engineer` for build configs; roles.py holds each role's instructions and tools),
then the code parts as `fix` sub-tasks that depend on the tool sub-tasks (they work on the repaired build),
then `verify`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

DECOMPOSITIONS = ("per_file", "per_hunk", "single", "per_tool")
# build and dependency declarations: a file whose break makes the tests fail before any code runs
_DEPS_FILES = re.compile(r"(^|/)(requirements[^/]*\.(txt|in)|Pipfile(\.lock)?|poetry\.lock|environment\.ya?ml|"
                         r"package(-lock)?\.json|yarn\.lock|go\.(mod|sum)|Cargo\.(toml|lock))$")
_BUILD_FILES = re.compile(r"(^|/)(pyproject\.toml|setup\.(cfg|py)|Makefile|CMakeLists\.txt|MANIFEST\.in|"
                          r"build\.gradle|pom\.xml)$")
_DOMAINS = {"class": "object_model", "ctrl": "control_flow", "remove": "missing_logic", "op": "expressions"}


@dataclass(frozen=True)
class Subtask:
    id: str
    task_id: str
    kind: str  # tool | fix | verify
    role: str
    description: str
    depends_on: tuple[str, ...] = ()
    part: str = ""  # fix: the slice of the bug patch whose reverse this sub-task must achieve (oracle input)
    files: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("part")
        return d


@dataclass
class Plan:
    planner: str
    subtasks: list[Subtask]
    decisions: dict[str, str] = field(default_factory=dict)  # task id -> decomposition

    def by_id(self) -> dict[str, Subtask]:
        return {s.id: s for s in self.subtasks}

    def roles(self) -> list[str]:
        return sorted({s.role for s in self.subtasks})

    def width(self) -> int:
        """Sub-tasks that can run at once (the largest topological level)."""
        levels = topological_levels(self.subtasks)
        return max((list(levels.values()).count(v) for v in set(levels.values())), default=0)


def topological_levels(subtasks) -> dict[str, int]:
    deps = {s.id: tuple(s.depends_on) for s in subtasks}
    levels: dict[str, int] = {}

    def level(i: str, stack: tuple = ()) -> int:
        if i not in deps:
            raise ValueError(f"sub-task depends on unknown id {i!r}")
        if i in stack:
            raise ValueError(f"dependency cycle through sub-task {i!r}")
        if i not in levels:
            levels[i] = 1 + max((level(d, stack + (i,)) for d in deps[i]), default=-1)
        return levels[i]

    for i in deps:
        level(i)
    return levels


# --- patches ---------------------------------------------------------------------------------
def split_files(patch: str) -> list[tuple[str, str]]:
    """(path, that file's diff) for each file of a unified diff, with or without `diff --git` lines."""
    lines = patch.splitlines(keepends=True)
    starts = []
    for i, line in enumerate(lines):
        if line.startswith("diff --git "):
            starts.append(i)
        elif (line.startswith("--- ") and i + 2 < len(lines) and lines[i + 1].startswith("+++ ")
              and lines[i + 2].startswith("@@") and not (starts and i - starts[-1] <= 4
                                                          and lines[starts[-1]].startswith("diff --git "))):
            starts.append(i)
    out = []
    for a, b in zip(starts, starts[1:] + [len(lines)]):
        chunk = "".join(lines[a:b])
        m = re.search(r"(?m)^\+\+\+ (?:b/)?(\S+)", chunk)
        out.append((m.group(1) if m else "?", chunk if chunk.endswith("\n") else chunk + "\n"))
    return out


def split_hunks(file_diff: str) -> list[str]:
    """One diff per hunk of a single-file diff, each with the file's header."""
    head, _, body = file_diff.partition("\n@@")
    if not body:
        return [file_diff]
    hunks = re.split(r"(?m)^(?=@@)", "@@" + body)
    return [head + "\n" + h for h in hunks if h.startswith("@@")]


def parts(task: dict, decomposition: str) -> list[tuple[tuple[str, ...], str]]:
    files = split_files(task["patch"])
    if decomposition == "per_file" and len(files) > 1:
        return [((path,), diff) for path, diff in files]
    if decomposition in ("per_file", "per_hunk"):
        out = [((path,), h) for path, diff in files for h in split_hunks(diff)]
        if len(out) > 1:
            return out
    return [(tuple(p for p, _ in files), task["patch"])]


def tool_role(path: str) -> str | None:
    """The tool specialist for a build or dependency file, None for code."""
    if _DEPS_FILES.search(path):
        return "deps_engineer"
    return "build_engineer" if _BUILD_FILES.search(path) else None


def rule_decomposition(task: dict) -> str:
    files = split_files(task["patch"])
    if any(tool_role(p) for p, _ in files):
        return "per_tool"
    if len(files) > 1:
        return "per_file"
    return "per_hunk" if files and len(split_hunks(files[0][1])) > 1 else "single"


# --- planners ------------------------------------------------------------------------------
def language_of(task: dict) -> str:
    return task.get("language") or "python"


def domain_of(task: dict) -> str:
    bug = task.get("bug_type", "")
    return next((d for k, d in _DOMAINS.items() if f"_{k}" in bug), "general")


def plan_task(task: dict, decomposition: str) -> list[Subtask]:
    tid = task["instance_id"]
    lang = language_of(task)
    tools: list[Subtask] = []
    if decomposition == "per_tool":  # the build/dependency files first, each by its tool specialist
        files = split_files(task["patch"])
        tools = [Subtask(f"{tid}/tool{i}", tid, "tool", tool_role(path),
                         f"The tests fail before any code runs (at collection): repair the build/dependency "
                         f"declaration in {path} so the package imports and the test suite collects", (), diff,
                         (path,))
                 for i, (path, diff) in enumerate((p, d) for p, d in files if tool_role(p))]
        code = "".join(d for p, d in files if not tool_role(p))
        task = {**task, "patch": code}
        decomposition = rule_decomposition(task) if code else "single"
    after = tuple(s.id for s in tools)
    fixes = [Subtask(f"{tid}/fix{i}", tid, "fix", f"{lang}_developer",
                     f"Fix the {domain_of(task).replace('_', ' ')} bug in {', '.join(files)} ({decomposition} part "
                     f"{i + 1}); failing tests: {', '.join(list(task['FAIL_TO_PASS'])[:5])}", after, part, files)
             for i, (files, part) in enumerate(parts(task, decomposition))] if task["patch"].strip() else []
    verify = Subtask(f"{tid}/verify", tid, "verify", "test_runner",
                     "Merge the parts and run the full test suite", after + tuple(s.id for s in fixes))
    return tools + fixes + [verify]


class RuleBasedPlanner:
    name = "rules"

    def choose(self, task: dict) -> str:
        return rule_decomposition(task)

    def plan(self, tasks: list[dict]) -> Plan:
        subtasks, decisions = [], {}
        for task in sorted(tasks, key=lambda t: (language_of(t), t["instance_id"])):  # grouped per language
            decisions[task["instance_id"]] = self.choose(task)
            subtasks += plan_task(task, decisions[task["instance_id"]])
        return Plan(self.name, subtasks, decisions)


class ModelPlanner(RuleBasedPlanner):
    """The meta-agent: a policy (anything with `.act(messages) -> str`) picks the decomposition of each
    task; an answer that names none of the choices falls back to the rules (counted in `fallbacks`)."""

    def __init__(self, policy):
        self.policy, self.name, self.fallbacks = policy, f"model:{getattr(policy, 'name', 'policy')}", 0

    def choose(self, task: dict) -> str:
        files = split_files(task["patch"])
        prompt = (f"Decompose this repository task for parallel agents. Choose one of {', '.join(DECOMPOSITIONS)}.\n"
                  f"Files: {json.dumps([p for p, _ in files])}; hunks: {sum(len(split_hunks(d)) for _, d in files)}; "
                  f"failing tests: {len(task['FAIL_TO_PASS'])}\nTask: {task.get('problem_statement', '')[:800]}")
        try:
            answer = self.policy.act([{"role": "user", "content": prompt}])
        except Exception:
            answer = ""
        chosen = next((d for d in DECOMPOSITIONS if d in (answer or "")), None)
        if chosen is None:
            self.fallbacks += 1
            return rule_decomposition(task)
        return chosen
