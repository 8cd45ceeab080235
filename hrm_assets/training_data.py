"""Training data assets: code_corpus, synthetic_tasks, tokenizer, training_examples, curriculum_shards.

Each body maps its config onto the plain settings of `datagen/pipeline.py`, calls one function there and
reports; each table has a blocking Great Expectations check, run on the staged table before it is published
(write-audit-publish: `Warehouse.staging`, `publish_if_passed`). Config defaults come from HRM_* settings
(resources/settings.py, read when a run builds its config).
"""

import dagster as dg

from datagen import pipeline
from datagen.schema import LANGUAGES, SPLITS, TASK_TYPES
from datagen.synthetic import DEFAULT_HELDOUT, SyntheticConfig
from hrm_assets.expectations import after_upstream, gx_check, named, publish_if_passed
from hrm_assets.versions import files_version, source_version
from resources.partitions import curriculum_stages
from resources.sandbox import Sandbox
from resources.settings import from_env, split_csv
from resources.warehouse import Warehouse

CODE_VERSION = source_version("datagen.pipeline")

# --- code_corpus -----------------------------------------------------------------------------------------
class CorpusConfig(dg.Config):
    sources: str = from_env("HRM_CORPUS_SOURCES")  # "default" or JSON {"language": ["dir", ...]}
    max_files_per_language: int = from_env("HRM_CORPUS_MAX_FILES_PER_LANGUAGE")
    min_bytes: int = from_env("HRM_CORPUS_MIN_BYTES")
    max_bytes: int = from_env("HRM_CORPUS_MAX_BYTES")
    hf_sources: str = from_env("HRM_CORPUS_HF_SOURCES")  # comma-separated language|dataset|split|field
    hf_limit: int = from_env("HRM_CORPUS_HF_LIMIT")
    near_dup_threshold: float = from_env("HRM_CORPUS_NEAR_DUP")
    decontamination_ngram: int = from_env("HRM_DECONTAM_NGRAM")
    benchmark_tables: str = from_env("HRM_DECONTAM_TABLES")

    def to_settings(self) -> pipeline.CorpusSettings:
        return pipeline.CorpusSettings(
            sources=self.sources, max_files_per_language=self.max_files_per_language, min_bytes=self.min_bytes,
            max_bytes=self.max_bytes, hf_sources=split_csv(self.hf_sources), hf_limit=self.hf_limit,
            near_dup_threshold=self.near_dup_threshold, decontamination_ngram=self.decontamination_ngram,
            benchmark_tables=split_csv(self.benchmark_tables))


@dg.asset(group_name="sources", kinds={"python", "parquet"}, deps=list(pipeline.BENCHMARK_TABLES), code_version=CODE_VERSION,
          automation_condition=after_upstream(optional_deps=("lcb_problems", "polyglot_problems")),
          check_specs=[dg.AssetCheckSpec("code_corpus_gx", asset="code_corpus", blocking=True)],
          description="Source files from local trees (and HF datasets), deduplicated and decontaminated "
                      "against every benchmark we evaluate on.")
def code_corpus(context: dg.AssetExecutionContext, config: CorpusConfig, warehouse: Warehouse):
    with warehouse.staging("code_corpus"):
        meta = pipeline.build_code_corpus(config.to_settings(), warehouse, context.log)
        check = gx_check(pipeline.corpus_check_frame(warehouse), "code_corpus", lambda gxe: [
            gxe.ExpectColumnValuesToNotBeNull(column="sha256"),
            gxe.ExpectColumnValuesToBeUnique(column="sha256"),
            gxe.ExpectColumnValuesToBeInSet(column="language",
                                            value_set=["cpp", "go", "java", "javascript", "python", "rust"]),
            gxe.ExpectColumnValuesToBeBetween(column="text_len", min_value=1),
        ])
    stats = meta["stats"]
    yield from publish_if_passed(
        warehouse, "code_corpus", named(check, "code_corpus_gx"),
        metadata={"dagster/row_count": meta["rows"], "bytes": meta["bytes"],
                  "removed_contaminated": stats["contaminated"], "removed_exact_duplicates": stats["exact_duplicates"],
                  "removed_near_duplicates": stats["near_duplicates"],
                  "per_language": dg.MetadataValue.json(stats["per_language"]),
                  "benchmark_rows_checked": dg.MetadataValue.json(meta["benchmark_rows"]),
                  "benchmark_ngrams": meta["benchmark_ngrams"]})


