"""Training assets: hrm_checkpoint, baseline_checkpoint (curriculum training in the `gpu` pool, resumed after
a failure; with `retrain_steps` > 0, as the weekly job runs them, the published checkpoint is trained further
and published only if the champion/challenger gate, evals/gate.py, finds no regression) and quantized_models
(int8 and nf4 artifacts of the HRM checkpoint, and an 8-bit QAT fine-tune), with its checks on the quantized
models' task scores in benchmark_report.

Each body maps its config onto the plain settings of `training/pipeline.py` and calls one function there;
the curriculum phases, run fingerprints and the torchrun launch are in `training/phases.py`.
"""

import base64
import json

import dagster as dg

from agents.episode_rl import EpisodeSettings, synthetic_repair_source
from evals.evaluate import preset_settings
from evals.gate import champion_challenger
from hrm_assets.metadata import as_metadata, checkpoint_headline, floats
from hrm_assets.versions import files_version, hash_version, json_version, source_version
from resources.alerts import AlertSink
from resources.sandbox import Sandbox
from resources.swerex import SweRexSessions
from resources.settings import env_float, env_str, from_env, split_csv
from resources.warehouse import Warehouse
from training.pipeline import (CheckpointSettings, QuantizeSettings, build_quantized_models, parse_task_weights,
                               train_checkpoint)
from training.quantization import QUANT_GOALS, quantization_check
from training.retrain import continue_training
from training.rl import RLSettings, rl_checkpoint

CODE_VERSION = source_version("training.pipeline")


class CheckpointConfig(dg.Config):
    preset: str = from_env("HRM_MODEL_PRESET")  # ModelConfig preset (model/config.py PRESETS)
    model_overrides: str = from_env("HRM_MODEL_OVERRIDES")  # JSON of ModelConfig fields
    steps_per_stage: int = from_env("HRM_TRAIN_STEPS_PER_STAGE")
    batch_size: int = from_env("HRM_TRAIN_BATCH_SIZE")
    grad_accum: int = from_env("HRM_TRAIN_GRAD_ACCUM")
    micro_batch_tokens: int = from_env("HRM_TRAIN_MICRO_BATCH_TOKENS")
    pack: bool = from_env("HRM_TRAIN_PACK")
    lr: float = from_env("HRM_TRAIN_LR")
    warmup_steps: int = from_env("HRM_TRAIN_WARMUP_STEPS")
    dtype: str = from_env("HRM_TRAIN_DTYPE")  # bf16 autocast (weights stay fp32) or fp32
    task_weights: str = from_env("HRM_TRAIN_TASK_WEIGHTS")  # "task=weight,...": sampling weight per task type
    qat: bool = from_env("HRM_TRAIN_QAT")
    wandb: bool = from_env("HRM_WANDB")  # offline mode; needs the wandb package
    seed: int = from_env("HRM_TRAIN_SEED")
    checkpoint_every: int = from_env("HRM_TRAIN_CHECKPOINT_EVERY")
    max_minutes: float = from_env("HRM_TRAIN_MAX_MINUTES")  # wall budget for all phases; 0 = none
    torchrun_nproc: int = from_env("HRM_TORCHRUN_NPROC")  # > 0: launch each phase with torchrun (DDP)
    # > 0 (the weekly job sets HRM_RETRAIN_STEPS): continue the published checkpoint this many steps instead
    retrain_steps: int = 0
    gate_benchmarks: str = from_env("HRM_GATE_BENCHMARKS")
    gate_preset: str = from_env("HRM_GATE_PRESET")

    def to_settings(self) -> CheckpointSettings:
        return CheckpointSettings(
            preset=self.preset, model_overrides=json.loads(self.model_overrides) if self.model_overrides.strip() else {},
            steps_per_stage=self.steps_per_stage, batch_size=self.batch_size, grad_accum=self.grad_accum,
            micro_batch_tokens=self.micro_batch_tokens, pack=self.pack, lr=self.lr,
            warmup_steps=self.warmup_steps, dtype=self.dtype, task_weights=parse_task_weights(self.task_weights),
            qat=self.qat, wandb=self.wandb, seed=self.seed,
            checkpoint_every=self.checkpoint_every, max_minutes=self.max_minutes, torchrun_nproc=self.torchrun_nproc)


