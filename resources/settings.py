"""Every setting the project reads from the environment, declared once: name, type, default, meaning.

Read a setting with the accessor of its type (`env_str`, `env_int`, `env_float`, `env_bool`); a name that is
not declared here, or read as another type, is refused. An empty variable counts as unset; a malformed one
is an error that names the variable. Asset configs take their defaults through `from_env`, which reads the
variable when the config is built (each run), not when the code location loads.

`python -m resources.settings --markdown` prints the README's configuration table.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type  # str, int, float or bool
    default: str | int | float | bool
    meaning: str


@dataclass(frozen=True)
class SettingGroup:
    """`<prefix><FIELD>` for each field of a resource class; the defaults are the class's own."""
    prefix: str
    owner: str
    meaning: str


_DECLARED = (
    # --- where things live, how runs execute ---------------------------------------------------
    Setting("HRM_DATA_DIR", str, str(REPO_ROOT / ".hrm_data"),
            "parquet tables, clones, checkpoints, DuckDB history"),
    Setting("HRM_TOOLCHAIN_DIR", str, str(REPO_ROOT / ".toolchains"),
            "language toolchains, bound read-only into every jail"),
    Setting("HRM_EXECUTOR", str, "in_process", "`multiprocess` to run steps in parallel processes"),
    Setting("HRM_MAX_CONCURRENT", int, 2, "steps at once under the multiprocess executor"),
    Setting("HRM_SANDBOX_SLOT_DIR", str, "/tmp/hrm-sandbox-slots", "lock files of the sandbox's uid slots"),
    Setting("HRM_SANDBOX_STAGE_DIR", str, "",
            "each jail's staging files; empty: /dev/shm where writable, else the system temp dir"),
    Setting("HRM_DEPLOYMENT", str, "",
            "Docker deployment (deploy/docker/): its name; every run container is labelled `hrm/deployment` with it"),
    Setting("HRM_DOCKER_DATA_VOLUME", str, "",
            "Docker deployment: the volume every run container mounts at `HRM_DATA_DIR`"),
    Setting("HRM_DOCKER_NETWORK", str, "",
            "Docker deployment: the network every run container joins (the instance config reads it)"),
    Setting("HRM_DOCKER_GPUS", str, "",
            "Docker deployment: `all`, a count, or empty: the GPUs of every run container (`up.sh`: `all` where "
            "`nvidia-smi` sees a GPU)"),
    Setting("HRM_UI_PORT", int, 3000, "Docker deployment (`up.sh`): the host port of the Dagster UI"),
    Setting("HRM_UI_BIND", str, "127.0.0.1", "Docker deployment (`up.sh`): the host address the UI port is bound to"),
    Setting("HRM_POSTGRES_PASSWORD", str, "",
            "Docker deployment (`up.sh`): the Postgres password; empty: made up and kept in "
            "`deploy/docker/.build/<deployment>.env` (mode 600)"),
    Setting("HRM_TOOLCHAIN_PACKAGES", str, "all the sandbox's toolchains",
            "Docker deployment (`build.sh`): the Debian packages of the language toolchains in the project image "
            "(empty: Python only)"),
    Setting("HRM_SKIP_BUILD", bool, False, "Docker deployment (`up.sh`): start without rebuilding the images"),
    # --- automation ----------------------------------------------------------------------------
    Setting("HRM_NIGHTLY_CRON", str, "0 2 * * *", "schedule `nightly_regression` (report on the latest checkpoints)"),
    Setting("HRM_WEEKLY_CRON", str, "0 3 * * 0", "schedule `weekly_retrain` (retrain, quantize, report)"),
    Setting("HRM_SCHEDULE_TZ", str, "UTC", "time zone of both schedules"),
    Setting("HRM_GATE_BENCHMARKS", str, "all",
            "champion/challenger gate of `weekly_retrain`: the `hrm eval --benchmark` names both checkpoints are "
            "scored on (comma-separated, e.g. `humaneval,synthetic,bpb`)"),
    Setting("HRM_GATE_PRESET", str, "smoke", "evaluation preset of the champion/challenger gate"),
    Setting("HRM_RETRAIN_STEPS", int, 100,
            "`weekly_retrain`: optimizer steps each checkpoint trains on from the latest one (on all current shards)"),
    Setting("HRM_REGRESSION_THRESHOLDS", str, "default=0.05",
            "largest allowed worsening per metric without per-problem results on both sides (bits per byte, "
            "speed, reports from before per-problem results), e.g. `default=0.05,bits_per_byte_python=0.1`"),
    Setting("HRM_REGRESSION_ALPHA", float, 0.05,
            "significance level of the paired per-problem regression test (one-sided exact McNemar; check and alert)"),
    Setting("HRM_ALERT_WEBHOOK_URL", str, "",
            "webhook every alert is POSTed to (a secret: read through `dg.EnvVar`, never shown, logged or stored; "
            "set it before the code location loads); empty: alerts are only recorded in the history"),
    Setting("HRM_ALERT_FORMAT", str, "slack",
            "alert body: `slack` (incoming-webhook `{\"text\": ...}`) or `json` (kind, message, details, run_id, "
            "run_url, time)"),
    Setting("HRM_ALERT_TIMEOUT", float, 3.0, "seconds an alert POST may take (a timeout is not retried)"),
    Setting("HRM_DAGSTER_UI_URL", str, "http://127.0.0.1:3000", "Dagster UI base URL; alerts link to `<ui>/runs/<run_id>`"),
    # --- benchmark sources ---------------------------------------------------------------------
    Setting("HRM_POLYGLOT_SOURCE", str, "https://github.com/Aider-AI/polyglot-benchmark",
            "Polyglot benchmark clone source: URL, path or git bundle"),
    Setting("HRM_POLYGLOT_FOLLOW_UPSTREAM", bool, False,
            "sensor `new_polyglot_commit` re-clones the source's HEAD when it moves; off: the benchmark stays at "
            "its pinned commit"),
    Setting("HRM_POLYGLOT_CACHE", str, "",
            "shared Polyglot builds kept between runs; empty: `<data>/cache/polyglot`"),
    Setting("HRM_LCB_SOURCE", str, "",
            "LiveCodeBench directory/file or `hf://<dataset>`; empty: the default run skips LCB and an "
            "explicit load reads `hf://livecodebench/code_generation_lite`"),
    Setting("HRM_LCB_RELEASES", str, "release_v6", "comma-separated LCB release tags the default run loads"),
    Setting("HRM_LCB_START_DATE", str, "", "first contest date kept (YYYY-MM-DD); empty: no bound"),
    Setting("HRM_LCB_END_DATE", str, "", "last contest date kept (YYYY-MM-DD); empty: no bound"),
    Setting("HRM_LCB_TRAINING_CUTOFF", str, "", "keep LCB problems strictly after this date; empty: all"),
    Setting("HRM_LCB_TEST_OUTPUT_SOURCE", str, "", "LCB test-output prediction instances; empty: skipped"),
    Setting("HRM_LCB_EXECUTION_SOURCE", str, "", "LCB code-execution instances; empty: skipped"),
    Setting("HF_ENDPOINT", str, "https://huggingface.co", "Hugging Face hub the `hf://` LCB source reads"),
    Setting("HF_HUB_OFFLINE", bool, False, "read `hf://` sources from the local Hugging Face cache only"),
    # --- training data -------------------------------------------------------------------------
    Setting("HRM_CORPUS_SOURCES", str, "default", "`default` or JSON `{\"language\": [\"dir\", ...]}`"),
    Setting("HRM_CORPUS_MAX_FILES_PER_LANGUAGE", int, 120, "corpus files per language"),
    Setting("HRM_CORPUS_MIN_BYTES", int, 200, "smallest corpus file kept"),
    Setting("HRM_CORPUS_MAX_BYTES", int, 64_000, "largest corpus file kept"),
    Setting("HRM_CORPUS_HF_SOURCES", str, "", "comma-separated `language|dataset|split|field` corpus sources"),
    Setting("HRM_CORPUS_HF_LIMIT", int, 1000, "rows read per Hugging Face corpus source"),
    Setting("HRM_CORPUS_NEAR_DUP", float, 0.85, "similarity (MinHash) at which a corpus file counts as a near duplicate"),
    Setting("HRM_DECONTAM_NGRAM", int, 20, "n-gram length (tokens) for decontamination"),
    Setting("HRM_DECONTAM_TABLES", str, "polyglot_problems,humaneval_problems,lcb_problems",
            "benchmark tables the corpus is decontaminated against"),
    Setting("HRM_SYNTH_EXEC_PER_TEMPLATE", int, 300, "execution-prediction tasks per template and language"),
    Setting("HRM_SYNTH_REPAIR_PER_TEMPLATE", int, 150, "repair tasks per template and language"),
    Setting("HRM_SYNTH_LANGUAGES", str, "python,javascript", "languages of the synthetic tasks"),
    Setting("HRM_SYNTH_HELDOUT", str, "", "held-out synthetic templates; empty: datagen.synthetic.DEFAULT_HELDOUT"),
    Setting("HRM_SYNTH_SEED", int, 0, "seed of the synthetic tasks"),
    Setting("HRM_SYNTH_HELDOUT_EXEC_TASKS", int, 120,
            "execution-prediction tasks in each held-out split (instances, templates)"),
    Setting("HRM_SYNTH_HELDOUT_REPAIR_TASKS", int, 120, "repair tasks in each held-out split (instances, templates)"),
    Setting("HRM_TOKENIZER_VOCAB_SIZE", int, 2048, "BPE vocabulary (the model's vocab_size follows it)"),
    Setting("HRM_TOKENIZER_MAX_CHARS", int, 8_000_000, "characters the tokenizer trains on"),
    Setting("HRM_CORPUS_EXAMPLES_PER_FILE", int, 20, "training examples cut from each corpus file"),
    Setting("HRM_CORPUS_MAX_BODY_LINES", int, 30, "longest function body turned into an example"),
    Setting("HRM_CORPUS_CHUNKS_PER_FILE", int, 8, "file-continuation examples (runs of whole lines) per corpus file"),
    Setting("HRM_TASK_TABLES", str, "swesmith_tasks,tool_use_examples,swe_trajectories,multi_agent_scenarios,doc_tasks,git_tasks,"
            "multifile_tasks",
            "task tables folded into training_examples"),
    Setting("HRM_SHARD_MAX_TOKENS", int, 384, "longest example kept in a curriculum shard"),
    Setting("HRM_SHARD_MAX_PER_LANGUAGE", int, 3000, "examples per (language, split) per stage; 0: no cap"),
    Setting("HRM_SHARD_SEED", int, 0, "seed of the shard sampling"),
    # --- SWE data ------------------------------------------------------------------------------
    Setting("HRM_SWE_REPOS", str, "",
            "comma-separated repo specs (see docs/swe.md); empty: addict, inflection and cachetools from PyPI"),
    Setting("HRM_SWE_SEED", int, 24, "seed of the SWE-smith bug generation"),
    Setting("HRM_SWE_MAX_BUGS_PER_REPO", int, 20, "bug candidates per repo"),
    Setting("HRM_SWE_MAX_PER_MODIFIER", int, 12, "bug candidates per modifier"),
    Setting("HRM_SWE_TRAJ_TASKS_PER_REPO", int, 1, "tasks per repo the oracle demonstrates in swe_trajectories"),
    Setting("HRM_SWE_TRAJ_WORKERS", int, 2, "rollouts at once (each runs tests: about the core count)"),
    Setting("HRM_SWE_TRAJECTORIES", str, "", "SWE-smith trajectory files or an HF dataset to load as well"),
    # --- agents ----------------------------------------------------------------------------------
    Setting("HRM_AGENT_POLICIES", str, "oracle,hrm",
            "agent_rollouts partitions: oracle, hrm, baseline (the latest published checkpoint of that name)"),
    Setting("HRM_AGENT_TASKS", int, 2, "episodes per policy in agent_rollouts"),
    Setting("HRM_AGENT_MAX_STEPS", int, 6, "steps an episode may take"),
    Setting("HRM_AGENT_MAX_TOKENS", int, 2000, "tokens a policy may generate over an episode"),
    Setting("HRM_AGENT_MAX_WALL_S", float, 120.0, "seconds an episode may take (verification not counted)"),
    Setting("HRM_AGENT_MAX_NEW_TOKENS", int, 96, "tokens a local or endpoint policy may generate per reply"),
    Setting("HRM_AGENT_POLYGLOT", str, "",
            "Polyglot exercises agent_rollouts adds to its SWE-smith tasks: comma-separated languages (cpp, go, "
            "java, javascript, python, rust) or `all`; empty: none"),
    Setting("HRM_AGENT_POLYGLOT_PER_LANGUAGE", int, 1, "exercises per language agent_rollouts takes (the first by id)"),
    Setting("HRM_AGENT_REPO_MAP_TOKENS", int, 256,
            "tokens of repository map (datagen/repomap.py: files ranked for the issue, their signatures) after a SWE "
            "task's statement in agent_rollouts; 0: none"),
    Setting("HRM_TOOL_USE_SEED", int, 0, "seed of the tool-use workflows"),
    Setting("HRM_TOOL_USE_VARIANTS", int, 1, "seeded variants of each tool-use workflow"),
    Setting("HRM_TOOL_USE_ONLY", str, "", "comma-separated tool-use workflow names; empty: all"),
    Setting("HRM_SWE_SCENARIO_MAX_TASKS", int, 60, "newest resolved orchestrator task runs kept as multi-agent scenarios"),
    # --- agents --------------------------------------------------------------------------------
    Setting("HRM_ORCH_TASKS", int, 2, "SWE-smith tasks per orchestrator_runs run"),
    Setting("HRM_ORCH_COMBINED", int, 1, "plus tasks combining bugs of different files (parallel parts, a real merge)"),
    Setting("HRM_ORCH_AGENTS", int, 4, "parallel agents (and jailed sessions in the pool)"),
    Setting("HRM_ORCH_POLICY", str, "oracle", "the agents' policy: oracle, local:CKPT or openai:URL#MODEL"),
    Setting("HRM_ORCH_PLANNER", str, "rules", "rules, or a model spec that picks each task's decomposition"),
    Setting("HRM_ORCH_FAILURES", str, "kill", "failures injected into a run: kill (a jail), hang (an agent)"),
    Setting("HRM_ORCH_ROLE_POLICIES", str, "",
            "with a model HRM_ORCH_POLICY: `role=spec,...`, some roles' own model specs, e.g. "
            "`rust_developer=local:CKPT+ADAPTER` (a specialist_adapters spec); the other roles run HRM_ORCH_POLICY"),
    Setting("HRM_ORCH_WORKERS", str, "threads", "agents as threads of the run (threads) or worker processes on a "
            "directory transport (processes)"),
    Setting("HRM_ORCH_ROLE_CREDIT", bool, True, "after a run, credit each final part and role with the tests its "
            "patch made pass (leave-one-out and alone, in fresh jails: agents/orchestrator/credit.py)"),
    # --- training ------------------------------------------------------------------------------
    Setting("HRM_MODEL_PRESET", str, "cpu-default",
            "ModelConfig preset: cpu-default, cpu-long, tiny, small, 100m, gpu-base, gpu-100m, gpu-1b"),
    Setting("HRM_MODEL_OVERRIDES", str, "", "JSON of ModelConfig fields over the preset"),
    Setting("HRM_TRAIN_STEPS_PER_STAGE", int, 220, "optimizer steps per curriculum phase"),
    Setting("HRM_TRAIN_BATCH_SIZE", int, 16, "sequences per step"),
    Setting("HRM_TRAIN_GRAD_ACCUM", int, 1, "micro-batches per optimizer step"),
    Setting("HRM_TRAIN_MICRO_BATCH_TOKENS", int, 2048,
            "cut each micro-batch, sorted by length, into pieces of at most this many padded tokens (the same "
            "gradient with less padding); 0: never"),
    Setting("HRM_TRAIN_PACK", bool, True,
            "pack each micro-batch's sequences into rows of up to max_seq_len tokens, one document each (no "
            "padding between them; the same loss as unpacked), cut by HRM_TRAIN_MICRO_BATCH_TOKENS"),
    Setting("HRM_TRAIN_LR", float, 2e-3, "peak learning rate"),
    Setting("HRM_TRAIN_WARMUP_STEPS", int, 20, "learning-rate warmup steps"),
    Setting("HRM_TRAIN_DTYPE", str, "bf16", "bf16 (autocast; weights stay fp32) or fp32"),
    Setting("HRM_TRAIN_TASK_WEIGHTS", str, "repair=3,exec_predict=2",
            "`task=weight,...`: draw (language, task) groups with these weights; empty: draw languages only"),
    Setting("HRM_TRAIN_QAT", bool, False, "8-bit quantization-aware training"),
    Setting("HRM_WANDB", bool, False, "log to Weights & Biases in offline mode (needs the wandb package)"),
    Setting("HRM_TRAIN_SEED", int, 0, "seed of training"),
    Setting("HRM_TRAIN_CHECKPOINT_EVERY", int, 50, "steps between checkpoints"),
    Setting("HRM_TRAIN_MAX_MINUTES", float, 6.0, "wall budget of a checkpoint asset, all phases; 0: none"),
    Setting("HRM_TORCHRUN_NPROC", int, 0, "> 0: each phase runs under torchrun with this many ranks (DDP)"),
    Setting("HRM_QUANT_KINDS", str, "int8,nf4", "quantized versions of the HRM checkpoint"),
    Setting("HRM_QUANT_EVAL_TASKS", int, 32, "held-out synthetic tasks for the quantization loss delta"),
    Setting("HRM_QUANT_SPEED_PROMPTS", int, 8, "prompts of the quantized speed measurement"),
    Setting("HRM_QUANT_SPEED_TOKENS", int, 16, "new tokens per prompt of the speed measurement"),
    Setting("HRM_QUANT_QAT_STEPS", int, 0,
            "> 0: fine-tune HRM this many steps with 8-bit QAT into hrm-int8-qat (add it to HRM_REPORT_MODELS)"),
    Setting("HRM_QUANT_QAT_LR", float, 0.0, "learning rate of the QAT fine-tune; 0: the HRM run's final rate"),
    Setting("HRM_RL_STEPS", int, 6, "hrm_rl_checkpoint: GRPO steps from hrm_checkpoint (each: prompts x group samples)"),
    Setting("HRM_RL_PROMPTS", int, 8, "training tasks per RL step, taken in turn from each task type"),
    Setting("HRM_RL_GROUP", int, 8, "samples per task; advantages are relative to the task's group"),
    Setting("HRM_RL_ENVS", int, 32, "jailed sandbox runs at once when grading RL samples"),
    Setting("HRM_RL_LR", float, 1e-4, "learning rate of the RL updates (AdamW)"),
    Setting("HRM_RL_KL", float, 0.02, "weight of the KL penalty to the starting policy"),
    Setting("HRM_RL_CLIP", float, 0.2, "clipping range of the importance ratio"),
    Setting("HRM_RL_TEMPERATURE", float, 1.0, "sampling temperature of the RL rollouts"),
    Setting("HRM_RL_TASKS", str, "exec_predict,repair", "synthetic task types RL trains on (rewards: training/rewards.py)"),
    Setting("HRM_RL_EVAL_TASKS", int, 24, "validation tasks per task type scored greedily during RL (the curve)"),
    Setting("HRM_RL_MAX_MINUTES", float, 2.0, "wall budget of the RL steps; 0: none"),
    Setting("HRM_RL_SEED", int, 0, "seed of the RL run"),
    Setting("HRM_RL_AGENT_TASKS", int, 1,
            "agent tasks per RL step (synthetic Python repairs in jailed sessions) whose multi-turn episodes are a "
            "second source; 0: none"),
    Setting("HRM_RL_AGENT_GROUP", int, 2, "episodes per agent task; advantages are relative to the task's group"),
    Setting("HRM_RL_AGENT_MAX_STEPS", int, 2, "replies per RL agent episode"),
    Setting("HRM_RL_AGENT_MAX_NEW_TOKENS", int, 96, "tokens per reply in RL agent episodes"),
    Setting("HRM_SPECIALISTS", str, "rust",
            "specialist LoRA adapters trained from hrm_checkpoint, comma-separated slices of training_examples: "
            "languages (cpp, go, java, javascript, python, rust) or task types (repair, exec_predict, tool_use, "
            "diff_edit, agent_step, plan); empty: none"),
    Setting("HRM_SPECIALIST_STEPS", int, 20, "optimizer steps per specialist adapter"),
    Setting("HRM_SPECIALIST_BATCH_SIZE", int, 16, "sequences per step of a specialist adapter"),
    Setting("HRM_SPECIALIST_RANK", int, 8, "LoRA rank of the specialist adapters"),
    Setting("HRM_SPECIALIST_ALPHA", float, 16.0, "LoRA alpha (the update is scaled by alpha / rank)"),
    Setting("HRM_SPECIALIST_LR", float, 3e-3, "peak learning rate of the specialist adapters"),
    Setting("HRM_SPECIALIST_EVAL_FILES", int, 0,
            "held-out corpus files per language in a language specialist's domain score; 0: all"),
    # --- evaluation ----------------------------------------------------------------------------
    Setting("HRM_REPORT_MODELS", str, "hrm,hrm-rl,baseline,hrm-int8,hrm-nf4",
            "models in the benchmark report: warehouse names (hrm, hrm-rl, baseline, hrm-int8, hrm-nf4, hrm-int8-qat) "
            "and model specs (local:CKPT_DIR[+ADAPTER_DIR][@int8|@nf4], openai:BASE_URL#MODEL), comma-separated"),
    Setting("HRM_OPENAI_API_KEY", str, "",
            "the key sent to openai: model specs' endpoints (else OPENAI_API_KEY); never logged"),
    Setting("HRM_EVAL_PRESET", str, "smoke",
            "evaluation preset: `smoke` (small subsets), `standard`, `full` (every problem); each HRM_EVAL_* "
            "setting below overrides it only when set, and its default is the smoke value"),
    Setting("HRM_EVAL_HUMANEVAL_PROBLEMS", int, 4, "HumanEval problems evaluated"),
    Setting("HRM_EVAL_HUMANEVAL_N", int, 5, "HumanEval samples per problem"),
    Setting("HRM_EVAL_HUMANEVAL_TEMPERATURE", float, 0.8, "HumanEval sampling temperature"),
    Setting("HRM_EVAL_MAX_NEW_TOKENS", int, 48, "generation length on HumanEval and LCB"),
    Setting("HRM_EVAL_POLYGLOT_SUBSET", str, "python:1,javascript:1", "`lang:count`, `lang/exercise` names, or `all`"),
    Setting("HRM_EVAL_POLYGLOT_FORMATS", str, "whole,diff", "Polyglot edit formats evaluated"),
    Setting("HRM_EVAL_POLYGLOT_MAX_NEW_TOKENS", int, 64, "generation length on Polyglot"),
    Setting("HRM_EVAL_LCB_PROBLEMS", int, 10, "LCB problems evaluated"),
    Setting("HRM_EVAL_LCB_N", int, 1, "LCB samples per problem"),
    Setting("HRM_EVAL_SYNTHETIC_TASKS", int, 0,
            "held-out synthetic tasks per type and split, spread over templates (and tool-use tasks); 0: all"),
    Setting("HRM_EVAL_SYNTHETIC_MAX_NEW_TOKENS", int, 32, "generation length on synthetic tasks"),
    Setting("HRM_EVAL_DECODERS", bool, True,
            "also score held-out repair and Polyglot diff with the edit decoder, tool use with the tool decoder "
            "(`*_edit_decoder`, `*_tool_decoder` metrics), and held-out repair with SEARCH text snapped to the file "
            "(`repair_fix_rate_snap`)"),
    Setting("HRM_EVAL_BATCH_SIZE", int, 64, "prompts per generation batch"),
    Setting("HRM_EVAL_SEED", int, 0, "seed of sampling and subsets"),
    # issue 18: documentation
    Setting("HRM_DOC_TASKS_PER_REPOSITORY", int, 40,
            "documentation tasks (doc_tasks) per repository and kind: docstring, api_reference, readme_section"),
    Setting("HRM_DOC_MIN_CHARS", int, 24, "human documentation shorter than this gives no documentation task"),
    Setting("HRM_DOC_MAX_CHARS", int, 600, "human documentation longer than this gives no documentation task"),
    Setting("HRM_DOC_PROMPT_CHARS", int, 1200,
            "the code in a documentation prompt (and the editor's), cut at a statement or line end"),
    Setting("HRM_DOC_README", bool, True,
            "README-section tasks from Rust crates whose README.md is on this machine beside the sources"),
    Setting("HRM_EVAL_DOCS_TASKS", int, 64,
            "held-out documentation tasks evaluated (benchmark docs), spread over kinds and languages; 0: all"),
    Setting("HRM_EVAL_DOCS_MAX_NEW_TOKENS", int, 128, "generation length on the documentation tasks"),
    # issue 18: git
    Setting("HRM_GIT_HISTORY_SOURCES", str, "",
            "git histories (comma-separated local repos, bundles or URLs) whose commits give `git_tasks` its "
            "commit-message rows; empty: the Polyglot benchmark source and the git-kind swe_repos"),
    Setting("HRM_GIT_TEST_PERCENT", int, 30,
            "share of conflict pairs and commits `git_tasks` holds out as its test split (by stable hash)"),
    Setting("HRM_GIT_MAX_PAIRS", int, 40, "conflicting bug pairs `git_tasks` validates per repository"),
    Setting("HRM_GIT_MAX_DIFF_CHARS", int, 4000, "a commit's diff in a commit-message prompt is cut to this length"),
    Setting("HRM_EVAL_GIT_TASKS", int, 16, "held-out git conflicts and commits evaluated, each; 0: all"),
    Setting("HRM_EVAL_GIT_MAX_NEW_TOKENS", int, 256,
            "generation length of conflict resolutions (commit messages get at most 64 tokens)"),
    # issue 18: the language server (hrm lsp, docs/lsp.md)
    Setting("HRM_LSP_MAX_NEW_TOKENS", int, 48, "`hrm lsp`: tokens a completion generates at most"),
    Setting("HRM_LSP_CONTEXT_TOKENS", int, 256,
            "`hrm lsp`: tokens of repository map (ranked files and their signatures) in a completion prompt; "
            "0: the first lines of the other open documents instead"),
    Setting("HRM_LSP_TEST_TIMEOUT_S", float, 60.0, "`hrm lsp`: time limit of a file's tests run on save, seconds"),
    Setting("HRM_LSP_LOG_FILE", str, "",
            "`hrm lsp`: the JSON-lines request log (method, uri, ms, outcome); empty: `HRM_DATA_DIR`/lsp/requests.jsonl"),
    # issue 18: multi-file
    Setting("HRM_MULTIFILE_MAX_TASKS_PER_REPO", int, 40, "multi-file tasks kept per repository (multifile_tasks)"),
    Setting("HRM_MULTIFILE_BUGS_PER_TASK", int, 2, "single-file bugs, each in a different file, combined per task"),
    Setting("HRM_MULTIFILE_MAX_USES_PER_BUG", int, 5, "multi-file tasks one single-file bug may join"),
    Setting("HRM_MULTIFILE_TEST_PERCENT", int, 30,
            "percent of single-file bugs held out: only test tasks combine them (split by a hash of the bug id)"),
    Setting("HRM_MULTIFILE_INTERFACE_TASKS", int, 10,
            "interface-change tasks per repository (a function renamed in its definer and all but one caller file)"),
    Setting("HRM_MULTIFILE_SEED", int, 18, "seed of the multi-file combinations and their problem statements"),
    Setting("HRM_EVAL_MULTIFILE_TASKS", int, 10, "held-out multi-file tasks evaluated (benchmark multi-file; 0: all)"),
)
SETTINGS: dict[str, Setting] = {s.name: s for s in _DECLARED}

