"""Held-out score against training FLOPs, HRM and the baseline side by side.

Each curriculum phase of a checkpoint run leaves its own checkpoint, and the published summary
(`checkpoints/<name>/latest.json`) records each phase's directory and cumulative training FLOPs
(training/phases.py: the trainer's analytic FLOPs per token times the tokens it trained on). A curve
point is one such checkpoint scored on the held-out benchmarks; the last phase is the checkpoint the
report scores, so its results are reused. HRM spends about three times the baseline's FLOPs per token,
so at equal steps their final checkpoints sit at different FLOPs: the matched table pairs each baseline
point with the HRM point nearest to it in training FLOPs and shows the FLOPs ratio.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

from evals.report import markdown_table, with_interval

CURVE_METRICS = (("synthetic-instances", "exec_exact_match"), ("synthetic-instances", "repair_fix_rate"))
CURVE_MODELS = ("hrm", "baseline")


@dataclass
class CurvePoint:
    model: str  # "hrm" or "baseline"
    phase: str  # the curriculum stage whose checkpoint this is
    checkpoint_dir: str
    train_flops: float
    tokens_seen: int
    results: list[dict] = field(default_factory=list)  # report-row results of this checkpoint

    def result(self, benchmark: str, metric: str) -> dict | None:
        return next((r for r in self.results if r["benchmark"] == benchmark and r["metric"] == metric), None)

    def mean_bpb(self, prefix: str = "bits_per_byte_") -> float | None:
        """The mean over languages of code-bpb `prefix<language>` (each language weighs the same)."""
        values = [r["value"] for r in self.results if r["benchmark"] == "code-bpb" and r["metric"].startswith(prefix)]
        return sum(values) / len(values) if values else None

    def to_dict(self) -> dict:
        return {"model": self.model, "phase": self.phase, "checkpoint_dir": self.checkpoint_dir,
                "train_flops": self.train_flops, "tokens_seen": self.tokens_seen,
                "values": {f"{r['benchmark']}/{r['metric']}": [r["value"], r.get("ci_low"), r.get("ci_high"), r["n"]]
                           for r in self.results if r["benchmark"] != "generation"}}


def phase_points(model: str, published: dict) -> tuple[list[CurvePoint], str | None]:
    """The curve points of one published checkpoint run (results still empty), or ([], why not)."""
    phases = published.get("phases") or []
    if not phases:
        return [], f"{model}: the published checkpoint lists no phases"
    if any(p.get("train_flops") is None for p in phases):
        return [], (f"{model}: the published checkpoint has no training FLOPs (trained before they were "
                    "recorded, or its trainer logged none); re-materialise it to draw the curve")
    return [CurvePoint(model, str(p["stage"]), p["dir"], float(p["train_flops"]), int(p.get("tokens_seen") or 0))
            for p in phases], None


def _cell(point: CurvePoint | None, benchmark: str, metric: str) -> str:
    r = point.result(benchmark, metric) if point else None
    return "—" if r is None else with_interval(r["value"], r.get("ci_low"), r.get("ci_high"))


def _bpb_cell(point: CurvePoint) -> str:
    value = point.mean_bpb()
    return "—" if value is None else f"{value:.4g}"


def curve_markdown(points: list[CurvePoint]) -> str:
    """Every point by training FLOPs, then each baseline point beside the HRM point nearest in FLOPs."""
    if not points:
        return ""
    metrics = [f"{b} {m}" for b, m in CURVE_METRICS]
    records = [{"model": p.model, "phase": p.phase, "training FLOPs": f"{p.train_flops:.3g}",
                "tokens": p.tokens_seen, **{name: _cell(p, b, m) for name, (b, m) in zip(metrics, CURVE_METRICS)},
                "code-bpb (mean over languages)": _bpb_cell(p)}
               for p in sorted(points, key=lambda p: (p.train_flops, p.model))]
    parts = ["### Held-out score vs training FLOPs (value [95 % interval])\n",
             markdown_table(records, ["model", "phase", "training FLOPs", "tokens", *metrics,
                                      "code-bpb (mean over languages)"])]
    hrm = [p for p in points if p.model == "hrm"]
    base = [p for p in points if p.model == "baseline"]
    if hrm and base:
        pairs = []
        for b in base:
            h = min(hrm, key=lambda p: abs(math.log(p.train_flops / b.train_flops)))
            pairs.append({"baseline phase": b.phase, "HRM phase": h.phase,
                          "FLOPs baseline / HRM": f"{b.train_flops:.3g} / {h.train_flops:.3g}",
                          "HRM ÷ baseline FLOPs": f"{h.train_flops / b.train_flops:.2f}",
                          **{f"{m}: baseline / HRM": f"{_cell(b, bm, m)} / {_cell(h, bm, m)}" for bm, m in CURVE_METRICS},
                          "code-bpb: baseline / HRM": f"{_bpb_cell(b)} / {_bpb_cell(h)}"})
        parts += ["\n### HRM vs baseline at matched training FLOPs (nearest HRM checkpoint to each baseline one)\n",
                  markdown_table(pairs, list(pairs[0]))]
    return "".join(parts)


def curve_png(points: list[CurvePoint], compressors: list[dict] | None = None) -> bytes:
    """One panel per held-out metric against training FLOPs (log scale), a line per model with its 95 %
    interval as error bars; the code-bpb panel shows the mean over languages with gzip / xz for scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [*CURVE_METRICS, ("code-bpb", "mean bits per byte")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=90)
    for ax, (benchmark, metric) in zip(axes, panels):
        for model in CURVE_MODELS:
            pts = sorted((p for p in points if p.model == model), key=lambda p: p.train_flops)
            if benchmark == "code-bpb":
                xy = [(p.train_flops, p.mean_bpb()) for p in pts if p.mean_bpb() is not None]
                if xy:
                    ax.plot(*zip(*xy), marker="o", label=model)
                continue
            got = [(p.train_flops, p.result(benchmark, metric)) for p in pts]
            got = [(x, r) for x, r in got if r is not None]
            if got:
                xs = [x for x, _ in got]
                ys = [r["value"] for _, r in got]
                err = [[max(0.0, r["value"] - (r.get("ci_low") if r.get("ci_low") is not None else r["value"]))
                        for _, r in got],
                       [max(0.0, (r.get("ci_high") if r.get("ci_high") is not None else r["value"]) - r["value"])
                        for _, r in got]]
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=model)
        if benchmark == "code-bpb":
            for kind, style in (("gzip", "--"), ("xz", ":")):
                values = [r["value"] for r in compressors or [] if r["metric"].startswith(f"{kind}_bits_per_byte_")]
                if values:
                    ax.axhline(sum(values) / len(values), color="grey", linestyle=style, linewidth=1, label=kind)
            ax.set_ylabel("bits per byte (mean over languages)")
        else:
            ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel(metric)
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs")
        ax.set_title(benchmark if benchmark != "code-bpb" else "code-bpb (held-out files)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