# --- synthetic_tasks -------------------------------------------------------------------------------------
class SyntheticTasksConfig(dg.Config):
    exec_per_template: int = from_env("HRM_SYNTH_EXEC_PER_TEMPLATE")
    repair_per_template: int = from_env("HRM_SYNTH_REPAIR_PER_TEMPLATE")
    languages: str = from_env("HRM_SYNTH_LANGUAGES")
    heldout_templates: str = from_env("HRM_SYNTH_HELDOUT")  # "" = datagen.synthetic.DEFAULT_HELDOUT
    seed: int = from_env("HRM_SYNTH_SEED")
    heldout_exec_tasks: int = from_env("HRM_SYNTH_HELDOUT_EXEC_TASKS")
    heldout_repair_tasks: int = from_env("HRM_SYNTH_HELDOUT_REPAIR_TASKS")

    def to_settings(self) -> SyntheticConfig:
        return SyntheticConfig(
            exec_per_template=self.exec_per_template, repair_per_template=self.repair_per_template,
            languages=split_csv(self.languages), seed=self.seed,
            heldout_templates=split_csv(self.heldout_templates) or DEFAULT_HELDOUT,
            heldout_exec_tasks=self.heldout_exec_tasks, heldout_repair_tasks=self.heldout_repair_tasks)


@dg.asset(group_name="training_data", kinds={"python", "parquet"}, code_version=CODE_VERSION,
          check_specs=[dg.AssetCheckSpec("synthetic_tasks_gx", asset="synthetic_tasks", blocking=True)],
          description="Execution-prediction and repair tasks whose answers come from running code in the Sandbox; "
                      "the test split holds new instances of the training templates and whole held-out templates.")
def synthetic_tasks(context: dg.AssetExecutionContext, config: SyntheticTasksConfig, sandbox: Sandbox, warehouse: Warehouse):
    with warehouse.staging("synthetic_tasks"):
        meta = pipeline.build_synthetic_tasks(config.to_settings(), sandbox, warehouse)
        context.log.info(f"synthetic_tasks: {meta['rows']} tasks, {meta['rejected']} rejected in {meta['wall_s']} s")
        check = gx_check(pipeline.synthetic_check_frame(warehouse), "synthetic_tasks", lambda gxe: [
            gxe.ExpectColumnValuesToBeUnique(column="task_id"),
            gxe.ExpectColumnValuesToBeInSet(column="task_type", value_set=["exec_predict", "repair"]),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "validation", "test"]),
            gxe.ExpectColumnValuesToNotBeNull(column="answer"),
            gxe.ExpectColumnDistinctValuesToContainSet(column="split", value_set=["train", "test"]),
        ])
    yield from publish_if_passed(
        warehouse, "synthetic_tasks", named(check, "synthetic_tasks_gx"),
        metadata={"dagster/row_count": meta["rows"], "rejected": meta["rejected"],
                  "by_type_split": dg.MetadataValue.json(meta["by_type_split"]),
                  "heldout_templates": dg.MetadataValue.json(meta["heldout_templates"]),
                  "sandbox_wall_s": meta["wall_s"]})


# --- tokenizer -------------------------------------------------------------------------------------------
class TokenizerConfig(dg.Config):
    vocab_size: int = from_env("HRM_TOKENIZER_VOCAB_SIZE")
    max_training_chars: int = from_env("HRM_TOKENIZER_MAX_CHARS")

    def to_settings(self) -> pipeline.TokenizerSettings:
        return pipeline.TokenizerSettings(vocab_size=self.vocab_size, max_training_chars=self.max_training_chars)


@dg.asset(group_name="training_data", kinds={"python"}, deps=["code_corpus", "synthetic_tasks"], code_version=CODE_VERSION,
          automation_condition=after_upstream(),
          description="Byte-level BPE tokenizer with language/task/tool/edit special tokens.")
def tokenizer(context: dg.AssetExecutionContext, config: TokenizerConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    meta = pipeline.build_tokenizer(config.to_settings(), warehouse)
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(meta["path"]), "vocab_size": meta["vocab_size"],
                                          "training_chars": meta["training_chars"],
                                          "chars_per_token": meta["chars_per_token"], "wall_s": meta["wall_s"]},
                                data_version=files_version(warehouse.tokenizer_dir()))


# --- training_examples -----------------------------------------------------------------------------------
class TrainingExamplesConfig(dg.Config):
    corpus_examples_per_file: int = from_env("HRM_CORPUS_EXAMPLES_PER_FILE")
    max_body_lines: int = from_env("HRM_CORPUS_MAX_BODY_LINES")
    corpus_chunks_per_file: int = from_env("HRM_CORPUS_CHUNKS_PER_FILE")
    task_tables: str = from_env("HRM_TASK_TABLES")

    def to_settings(self) -> pipeline.ExamplesSettings:
        return pipeline.ExamplesSettings(corpus_examples_per_file=self.corpus_examples_per_file,
                                         max_body_lines=self.max_body_lines,
                                         corpus_chunks_per_file=self.corpus_chunks_per_file,
                                         task_tables=split_csv(self.task_tables))


