"""Rollouts as tables, without Dagster: `agent_rollouts` (one partition per policy) and `swe_trajectories`.

Each episode runs through the agent loop in a jailed session and is graded by `verify` in a fresh jail. Rows
are SWE-smith trajectory rows plus `policy` (oracle rows are demonstrations, never mixed with model rows).

A model's rollouts feed the next round of training: `swe_trajectories` folds in the rows the latest
`agent_rollouts` materialisations left in the warehouse. It cannot declare that dependency: agent_rollouts
depends on the checkpoint, which is trained on training_examples, which reads swe_trajectories.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass

from agents.loop import Budget, Episode, open_session, run_episode, verify
from agents.policies import policy_from_spec
from agents.tasks import from_polyglot, from_swesmith
from datagen.swe.repos import repo_from_row
from datagen.swe.trajectories import load_trajectories, rl_view

# the columns of both tables (loaded SWE-smith rows lack ours), with their defaults
COLUMNS = {"traj_id": "", "instance_id": "", "model": "", "policy": "", "resolved": False, "patch": "", "messages": "[]",
           "steps": "[]", "n_steps": 0, "tokens": 0, "status": "", "detail": "", "eval_status": "", "task_source": "",
           "language": "python", "wall_s": 0.0, "verify_wall_s": 0.0, "session_start_s": 0.0, "act_s": 0.0,
           "episode_wall_s": 0.0, "policy_key": "", "checkpoint_sha256": "", "source": ""}
CHECKPOINT_KEYS = {"hrm": "hrm_checkpoint", "baseline": "baseline_checkpoint"}  # policy key -> checkpoint asset


@dataclass
class RolloutSettings:
    tasks: int = 2  # episodes per policy: the first tasks, taking repos in turn
    max_steps: int = 6
    max_tokens: int = 2000
    max_wall_s: float = 120.0
    max_new_tokens: int = 96
    workers: int = 2  # episodes at once (each runs tests: about the core count)
    polyglot_languages: tuple[str, ...] = ()  # Polyglot exercises too, of these languages ("all": every one)
    polyglot_per_language: int = 1
    repo_map_tokens: int = 0  # the repository map after a SWE task's statement (HRM_AGENT_REPO_MAP_TOKENS)


def policy_spec(key: str, warehouse) -> tuple[str, dict]:
    """(the policy spec of a partition key, the checkpoint it uses): `oracle`, `hrm` / `baseline` (the latest
    published checkpoint, as local:DIR), or a spec as is."""
    if key in CHECKPOINT_KEYS:
        published = warehouse.latest_checkpoint(CHECKPOINT_KEYS[key])
        return f"local:{published['checkpoint_dir']}", {"asset": CHECKPOINT_KEYS[key],
                                                         "checkpoint_dir": published["checkpoint_dir"],
                                                         "weights_sha256": published.get("weights_sha256", "")}
    return key, {}


def pick_tasks(warehouse, n: int, per_repo: int | None = None, repo_map_tokens: int = 0) -> list:
    """AgentTasks for the first swesmith_tasks (by instance id), repos taken in turn; at most n (and at most
    per_repo from one repo); with repo_map_tokens, each statement followed by its repository map."""
    repos = {r["key"]: r for r in warehouse.read_partition_rows("swe_repos") if r["kind"] != "dataset"}
    by_repo: dict[str, list[dict]] = {}
    for t in sorted(warehouse.read_partition_rows("swesmith_tasks"), key=lambda t: t["instance_id"]):
        if t["source_repo"] in repos:
            by_repo.setdefault(t["source_repo"], []).append(t)
    picked, depth = [], 0
    while len(picked) < n and any(len(ts) > depth for ts in by_repo.values()) and (per_repo is None or depth < per_repo):
        for key in sorted(by_repo):
            if depth < len(by_repo[key]) and len(picked) < n:
                picked.append(from_swesmith(by_repo[key][depth], repo_from_row(repos[key]), repo_map_tokens))
        depth += 1
    return picked


def pick_polyglot_tasks(warehouse, languages: tuple[str, ...], per_language: int, log=None) -> list:
    """AgentTasks for the first `per_language` polyglot_problems exercises (by problem id) of each language; a
    language without a partition, or whose toolchain this machine lacks, is skipped with a warning."""
    available = warehouse.partitions("polyglot_problems")
    picked = []
    for language in (available if "all" in languages else languages):
        if language not in available:
            if log:
                log.warning(f"agent_rollouts: polyglot_problems has no {language!r} partition; skipped")
            continue
        rows = sorted(warehouse.read_table("polyglot_problems", partition=language).to_pylist(),
                      key=lambda r: r["problem_id"])
        try:
            picked += [from_polyglot(row) for row in rows[:per_language]]
        except ValueError as exc:  # no toolchain for the language here
            if log:
                log.warning(f"agent_rollouts: {exc}; skipped")
    return picked


def rollout_rows(spec: str, tasks: list, settings: RolloutSettings, sandbox, sessions, log=None) -> list[dict]:
    """One verified episode per task: trajectory rows."""
    policy = policy_from_spec(spec, max_new_tokens=settings.max_new_tokens)
    budget = Budget(settings.max_steps, settings.max_tokens, settings.max_wall_s)

    def one(task) -> dict:
        t0 = time.monotonic()
        # one policy object per worker thread would cost a model copy each; the oracle keeps per-episode state
        acting = policy_from_spec(spec, settings.max_new_tokens) if spec == "oracle" else policy
        startup = 0.0
        try:
            with open_session(sessions, sandbox, task) as session:
                startup = session.startup_s
                ep = run_episode(acting, session, task, budget)
            ep.verdict = verify(sandbox, task, ep.patch)
        except Exception as exc:  # the task's session could not start or its tests not run: a row says so
            ep = Episode(task, acting.name, acting.kind, [], status="error", detail=f"{type(exc).__name__}: {exc}"[-500:])
            if log:
                log.warning(f"{task.instance_id} [{spec}]: {ep.detail}")
        row = {**ep.to_trajectory_row(), "session_start_s": startup,
               "act_s": round(sum(s.act_s for s in ep.steps), 3), "episode_wall_s": round(time.monotonic() - t0, 3)}
        if log:
            log.info(f"{task.instance_id} [{spec}]: {ep.status}, resolved={row['resolved']}, {len(ep.steps)} steps, "
                     f"{ep.tokens} tokens, {row['episode_wall_s']} s")
        return {c: row.get(c, d) for c, d in COLUMNS.items()}

    workers = settings.workers if spec == "oracle" else 1  # one model, one decoding thread
    return sessions.map(one, tasks, workers=workers)


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a rate k/n (sound at small n and at 0 or n successes)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def summary(rows: list[dict]) -> dict:
    """Resolve rate with its Wilson interval, steps, tokens, wall and the overhead (time not spent in the policy)."""
    n, k = len(rows), sum(bool(r["resolved"]) for r in rows)
    low, high = wilson_interval(k, n)
    wall = sum(r.get("episode_wall_s", 0.0) for r in rows)
    act = sum(r.get("act_s", 0.0) for r in rows)
    return {"episodes": n, "resolved": k, "resolve_rate": round(k / n, 4) if n else 0.0, "resolve_ci_low": low,
            "resolve_ci_high": high, "steps_per_episode": round(sum(r["n_steps"] for r in rows) / n, 2) if n else 0.0,
            "tokens": sum(r.get("tokens", 0) for r in rows), "wall_s": round(wall, 2),
            "overhead_s": round(wall - act, 2), "overhead_fraction": round((wall - act) / wall, 4) if wall else 0.0,
            "by_status": dict(Counter(r["status"] for r in rows))}


# --- agent_rollouts -------------------------------------------------------------------------------------
def build_agent_rollouts(settings: RolloutSettings, key: str, sandbox, sessions, warehouse, log=None) -> dict:
    """Roll out the partition's policy on the first SWE-smith tasks (and the Polyglot exercises asked for); write
    the agent_rollouts partition and its RL view."""
    spec, checkpoint = policy_spec(key, warehouse)
    tasks = pick_tasks(warehouse, settings.tasks, repo_map_tokens=settings.repo_map_tokens) + pick_polyglot_tasks(
        warehouse, settings.polyglot_languages, settings.polyglot_per_language, log)
    if not tasks:
        raise RuntimeError("agent_rollouts: swesmith_tasks holds no task of a prepared repo (materialise swe_repos "
                           "and swesmith_tasks first), and no Polyglot exercise was asked for or found")
    rows = [{**r, "policy_key": key, "checkpoint_sha256": checkpoint.get("weights_sha256", "")}
            for r in rollout_rows(spec, tasks, settings, sandbox, sessions, log)]
    warehouse.write_table("agent_rollouts", rows, partition=key)
    warehouse.write_table("agent_rollouts_rl", rl_view(rows), partition=key)
    by_source = Counter(r["task_source"] for r in rows)
    return {**summary(rows), "by_source": dict(by_source), "spec": spec, "checkpoint": checkpoint}


# --- swe_trajectories -------------------------------------------------------------------------------------
@dataclass
class TrajectorySettings:
    tasks_per_repo: int = 1  # oracle demonstrations per repo
    max_steps: int = 20  # the oracle takes one edit per hunk, the tests and submit
    workers: int = 2
    load_from: str = ""  # local SWE-smith trajectory files or an HF dataset name
    include_rollouts: bool = True  # fold in the rows agent_rollouts left in the warehouse


def build_swe_trajectories(settings: TrajectorySettings, sandbox, sessions, warehouse, log=None) -> dict:
    """Oracle demonstrations rolled out through the loop, the models' rollouts from agent_rollouts, and loaded
    SWE-smith trajectories; with the RL view in swe_trajectories_rl."""
    n_repos = len({r["key"] for r in warehouse.read_partition_rows("swe_repos") if r["kind"] != "dataset"})
    tasks = pick_tasks(warehouse, settings.tasks_per_repo * n_repos, per_repo=settings.tasks_per_repo)
    demo = RolloutSettings(tasks=len(tasks), max_steps=settings.max_steps, workers=settings.workers)
    rows = [{**r, "source": "collected"} for r in rollout_rows("oracle", tasks, demo, sandbox, sessions, log)]
    broken = [r["instance_id"] for r in rows if not r["resolved"]]
    model_rows = []
    if settings.include_rollouts:
        for key in warehouse.partitions("agent_rollouts"):
            if key != "oracle":
                model_rows += [{**r, "source": "agent_rollouts"}
                               for r in warehouse.read_table("agent_rollouts", partition=key).to_pylist()]
    rejected = []
    loaded = []
    if settings.load_from:
        loaded, rejected = load_trajectories(settings.load_from)
        loaded = [{**r, "policy": "loaded"} for r in loaded]
    rows = [{c: r.get(c, d) for c, d in COLUMNS.items()} for r in rows + model_rows + loaded]
    if not rows:
        raise RuntimeError("swe_trajectories: no trajectory collected or loaded (is swesmith_tasks empty?)")
    warehouse.write_table("swe_trajectories", rows)
    warehouse.write_table("swe_trajectories_rl", rl_view(rows))
    warehouse.write_quarantine("swe_trajectories", rejected)
    oracle = [r for r in rows if r["policy"] == "oracle"]
    return {"rows": len(rows), "oracle": len(oracle), "oracle_resolved": len(oracle) - len(broken),
            "oracle_unresolved": broken, "model_rows": len(model_rows),
            "model_resolved": sum(bool(r["resolved"]) for r in model_rows), "loaded": len(loaded),
            "rejected": len(rejected), "by_model": dict(Counter(r["model"] for r in rows)),
            "oracle_summary": summary(oracle)}
