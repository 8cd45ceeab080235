"""Agent trajectories over SWE-smith tasks: SWE-smith's trajectory rows, our own rollouts, an RL view.

Row format (SWE-smith `collect_trajs`, xml style): messages (system, user problem statement, then
assistant turns with `<function=bash><parameter=command>…</parameter></function>` and user turns
holding the observation), instance_id, resolved, model, traj_id, patch. `messages` is stored as
a JSON string (tool-style rows carry differently shaped messages).

Rollouts run in jailed SWE-ReX sessions: the task's bug is committed on top of the pinned
checkout, the policy acts through real shell commands, the final `git diff` is the patch, and
`resolved` comes from a fresh Sandbox run of the clean checkout with the combined diff: every
FAIL_TO_PASS and PASS_TO_PASS test must pass in pytest's own summary. The tests and the test
runner's configuration come from the benchmark: the policy's changes to test files, conftest.py,
pytest/tox/setup.cfg/pyproject settings, sitecustomize/usercustomize and .pth files are left out of
that run (and named in `eval_status`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Protocol

from datagen.swe.repos import ENV_MOUNT, PreparedRepo, run_tests
from resources.sandbox import Sandbox
from resources.swerex import JailedSession, SweRexSessions

SYSTEM_PROMPT = ("You are a software engineer working in a bash shell at /work, a git repository with a bug. "
                 "Act with one command per turn, written as <function=bash><parameter=command>COMMAND"
                 "</parameter></function>. Inspect the code, reproduce the failure, edit the code, run the "
                 "tests, then reply <function=submit></function>.")
TRAJECTORY_FIELDS = ("traj_id", "instance_id", "model", "resolved", "patch", "messages")
_ACTION = re.compile(r"<function=bash>\s*<parameter=command>(.*?)</parameter>\s*</function>", re.S)
_MAX_OBSERVATION = 4000
# /work is a root-owned tmpfs holding a repo copied by the jail's uid: git must be told that is fine.
GIT_ENV = {"GIT_CONFIG_COUNT": "4", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*",
           "GIT_CONFIG_KEY_1": "user.name", "GIT_CONFIG_VALUE_1": "hrm-agent",
           "GIT_CONFIG_KEY_2": "user.email", "GIT_CONFIG_VALUE_2": "agent@hrm.invalid",
           "GIT_CONFIG_KEY_3": "commit.gpgsign", "GIT_CONFIG_VALUE_3": "false"}


@dataclass
class Step:
    thought: str
    command: str  # "" for submit
    tool: str  # bash | edit | submit


class Policy(Protocol):
    name: str

    def next_step(self, task: dict, history: list[dict]) -> Step: ...


# --- policies -----------------------------------------------------------------------------
class ScriptedExpert:
    """Knows the fix (the reverse of the bug patch) and reaches it through real tool commands."""

    name = "scripted-expert"

    def __init__(self, max_tests: int = 20):
        self.max_tests = max_tests
        self._plans: dict[str, list[Step]] = {}

    def next_step(self, task: dict, history: list[dict]) -> Step:
        plan = self._plans.setdefault(task["instance_id"], self.plan(task))
        return plan[len(history)] if len(history) < len(plan) else Step("Done.", "", "submit")

    def plan(self, task: dict) -> list[Step]:
        from unidiff import PatchSet

        f2p = list(task["FAIL_TO_PASS"])
        steps: list[Step] = []
        patch = PatchSet(task["patch"])
        files = [p.path for p in patch]
        entity = task.get("entity") or ""
        if entity:
            steps.append(Step(f"Find where `{entity}` is defined.", f"grep -rn --include=*.py {_q(entity)} . | head -20",
                              "bash"))
        steps.append(Step("Reproduce the failure with one of the failing tests.",
                          f"python -m pytest -q -x --tb=short -p no:cacheprovider {_q(f2p[0])} 2>&1 | tail -25", "bash"))
        for pf in patch:
            for hunk in pf:
                start = max(1, hunk.target_start - 3)
                steps.append(Step(f"Look at {pf.path} around line {hunk.target_start}.",
                                  f"sed -n '{start},{hunk.target_start + hunk.target_length + 3}p' {_q(pf.path)}", "bash"))
        for pf in patch:
            for hunk in pf:
                buggy = "".join(l.value for l in hunk if not l.is_removed)  # the file now (bug applied)
                fixed = "".join(l.value for l in hunk if not l.is_added)
                steps.append(Step(f"Restore the intended logic in {pf.path}.", _edit_command(pf.path, buggy, fixed),
                                  "edit"))
        tests = " ".join(_q(t) for t in f2p[: self.max_tests])
        steps.append(Step("Run the previously failing tests.",
                          f"python -m pytest -q --tb=short -p no:cacheprovider {tests} 2>&1 | tail -5", "bash"))
        steps.append(Step("Review the change.", "git diff --stat && git diff | head -80", "bash"))
        steps.append(Step(f"The fix in {', '.join(files)} makes the failing tests pass.", "", "submit"))
        return steps


class TextPolicy:
    """A policy from any text generator (e.g. the HRM model): prompt = transcript, reply = one action."""

    def __init__(self, name: str, generate: Callable[[str], str], max_steps: int = 10):
        self.name, self.generate, self.max_steps = name, generate, max_steps

    def next_step(self, task: dict, history: list[dict]) -> Step:
        if len(history) >= self.max_steps:
            return Step("Step budget used up.", "", "submit")
        reply = self.generate(render_transcript(task, history))
        m = _ACTION.search(reply)
        if not m:
            return Step(reply.strip()[:500], "", "submit")
        return Step(reply[: m.start()].strip()[:2000], m.group(1).strip(), "bash")


def hrm_policy(checkpoint_dir: str | Path, max_new_tokens: int = 256) -> TextPolicy:
    """The HRM checkpoint as an agent (greedy decoding, one action per reply)."""
    from model.checkpoint import load_checkpoint
    from model.generate import encode_prompt, generate

    model, tokenizer = load_checkpoint(checkpoint_dir)
    if tokenizer is None:
        raise ValueError(f"{checkpoint_dir}: the checkpoint has no tokenizer/; it cannot act as an agent")

    max_new_tokens = min(max_new_tokens, model.config.max_seq_len // 2)
    budget = model.config.max_seq_len - max_new_tokens

    def gen(prompt: str) -> str:
        # keep the end of the transcript (the latest observation) when it does not fit the context
        while len(encode_prompt(tokenizer, prompt)) > budget:
            prompt = prompt[len(prompt) // 4:]
        return generate(model, tokenizer, [prompt], language="python", task="agent_step",
                        stop=["</function>"], max_new_tokens=max_new_tokens)[0] + "</function>"

    return TextPolicy(f"hrm:{Path(checkpoint_dir).name}", gen)


# --- rollouts -----------------------------------------------------------------------------
def rollout(sessions: SweRexSessions, sandbox: Sandbox, repo: PreparedRepo, task: dict, policy: Policy,
            max_steps: int = 30) -> dict:
    """One episode: a trajectory row with messages, steps, final patch and `resolved`."""
    t0 = time.monotonic()
    history: list[dict] = []
    env = {"PYTHONPATH": repo.pythonpath, "PATH": f"{ENV_MOUNT}/bin:/usr/local/bin:/usr/bin:/bin", **GIT_ENV}
    with sessions.open(input_dir=repo.repo_dir, ro_binds=[(repo.env_dir, ENV_MOUNT)], env=env, sandbox=sandbox) as s:
        _setup_bug(s, task)
        for _ in range(max_steps):
            step = policy.next_step(task, history)
            if step.tool == "submit":
                history.append({"thought": step.thought, "tool": "submit", "command": "", "observation": "",
                                "exit_code": 0, "status": "ok", "wall_s": 0.0})
                break
            r = s.run(step.command, timeout_s=120)
            history.append({"thought": step.thought, "tool": step.tool, "command": step.command,
                            "observation": _clip(r.output), "exit_code": r.exit_code, "status": r.status,
                            "wall_s": r.wall_s})
        fix = s.run("git diff").output
        combined = s.run("git diff hrm-base").output  # bug + agent edits, relative to the clean commit
    resolved, eval_status = _evaluate(sandbox, repo, task, combined)
    traj_id = f"{task['instance_id']}.{policy.name}.{hashlib.sha1(json.dumps(history).encode()).hexdigest()[:8]}"
    return {"traj_id": traj_id, "instance_id": task["instance_id"], "model": policy.name, "resolved": resolved,
            "patch": _as_patch(fix), "messages": json.dumps(to_messages(task, history)),
            "steps": json.dumps(history), "n_steps": len(history), "eval_status": eval_status,
            "wall_s": round(time.monotonic() - t0, 3), "source": "collected"}


def _setup_bug(s: JailedSession, task: dict) -> None:
    """The task's starting state: the bug committed on top of the clean checkout (tagged hrm-base)."""
    if s.write_file("/tmp/bug.patch", task["patch"]).status != "ok":
        raise RuntimeError(f"{task['instance_id']}: could not stage the bug patch in the session")
    r = s.run(f"git tag hrm-base && git apply /tmp/bug.patch && rm /tmp/bug.patch && git commit -qam 'task state'")
    if r.status != "ok":
        raise RuntimeError(f"{task['instance_id']}: the bug patch does not apply in the session: {r.output[-500:]}")


