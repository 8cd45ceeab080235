"""HRM-Code model package: pure PyTorch (no Dagster imports), runs on CPU and GPU.

`build_model(config)` is the one entry point; submodules import torch lazily through it so that
`import model` stays cheap for the Dagster code server.
"""

from model.config import ModelConfig


def build_model(config: "ModelConfig | dict | str"):
    """Build an untrained HRM-Code model (arch "hrm") or its same-budget baseline (arch "baseline").

    `config` may be a ModelConfig, a dict (ModelConfig.from_dict) or a preset name ("tiny", "small", ...).
    """
    if isinstance(config, str):
        config = ModelConfig.preset(config)
    elif isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    if config.arch == "hrm":
        from model.hrm import HRMCode

        return HRMCode(config)
    from model.baseline import BaselineTransformer

    return BaselineTransformer(config)


__all__ = ["ModelConfig", "build_model"]
