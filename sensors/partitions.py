"""Register the dynamic partition keys the configuration names (SWE repos, LiveCodeBench releases), so a fresh
instance shows them: `dagster dev` → "Materialize all" has every partition to build, and `hrm materialize`
plans from the same keys."""

import dagster as dg

from resources.partitions import missing_requests


@dg.sensor(name="register_partitions", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Adds the dynamic partition keys the configuration names (HRM_SWE_REPOS, HRM_LCB_RELEASES) "
                       "that the instance lacks; never removes one.")
def register_partitions_sensor(context: dg.SensorEvaluationContext):
    requests = missing_requests(context.repository_def.asset_graph, context.instance)
    if not requests:
        return dg.SkipReason("every configured dynamic partition key is registered")
    return dg.SensorResult(dynamic_partitions_requests=requests)
