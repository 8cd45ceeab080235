"""The loss curve of a curriculum run, as PNG bytes (shown in the checkpoint asset's metadata)."""

from __future__ import annotations

import io


def loss_curve_png(history: list[dict], title: str) -> bytes:
    """Total and per-task losses over the global step; dotted lines where a new curriculum phase starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=90)
    for key in ("loss", "lm_loss_codegen", "lm_loss_exec_predict", "lm_loss_repair"):
        points = [(h["global_step"], h[key]) for h in history if key in h]
        if points:
            ax.plot(*zip(*points), label=key, linewidth=1.4 if key == "loss" else 0.9)
    for h0, h1 in zip(history, history[1:]):
        if h1["phase"] != h0["phase"]:
            ax.axvline(h0["global_step"], color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("step (all curriculum phases)")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
