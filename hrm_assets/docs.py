"""doc_tasks: documentation tasks (docstrings, API reference comments, README sections) from code_corpus,
held out by repository; `datagen/doctasks.py` builds them, `evals/docs.py` grades them (benchmark "docs").

Written through the warehouse's write-audit-publish: the blocking check `doc_tasks_split` fails when a
repository has tasks in both splits. The page shows counts per kind/language/split, the held-out
repositories, and the documentation coverage of the corpus per language and per repository.
"""

import dagster as dg

from datagen.doctasks import SOURCE_ASSET, DocTaskSettings, build_doc_task_table
from hrm_assets.expectations import after_upstream, publish_if_passed
from hrm_assets.metadata import floats
from hrm_assets.versions import source_version
from resources.settings import from_env
from resources.warehouse import Warehouse


class DocTasksConfig(dg.Config):
    per_repository: int = from_env("HRM_DOC_TASKS_PER_REPOSITORY")
    min_chars: int = from_env("HRM_DOC_MIN_CHARS")
    max_chars: int = from_env("HRM_DOC_MAX_CHARS")
    prompt_chars: int = from_env("HRM_DOC_PROMPT_CHARS")
    readme: bool = from_env("HRM_DOC_README")

    def to_settings(self) -> DocTaskSettings:
        return DocTaskSettings(per_repository=self.per_repository, min_chars=self.min_chars,
                               max_chars=self.max_chars, prompt_chars=self.prompt_chars, readme=self.readme)


def coverage_metadata(coverage: dict[str, dict]) -> dict:
    """Documented share of public functions and types, per language (floats) and per repository (a table)."""
    per_language: dict[str, list[int]] = {}
    for repo, entry in coverage.items():
        totals = per_language.setdefault(repo.split(":", 1)[0], [0, 0])
        totals[0] += entry["documented"]
        totals[1] += entry["public"]
    lines = ["| repository | documented | public | coverage |", "|---|---|---|---|"]
    lines += [f"| {repo} | {e['documented']} | {e['public']} | {e['coverage']} |"
              for repo, e in sorted(coverage.items())]
    return {**floats({f"coverage/{lang}": d / p for lang, (d, p) in per_language.items() if p}),
            "coverage_per_repository": dg.MetadataValue.md("\n".join(lines))}


@dg.asset(group_name="problems", kinds={"python", "parquet"}, deps=["code_corpus"],
          code_version=source_version("datagen.doctasks"), automation_condition=after_upstream(),
          check_specs=[dg.AssetCheckSpec("doc_tasks_split", asset=SOURCE_ASSET, blocking=True)],
          description="Documentation tasks from code_corpus (docstring, API reference, README section), split "
                      "train/test by repository; the docs benchmark grades the test split.")
def doc_tasks(context: dg.AssetExecutionContext, config: DocTasksConfig, warehouse: Warehouse):
    with warehouse.staging(SOURCE_ASSET):
        stats = build_doc_task_table(config.to_settings(), warehouse, log=context.log.info)
    problems = stats["split_problems"]
    check = dg.AssetCheckResult(check_name="doc_tasks_split", passed=not problems,
                                severity=dg.AssetCheckSeverity.ERROR,
                                metadata={"problems": dg.MetadataValue.json(problems[:20])})
    yield from publish_if_passed(
        warehouse, SOURCE_ASSET, check,
        metadata={"counts": dg.MetadataValue.json(stats["counts"]),
                  "test_repositories": dg.MetadataValue.json(stats["test_repositories"]),
                  "repositories": stats["repositories"],
                  "files_skipped_completion_heldout": stats["files_skipped_completion_heldout"],
                  **coverage_metadata(stats["coverage"])})
