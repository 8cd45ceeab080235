"""TrainingExample rows (datagen.schema) from the SWE tables, for curriculum stages 3-4.

repair     problem statement + the buggy hunk region -> the fixed region (edit_tags on changed lines)
diff_edit  problem statement + the buggy hunk region -> the fix as a unified diff
tool_use   workflow task + commands and outputs so far -> the next command (tool_calls set)
agent_step transcript of a resolved trajectory up to a turn -> that assistant turn
plan       scenario goal + roles -> the sub-task graph as JSON
"""

from __future__ import annotations

import hashlib
import json
import re

from datagen.schema import TrainingExample

# The model's tool vocabulary (model/vocab.py TOOLS) and the commands that belong to each.
_TOOL_OF = {"git": "git", "pip": "pip", "python3": "shell", "npm": "npm", "cargo": "cargo", "mvn": "mvn",
            "make": "make", "cmake": "cmake", "ctest": "cmake", "mkdir": "fs", "mv": "fs", "cp": "fs", "rm": "fs",
            "tar": "fs", "find": "fs", "chmod": "fs", "ls": "fs", "cat": "fs", "printf": "fs", "echo": "fs",
            "sed": "fs", "grep": "fs", "touch": "fs"}
_MAX_PROMPT_CHARS = 6000
# an agent step's prompt keeps the transcript's tail, short enough that prompt and action fit a curriculum shard
# (256-384 tokens; code text runs about 2.5 characters a token); the local policy cuts its prompt the same way,
# so training and acting see the same text
AGENT_PROMPT_CHARS = 400


def agent_prompt(messages: list[dict]) -> str:
    """The transcript before an assistant turn as the model sees it, in training and as a local policy."""
    text = "\n\n".join(f"[{m['role']}]\n{m['content'] if isinstance(m['content'], str) else json.dumps(m['content'])}"
                       for m in messages)
    return (text + "\n\n[assistant]\n")[-AGENT_PROMPT_CHARS:]


def _split(key: str, validation_percent: int = 5, test_percent: int = 0) -> str:
    bucket = int(hashlib.sha1(key.encode()).hexdigest(), 16) % 100
    if bucket < test_percent:
        return "test"
    return "validation" if bucket < test_percent + validation_percent else "train"


def tool_name(command: str) -> str:
    words = command.strip().split()
    while words and "=" in words[0] and not words[0].startswith(("-", "'", '"')):
        words = words[1:]  # VAR=value prefixes
    if not words:
        return "shell"
    head = words[0].split("/")[-1]
    if head == "cd" and "&&" in words:
        return tool_name(" ".join(words[words.index("&&") + 1:]))
    if head in ("python", "python3") and words[1:3] == ["-m", "pip"]:
        return "pip"
    return _TOOL_OF.get(head, "shell")


def from_tasks(tasks: list[dict]) -> list[TrainingExample]:
    from unidiff import PatchSet

    out = []
    for t in tasks:
        try:
            patch = PatchSet(t["patch"])
        except Exception:
            continue
        regions = []
        for pf in patch:
            for hunk in pf:
                shown = _tagged_buggy_lines(hunk)
                regions.append((pf.path, "".join(v for v, _ in shown), "".join(l.value for l in hunk if not l.is_added),
                                [t for _, t in shown]))
        if not regions or sum(len(r[1]) for r in regions) > _MAX_PROMPT_CHARS:
            continue
        head = f"{t['problem_statement'].strip()}\n\n"
        body, tags = "", [0] * head.count("\n")
        for path, buggy, _, line_tags in regions:
            body += f"--- {path}\n{buggy}"
            tags += [0] + line_tags
        prompt = head + body
        tags = (tags + [0] * (prompt.count("\n") + 1))[: prompt.count("\n") + 1]
        fixed = "".join(f"--- {path}\n{good}" for path, _, good, _ in regions)
        fix_diff = reverse_patch(t["patch"])
        split = _split(t["instance_id"])
        out.append(TrainingExample("repair", "python", "Fix the bug in this code.\n" + prompt, fixed, "swesmith_tasks",
                                   split, f"{t['instance_id']}.repair", [0] + tags, []))
        out.append(TrainingExample("diff_edit", "python", "Write a unified diff that fixes the bug.\n" + prompt,
                                   fix_diff, "swesmith_tasks", split, f"{t['instance_id']}.diff", [0] + tags, []))
    return out


def _tagged_buggy_lines(hunk) -> list[tuple[str, int]]:
    """The hunk as the task shows it (bug applied), each line tagged 1 if the fix changes it or inserts
    next to it (a bug that deleted lines is fixed by inserting after the line before the gap)."""
    shown: list[list] = []
    gap_first = False
    for line in hunk:
        if line.is_removed:
            if shown:
                shown[-1][1] = 1
            else:
                gap_first = True
        else:
            shown.append([line.value, int(line.is_added or gap_first)])
            gap_first = False
    return [(v, t) for v, t in shown]


