"""RL from execution feedback (hrm_rl_checkpoint): GRPO on the synthetic training tasks, starting from a
checkpoint, with every sample's reward computed by running it in the Sandbox (training/rewards.py).

One step: `prompts_per_step` training tasks (taken in turn from each task type), `group_size` samples of each
at `temperature`, their rewards from `envs` jailed runs at once, advantages within each task's group, then
`updates_per_batch` clipped policy-gradient updates with a KL penalty to the starting policy
(training/grpo.py). With `overlap`, the next step's samples are drawn while the sandbox grades this step's,
so generation and grading run side by side; those samples come from the policy one update old, which the
importance ratio (pi / pi_old, clipped) accounts for.

Log-probabilities come from the full forward in eval mode with adaptive depth, the depth the samples were
decoded with (model.generate), so pi_old is the sampling policy. Held-out progress is measured greedily on
the *validation* split (the test split stays for benchmark_report) before, every `eval_every` steps and at
the end. The run directory is named by the parent's weights, the settings and the task table, so
re-materialising with nothing changed reuses the finished run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from resources.warehouse import write_text_atomic
from training.phases import sha256_file
from training.rewards import Reward, RepairRewards, task_reward

DONE = "rl.json"  # written last in a finished run directory
TASK_TYPES = ("exec_predict", "repair")


@dataclass
class RLSettings:
    steps: int = 24
    prompts_per_step: int = 8
    group_size: int = 8
    envs: int = 32  # jailed runs at once when grading samples
    lr: float = 1e-4
    kl_coef: float = 0.02
    clip: float = 0.2
    temperature: float = 1.0
    updates_per_batch: int = 1
    micro_batch: int = 16
    task_types: tuple[str, ...] = TASK_TYPES
    exec_max_new_tokens: int = 32
    repair_max_new_tokens: int = 80
    eval_tasks: int = 32  # validation tasks per task type, scored greedily
    eval_every: int = 8
    overlap: bool = True
    seed: int = 0
    max_minutes: float = 3.0  # wall budget for the steps; 0 = none
    agent_tasks_per_step: int = 0  # agent tasks per step whose episodes are a second source (0: none)
    agent_group_size: int = 4  # episodes per agent task; advantages are relative to the task's group
    agent_episode: dict = field(default_factory=dict)  # the episodes' budget (agents.episode_rl.EpisodeSettings)

    def validate(self) -> None:
        for name in ("steps", "prompts_per_step", "group_size", "envs", "updates_per_batch", "micro_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"RL setting {name}={getattr(self, name)}: must be at least 1")
        if self.group_size < 2:
            raise ValueError("RL setting group_size must be at least 2: advantages are relative to the group")
        if self.agent_tasks_per_step < 0 or (self.agent_tasks_per_step and self.agent_group_size < 2):
            raise ValueError("RL settings agent_tasks_per_step must be >= 0 and agent_group_size at least 2")
        unknown = set(self.task_types) - set(TASK_TYPES)
        if unknown or not self.task_types:
            raise ValueError(f"RL task types {sorted(unknown) or '(none)'}: expected some of {TASK_TYPES}")


@dataclass
class Rollout:
    """One step's samples: per task `group_size` answers (token ids, text), their rewards and old log-probs."""

    tasks: list[dict]
    prompts: list[list[int]]  # per sample
    conditions: list[tuple[int, int]]  # per sample: the (language id, task id) it was decoded with
    answers: list[list[int]]  # per sample, with eos when the sample ended itself
    texts: list[str]
    old_logp: list = field(default_factory=list)  # per micro-batch [b, T] tensors
    rewards: list[Reward] = field(default_factory=list)
    sample_s: float = 0.0
    grade_s: float = 0.0
    busy_s: float = 0.0  # the graders' seconds, summed over samples


def run_fingerprint(parent_sha: str, settings: RLSettings, tasks_sha: str) -> str:
    doc = {"parent": parent_sha, "settings": asdict(settings), "tasks": tasks_sha}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=list).encode()).hexdigest()[:16]