@dg.asset(group_name="training_data", kinds={"python", "parquet"}, code_version=CODE_VERSION,
          deps=["code_corpus", "synthetic_tasks", *pipeline.TASK_TABLES],
          automation_condition=after_upstream(optional_deps=pipeline.TASK_TABLES),
          check_specs=[dg.AssetCheckSpec("training_examples_gx", asset="training_examples", blocking=True)],
          description="Every task source in the one TrainingExample schema, with its curriculum stage.")
def training_examples(context: dg.AssetExecutionContext, config: TrainingExamplesConfig, warehouse: Warehouse):
    with warehouse.staging("training_examples"):
        meta = pipeline.build_training_examples(config.to_settings(), warehouse, context.log)
        check = gx_check(pipeline.examples_check_frame(warehouse), "training_examples", lambda gxe: [
            gxe.ExpectColumnValuesToBeUnique(column="example_id"),
            gxe.ExpectColumnValuesToBeInSet(column="task_type", value_set=list(TASK_TYPES)),
            gxe.ExpectColumnValuesToBeInSet(column="language", value_set=list(LANGUAGES)),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
            gxe.ExpectColumnValuesToBeInSet(column="stage", value_set=list(pipeline.STAGE_KEYS)),
            gxe.ExpectColumnValuesToBeBetween(column="prompt_len", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="answer_len", min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="source_asset"),
        ])
    yield from publish_if_passed(
        warehouse, "training_examples", named(check, "training_examples_gx"),
        metadata={"dagster/row_count": meta["rows"], "rejected": meta["rejected"],
                  "sources": dg.MetadataValue.json(meta["sources"]), "counts": dg.MetadataValue.json(meta["counts"]),
                  "by_source": dg.MetadataValue.json(meta["by_source"]),
                  **{f"examples/{source}": n for source, n in sorted(meta["by_source"].items())}})


# --- curriculum_shards -----------------------------------------------------------------------------------
class ShardConfig(dg.Config):
    max_seq_len: int = from_env("HRM_SHARD_MAX_TOKENS")
    max_per_language: int = from_env("HRM_SHARD_MAX_PER_LANGUAGE")  # per (language, split); 0 = no cap
    seed: int = from_env("HRM_SHARD_SEED")

    def to_settings(self) -> pipeline.ShardSettings:
        return pipeline.ShardSettings(max_seq_len=self.max_seq_len, max_per_language=self.max_per_language,
                                      seed=self.seed)


@dg.asset(group_name="training_data", kinds={"python", "parquet"}, partitions_def=curriculum_stages, code_version=CODE_VERSION,
          deps=["training_examples", "tokenizer"], automation_condition=after_upstream(),
          check_specs=[dg.AssetCheckSpec("curriculum_shards_gx", asset="curriculum_shards", blocking=True)],
          description="Token shards per curriculum stage (1 syntax, 2 algorithms, 3 edits/repair, 4 tools/agents), "
                      "language-balanced; readable with datasets.load_dataset('parquet', ...).")
def curriculum_shards(context: dg.AssetExecutionContext, config: ShardConfig, warehouse: Warehouse):
    stage = context.partition_key
    with warehouse.staging("curriculum_shards", stage):
        meta = pipeline.build_curriculum_shard(config.to_settings(), warehouse, stage)
        context.log.info(f"stage {stage}: {meta['rows']} examples, {meta['tokens']} tokens, "
                         f"{meta['dropped_too_long']} dropped as longer than {config.max_seq_len} tokens")
        check = gx_check(pipeline.shard_check_frame(warehouse, stage), f"curriculum_shards_{stage}", lambda gxe: [
            gxe.ExpectColumnValuesToBeUnique(column="example_id"),
            gxe.ExpectColumnValuesToBeBetween(column="n_tokens", min_value=2, max_value=config.max_seq_len),
            gxe.ExpectColumnValuesToBeBetween(column="prompt_len", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="answer_tokens", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="tool_label", min_value=-1),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "validation", "test"]),
        ], metadata={"stage": stage, "empty": meta["rows"] == 0})
    yield from publish_if_passed(
        warehouse, "curriculum_shards", named(check, "curriculum_shards_gx"), stage,
        metadata={"dagster/row_count": meta["rows"], "path": dg.MetadataValue.path(str(warehouse.shard_path(stage))),
                  "tokens": meta["tokens"], "dropped_too_long": meta["dropped_too_long"],
                  "per_language": dg.MetadataValue.json(meta["per_language"]),
                  "stage_description": meta["description"],
                  "note": "no task asset feeds this stage yet" if meta["rows"] == 0 else ""})
