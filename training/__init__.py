"""Training over `model/`: curriculum phases, run fingerprints, the torchrun entry point, the loss plot and
quantization measurement. No Dagster: the training assets call `training.pipeline`."""