GROUPS: dict[str, SettingGroup] = {g.prefix: g for g in (
    SettingGroup("HRM_SANDBOX_", "resources.sandbox.Sandbox",
                 "sandbox limits, one variable per field, e.g. `HRM_SANDBOX_CONCURRENCY=4` (docs/sandbox.md)"),
    SettingGroup("HRM_SWEREX_", "resources.swerex.SweRexSessions",
                 "SWE-ReX sessions, one variable per field; `HRM_SWEREX_DEPLOYMENT_OPTIONS` is JSON (docs/swe.md)"),
)}

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class UnknownSetting(KeyError):
    """A name that is not declared in SETTINGS (or a prefix not in GROUPS)."""


def declared(name: str) -> Setting:
    try:
        return SETTINGS[name]
    except KeyError:
        raise UnknownSetting(f"{name} is not a declared setting (resources/settings.py)") from None


def _read(name: str, kind: type):
    setting = declared(name)
    if setting.kind is not kind:
        raise TypeError(f"{name} is declared as {setting.kind.__name__}, read as {kind.__name__}")
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return setting.default
    if kind is str:
        return raw
    if kind is bool:
        if raw.strip().lower() in _TRUE + _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError(f"environment variable {name}={raw!r}: expected 1 or 0")
    try:
        return kind(raw)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise ValueError(f"environment variable {name}={raw!r}: expected {expected}") from None


