"""Git asset: swesmith_tasks, swe_repos, polyglot_benchmark -> git_tasks (merge conflicts between two bug fixes,
graded by the tests; commit messages from real histories). The body calls `datagen.git_tasks.build_git_tasks`
(write, audit, publish); the evaluation reads its test split (evals/git.py, docs/git.md).
"""

import dagster as dg

from datagen import git_tasks
from hrm_assets.expectations import publish_if_passed
from hrm_assets.versions import source_version
from resources.sandbox import Sandbox
from resources.settings import from_env, split_csv
from resources.warehouse import Warehouse


class GitTasksConfig(dg.Config):
    history_sources: str = from_env("HRM_GIT_HISTORY_SOURCES")  # comma-separated; empty: the defaults
    test_percent: int = from_env("HRM_GIT_TEST_PERCENT")
    max_pairs_per_repo: int = from_env("HRM_GIT_MAX_PAIRS")
    max_diff_chars: int = from_env("HRM_GIT_MAX_DIFF_CHARS")
    polyglot_source: str = from_env("HRM_POLYGLOT_SOURCE")

    def to_settings(self) -> git_tasks.GitTaskSettings:
        return git_tasks.GitTaskSettings(test_percent=self.test_percent, max_pairs_per_repo=self.max_pairs_per_repo,
                                         max_diff_chars=self.max_diff_chars,
                                         history_sources=split_csv(self.history_sources))


def held_out_check(rows: list[dict]) -> dg.AssetCheckResult:
    """Blocking: example ids unique, and no held-out answer (a resolution or a human message) inside a train row."""
    ids = [r["example_id"] for r in rows]
    train_text = [r["prompt"] + r["answer"] for r in rows if r["split"] == "train"]
    leaked = [r["example_id"] for r in rows if r["split"] == "test" and r["answer"].strip() and
              r["kind"] == "conflict" and any(r["answer"] in t for t in train_text)]
    return dg.AssetCheckResult(check_name="git_tasks_held_out", passed=len(set(ids)) == len(ids) and not leaked,
                               severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"duplicate_ids": len(ids) - len(set(ids)),
                                         "leaked_test_items": dg.MetadataValue.json(leaked[:20])})


@dg.asset(name="git_tasks", group_name="problems", kinds={"python", "git", "parquet"},
          deps=[dg.AssetDep("swesmith_tasks", partition_mapping=dg.AllPartitionMapping()),
                dg.AssetDep("swe_repos", partition_mapping=dg.AllPartitionMapping()), "polyglot_benchmark"],
          code_version=source_version("datagen.git_tasks"),
          check_specs=[dg.AssetCheckSpec("git_tasks_held_out", asset="git_tasks", blocking=True)],
          description="Git tasks: real merge conflicts between two validated bug fixes of a SWE repo (gold passes "
                      "every test in the sandbox, either side alone fails one), and commit messages with the "
                      "human message from real git histories; train/test held out whole.")
def git_tasks_asset(context: dg.AssetExecutionContext, config: GitTasksConfig, sandbox: Sandbox,
                    warehouse: Warehouse):
    checkout = warehouse.polyglot_checkout()
    polyglot = str(checkout) if (checkout / ".git").is_dir() else config.polyglot_source
    with warehouse.staging(git_tasks.TABLE):
        m = git_tasks.build_git_tasks(config.to_settings(), sandbox, warehouse, polyglot, context.log)
        check = held_out_check(warehouse.read_table(git_tasks.TABLE).to_pylist())
    conflicts = sum(v for k, v in m["counts"].items() if k.startswith("conflict/"))
    yield from publish_if_passed(warehouse, git_tasks.TABLE, check, metadata={
        "conflict_tasks": conflicts, "commit_tasks": m["rows"] - conflicts,
        "counts": dg.MetadataValue.json(m["counts"]), "repos": dg.MetadataValue.json(m["repos"]),
        "history_sources": dg.MetadataValue.json(m["history_sources"]),
        "history_failures": dg.MetadataValue.json(m["history_failures"]), "rejected": m["rejected"],
        "rejections": dg.MetadataValue.json(m["rejections"])})