def _evaluate(sandbox: Sandbox, repo: PreparedRepo, task: dict, combined_diff: str) -> tuple[bool, str]:
    from unidiff.errors import UnidiffParseError

    wanted = list(task["FAIL_TO_PASS"]) + list(task["PASS_TO_PASS"])
    try:
        diff, ignored = without_benchmark_files(_as_patch(combined_diff), {t.split("::")[0] for t in wanted})
    except UnidiffParseError as exc:
        return False, f"patch_unparseable: {exc}"
    run = run_tests(sandbox, repo, diff or None)
    note = f"; ignored changes to {', '.join(ignored)}" if ignored else ""
    if run.status not in ("ok", "failed"):
        return False, run.status + note
    return all(run.tests.get(t) in ("PASSED", "XFAIL") for t in wanted), run.status + note


_RUNNER_FILES = {"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "sitecustomize.py",
                 "usercustomize.py"}
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


def without_benchmark_files(diff: str, test_files: set[str]) -> tuple[str, list[str]]:
    """(the diff without the files the benchmark owns, the paths left out)."""
    from unidiff import PatchSet

    if not diff:
        return diff, []
    kept, ignored = [], []
    for pf in PatchSet(diff):
        paths = {f.split("/", 1)[1] if f.startswith(("a/", "b/")) else f for f in (pf.source_file, pf.target_file)}
        paths.discard("/dev/null")
        if any(benchmark_owned(p, test_files) for p in paths):
            ignored.append(pf.path)
        else:
            kept.append(str(pf))
    return "".join(kept), sorted(ignored)