def checkpoint_metadata(summary: dict) -> dict:
    png64 = base64.b64encode(summary["loss_curve_png"]).decode()
    return {**checkpoint_headline(summary),
        "checkpoint": dg.MetadataValue.path(summary["checkpoint_dir"]),
        "checkpoint_hash": summary["weights_sha256"][:12],
        "params": summary["params"], "tokens_seen": summary["tokens_seen"], "wall_s": summary["wall_s"],
        "train_wall_s": summary["train_wall_s"], "tokens_per_s": summary["tokens_per_s"],
        "train_flops": summary["train_flops"] or 0.0,  # analytic, from the trainer's log (training/phases.py)
        "final_losses": dg.MetadataValue.json(summary["final_losses"]),
        "phases": dg.MetadataValue.json(summary["phases"]),
        "resumed": any(p["resumed_from_step"] > 0 for p in summary["phases"]),
        "stopped_early_by_time_budget": summary["stopped_early_by_time_budget"],
        "loss_curve": dg.MetadataValue.md(f"![loss curve](data:image/png;base64,{png64})"),
    }


def retrain_result(config: CheckpointConfig, warehouse: Warehouse, sandbox: Sandbox, name: str,
                   log, notify=None) -> dg.MaterializeResult:
    """Continue the published checkpoint, gate the challenger against it; the result describes the checkpoint
    `latest` holds afterwards (its data version unchanged when the champion stays)."""
    challenger = continue_training(config.to_settings(), warehouse, name, config.retrain_steps, log)
    verdict = champion_challenger(warehouse, sandbox, name, challenger, preset_settings(config.gate_preset),
                                  list(split_csv(config.gate_benchmarks)), env_str("HRM_REGRESSION_THRESHOLDS"),
                                  env_float("HRM_REGRESSION_ALPHA"), log=log, notify=notify)
    gate = {"gate": "challenger published" if verdict["accepted"] else "champion kept",
            "gate_verdict": dg.MetadataValue.json(verdict), "parent_hash": challenger["parent_sha256"][:12],
            "challenger_hash": challenger["weights_sha256"][:12], "retrain_steps": config.retrain_steps}
    if verdict["accepted"]:
        return dg.MaterializeResult(metadata={**checkpoint_metadata(challenger), **gate},
                                    data_version=hash_version(challenger["weights_sha256"]))
    log(verdict["message"])
    champion = warehouse.latest_checkpoint(name)
    return dg.MaterializeResult(
        metadata={**gate, "checkpoint": dg.MetadataValue.path(champion["checkpoint_dir"]),
                  "checkpoint_hash": champion["weights_sha256"][:12]},
        data_version=hash_version(champion["weights_sha256"]))


def _checkpoint_asset(name: str, arch: str, description: str):
    @dg.asset(name=name, group_name="training", kinds={"pytorch"}, pool="gpu", code_version=CODE_VERSION,
              deps=["curriculum_shards", "tokenizer"], description=description,
              tags={"dagster/max_runtime": str(6 * 3600)})
    def _asset(context: dg.AssetExecutionContext, config: CheckpointConfig, warehouse: Warehouse,
               sandbox: Sandbox, alerts: AlertSink) -> dg.MaterializeResult:
        if config.retrain_steps > 0:
            return retrain_result(config, warehouse, sandbox, name, context.log.info,
                                  notify=lambda kind, message, details: alerts.send(kind, message, details,
                                                                                    context.run_id))
        summary = train_checkpoint(config.to_settings(), warehouse, name, arch, log=context.log.info)
        return dg.MaterializeResult(metadata=checkpoint_metadata(summary),
                                    data_version=hash_version(summary["weights_sha256"]))

    return _asset


hrm_checkpoint = _checkpoint_asset(
    "hrm_checkpoint", "hrm", "The HRM-Code model trained through curriculum stages 1-4 (model/train.py); "
                             "resumes from its last checkpoint when re-materialised after a failure.")
baseline_checkpoint = _checkpoint_asset(
    "baseline_checkpoint", "baseline", "A plain transformer with the same parameter budget, trained on the same "
                                       "curriculum, for HRM-vs-baseline comparisons.")


# --- hrm_rl_checkpoint -----------------------------------------------------------------------------------
class RLConfig(dg.Config):
    steps: int = from_env("HRM_RL_STEPS")
    prompts_per_step: int = from_env("HRM_RL_PROMPTS")
    group_size: int = from_env("HRM_RL_GROUP")
    envs: int = from_env("HRM_RL_ENVS")
    lr: float = from_env("HRM_RL_LR")
    kl_coef: float = from_env("HRM_RL_KL")
    clip: float = from_env("HRM_RL_CLIP")
    temperature: float = from_env("HRM_RL_TEMPERATURE")
    task_types: str = from_env("HRM_RL_TASKS")
    eval_tasks: int = from_env("HRM_RL_EVAL_TASKS")
    max_minutes: float = from_env("HRM_RL_MAX_MINUTES")
    seed: int = from_env("HRM_RL_SEED")
    agent_tasks_per_step: int = from_env("HRM_RL_AGENT_TASKS")
    agent_group_size: int = from_env("HRM_RL_AGENT_GROUP")
    agent_max_steps: int = from_env("HRM_RL_AGENT_MAX_STEPS")
    agent_max_new_tokens: int = from_env("HRM_RL_AGENT_MAX_NEW_TOKENS")

    def to_settings(self) -> RLSettings:
        return RLSettings(steps=self.steps, prompts_per_step=self.prompts_per_step, group_size=self.group_size,
                          envs=self.envs, lr=self.lr, kl_coef=self.kl_coef, clip=self.clip,
                          temperature=self.temperature, task_types=split_csv(self.task_types),
                          eval_tasks=self.eval_tasks, max_minutes=self.max_minutes, seed=self.seed,
                          agent_tasks_per_step=self.agent_tasks_per_step, agent_group_size=self.agent_group_size,
                          agent_episode={"max_steps": self.agent_max_steps,
                                         "max_new_tokens": self.agent_max_new_tokens})