def reverse_patch(patch: str) -> str:
    """The gold fix: the bug patch with sides swapped."""
    out = []
    for line in patch.splitlines():
        if line.startswith("--- a/"):
            out.append(line)
        elif line.startswith("+++ b/"):
            out.append(line)
        elif line.startswith("@@"):
            m = re.match(r"@@ -(\d+(?:,\d+)?) \+(\d+(?:,\d+)?) @@(.*)", line)
            out.append(f"@@ -{m.group(2)} +{m.group(1)} @@{m.group(3)}" if m else line)
        elif line.startswith("+"):
            out.append("-" + line[1:])
        elif line.startswith("-"):
            out.append("+" + line[1:])
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def from_tool_use(rows: list[dict]) -> list[TrainingExample]:
    out = []
    for r in rows:
        steps = json.loads(r["steps"]) if isinstance(r["steps"], str) else r["steps"]
        transcript = f"Task: {r['task']}\n"
        files = json.loads(r["files"]) if isinstance(r["files"], str) else (r["files"] or {})
        if files:
            transcript += "Files: " + ", ".join(sorted(files)) + "\n"
        for s in steps:
            tool = tool_name(s["command"])
            out.append(TrainingExample("tool_use", r["language"], (transcript + "Next command:")[-_MAX_PROMPT_CHARS:],
                                       s["command"], "tool_use_examples", _split(r["workflow_id"]),
                                       f"{r['workflow_id']}.step{s['index']}", [],
                                       [{"tool": tool, "args": {"command": s["command"], "expect": s["expect"],
                                                                "recovers": s["recovers"]}}]))
            transcript += f"$ {s['command']}\n{(s['output'] or '')[-800:]}\n[exit {s['exit_code']}]\n"
    return out


def from_trajectories(rows: list[dict]) -> list[TrainingExample]:
    """One agent_step example per assistant turn of each resolved episode. The oracle's demonstrations are
    counted apart (source `swe_trajectories:oracle`) from episodes a model resolved itself."""
    out = []
    for r in rows:
        if not r["resolved"]:
            continue  # imitate only episodes that solved the task
        source = "swe_trajectories:oracle" if r.get("policy") == "oracle" else "swe_trajectories"
        msgs = json.loads(r["messages"]) if isinstance(r["messages"], str) else r["messages"]
        for i, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            prompt = agent_prompt(msgs[:i])
            content = m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
            cmd = content.split("<parameter=command>", 1)[1].split("</parameter>", 1)[0] \
                if "<parameter=command>" in content else ""
            calls = [{"tool": tool_name(cmd), "args": {"command": cmd}}] if cmd else []
            out.append(TrainingExample("agent_step", r.get("language") or "python", prompt, content, source,
                                       _split(r["instance_id"]), f"{r['traj_id']}.turn{i}", [], calls))
    return out


def from_scenarios(rows: list[dict]) -> list[TrainingExample]:
    out = []
    for r in rows:
        language = r["language"] if r["language"] in ("cpp", "go", "java", "javascript", "python", "rust") else "none"
        prompt = (f"Plan this task for a team of agents ({', '.join(r['roles'])}). Give sub-tasks with roles, "
                  f"dependencies and fallbacks as JSON.\nDomain: {r['domain']}\nVariant: {r['variant']}\n"
                  f"Task: {r['goal']}")
        subtasks = json.loads(r["subtasks"])
        answer = json.dumps([{k: s[k] for k in ("id", "role", "description", "depends_on", "parallel_group", "fallback")}
                             for s in subtasks], separators=(",", ":"))
        out.append(TrainingExample("plan", language, prompt, answer, "multi_agent_scenarios",
                                   _split(r["source_id"]), r["scenario_id"], [], []))
    return out


def training_examples(warehouse) -> list[TrainingExample]:
    """Every TrainingExample the SWE tables yield; tables not materialised yet contribute nothing."""
    def rows(name: str) -> list[dict]:
        parts = warehouse.partitions(name)
        if parts:  # read one by one: partitions may infer different types for empty lists
            return [r for p in parts for r in warehouse.read_table(name, partition=p).to_pylist()]
        try:
            return warehouse.read_table(name).to_pylist()
        except FileNotFoundError:
            return []

    tasks = list({t["instance_id"]: t for t in rows("swesmith_tasks")}.values())  # generated and loaded may overlap
    return (from_tasks(tasks) + from_tool_use(rows("tool_use_examples"))
            + from_trajectories(rows("swe_trajectories")) + from_scenarios(rows("multi_agent_scenarios")))


# --- one TrainingExample per table row, stored beside the row (readers of the tables by name get them) -------
def _columns(ex: TrainingExample | None) -> dict:
    if ex is None:
        return {"task_type": None, "prompt": "", "answer": "", "split": "train", "example_id": "", "edit_tags": [],
                "tool_calls": "[]", "source_asset": ""}
    d = ex.to_dict()
    d["tool_calls"] = json.dumps(d["tool_calls"])
    d.pop("language")  # the tables have their own language column with the same meaning
    return d


def with_workflow_example(row: dict) -> dict:
    """A whole workflow as one tool_use example: task -> the command sequence."""
    steps = json.loads(row["steps"])
    files = sorted(json.loads(row["files"]))
    prompt = f"Task: {row['task']}\n" + (f"Files: {', '.join(files)}\n" if files else "") + "Commands:"
    ex = TrainingExample("tool_use", row["language"], prompt, "\n".join(s["command"] for s in steps),
                         # whole workflows held out, so the report's tool-use score measures generalisation
                         "tool_use_examples", _split(row["workflow_id"], test_percent=20),
                         f"{row['workflow_id']}.workflow", [],
                         [{"tool": tool_name(s["command"]), "args": {"command": s["command"]}} for s in steps])
    return {**row, **_columns(ex)}


def with_plan_example(row: dict) -> dict:
    return {**row, **_columns(from_scenarios([row])[0])}