def _max_new(settings: RLSettings, task_type: str) -> int:
    return settings.exec_max_new_tokens if task_type == "exec_predict" else settings.repair_max_new_tokens


def usable_tasks(rows: list[dict], split: str, settings: RLSettings, tokenizer, max_len: int) -> list[dict]:
    """Rows of `split` whose prompt leaves room for the answer budget, with their prompt ids."""
    out = []
    for r in rows:
        if r["split"] != split or r["task_type"] not in settings.task_types:
            continue
        ids = tokenizer.encode_prompt(r["prompt"])
        if len(ids) + _max_new(settings, r["task_type"]) <= max_len:
            out.append({**r, "prompt_ids": ids})
    return out


def across_templates(tasks: list[dict], n: int) -> list[dict]:
    """n of `tasks`, taken in turn from each template (the table lists a template's tasks together, so its first
    n would be one or two templates)."""
    by_template: dict[str, list[dict]] = {}
    for t in tasks:
        by_template.setdefault(t.get("template", ""), []).append(t)
    queues = list(by_template.values())
    out = []
    for depth in range(max(map(len, queues), default=0)):
        out += [q[depth] for q in queues if depth < len(q)]
    return out[:n]


def pick(tasks: list[dict], n: int, rng: random.Random, task_types) -> list[dict]:
    """n tasks, taken in turn from each task type (each drawn at random)."""
    by_type = {t: [x for x in tasks if x["task_type"] == t] for t in task_types}
    by_type = {t: xs for t, xs in by_type.items() if xs}
    kinds = sorted(by_type)
    return [rng.choice(by_type[kinds[i % len(kinds)]]) for i in range(n)]


def sample(model, tokenizer, tasks: list[dict], settings: RLSettings, group: int, temperature: float,
           seed: int) -> Rollout:
    """`group` answers per task (per task type, one batched generate call)."""
    from model.generate import generate_ids
    from model.vocab import language_id, task_id

    t0 = time.perf_counter()
    n = len(tasks) * group
    prompts, answers, texts, conditions = [None] * n, [None] * n, [None] * n, [None] * n
    for kind in sorted({t["task_type"] for t in tasks}):
        rows = [(i, t) for i, t in enumerate(tasks) if t["task_type"] == kind]
        slots = [i * group + j for i, _ in rows for j in range(group)]
        ids = [t["prompt_ids"] for _, t in rows for _ in range(group)]
        budget = _max_new(settings, kind)
        languages = [language_id(t["language"]) for _, t in rows for _ in range(group)]
        new = generate_ids(model, ids, languages, task_id(kind), max_new_tokens=budget, temperature=temperature,
                           eos_id=tokenizer.eos_id, seed=seed)
        for slot, p, a, lang in zip(slots, ids, new, languages):
            prompts[slot], texts[slot], conditions[slot] = p, tokenizer.decode(a), (lang, task_id(kind))
            answers[slot] = a + [tokenizer.eos_id] if len(a) < budget else a
    return Rollout(tasks, prompts, conditions, answers, texts, sample_s=time.perf_counter() - t0)


def sequence_logprobs(model, prompts, answers, conditions, pad_id: int, micro: int, grad: bool = False):
    """Per micro-batch (logp [b, T], mask [b, T], logits) of the answers under `model`, conditioned on each
    sample's (language id, task id) (eval-mode forward with adaptive depth, as decoding runs; it gives the
    decoder's log-probabilities to 1e-5); with grad=False the logits are dropped."""
    import torch

    from training.grpo import answer_batch, token_logprobs

    out = []
    for start in range(0, len(prompts), micro):
        cut = slice(start, start + micro)
        batch = answer_batch(prompts[cut], answers[cut], pad_id, conditions[cut])
        with torch.set_grad_enabled(grad):
            logits = model(batch, adaptive_depth=True).logits
            logp, mask = token_logprobs(logits, batch["labels"])
        out.append((logp, mask, logits if grad else None))
    return out


