"""The champion/challenger gate of retraining: the published checkpoint (champion) and a retrained one
(challenger) are scored with the report's own code and settings, and compared with the report's regression
test (problem by problem where there are per-problem results, evals.stats.paired_drop_test; thresholds
elsewhere). `latest` moves to the challenger only when nothing is significantly worse; otherwise the
champion stays and an alert is recorded in the history database.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from evals import report as rp
from evals.evaluate import EvalSettings
from evals.pipeline import evaluate_model

ALERT_KIND = "retrain_rejected"
VERDICT = "gate.json"  # beside the challenger's run


def score(checkpoint_dir: str, benchmarks: list[str], settings: EvalSettings, warehouse, sandbox,
          log=None) -> tuple[list[dict], dict]:
    """Result rows of one checkpoint on each of `benchmarks` (keys of evals.pipeline.BENCHMARK_STEPS), and
    the notes on what was not evaluated."""
    rows, notes = [], {}
    for benchmark in benchmarks:
        out = evaluate_model(f"local:{checkpoint_dir}", benchmark, settings, warehouse, sandbox, log=log)
        rows += out["rows"]
        notes.update(out["notes"])
    return rows, notes


def compare(model: str, champion: list[dict], challenger: list[dict], thresholds: dict[str, float],
            alpha: float) -> list[dict]:
    """The regressions of the challenger's results against the champion's (evals.report.regressions)."""
    created = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)

    def as_report(report_id, results):
        rows = rp.make_rows(report_id, created, model, "", "none", results, "")
        problems = {(model, r["benchmark"], r["metric"]): r["problems"] for r in results if r.get("problems")}
        return rows, problems

    before, problems_before = as_report("champion", champion)
    now, problems_now = as_report("challenger", challenger)
    return rp.regressions(now, before, thresholds, problems_now=problems_now, problems_before=problems_before,
                          alpha=alpha)


def champion_challenger(warehouse, sandbox, name: str, challenger: dict, settings: EvalSettings,
                        benchmarks: list[str], thresholds_spec: str, alpha: float, log=None, notify=None) -> dict:
    """Score the published `name` and the `challenger` summary (training.retrain.continue_training), publish
    the challenger when it does not regress, else keep the champion and record an alert (sent first through
    `notify(kind, message, details) -> delivery record`, e.g. the webhook sink, when given). Returns the
    verdict (also written to the challenger's run directory)."""
    champion = warehouse.latest_checkpoint(name)
    model = name.removesuffix("_checkpoint")
    champion_rows, notes = score(champion["checkpoint_dir"], benchmarks, settings, warehouse, sandbox, log)
    challenger_rows, _ = score(challenger["checkpoint_dir"], benchmarks, settings, warehouse, sandbox, log)
    found = compare(model, champion_rows, challenger_rows, rp.parse_thresholds(thresholds_spec), alpha)
    verdict = {"checkpoint": name, "accepted": not found, "regressions": found, "alpha": alpha,
               "benchmarks": benchmarks, "notes": notes,
               "champion_sha256": champion["weights_sha256"], "challenger_sha256": challenger["weights_sha256"],
               "values": {f"{role}/{r['benchmark']}/{r['metric']}": r["value"]
                          for role, rows in (("champion", champion_rows), ("challenger", challenger_rows))
                          for r in rows}}
    if found:
        message = (f"{name}: retrained challenger {challenger['weights_sha256'][:12]} regressed against the champion "
                   f"{champion['weights_sha256'][:12]} on {len(found)} metric(s); latest stays on the champion: "
                   + "; ".join(rp.describe(f) for f in found))
        delivery = notify(ALERT_KIND, message, verdict) if notify is not None else None
        rp.record_alert(warehouse.history_db(), ALERT_KIND, message, verdict, delivery)
        verdict["message"] = message
    else:
        warehouse.publish_checkpoint(name, {k: v for k, v in challenger.items()
                                            if k not in ("history", "loss_curve_png")})
    if challenger.get("run_dir"):
        (Path(challenger["run_dir"]) / VERDICT).write_text(json.dumps(verdict, indent=1, default=str))
    return verdict
