"""Agent trajectories over SWE-smith tasks: SWE-smith's trajectory rows, the loader, an RL view, and what a
submitted patch may not change.

Row format (SWE-smith `collect_trajs`, xml style): messages (system, user problem statement, then
assistant turns with `<function=NAME><parameter=KEY>…</parameter></function>` and user turns
holding the observation), instance_id, resolved, model, traj_id, patch. `messages` is stored as
a JSON string (tool-style rows carry differently shaped messages). Our own rollouts come from the
agent loop (agents/loop.py).

The tests and the test runner's configuration come from the benchmark: a patch's changes to test
files, conftest.py, pytest/tox/setup.cfg/pyproject settings, sitecustomize/usercustomize, .pth files
and modules that would shadow the test runner are left out of the grading run (`without_benchmark_files`).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

TRAJECTORY_FIELDS = ("traj_id", "instance_id", "model", "resolved", "patch", "messages")
# /work is a root-owned tmpfs holding a repo copied by the jail's uid: git must be told that is fine.
GIT_ENV = {"GIT_CONFIG_COUNT": "4", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*",
           "GIT_CONFIG_KEY_1": "user.name", "GIT_CONFIG_VALUE_1": "hrm-agent",
           "GIT_CONFIG_KEY_2": "user.email", "GIT_CONFIG_VALUE_2": "agent@hrm.invalid",
           "GIT_CONFIG_KEY_3": "commit.gpgsign", "GIT_CONFIG_VALUE_3": "false"}


_RUNNER_FILES = {"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "sitecustomize.py",
                 "usercustomize.py", ".hrm_pytest_nonce"}  # the last: the grader's nonce file (datagen.swe.repos)
_TEST_DIRS = {"test", "tests", "testing"}
# a module of these names on the path would be imported instead of the real test runner (`python -m pytest`
# puts the working directory first on sys.path)
_RUNNER_MODULES = {"pytest", "_pytest", "py", "pluggy", "iniconfig", "unittest", "pytest_cov", "xdist"}


def benchmark_owned(path: str, test_files: set[str]) -> bool:
    """Whether the evaluation must use the clean checkout's version of `path` (tests and runner config)."""
    p = PurePosixPath(path)
    return (path in test_files or p.name in _RUNNER_FILES or p.suffix == ".pth" or p.name.startswith("test_")
            or p.name.endswith("_test.py") or any(part in _TEST_DIRS for part in p.parts[:-1])
            or any(part.removesuffix(".py") in _RUNNER_MODULES for part in p.parts))


def without_benchmark_files(diff: str, test_files: set[str], editable: set[str] = frozenset()) -> tuple[str, list[str]]:
    """(the diff without the files the benchmark owns, except those in `editable`; the paths left out)."""
    from unidiff import PatchSet

    if not diff:
        return diff, []
    kept, ignored = [], []
    for pf in PatchSet(diff):
        paths = {f.split("/", 1)[1] if f.startswith(("a/", "b/")) else f for f in (pf.source_file, pf.target_file)}
        paths.discard("/dev/null")
        if any(benchmark_owned(p, test_files) and p not in editable for p in paths):
            ignored.append(pf.path)
        else:
            kept.append(str(pf))
    return "".join(kept), sorted(ignored)


# --- formats ------------------------------------------------------------------------------
def rl_view(trajectories: list[dict]) -> list[dict]:
    """(state, action, observation, reward, done) rows; the reward is 1 on the last step of a resolved
    episode, 0 elsewhere; state is the transcript before the action."""
    rows = []
    for traj in trajectories:
        messages = json.loads(traj["messages"]) if isinstance(traj["messages"], str) else list(traj["messages"])
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        for n, i in enumerate(turns):
            last = n == len(turns) - 1
            nxt = messages[i + 1]["content"] if i + 1 < len(messages) and messages[i + 1]["role"] != "assistant" else ""
            rows.append({"traj_id": traj["traj_id"], "instance_id": traj["instance_id"], "step": n,
                         "state": json.dumps(messages[:i]), "action": messages[i]["content"], "observation": nxt,
                         "reward": float(bool(traj["resolved"])) if last else 0.0, "done": last})
    return rows


def load_trajectories(source: str) -> tuple[list[dict], list[dict]]:
    """SWE-smith trajectory rows from a local .jsonl/.json/.parquet file or directory, or an HF dataset name
    (`SWE-bench/SWE-smith-trajectories[:split]`). Returns (rows, rejected rows with reasons)."""
    from datagen.swe.hf import read_records

    rows, rejected = [], []
    for where, rec in read_records(source, default_split="xml"):
        missing = [f for f in TRAJECTORY_FIELDS if f not in rec]
        msgs = rec.get("messages")
        if isinstance(msgs, str):
            try:
                msgs = json.loads(msgs)
            except json.JSONDecodeError:
                msgs = None
        if missing:
            rejected.append({"where": where, "reason": f"missing fields {missing}"})
        elif not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m for m in msgs):
            rejected.append({"where": where, "reason": "messages is not a list of {role, content} objects"})
        else:
            rows.append({"traj_id": str(rec["traj_id"]), "instance_id": str(rec["instance_id"]),
                         "model": str(rec["model"]), "resolved": bool(rec["resolved"]),
                         "patch": rec["patch"] or "", "messages": json.dumps(msgs, default=str),
                         "steps": "[]", "n_steps": sum(m["role"] == "assistant" for m in msgs),
                         "eval_status": "", "wall_s": 0.0, "source": "loaded"})
    return rows, rejected