def grade(pool: ThreadPoolExecutor, reward, rollout: Rollout, group: int) -> list[Reward]:
    """Every sample's reward, `envs` at once; the seconds each took are added up in rollout.busy_s."""
    def timed(item) -> tuple[Reward, float]:
        t0 = time.perf_counter()
        return reward(*item), time.perf_counter() - t0

    out = list(pool.map(timed, [(rollout.tasks[k // group], text) for k, text in enumerate(rollout.texts)]))
    rollout.busy_s = sum(s for _, s in out)
    return [r for r, _ in out]


def heldout_score(model, tokenizer, tasks: list[dict], settings: RLSettings, pool, reward) -> dict[str, float]:
    """Greedy pass rate per task type on the validation tasks (a repair counts when every call is right)."""
    if not tasks:
        return {}
    rollout = sample(model, tokenizer, tasks, settings, 1, 0.0, settings.seed)
    rewards = grade(pool, reward, rollout, 1)
    out = {}
    for kind in settings.task_types:
        got = [r.value == 1.0 for t, r in zip(tasks, rewards) if t["task_type"] == kind]
        if got:
            out[kind] = sum(got) / len(got)
    return out


def _breakdown(rollout: Rollout, group: int, key: str) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for k, r in enumerate(rollout.rewards):
        sums.setdefault(rollout.tasks[k // group][key], []).append(r.value)
    return {name: round(sum(v) / len(v), 4) for name, v in sorted(sums.items())}


@dataclass
class _Part:
    """Sequences trained together in a step: one source's prompts, answers, decoding conditions, old
    log-probabilities (per micro-batch), advantages and weights (per sequence)."""

    prompts: list
    answers: list
    conditions: list
    old_logp: list
    adv: object  # [n] tensor
    weights: list[float]


def _agent_part(model, tokenizer, source, settings: RLSettings, rng: random.Random, step: int, pad: int,
                micro: int, reward=None) -> tuple[_Part | None, dict]:
    """Groups of agent episodes by the current policy: a _Part holding every reply, each with its episode's
    advantage and 1 / (the episode's replies) as its weight (None when no episode replied); and the step's
    agent figures."""
    import torch

    from training.grpo import group_advantages
    from training.rewards import episode_reward

    t0 = time.perf_counter()
    tasks = [rng.choice(source.tasks) for _ in range(settings.agent_tasks_per_step)]
    group = settings.agent_group_size
    samples = source.sample(model, tokenizer, tasks, group, settings.temperature, settings.seed * 100_003 + step)
    rewards = [(reward or episode_reward)(e) for e in samples]
    values = torch.tensor([r.value for r in rewards]).view(-1, group)
    adv = group_advantages(values).flatten()
    prompts, answers, conditions, advs, weights = [], [], [], [], []
    for e, a in zip(samples, adv.tolist()):
        turns = [(p, t) for p, t in e.turns if t]
        prompts += [p for p, _ in turns]
        answers += [t for _, t in turns]
        conditions += [tuple(e.condition)] * len(turns)
        advs += [a] * len(turns)
        weights += [1.0 / len(turns)] * len(turns)
    figures = {"agent_reward": round(float(values.mean()), 4), "agent_episodes": len(samples),
               "agent_episodes_trained": sum(1 for e in samples if any(t for _, t in e.turns)),
               "agent_groups_with_signal": int((values.std(1) > 0).sum()), "agent_replies": len(prompts),
               "agent_resolved": sum(r.kind == "fixed" for r in rewards),
               "agent_reward_kinds": {k: sum(r.kind == k for r in rewards) for k in sorted({r.kind for r in rewards})},
               "agent_episode_status": {k: sum(e.status == k for e in samples)
                                        for k in sorted({e.status for e in samples})},
               "agent_s": 0.0}
    if not prompts:
        figures["agent_s"] = round(time.perf_counter() - t0, 3)
        return None, figures
    model.eval()
    old = [lp.detach() for lp, _, _ in sequence_logprobs(model, prompts, answers, conditions, pad, micro)]
    figures["agent_s"] = round(time.perf_counter() - t0, 3)
    return _Part(prompts, answers, conditions, old, torch.tensor(advs), weights), figures


def _normalise_weights(parts: list[_Part], units: int) -> None:
    """Each single-answer sample and each agent episode weighs 1 / `units` (their count): an episode's replies
    share its weight, so a long episode does not count more than a short one."""
    for part in parts:
        part.weights = [w / units for w in part.weights]


def _update(model, ref, optimizer, parts: list[_Part], settings: RLSettings, pad: int,
            micro: int) -> tuple[dict, float]:
    """`updates_per_batch` clipped policy-gradient steps over every part's sequences: the stats averaged by
    sequence weight, and the seconds the steps took (the reference log-probabilities not counted)."""
    import torch

    from training.grpo import entropy, grpo_loss

    refs = [[lp for lp, _, _ in sequence_logprobs(ref, p.prompts, p.answers, p.conditions, pad, micro)]
            for p in parts]
    stats, t_update = {}, time.perf_counter()
    for _ in range(settings.updates_per_batch):
        optimizer.zero_grad(set_to_none=True)
        for part, ref_logp in zip(parts, refs):
            for m, (logp, mask, logits) in enumerate(sequence_logprobs(
                    model, part.prompts, part.answers, part.conditions, pad, micro, grad=True)):
                cut = slice(m * micro, (m + 1) * micro)
                weights = torch.tensor(part.weights[cut])
                loss, got = grpo_loss(logp, part.old_logp[m], ref_logp[m], part.adv[cut], mask, settings.clip,
                                      settings.kl_coef, weights=weights)
                loss.backward()
                got["entropy"] = float(entropy(logits.detach(), mask))
                got["loss"] = float(loss.detach() / weights.sum().clamp(min=1e-12))
                share = float(weights.sum()) / settings.updates_per_batch
                for k, v in got.items():
                    stats[k] = stats.get(k, 0.0) + v * share
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return stats, time.perf_counter() - t_update


def train_rl(parent_dir: str | Path, rows: list[dict], sandbox, out_dir: str | Path, settings: RLSettings,
             log=None, reward=None, agent_source=None, agent_reward=None) -> dict:
    """GRPO from the checkpoint in `parent_dir` on the training rows of the synthetic task table; the new
    checkpoint is saved in `out_dir`. Returns the run's summary (history per step, held-out scores).
    `reward(task, text) -> Reward` defaults to training.rewards.task_reward, run in `sandbox`.
    With `agent_source` (agents.episode_rl.AgentEpisodeSource: `.tasks`, `.sample(model, tokenizer, tasks,
    group, temperature, seed)`) and settings.agent_tasks_per_step > 0, each step also trains on groups of
    multi-turn agent episodes: reward at the end (training.rewards.episode_reward), every reply of an episode
    given the episode's advantage, the episode weighing as much as one single-answer sample; `agent_reward(episode)
    -> Reward` replaces episode_reward (tests)."""
    import torch

    from model.checkpoint import TOKENIZER_DIR, WEIGHTS, load_checkpoint, save_checkpoint
    from training.grpo import group_advantages

    settings.validate()
    log = log or (lambda msg: None)
    parent_dir, out_dir = Path(parent_dir), Path(out_dir)
    torch.manual_seed(settings.seed)
    model, tokenizer = load_checkpoint(parent_dir)
    if tokenizer is None:
        raise ValueError(f"{parent_dir}: the checkpoint has no tokenizer/, so its samples cannot be decoded")
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    max_len = model.config.max_seq_len
    train_tasks = usable_tasks(rows, "train", settings, tokenizer, max_len)
    if not train_tasks:
        raise ValueError(f"no training tasks of types {settings.task_types} fit max_seq_len={max_len}")
    rng = random.Random(settings.seed)
    val = usable_tasks(rows, "validation", settings, tokenizer, max_len)
    val = [t for kind in settings.task_types
           for t in across_templates([x for x in val if x["task_type"] == kind], settings.eval_tasks)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr,
                                  betas=(0.9, 0.95), weight_decay=0.0)
    if reward is None:
        repair = RepairRewards(sandbox)

        def reward(task: dict, text: str) -> Reward:
            return task_reward(repair, task, text)
    pad, group, micro = model.config.pad_token_id, settings.group_size, settings.micro_batch
    history, evals = [], []
    start = time.monotonic()
    deadline = start + settings.max_minutes * 60 if settings.max_minutes > 0 else None
    with ThreadPoolExecutor(max_workers=settings.envs) as pool, ThreadPoolExecutor(max_workers=1) as grader:
        evals.append({"step": 0, **heldout_score(model, tokenizer, val, settings, pool, reward)})
        log(f"RL start: held-out {evals[-1]}, {len(train_tasks)} training tasks")

        def draw(step: int) -> tuple[Rollout, Future]:
            rollout = sample(model, tokenizer, pick(train_tasks, settings.prompts_per_step, rng, settings.task_types),
                             settings, group, settings.temperature, settings.seed * 100_003 + step)
            model.eval()
            rollout.old_logp = [lp.detach() for lp, _, _ in
                                sequence_logprobs(model, rollout.prompts, rollout.answers, rollout.conditions, pad,
                                                  micro)]

            def graded() -> Rollout:
                t0 = time.perf_counter()
                rollout.rewards = grade(pool, reward, rollout, group)
                rollout.grade_s = time.perf_counter() - t0
                return rollout
            return rollout, grader.submit(graded)

        pending = draw(0)
        step = 0
        while step < settings.steps:
            t_step = time.perf_counter()
            # overlap: the next step's samples are drawn (by this policy, before its update) while the sandbox
            # grades this step's, and graded while this step's update runs
            following = draw(step + 1) if settings.overlap and step + 1 < settings.steps else None
            wait0 = time.perf_counter()
            rollout = pending[1].result()
            wait_s = time.perf_counter() - wait0
            rewards = torch.tensor([r.value for r in rollout.rewards]).view(-1, group)
            adv = group_advantages(rewards).flatten()
            parts_in = [_Part(rollout.prompts, rollout.answers, rollout.conditions, rollout.old_logp, adv,
                              [1.0] * len(rollout.texts))]
            agent = {}
            if agent_source is not None and settings.agent_tasks_per_step:
                episodes, agent = _agent_part(model, tokenizer, agent_source, settings, rng, step, pad, micro,
                                              agent_reward)
                parts_in += [episodes] if episodes is not None else []
            _normalise_weights(parts_in, len(rollout.texts) + agent.get("agent_episodes_trained", 0))
            model.eval()  # the forward the samples were decoded with; gradients flow all the same
            stats, update_s = _update(model, ref, optimizer, parts_in, settings, pad, micro)
            if following is None and step + 1 < settings.steps:
                following = draw(step + 1)
            pending = following
            step += 1
            history.append({"step": step, "reward": round(float(rewards.mean()), 4),
                            "reward_std_in_group": round(float(rewards.std(1, unbiased=False).mean()), 4),
                            "groups_with_signal": int((rewards.std(1) > 0).sum()),
                            **{k: round(v, 5) for k, v in stats.items()},
                            "reward_by_task_type": {**_breakdown(rollout, group, "task_type"),
                                                    **({"agent_episode": agent["agent_reward"]} if agent else {})},
                            "reward_by_language": _breakdown(rollout, group, "language"),
                            "reward_by_template": _breakdown(rollout, group, "template"),
                            "reward_kinds": {k: sum(r.kind == k for r in rollout.rewards)
                                             for k in sorted({r.kind for r in rollout.rewards})},
                            "samples": len(rollout.texts), "sample_s": round(rollout.sample_s, 3),
                            "grade_s": round(rollout.grade_s, 3), "wait_for_grading_s": round(wait_s, 3),
                            "update_s": round(update_s, 3),
                            # the share of the environments' capacity in use while this step was graded
                            "env_utilisation": round(rollout.busy_s / max(settings.envs * rollout.grade_s, 1e-9), 4),
                            "step_s": round(time.perf_counter() - t_step, 3), **agent})
            h = history[-1]
            log(f"RL step {step}/{settings.steps}: reward {h['reward']:.3f}, kl {h['kl']:.4f}, "
                f"entropy {h['entropy']:.3f}, {h['groups_with_signal']}/{settings.prompts_per_step} groups with signal")
            if step % settings.eval_every == 0 and step < settings.steps:
                evals.append({"step": step, **heldout_score(model, tokenizer, val, settings, pool, reward)})
            if deadline is not None and time.monotonic() > deadline:
                log(f"RL stopped by its {settings.max_minutes} min budget after {step} steps")
                break
        if pending is not None:
            pending[1].result()  # a drawn step the budget cut off: let its grading finish before the pool closes
        evals.append({"step": step, **heldout_score(model, tokenizer, val, settings, pool, reward)})
    wall = time.monotonic() - start
    log(f"RL done: held-out {evals[0]} -> {evals[-1]} in {wall:.0f}s")
    save_checkpoint(out_dir, model, model.config, tokenizer_dir=parent_dir / TOKENIZER_DIR,
                    train_config={"rl": asdict(settings), "parent": str(parent_dir)})
    samples = sum(h["samples"] for h in history)
    return {"checkpoint_dir": str(out_dir), "weights_sha256": sha256_file(out_dir / WEIGHTS),
            "parent_checkpoint_dir": str(parent_dir), "parent_sha256": sha256_file(parent_dir / WEIGHTS),
            "steps": step, "stopped_early_by_time_budget": step < settings.steps, "wall_s": round(wall, 2),
            "samples": samples, "samples_per_s": round(samples / max(wall, 1e-9), 3),
            "train_tasks": len(train_tasks), "validation_tasks": len(val),
            "heldout_before": evals[0], "heldout_after": evals[-1], "heldout": evals, "history": history,
            "settings": asdict(settings)}


def rl_checkpoint(warehouse, sandbox, settings: RLSettings, parent: str = "hrm_checkpoint", log=None,
                  agent_source=None) -> dict:
    """Train (or reuse the finished run of) GRPO from the published `parent` checkpoint on synthetic_tasks (and
    `agent_source`'s episodes, see train_rl), publish it as hrm_rl_checkpoint and return its summary (with the
    curves PNG under `curves_png`)."""
    from training.plots import rl_curves_png

    source = warehouse.latest_checkpoint(parent)
    parent_dir = Path(source["checkpoint_dir"])
    rows = warehouse.read_table("synthetic_tasks").to_pylist()
    tasks_sha = warehouse.table_hash("synthetic_tasks")
    run_dir = warehouse.checkpoint_dir("hrm_rl_checkpoint", run_fingerprint(source["weights_sha256"], settings,
                                                                            tasks_sha))
    done = run_dir / DONE
    if done.exists():
        summary = json.loads(done.read_text())
        (log or print)(f"reusing the finished RL run {run_dir}")
    else:
        summary = train_rl(parent_dir, rows, sandbox, run_dir / "checkpoint", settings, log=log,
                           agent_source=agent_source)
        summary.update(name="hrm_rl_checkpoint", arch=source.get("arch", "hrm"), params=source.get("params"),
                       model_config=source.get("model_config"), run_dir=str(run_dir), parent=parent,
                       weights_bytes=(Path(summary["checkpoint_dir"]) / "model.safetensors").stat().st_size,
                       created_at=time.time())
        (run_dir / "rl_curves.png").write_bytes(rl_curves_png(summary["history"], summary["heldout"]))
        write_text_atomic(done, json.dumps(summary, indent=1))
    warehouse.publish_checkpoint("hrm_rl_checkpoint", {k: v for k, v in summary.items() if k != "history"})
    return {**summary, "curves_png": (run_dir / "rl_curves.png").read_bytes()}
