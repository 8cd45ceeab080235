"""ModelConfig: every architecture knob of HRM-Code and its baseline, validated, JSON round-trippable."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace

from model.vocab import LANGUAGES, TASK_TYPES, TOOLS

ARCHS = ("hrm", "baseline")
ATTENTION = ("sdpa", "flex")


@dataclass
class ModelConfig:
    arch: str = "hrm"  # "hrm" | "baseline" (plain transformer with the same embeddings and heads)
    vocab_size: int = 512
    hidden_size: int = 64
    num_heads: int = 4
    expansion: float = 2.0  # SwiGLU width = expansion * hidden * 2/3, rounded up to a multiple of 64
    H_layers: int = 1
    L_layers: int = 1
    H_cycles: int = 2  # per segment and token: H_cycles x (L_cycles L-passes, then one H-pass)
    L_cycles: int = 2
    grad_passes: int = 2  # k: only the last k module passes of a segment build a graph (2 = HRM's one-step gradient)
    # segments (HRM's outer loop): each runs H_cycles x L_cycles from the previous segment's detached (z_H, z_L),
    # and each gets its own loss (deep supervision); also the fixed depth of inference without adaptive depth
    segments: int = 1
    # ACT: the most segments an answer token may run when depth is adaptive (inference); >= segments, so a token
    # can think longer than in training. None = segments.
    halt_max_segments: int | None = None
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    pad_token_id: int = 0
    num_languages: int = len(LANGUAGES)
    num_task_types: int = len(TASK_TYPES)
    num_tools: int = len(TOOLS)
    # ACT (HRM's Q-head): halt and continue logits per token after each segment, trained by Q-learning; in
    # training an answer token stops when q_halt > q_continue (or at `segments`), at inference up to
    # halt_max_segments
    act: bool = False
    # training: with this probability a token draws a minimum segment count uniform in [2, segments] (HRM's
    # exploration), so the continue value is learned where the Q-head would already halt
    halt_exploration_prob: float = 0.1
    lm_loss_weight: float = 1.0
    edit_loss_weight: float = 0.5
    tool_loss_weight: float = 0.5
    q_loss_weight: float = 0.5
    baseline_layers: int | None = None  # None: computed so the baseline matches the HRM parameter count
    # training: recompute each block's activations in the backward pass instead of keeping them (less memory,
    # about one more forward of compute); not with ACT, whose frozen tokens read state the recompute would not see
    activation_checkpointing: bool = False
    # full forwards (training, scoring): "sdpa" with a dense boolean mask, or "flex": FlexAttention with a block
    # mask of the same prefix-LM rule, which skips masked blocks (packed rows, long prompts) when compiled on
    # a GPU; cached decoding always uses SDPA
    attention: str = "sdpa"

    def __post_init__(self) -> None:
        self.validate()
        if self.baseline_layers is None:
            self.baseline_layers = self._parity_layers()

    # -- validation ---------------------------------------------------------------------------------
    def validate(self) -> None:
        def bad(field: str, why: str) -> None:
            raise ValueError(f"ModelConfig.{field}={getattr(self, field)!r}: {why}")

        if self.arch not in ARCHS:
            bad("arch", f"must be one of {ARCHS}")
        if self.attention not in ATTENTION:
            bad("attention", f"must be one of {ATTENTION}")
        for name in ("vocab_size", "hidden_size", "num_heads", "H_layers", "L_layers", "H_cycles", "L_cycles",
                     "grad_passes", "segments", "max_seq_len", "num_languages", "num_task_types", "num_tools"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(name, "must be a positive integer")
        if self.hidden_size % self.num_heads:
            bad("hidden_size", f"must be divisible by num_heads={self.num_heads}")
        if (self.hidden_size // self.num_heads) % 2:
            bad("num_heads", "head size (hidden_size / num_heads) must be even for RoPE")
        if self.expansion <= 0:
            bad("expansion", "must be > 0")
        if self.grad_passes > self.num_passes:
            bad("grad_passes", f"must be <= H_cycles * (L_cycles + 1) = {self.num_passes}")
        if self.activation_checkpointing and self.act:
            bad("activation_checkpointing", "cannot be combined with act (ACT's per-token state is not recomputed)")
        if self.halt_max_segments is not None:
            if not isinstance(self.halt_max_segments, int) or isinstance(self.halt_max_segments, bool) \
                    or self.halt_max_segments < self.segments:
                bad("halt_max_segments", f"must be an integer >= segments={self.segments}, or None (= segments)")
            if self.halt_max_segments > self.segments and not self.act:
                bad("halt_max_segments", "above segments needs act=true (the Q-head decides when to stop)")
        if not 0.0 <= self.halt_exploration_prob <= 1.0:
            bad("halt_exploration_prob", "must be in [0, 1]")
        if not 0 <= self.pad_token_id < self.vocab_size:
            bad("pad_token_id", f"must be a token id below vocab_size={self.vocab_size}")
        if self.rope_theta <= 0 or self.norm_eps <= 0:
            bad("rope_theta" if self.rope_theta <= 0 else "norm_eps", "must be > 0")
        for name in ("lm_loss_weight", "edit_loss_weight", "tool_loss_weight", "q_loss_weight"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        if self.baseline_layers is not None and (not isinstance(self.baseline_layers, int) or self.baseline_layers < 1):
            bad("baseline_layers", "must be a positive integer or None (computed)")

    # -- derived sizes ------------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def intermediate_size(self) -> int:
        return 64 * math.ceil(self.expansion * self.hidden_size * 2 / 3 / 64)

    @property
    def num_passes(self) -> int:
        """Module passes per segment."""
        return self.H_cycles * (self.L_cycles + 1)

    @property
    def max_segments(self) -> int:
        """The most segments a token runs: halt_max_segments with adaptive depth (ACT), else segments."""
        return self.halt_max_segments if self.halt_max_segments is not None else self.segments

    def block_params(self) -> int:
        d = self.hidden_size
        return 4 * d * d + 3 * d * self.intermediate_size + 2 * d  # qkv+out, SwiGLU, two RMSNorm scales

    def shared_params(self) -> int:
        """Embeddings and heads common to both architectures (final norm included)."""
        d = self.hidden_size
        embeddings = (self.vocab_size + self.num_languages + self.num_task_types) * d
        heads = self.vocab_size * d + (d + 1) + (d + 1) * self.num_tools + d  # LM, edit tag, tool, final norm
        return embeddings + heads

    def hrm_params(self) -> int:
        d = self.hidden_size
        extra = 2 * d + 2 * d + 2 * (d + 1)  # H_init/L_init, per-module output norms, Q-head (halt, continue)
        return self.shared_params() + (self.H_layers + self.L_layers) * self.block_params() + extra

    def _parity_layers(self) -> int:
        blocks = (self.hrm_params() - self.shared_params()) / self.block_params()
        return max(1, round(blocks))

    def estimated_params(self) -> int:
        if self.arch == "hrm":
            return self.hrm_params()
        return self.shared_params() + self.baseline_layers * self.block_params()

    # -- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        legacy = sorted(set(data) & set(_PER_CYCLE_HALTING))
        if legacy and "segments" not in data:
            raise ValueError(f"ModelConfig: missing field 'segments' (and 'halt_max_segments'): this config has the "
                             f"per-H-cycle halting of earlier versions ({', '.join(legacy)}), whose Q-head has one "
                             "logit where the model now has two (halt, continue) per segment; retrain the checkpoint")
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            f.write(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str) -> "ModelConfig":
        with open(path) as f:
            return cls.from_json(f.read())

    def with_changes(self, **changes) -> "ModelConfig":
        """A copy with fields changed; baseline_layers is recomputed unless given."""
        changes.setdefault("baseline_layers", None)
        return replace(self, **changes)

    # -- presets ------------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides) -> "ModelConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown ModelConfig preset {name!r}; expected one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


# fields of the per-H-cycle halting that segments and ACT replaced; found in checkpoints written before them
_PER_CYCLE_HALTING = ("halt_threshold", "halt_min_cycles", "deep_supervision")

PRESETS: dict[str, dict] = {
    # CPU tests: ~0.2M parameters, trains in seconds
    "tiny": dict(vocab_size=512, hidden_size=64, num_heads=4, expansion=2.0, H_layers=1, L_layers=1,
                 H_cycles=2, L_cycles=2, grad_passes=2, max_seq_len=256),
    # the default run (`bash scripts/main.sh`): ~2.2M parameters with its 2k vocabulary; ~700 steps of 16
    # sequences train in about 5 minutes on 2 CPU cores in bf16 (docs/training.md, "The default run")
    "cpu-default": dict(vocab_size=2048, hidden_size=256, num_heads=4, expansion=2.0, H_layers=1, L_layers=1,
                        H_cycles=2, L_cycles=2, grad_passes=2, max_seq_len=384),
    # about an hour of 2-core CPU training for both models (docs/training.md): wider, longer context
    "cpu-long": dict(vocab_size=2048, hidden_size=384, num_heads=6, expansion=2.0, H_layers=1, L_layers=1,
                     H_cycles=2, L_cycles=2, grad_passes=2, max_seq_len=512),
    # default for the CPU benches: ~8M parameters with an 8k vocabulary
    "small": dict(vocab_size=8192, hidden_size=256, num_heads=4, expansion=4.0, H_layers=2, L_layers=2,
                  H_cycles=2, L_cycles=2, grad_passes=2, max_seq_len=1024),
    # documented ~100M configuration (~107M with a 32k vocabulary); int8 generation on CPU in < 2 GB
    "100m": dict(vocab_size=32768, hidden_size=768, num_heads=12, expansion=4.0, H_layers=4, L_layers=4,
                 H_cycles=2, L_cycles=2, grad_passes=2, max_seq_len=2048),
    # one-GPU training run: HRM's 512-wide 4+4 layer shape, longer truncated BPTT as in HRM-Text
    "gpu-base": dict(vocab_size=32768, hidden_size=512, num_heads=8, expansion=4.0, H_layers=4, L_layers=4,
                     H_cycles=2, L_cycles=2, grad_passes=4, max_seq_len=2048),
    # one-GPU presets of the speed work (docs/model.md "GPU recipes": packed rows, bf16, compile):
    # the 100m shape (~107M) and ~0.94B (2048 wide, 8+8 layers)
    "gpu-100m": dict(vocab_size=32768, hidden_size=768, num_heads=12, expansion=4.0, H_layers=4, L_layers=4,
                     H_cycles=2, L_cycles=2, grad_passes=2, max_seq_len=2048),
    "gpu-1b": dict(vocab_size=32768, hidden_size=2048, num_heads=16, expansion=4.0, H_layers=8, L_layers=8,
                   H_cycles=2, L_cycles=2, grad_passes=2, max_seq_len=2048),
}