def rl_metadata(summary: dict) -> dict:
    last = summary["history"][-1] if summary.get("history") else {}
    before, after = summary["heldout_before"], summary["heldout_after"]
    png64 = base64.b64encode(summary["curves_png"]).decode()
    return {
        **{f"heldout_{k}_before": float(v) for k, v in before.items() if k != "step"},
        **{f"heldout_{k}_after": float(v) for k, v in after.items() if k != "step"},
        "reward_first_step": float(summary["history"][0]["reward"]) if summary.get("history") else 0.0,
        "reward_last_step": float(last.get("reward", 0.0)), "kl_last_step": float(last.get("kl", 0.0)),
        "entropy_last_step": float(last.get("entropy", 0.0)),
        "samples_per_s": float(summary["samples_per_s"]), "steps": summary["steps"], "wall_s": summary["wall_s"],
        "train_tasks": summary["train_tasks"], "validation_tasks": summary["validation_tasks"],
        "stopped_early_by_time_budget": summary["stopped_early_by_time_budget"],
        "checkpoint": dg.MetadataValue.path(summary["checkpoint_dir"]),
        "checkpoint_hash": summary["weights_sha256"][:12], "parent_hash": summary["parent_sha256"][:12],
        "settings": dg.MetadataValue.json(summary["settings"]),
        "reward_by_task_type": dg.MetadataValue.json([{"step": h["step"], **h["reward_by_task_type"]}
                                                      for h in summary.get("history", [])]),
        "reward_by_language": dg.MetadataValue.json([{"step": h["step"], **h["reward_by_language"]}
                                                     for h in summary.get("history", [])]),
        "curves": dg.MetadataValue.md(f"![reward, KL, entropy, held-out](data:image/png;base64,{png64})"),
        **_agent_metadata(summary.get("history", [])),
    }


def _agent_metadata(history: list[dict]) -> dict:
    """The agent-episode source's figures, when it ran: episodes, resolved, mean reward, and per step."""
    steps = [h for h in history if "agent_episodes" in h]
    if not steps:
        return {}
    keys = ("agent_reward", "agent_episodes", "agent_groups_with_signal", "agent_replies", "agent_resolved",
            "agent_episode_status", "agent_s")
    return {"agent_episodes": sum(h["agent_episodes"] for h in steps),
            "agent_resolved": sum(h["agent_resolved"] for h in steps),
            "agent_reward_mean": round(sum(h["agent_reward"] for h in steps) / len(steps), 4),
            "agent_by_step": dg.MetadataValue.json([{"step": h["step"], **{k: h[k] for k in keys}} for h in steps])}


@dg.asset(group_name="training", kinds={"pytorch"}, pool="gpu", code_version=source_version("training.rl"),
          deps=["hrm_checkpoint", "synthetic_tasks"],
          description="HRM after GRPO from execution feedback: samples of the synthetic training tasks graded in "
                      "the sandbox (exact output; repairs by their hidden calls, with partial credit), advantages "
                      "within each task's group, a KL penalty to hrm_checkpoint (training/rl.py).")
def hrm_rl_checkpoint(context: dg.AssetExecutionContext, config: RLConfig, warehouse: Warehouse,
                      sandbox: Sandbox, swe_sessions: SweRexSessions) -> dg.MaterializeResult:
    settings = config.to_settings()
    jail = sandbox.with_concurrency(settings.envs)
    agent_source = None
    if settings.agent_tasks_per_step:  # multi-turn agent episodes, the second source, all of a step's at once
        at_once = min(settings.envs, settings.agent_tasks_per_step * settings.agent_group_size)
        agent_source = synthetic_repair_source(warehouse.read_table("synthetic_tasks").to_pylist(),
                                               warehouse.path("swe") / "envs",
                                               EpisodeSettings(**settings.agent_episode, workers=at_once), jail,
                                               swe_sessions)
    summary = rl_checkpoint(warehouse, jail, settings, log=context.log.info, agent_source=agent_source)
    return dg.MaterializeResult(metadata=rl_metadata(summary), data_version=hash_version(summary["weights_sha256"]))


