"""specialist_adapters: LoRA adapters trained from hrm_checkpoint on slices of training_examples (a language, or
a task type such as repair), each scored against the generalist on its own domain with a paired test.

The training is `training/adapters.py`, the scoring `evals/specialists.py`; the manifest (with the scores) is
published as `checkpoints/specialist_adapters/latest.json`, and each specialist loads as the model spec
`local:<hrm checkpoint>+<adapter dir>` it names.
"""

import dagster as dg

from evals.evaluate import preset_settings
from evals.specialists import score_specialists
from hrm_assets.metadata import floats
from hrm_assets.versions import json_version, source_version
from resources.sandbox import Sandbox
from resources.settings import from_env, split_csv
from resources.warehouse import Warehouse
from training.adapters import AdapterSettings, train_specialists


class SpecialistConfig(dg.Config):
    specialists: str = from_env("HRM_SPECIALISTS")
    steps: int = from_env("HRM_SPECIALIST_STEPS")
    batch_size: int = from_env("HRM_SPECIALIST_BATCH_SIZE")
    rank: int = from_env("HRM_SPECIALIST_RANK")
    alpha: float = from_env("HRM_SPECIALIST_ALPHA")
    lr: float = from_env("HRM_SPECIALIST_LR")
    eval_files: int = from_env("HRM_SPECIALIST_EVAL_FILES")  # held-out files per language; 0 = all
    eval_preset: str = from_env("HRM_EVAL_PRESET")

    def to_settings(self) -> AdapterSettings:
        return AdapterSettings(specialists=split_csv(self.specialists), steps=self.steps, batch_size=self.batch_size,
                               rank=self.rank, alpha=self.alpha, lr=self.lr)


def specialist_metadata(manifest: dict) -> dict:
    """Per specialist: steps, examples, domain metric, both scores, items won/lost and the p-value; a table."""
    out, lines = {}, ["| specialist | steps | examples | domain metric | generalist | specialist | won/lost | p |",
                      "|---|---|---|---|---|---|---|---|"]
    for name, info in manifest["specialists"].items():
        d = info.get("score", {}).get("domain") or {}
        out.update(floats({f"{name}/steps": info["steps"], f"{name}/examples": info["examples"],
                           f"{name}/generalist": d.get("generalist"), f"{name}/specialist": d.get("specialist"),
                           f"{name}/p_value": d.get("p_value")}))
        lines.append(f"| {name} | {info['steps']} | {info['examples']} | {d.get('metric', 'none')} | "
                     f"{d.get('generalist')} {d.get('generalist_ci')} | "
                     f"{d.get('specialist')} {d.get('specialist_ci')} | "
                     f"{d.get('items_better')}/{d.get('items_worse')} | {d.get('p_value')} |")
    return {**out, "specialists": dg.MetadataValue.md("\n".join(lines)),
            "manifest": dg.MetadataValue.json({k: v for k, v in manifest.items() if k != "specialists"}),
            "details": dg.MetadataValue.json({n: {k: v for k, v in i.items() if k != "losses"}
                                              for n, i in manifest["specialists"].items()})}


@dg.asset(group_name="training", kinds={"pytorch"}, pool="gpu", deps=["hrm_checkpoint", "training_examples"],
          code_version=source_version("training.adapters"),
          description="Specialist LoRA adapters (per language or task type) trained from hrm_checkpoint, each "
                      "scored against the generalist on its own domain with a paired sign test; load one with "
                      "the model spec local:CKPT+ADAPTER.")
def specialist_adapters(context: dg.AssetExecutionContext, config: SpecialistConfig, warehouse: Warehouse,
                        sandbox: Sandbox) -> dg.MaterializeResult:
    manifest = train_specialists(config.to_settings(), warehouse, log=context.log.info)
    scores = score_specialists(manifest, warehouse, sandbox,
                               preset_settings(config.eval_preset, bpb_files_per_language=config.eval_files),
                               log=context.log.info)
    for name, score in scores.items():
        manifest["specialists"][name]["score"] = score
    warehouse.publish_checkpoint("specialist_adapters", manifest)
    return dg.MaterializeResult(metadata=specialist_metadata(manifest),
                                data_version=json_version({n: i["adapter_dir"] for n, i in
                                                           manifest["specialists"].items()}))
