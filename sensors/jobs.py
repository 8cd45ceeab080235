"""Asset jobs the schedules and sensors launch."""

import dagster as dg

# Regression evaluation of the latest checkpoints (the report and its no_regression check).
evaluate_job = dg.define_asset_job(
    "evaluate_latest_checkpoints", selection=dg.AssetSelection.assets("benchmark_report"),
    description="Re-run the benchmark report (and its regression check) on the latest checkpoints.")

# A new HRM checkpoint: RL from it and quantize it, then report on every model.
evaluate_new_checkpoint_job = dg.define_asset_job(
    "evaluate_new_checkpoint",
    selection=dg.AssetSelection.assets("hrm_rl_checkpoint", "quantized_models", "benchmark_report"),
    description="RL-train and quantize the newest HRM checkpoint, then evaluate every model.")

# Retraining from the current shards: both checkpoints, RL and quantized versions of HRM, and the report.
retrain_job = dg.define_asset_job(
    "retrain_and_evaluate",
    selection=dg.AssetSelection.assets("hrm_checkpoint", "baseline_checkpoint", "hrm_rl_checkpoint", "quantized_models",
                                       "benchmark_report"),
    description="Retrain HRM and baseline on the current curriculum shards, RL-train and quantize, and evaluate.")
