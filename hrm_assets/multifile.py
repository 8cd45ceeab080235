"""Multi-file SWE tasks: swesmith_tasks (every repo partition) -> multifile_tasks.

The body maps its config onto `MultiFileSettings` and calls `datagen/swe/multifile.build_multifile`, which
combines validated single-file bugs of one repo in different files (and makes interface-change bugs), validates
each (and each one-file-only fix) in the Sandbox and writes the table, staged: a blocking check audits the rows
before they are published. The rows are TrainingExample rows of curriculum stage 3 as well.
"""

import dagster as dg

from datagen.swe import multifile
from hrm_assets.expectations import gx_check, named, publish_if_passed
from hrm_assets.versions import source_version
from resources.sandbox import Sandbox
from resources.settings import from_env
from resources.warehouse import Warehouse


class MultiFileConfig(dg.Config):
    max_tasks_per_repo: int = from_env("HRM_MULTIFILE_MAX_TASKS_PER_REPO")
    bugs_per_task: int = from_env("HRM_MULTIFILE_BUGS_PER_TASK")
    max_uses_per_bug: int = from_env("HRM_MULTIFILE_MAX_USES_PER_BUG")
    test_percent: int = from_env("HRM_MULTIFILE_TEST_PERCENT")
    interface_tasks: int = from_env("HRM_MULTIFILE_INTERFACE_TASKS")
    seed: int = from_env("HRM_MULTIFILE_SEED")

    def to_settings(self) -> multifile.MultiFileSettings:
        return multifile.MultiFileSettings(seed=self.seed, max_tasks_per_repo=self.max_tasks_per_repo,
                                           bugs_per_task=self.bugs_per_task, max_uses_per_bug=self.max_uses_per_bug,
                                           test_percent=self.test_percent, interface_tasks=self.interface_tasks)


@dg.asset(group_name="problems", kinds={"python", "parquet"}, deps=["swesmith_tasks", "swe_repos"],
          code_version=source_version("datagen.swe.multifile"),
          check_specs=[dg.AssetCheckSpec("multifile_tasks_gx", asset="multifile_tasks", blocking=True)],
          description="Multi-file SWE tasks: validated single-file bugs of one repo in different files combined, "
                      "kept when no one-file fix resolves them (FAIL_TO_PASS / PASS_TO_PASS from the Sandbox); "
                      "prompts with the tree-sitter repository map, gold SEARCH/REPLACE answers, curriculum stage 3.")
def multifile_tasks(context: dg.AssetExecutionContext, config: MultiFileConfig, sandbox: Sandbox,
                    warehouse: Warehouse):
    with warehouse.staging(multifile.TABLE):
        m = multifile.build_multifile(config.to_settings(), sandbox, warehouse, context.log)
        check = gx_check(multifile.tasks_check_frame(warehouse), multifile.TABLE, lambda gxe: [
            gxe.ExpectColumnValuesToBeUnique(column="instance_id"),
            gxe.ExpectColumnValuesToBeBetween(column="n_files", min_value=2),
            gxe.ExpectColumnValuesToBeBetween(column="n_fail_to_pass", min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "test"]),
            gxe.ExpectColumnValuesToBeInSet(column="stage", value_set=[multifile.STAGE]),
            gxe.ExpectColumnValuesToNotBeNull(column="problem_statement"),
            gxe.ExpectColumnValuesToNotBeNull(column="answer"),
        ])
    context.log.info(f"multifile_tasks: {m['rows']} tasks ({m['by_split']}), {m['rejected']} combinations rejected")
    yield from publish_if_passed(warehouse, multifile.TABLE, named(check, "multifile_tasks_gx"), metadata={
        "tasks": m["rows"], "rejected": m["rejected"], "by_repo": dg.MetadataValue.json(m["by_repo"]),
        "by_split": dg.MetadataValue.json(m["by_split"]), "by_n_files": dg.MetadataValue.json(m["by_n_files"]),
        "rejections": dg.MetadataValue.json(m["rejections"]), "per_repo": dg.MetadataValue.json(m["per_repo"])})