# --- quantized_models ------------------------------------------------------------------------------------
class QuantizeConfig(dg.Config):
    kinds: str = from_env("HRM_QUANT_KINDS")
    eval_tasks: int = from_env("HRM_QUANT_EVAL_TASKS")  # held-out synthetic tasks for the loss delta
    speed_prompts: int = from_env("HRM_QUANT_SPEED_PROMPTS")
    speed_new_tokens: int = from_env("HRM_QUANT_SPEED_TOKENS")
    qat_steps: int = from_env("HRM_QUANT_QAT_STEPS")  # > 0: an 8-bit QAT fine-tune of HRM (hrm-int8-qat)
    qat_lr: float = from_env("HRM_QUANT_QAT_LR")  # 0: the HRM run's final learning rate

    def to_settings(self) -> QuantizeSettings:
        return QuantizeSettings(kinds=split_csv(self.kinds), eval_tasks=self.eval_tasks,
                                speed_prompts=self.speed_prompts, speed_new_tokens=self.speed_new_tokens,
                                qat_steps=self.qat_steps, qat_lr=self.qat_lr)


@dg.asset(group_name="training", kinds={"pytorch"}, pool="gpu", deps=["hrm_checkpoint", "synthetic_tasks"],
          code_version=CODE_VERSION)
def quantized_models(context: dg.AssetExecutionContext, config: QuantizeConfig, warehouse: Warehouse,
                     ) -> dg.MaterializeResult:
    """int8 and nf4 artifacts of the HRM checkpoint (and of an 8-bit QAT fine-tune when configured): bytes,
    tokens/s and held-out loss vs fp32, each measured on the artifact loaded back."""
    manifest = build_quantized_models(config.to_settings(), warehouse, log=context.log.info)
    results = manifest["results"]
    table = "| model | bytes | tokens/s | held-out loss | loss Δ % |\n|---|---|---|---|---|\n" + "".join(
        f"| {k} | {v['bytes']:,} | {v['tokens_per_s']} | {v['heldout_loss']} | {v.get('loss_delta_pct', 0.0)} |\n"
        for k, v in results.items())
    headline = floats({f"{kind}/{k}": v.get(k) for kind, v in results.items()
                       for k in ("heldout_loss", "loss_delta_pct", "bytes", "tokens_per_s")})
    return dg.MaterializeResult(
        data_version=json_version({k: files_version(v["artifact"]).value for k, v in results.items() if "artifact" in v}),
        metadata={**headline, "table": dg.MetadataValue.md(table), "results": dg.MetadataValue.json(results),
                  "source_checkpoint": dg.MetadataValue.path(manifest["source_checkpoint"]),
                  "artifacts": dg.MetadataValue.json({k: v["artifact"] for k, v in results.items() if "artifact" in v}),
                  "qat": dg.MetadataValue.json(manifest["qat"] or {"note": "not configured (HRM_QUANT_QAT_STEPS=0)"}),
                  "heldout_tasks": manifest["heldout_tasks"]})


def _quantization_check(name: str, description: str):
    # runs after benchmark_report (additional_deps), whose synthetic-instances scores it compares
    @dg.asset_check(asset="quantized_models", name=name, blocking=False, additional_deps=["benchmark_report"],
                    description=description)
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        try:
            rows = warehouse.read_table("benchmark_report").to_pylist()
        except FileNotFoundError:
            rows = []
        verdict = quantization_check(warehouse.latest_checkpoint("quantized_models"), rows, QUANT_GOALS[name])
        return dg.AssetCheckResult(
            passed=verdict["passed"], severity=getattr(dg.AssetCheckSeverity, verdict["severity"]),
            description=verdict["description"],
            metadata=as_metadata(verdict["metadata"]))

    return _check


int8_within_5_percent = _quantization_check(
    "int8_within_5_percent", "hrm-int8 loses < 5 % (relative) of fp32 HRM's synthetic-instances exec_exact_match and "
                             "repair_fix_rate in the newest benchmark_report; fails when int8 is configured but its "
                             "artifact or report rows are missing")
nf4_within_10_percent = _quantization_check(
    "nf4_within_10_percent", "hrm-nf4 loses < 10 % (relative) of fp32 HRM's synthetic-instances scores; fails when nf4 "
                             "is configured but its artifact or report rows are missing")
int8_qat_within_5_percent = _quantization_check(
    "int8_qat_within_5_percent", "hrm-int8-qat (8-bit QAT fine-tune, int8) loses < 5 % of fp32 HRM's "
                                 "synthetic-instances scores; passes with a note when QAT is not configured")