def _edit_command(path: str, old: str, new: str) -> str:
    """A str_replace edit as a shell command (python in the jail), failing unless `old` occurs once."""
    spec = json.dumps({"path": path, "old": old, "new": new})
    return ("python3 -c 'import json,sys; a=json.loads(sys.argv[1]); t=open(a[\"path\"]).read(); "
            "n=t.count(a[\"old\"]); assert n==1, f\"old text found {n} times\"; "
            "open(a[\"path\"],\"w\").write(t.replace(a[\"old\"],a[\"new\"])); print(\"edited\", a[\"path\"])' "
            + _q(spec))


# --- formats ------------------------------------------------------------------------------
def render_transcript(task: dict, history: list[dict]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in to_messages(task, history))


def to_messages(task: dict, history: list[dict]) -> list[dict]:
    msgs = [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": task["problem_statement"]}]
    for h in history:
        action = ("<function=submit></function>" if h["tool"] == "submit" else
                  f"<function=bash><parameter=command>{h['command']}</parameter></function>")
        msgs.append({"role": "assistant", "content": f"{h['thought']}\n\n{action}".strip()})
        if h["tool"] != "submit":
            msgs.append({"role": "user", "content": f"OBSERVATION:\n{h['observation']}"
                                                    + (f"\n[exit code {h['exit_code']}]" if h['exit_code'] else "")})
    return msgs


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


def _q(s: str) -> str:
    import shlex

    return shlex.quote(s)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_OBSERVATION else text[:_MAX_OBSERVATION] + "\n[... clipped]"


def _as_patch(diff: str) -> str:
    return diff.strip("\n") + "\n" if diff.strip() else ""
