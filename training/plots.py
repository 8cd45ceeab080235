"""Training curves as PNG bytes, shown in the checkpoint assets' metadata: the loss curve of a curriculum run and
the curves of an RL run."""

from __future__ import annotations

import io


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: figures are rendered to bytes
    import matplotlib.pyplot as plt

    return plt


def _png(plt, fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def loss_curve_png(history: list[dict], title: str) -> bytes:
    """Total and per-task losses over the global step; dotted lines where a new curriculum phase starts."""
    plt = _pyplot()
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
    return _png(plt, fig)


def rl_curves_png(history: list[dict], heldout: list[dict]) -> bytes:
    """Reward (all, and per task type), KL to the starting policy, entropy, and the held-out pass rates of an
    RL run, over its steps."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(12, 3), dpi=90)
    steps = [h["step"] for h in history]
    axes[0].plot(steps, [h["reward"] for h in history], label="all", linewidth=1.4)
    for kind in sorted({k for h in history for k in h["reward_by_task_type"]}):
        axes[0].plot(*zip(*[(h["step"], h["reward_by_task_type"][kind]) for h in history
                            if kind in h["reward_by_task_type"]]), label=kind, linewidth=0.9)
    axes[1].plot(steps, [h["kl"] for h in history])
    axes[2].plot(steps, [h["entropy"] for h in history])
    for kind in sorted({k for e in heldout for k in e if k != "step"}):
        axes[3].plot(*zip(*[(e["step"], e[kind]) for e in heldout if kind in e]), marker="o", label=kind)
    for ax, title in zip(axes, ("mean reward", "KL to start", "entropy (nats)", "held-out pass rate")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    for ax in (axes[0], axes[3]):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _png(plt, fig)
