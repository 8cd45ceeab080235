"""The plain functions behind the Polyglot assets and `hrm polyglot eval`: clone, tabulate, report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Iterable

from evals.polyglot.evaluate import ExerciseResult, directory_solver, evaluate, reference_solver
from evals.polyglot.exercises import (EXPECTED_COUNTS, LANGUAGES, PINNED_COMMIT, Exercise, ExerciseError,
                                           exercise_dirs, extract_language)
from evals.polyglot.metrics import failures, summarize
from resources.fetchers import git_clone, git_head
from resources.warehouse import write_text_atomic

TABLE = "polyglot_problems"
RESULTS_TABLE = "polyglot_reference_results"
# Why a reference solution fails with every toolchain installed (measured; see docs/polyglot.md).
EXPECTED_REFERENCE_FAILURES = (
    "java/hangman: its tests import RxJava 2 (io.reactivex), a jar no reachable registry has. "
    "java/mazy-mice: its tests call AssertJ 3.25's hasDimensions; Debian ships AssertJ 3.14. "
    "rust: six reference solutions use crates their Cargo.toml does not declare (itertools, permutohedron, "
    "num-bigint, regex, counter, rand, thiserror); the harness hides Cargo.toml, so a solver could not add them.")


def clone_benchmark(source: str, dest: Path, commit: str = PINNED_COMMIT) -> dict:
    """Clone `source` (URL, path or bundle) at `commit`; returns commit, path and per-language counts."""
    head = git_clone(source, Path(dest), commit)
    counts = {lang: len(exercise_dirs(Path(dest), lang)) for lang in LANGUAGES}
    return {"commit": head, "path": str(dest), "source": source, "counts": counts, "total": sum(counts.values())}


def open_checkout(source: str, clone_dir: Path, commit: str = PINNED_COMMIT) -> tuple[Path, str]:
    """A checkout to read: `source` itself when it already is one, else a clone of it in `clone_dir`."""
    path = Path(source)
    if path.is_dir() and all((path / lang).is_dir() for lang in LANGUAGES):
        return path, git_head(path) if (path / ".git").exists() else ""  # "": a plain copy
    info = clone_benchmark(source, clone_dir, commit)
    return Path(info["path"]), info["commit"]


def write_problems(warehouse, checkout: Path, language: str) -> dict:
    """Extract one language into the `polyglot_problems` partition; bad folders go to quarantine."""
    commit = git_head(checkout) if (Path(checkout) / ".git").exists() else ""
    rows, rejected = extract_language(checkout, language, commit)
    if not rows:
        raise ValueError(f"{checkout}/{language}: no exercise could be read ({len(rejected)} rejected)")
    path = warehouse.write_table(TABLE, problems_table(rows), partition=language)
    if rejected:
        warehouse.write_quarantine(TABLE, rejected, partition=language)
    return {"rows": len(rows), "expected": EXPECTED_COUNTS.get(language), "rejected": len(rejected),
            "commit": commit, "path": str(path), "rejected_rows": rejected}


def problems_table(rows: list[dict]):
    """Rows as a pyarrow table with one schema for every partition (empty file lists stay typed)."""
    import pyarrow as pa

    files = pa.list_(pa.struct([("path", pa.string()), ("content", pa.string())]))
    schema = pa.schema([("problem_id", pa.string()), ("language", pa.string()), ("exercise", pa.string()),
                        ("cross_language_key", pa.string()), ("instructions", pa.string()),
                        ("solution_files", files), ("test_files", files), ("editor_files", files),
                        ("build_files", files), ("reference_files", files), ("source_path", pa.string()),
                        ("commit", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


def problem_frame(warehouse, checkout: Path | None, language: str | None = None):
    """The problems table (one partition or all) as pandas, with the columns the checks look at."""
    table = warehouse.read_table(TABLE, language) if language else warehouse.read_table(TABLE)
    frame = table.drop_columns([c for c in ("build_files",) if c in table.column_names]).to_pandas()
    frame["instructions_chars"] = frame["instructions"].fillna("").str.strip().str.len()
    frame["n_solution_files"] = frame["solution_files"].map(len)
    frame["n_test_files"] = frame["test_files"].map(len)
    if checkout is not None:
        frame["paths_exist"] = [
            all(_regular_file(Path(checkout) / src / f["path"]) for f in [*sol, *tests])
            for src, sol, tests in zip(frame["source_path"], frame["solution_files"], frame["test_files"])]
    return frame


def _regular_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def load_exercises(warehouse, languages: Iterable[str] | None = None,
                   exercises: Iterable[str] | None = None) -> list[Exercise]:
    """Exercises from the problems table; `exercises` holds names or language/name keys."""
    languages = list(languages or [])
    wanted = set(exercises or [])
    out = []
    for lang in languages or warehouse.partitions(TABLE):
        for row in warehouse.read_table(TABLE, lang).to_pylist():
            if not wanted or row["exercise"] in wanted or row["problem_id"] in wanted:
                out.append(Exercise.from_row(row))
    return out


def select_exercises(checkout: Path, languages: Iterable[str] | None = None,
                     exercises: Iterable[str] | None = None, commit: str = "") -> tuple[list[Exercise], list[dict]]:
    """Exercises straight from a checkout (the CLI path, no warehouse)."""
    wanted = set(exercises or [])
    out, rejected = [], []
    for lang in languages or LANGUAGES:
        if lang not in LANGUAGES:
            raise ValueError(f"unknown language {lang!r}; expected some of {', '.join(LANGUAGES)}")
        try:
            rows, bad = extract_language(checkout, lang, commit)
        except ExerciseError as exc:  # the language's folder itself is unusable: skip it, say why
            rows, bad = [], [{"language": lang, "exercise": "*", "path": lang, "reason": str(exc)}]
        rejected += bad
        out += [Exercise.from_row(r) for r in rows
                if not wanted or r["exercise"] in wanted or r["problem_id"] in wanted]
    return out, rejected


def run_evaluation(exercises: list[Exercise], sandbox, solutions: str = "reference", edit_format: str = "whole",
                   cache_dir: str | Path | None = None, progress: Callable[[ExerciseResult], None] | None = None,
                   log: Callable[[str], None] | None = None, rejected: list[dict] | None = None) -> dict:
    """Evaluate `solutions` ("reference" or a DIR) and return the report: metrics, results, failures, and
    the exercise folders that were refused (`rejected`, with their reasons)."""
    solver = reference_solver if solutions == "reference" else directory_solver(solutions, edit_format)
    start = time.monotonic()
    stats: dict = {}
    results = evaluate(exercises, solver, sandbox, edit_format=edit_format, cache_dir=cache_dir,
                       progress=progress, log=log, stats=stats)
    report = summarize(results)
    report.update({"solutions": solutions, "format": edit_format, "wall_s": round(time.monotonic() - start, 1),
                   "workers": sandbox.concurrency, "shared_builds": stats["shared_builds"],
                   "failures": failures(results), "rejected": list(rejected or []),
                   "results": [r.to_dict() for r in results]})
    if solutions == "reference":
        report["expected_failures"] = EXPECTED_REFERENCE_FAILURES
    return report


def reference_report(warehouse, sandbox, languages: Iterable[str] = (), exercises: Iterable[str] = (),
                     log: Callable[[str], None] | None = None) -> tuple[dict, Path]:
    """Every selected reference solution through the evaluator in the sandbox: the results table and
    reports/polyglot_reference.json; returns the report and that file."""
    selected = load_exercises(warehouse, languages, exercises)
    if not selected:
        raise ValueError("polyglot_reference_report: no exercises selected; materialise polyglot_problems first")
    done = []

    def progress(r):
        done.append(r)
        if log:
            log(f"[{len(done)}/{len(selected)}] {r.language}/{r.exercise}: {r.status} "
                f"({r.seconds:.1f} s){' - ' + r.reason if r.reason else ''}")

    report = run_evaluation(selected, sandbox, "reference", cache_dir=warehouse.path("cache", "polyglot"),
                            progress=progress, log=log)
    warehouse.write_table(RESULTS_TABLE, results_rows(report))
    report_file = warehouse.path("reports", "polyglot_reference.json")
    write_text_atomic(report_file, json.dumps(report, indent=1))
    return report, report_file


def reference_failures(warehouse) -> list[str]:
    """language/exercise of every supported reference solution that did not pass in the last report."""
    rows = warehouse.read_table(RESULTS_TABLE).to_pylist()
    return [f"{r['language']}/{r['exercise']}" for r in rows if r["status"] not in ("pass", "unsupported")]


def results_rows(report: dict) -> list[dict]:
    return [{k: r[k] for k in ("language", "exercise", "status", "seconds", "tries", "reason")}
            for r in report["results"]]


def failures_markdown(report: dict) -> str:
    lines = ["| exercise | status | reason |", "| --- | --- | --- |"]
    lines += [f"| {f['language']}/{f['exercise']} | {f['status']} | {f['reason'].replace('|', '/')} |"
              for f in report["failures"]]
    return "\n".join(lines) if report["failures"] else "no failures"


def languages_markdown(report: dict) -> str:
    lines = ["| language | pass | fail | timeout | unsupported | malformed | total | pass_rate_2 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for lang, s in report["languages"].items():
        c = s["counts"]
        lines.append(f"| {lang} | {c['pass']} | {c['fail']} | {c['timeout']} | {c['unsupported']} | "
                     f"{c['malformed']} | {c['total']} | {s['pass_rate_2']} |")
    return "\n".join(lines)