def env_str(name: str) -> str:
    return _read(name, str)


def env_int(name: str) -> int:
    return _read(name, int)


def env_float(name: str) -> float:
    return _read(name, float)


def env_bool(name: str) -> bool:
    return _read(name, bool)


def value(name: str):
    """The setting's current value, of its declared type."""
    return _read(name, declared(name).kind)


def from_env(name: str):
    """A config field whose default is the setting `name`, read each time the config is built."""
    from pydantic import Field

    declared(name)
    return Field(default_factory=lambda: value(name), description=f"{declared(name).meaning} (default: ${name})")


def from_env_if_set(name: str):
    """A config field that is the setting `name` when its variable is set (not empty), else None: the
    caller falls back to something else (an evaluation preset's value)."""
    from pydantic import Field

    declared(name)
    return Field(default_factory=lambda: value(name) if os.environ.get(name, "") != "" else None,
                 description=f"{declared(name).meaning} (default: ${name} when set)")


def env_fields(prefix: str, fields: Iterable[str]) -> dict[str, str]:
    """{field: raw text} for each `<prefix><FIELD>` variable that is set and not empty."""
    if prefix not in GROUPS:
        raise UnknownSetting(f"{prefix}* is not a declared setting group (resources/settings.py)")
    found = {f: os.environ.get(prefix + f.upper(), "") for f in fields}
    return {f: raw for f, raw in found.items() if raw != ""}


