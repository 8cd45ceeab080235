"""Multi-turn agent episodes as an RL source (training/rl.py's second source, beside the one-answer synthetic
tasks): a group of episodes per task, each one the agent loop in its own jailed session with our checkpoint
sampling its replies, graded at the end by `verify` in a fresh jail. Every reply's prompt and generated token
ids are kept, so the trainer can score them under the policy and give them the episode's advantage.

The reward is computed by the trainer from the verdict (training.rewards.episode_reward); what the episode
changed outside the files the benchmark owns (tests, conftest, runner config) is recorded here, since an episode
that only edited those changed nothing that is graded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from agents.loop import AgentTask, Budget, open_session, run_episode, verify
from agents.policies import STOP, LocalPolicy
from agents.tasks import from_synthetic_repair
from datagen.swe.repos import ensure_env
from datagen.swe.trajectories import without_benchmark_files


@dataclass
class EpisodeSettings:
    max_steps: int = 4  # replies per episode
    max_new_tokens: int = 96  # per reply
    max_wall_s: float = 120.0
    workers: int = 4  # episodes at once (their sessions run tools and tests while others decode)


@dataclass
class EpisodeSample:
    task_id: str
    language: str
    source: str
    condition: tuple[int, int]  # (language id, task id) every reply was decoded with
    turns: list[tuple[list[int], list[int]]]  # per reply: prompt ids, generated ids (+ eos when it ended itself)
    status: str  # the episode's end: submitted, budget_exhausted, session_died, error
    graded_change: bool  # the patch changes a file the grader does not own
    verdict: dict = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def tokens(self) -> int:
        return sum(len(a) for _, a in self.turns)


def _answer_ids(tokenizer, new: list[int], max_new: int) -> list[int]:
    """The reply's ids as the policy produced them: decoding ended at eos (dropped by generate_ids, put back),
    at the stop string, or at the token budget."""
    eos = getattr(tokenizer, "eos_id", None)
    ended_itself = len(new) < max_new and STOP not in tokenizer.decode(new[-64:])
    return new + [eos] if ended_itself and eos is not None else list(new)


def graded_change(task: AgentTask, patch: str) -> bool:
    """Whether `patch` changes a file that `verify` applies (not one of the files the benchmark owns)."""
    from unidiff.errors import UnidiffParseError

    owned = set(task.test_files) | {t.split("::")[0] for t in task.fail_to_pass + task.pass_to_pass}
    try:
        kept, _ = without_benchmark_files(patch, owned)
    except UnidiffParseError:  # an unparseable patch changes nothing verify can apply
        return False
    return bool(kept.strip())


def run_graded(policy, task: AgentTask, budget: Budget, sandbox, sessions) -> EpisodeSample:
    """One episode of `policy` on `task` in a jailed session, graded by `verify` in a fresh jail. The replies'
    ids are the policy's `turns` (a LocalPolicy's; none for a policy that is not a model)."""
    t0 = time.monotonic()
    try:
        with open_session(sessions, sandbox, task) as session:
            ep = run_episode(policy, session, task, budget)
        status, patch = ep.status, ep.patch
        verdict = verify(sandbox, task, patch) if status != "session_died" and patch.strip() else {}
    except Exception as exc:  # a session that cannot start: the episode earns nothing, the run goes on
        status, patch, verdict = "error", "", {"status": "error", "detail": f"{type(exc).__name__}: {exc}"[-300:]}
    turns = [(p, _answer_ids(policy.tokenizer, a, policy.max_new_tokens)) for p, a in getattr(policy, "turns", [])]
    condition = policy.condition() if hasattr(policy, "condition") else (0, 0)
    return EpisodeSample(task.instance_id, task.language, task.source, condition, turns, status,
                         graded_change(task, patch), verdict, round(time.monotonic() - t0, 3))


def sample_episodes(model, tokenizer, tasks: list[AgentTask], group: int, settings: EpisodeSettings,
                    temperature: float, seed: int, sandbox, sessions) -> list[EpisodeSample]:
    """`group` episodes of each task (task-major order), `settings.workers` at once, the replies sampled at
    `temperature` from `model` (in eval mode; callers must not update it meanwhile)."""
    budget = Budget(settings.max_steps, settings.max_steps * settings.max_new_tokens, settings.max_wall_s)
    model.eval()

    def one(item: tuple[int, AgentTask]) -> EpisodeSample:
        k, task = item
        policy = LocalPolicy(f"rl:{task.instance_id}", model, tokenizer, settings.max_new_tokens,
                             temperature=temperature, seed=seed * 1_000_003 + k * 1_009)
        return run_graded(policy, task, budget, sandbox, sessions)

    items = [(i * group + j, task) for i, task in enumerate(tasks) for j in range(group)]
    return sessions.map(one, items, workers=settings.workers)


class AgentEpisodeSource:
    """Agent tasks for the RL loop, with what their episodes run in (training.rl.train_rl's `agent_source`)."""

    def __init__(self, tasks: list[AgentTask], settings: EpisodeSettings, sandbox, sessions):
        if not tasks:
            raise ValueError("an agent episode source needs at least one task")
        self.tasks, self.settings, self.sandbox, self.sessions = tasks, settings, sandbox, sessions

    def sample(self, model, tokenizer, tasks: list[AgentTask], group: int, temperature: float,
               seed: int) -> list[EpisodeSample]:
        return sample_episodes(model, tokenizer, tasks, group, self.settings, temperature, seed, self.sandbox,
                               self.sessions)


def synthetic_repair_source(rows: list[dict], envs_root, settings: EpisodeSettings, sandbox, sessions,
                            split: str = "train") -> AgentEpisodeSource:
    """The Python repair tasks of synthetic_tasks' `split` as agent tasks (solution.py and its hidden calls as
    pytest tests), run with a pytest environment built under `envs_root`."""
    picked = [r for r in rows if r["split"] == split and r["task_type"] == "repair" and r["language"] == "python"]
    if not picked:
        raise ValueError(f"synthetic_tasks has no python repair task in split {split!r} to run as agent episodes")
    env_dir = str(ensure_env([], envs_root))
    return AgentEpisodeSource([from_synthetic_repair(r, env_dir) for r in picked], settings, sandbox, sessions)