def split_csv(text: str) -> tuple[str, ...]:
    """"a, b,,c" -> ("a", "b", "c"): the comma-separated lists of config strings."""
    return tuple(s.strip() for s in text.split(",") if s.strip())


def named_numbers(text: str, what: str, key: str) -> dict[str, float]:
    """"a=3, b=0.5" -> {"a": 3.0, "b": 0.5}; a bad entry is an error naming it (`what`) and the expected
    `key=number` form."""
    out = {}
    for item in split_csv(text or ""):
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"{what} {item!r}: expected {key}=number") from None
    return out


# --- the README's configuration table ----------------------------------------------------------
def shown_default(setting: Setting) -> str:
    """The default as the table shows it: paths under the repo as `<repo>/...`, bools as 0/1, empty as `empty`."""
    default = setting.default
    if isinstance(default, bool):
        return f"`{int(default)}`"
    if default == "":
        return "empty"
    text = str(default)
    if text == str(REPO_ROOT) or text.startswith(str(REPO_ROOT) + os.sep):
        text = "<repo>" + text[len(str(REPO_ROOT)):]
    return f"`{text}`"


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{s.name}` | {shown_default(s)} | {s.meaning.replace('|', chr(92) + '|')} |" for s in _DECLARED]
    rows += [f"| `{g.prefix}<FIELD>` | each field's default in `{g.owner}` | {g.meaning} |" for g in GROUPS.values()]
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["--markdown"]:
        print("usage: python -m resources.settings --markdown", file=sys.stderr)
        return 2
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
