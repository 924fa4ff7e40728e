"""The VPT trunk and action heads, for the inverse dynamics model (IDM) and the policy.

One model, bottom-up (nanoGPT style):

    frames (B, T, H, W, 3) uint8
      -> TemporalConv    3D convolution over time, kernel (k, 1, 1): the IDM sees t-k//2 … t+k//2,
                         the policy (causal=True) only t-k+1 … t
      -> ImpalaCNN       per-frame 2D residual stacks with `feature_channels` widths
      -> Embedder        linear to `embedding_dim`
      (+ previous press  policy with `previous_buttons`: a linear embedding of which of those
                         buttons were held at t-1 is added to frame t's embedding)
      -> Block × n       transformer blocks with learned positions; no mask for the IDM,
                         a causal mask for the policy (same Block code)
      -> ActionHead      NES action logits per frame

The IDM and the policy differ only in `ModelConfig.causal`; nothing is copied.

Action factoring (`ModelConfig.head`):
  - "buttons": 8 independent Bernoulli heads, one per pad button (VPT's keyboard heads).
  - "joint":   one categorical over all 256 pad bytes; per-button probabilities are its marginals.
Both expose the same interface: `button_probs(logits)` -> (B, T, 8) and `predict(logits)` -> bytes.
Measured side by side (benchmarks/bench_idm.py demo, scripted SMB 1-1 play at 20 fps, 64x60,
same data, config and 500 steps, CPU): held-out test exact match 0.357 (buttons) vs 0.231 (joint),
per-frame F1 right 0.84/0.82, left 0.52/0.46, A 0.53/0.54, B 0.59/0.65; unseen style exact match
0.152 vs 0.127. Both were still improving, so the gap is indicative only; "buttons" is the default
(better exact match, and it generalises to pad bytes never seen in training). For the policy
(demo data and labels, 400 steps, 2 x 24 episodes of SMB 1-1 at temperature 0.5 with
release_held): VPT 0.470 (buttons) vs 0.432 (joint), oracle-BC 0.472 vs 0.439 mean progress;
docs/experiments.md, "A joint action head does not make a better player".
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_BUTTONS = 8  # swag.actions.NUM_BUTTONS; not imported so the model file stands alone
NUM_ACTIONS = 256  # every pad byte
BUTTON_NAMES = ("A", "B", "select", "start", "up", "down", "left", "right")  # swag.actions.BUTTONS, bit order


class TemporalConv(nn.Module):
    """Mixes each pixel over neighbouring frames; symmetric for the IDM, past-only when causal."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, causal: bool):
        super().__init__()
        self.kernel = kernel
        self.causal = causal
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=(kernel, 1, 1))

    def forward(self, x):  # x: (B, C, T, H, W)
        if self.causal:
            pad = (self.kernel - 1, 0)  # frame t sees t-k+1 … t
        else:
            pad = (self.kernel // 2, self.kernel - 1 - self.kernel // 2)  # t-k//2 … t+k//2
        # replicate the edge frames rather than zero-pad: a black frame is a scene cut, not padding
        x = F.pad(x, (0, 0, 0, 0, *pad), mode="replicate")
        return self.conv(x)  # (B, C_out, T, H, W)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):  # (N, C, H, W)
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


class ImpalaStack(nn.Module):
    """conv -> max-pool stride 2 -> 2 residual blocks (Espeholt et al. 2018, as in VPT)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.res0 = ResidualBlock(out_channels)
        self.res1 = ResidualBlock(out_channels)

    def forward(self, x):  # (N, C_in, H, W) -> (N, C_out, ceil(H/2), ceil(W/2))
        x = F.max_pool2d(self.conv(x), kernel_size=3, stride=2, padding=1)
        return self.res1(self.res0(x))


class ImpalaCNN(nn.Module):
    def __init__(self, in_channels: int, widths: list[int]):
        super().__init__()
        channels = [in_channels, *widths]
        self.stacks = nn.ModuleList(ImpalaStack(a, b) for a, b in zip(channels[:-1], channels[1:]))

    def forward(self, x):  # (N, C, H, W) -> (N, widths[-1], H', W')
        for stack in self.stacks:
            x = stack(x)
        return F.relu(x)


class SelfAttention(nn.Module):
    def __init__(self, config: "ModelConfig"):
        super().__init__()
        assert config.embedding_dim % config.transformer_heads == 0
        self.heads = config.transformer_heads
        self.causal = config.causal
        self.qkv = nn.Linear(config.embedding_dim, 3 * config.embedding_dim)
        self.proj = nn.Linear(config.embedding_dim, config.embedding_dim)
        self.dropout = config.dropout

    def forward(self, x):  # (B, T, E)
        B, T, E = x.shape
        q, k, v = self.qkv(x).split(E, dim=2)
        q = q.view(B, T, self.heads, E // self.heads).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.heads, E // self.heads).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.heads, E // self.heads).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, E)  # (B, T, E)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, config: "ModelConfig"):
        super().__init__()
        self.fc = nn.Linear(config.embedding_dim, config.ff_dim)
        self.proj = nn.Linear(config.ff_dim, config.embedding_dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):  # (B, T, E)
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block; the mask (none or causal) is the attention's config."""

    def __init__(self, config: "ModelConfig"):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.embedding_dim)
        self.attn = SelfAttention(config)
        self.ln2 = nn.LayerNorm(config.embedding_dim)
        self.mlp = MLP(config)

    def forward(self, x):  # (B, T, E)
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


@dataclass
class Dimensions:
    x: int = 64  # frame width in pixels
    y: int = 60  # frame height in pixels


@dataclass
class ModelConfig:
    """The YAML `model` section, plus a few extras with defaults (marked)."""

    embedding_dim: int = 128  # width of the per-frame embedding and of the transformer
    ff_dim: int = 512  # hidden width of the transformer's feed-forward layer
    transformer_heads: int = 4
    transformer_blocks: int = 2
    dimensions: Dimensions = field(default_factory=Dimensions)  # input frame size
    feature_channels: list[int] = field(default_factory=lambda: [16, 32, 32])  # Impala stack widths
    spatial_channels: int = 16  # output channels of the 3D temporal convolution
    sequence_length: int = 32  # frames per window (the longest the positions cover)
    # extras
    causal: bool = False  # False: IDM (sees the future); True: policy (past and present only)
    temporal_kernel: int = 5  # frames mixed by the 3D convolution (VPT: 5)
    head: str = "buttons"  # "buttons" (8 Bernoulli) or "joint" (softmax over 256 pad bytes)
    dropout: float = 0.0
    # policy only: also see which of these buttons were held at t-1. NES games act on button
    # *presses* (SMB jumps when A goes down, not while it stays down), and no frame shows whether
    # A is still held. Only the buttons named: fed the whole byte, a policy learns to repeat it.
    previous_buttons: list[str] = field(default_factory=list)

    def __post_init__(self):
        if isinstance(self.dimensions, dict):
            self.dimensions = Dimensions(**self.dimensions)
        self.feature_channels = list(self.feature_channels)
        if self.head not in ("buttons", "joint"):
            raise ValueError(f"model.head must be 'buttons' or 'joint', got {self.head!r}")
        if self.embedding_dim % self.transformer_heads:
            raise ValueError(f"model.embedding_dim {self.embedding_dim} is not divisible by "
                             f"transformer_heads {self.transformer_heads}")
        self.previous_buttons = list(self.previous_buttons)
        unknown = set(self.previous_buttons) - set(BUTTON_NAMES)
        if unknown:
            raise ValueError(f"model.previous_buttons: unknown buttons {sorted(unknown)}; expected {BUTTON_NAMES}")
        if self.previous_buttons and not self.causal:
            raise ValueError("model.previous_buttons is for a causal policy: an IDM that sees actions has "
                             "nothing left to infer")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        return cls(**values)


class VPTModel(nn.Module):
    """The trunk plus an action head. `forward(frames, targets) -> (logits, loss)`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        H, W = config.dimensions.y, config.dimensions.x
        self.temporal = TemporalConv(3, config.spatial_channels, config.temporal_kernel, config.causal)
        self.cnn = ImpalaCNN(config.spatial_channels, config.feature_channels)
        for _ in config.feature_channels:  # each stack halves, rounding up
            H, W = math.ceil(H / 2), math.ceil(W / 2)
        self.embed = nn.Linear(config.feature_channels[-1] * H * W, config.embedding_dim)
        self.previous = None
        if config.previous_buttons:
            self.register_buffer("previous_bits", torch.tensor([BUTTON_NAMES.index(name)
                                                                for name in config.previous_buttons]))
            self.previous = nn.Linear(len(config.previous_buttons), config.embedding_dim)
        self.position = nn.Parameter(torch.zeros(1, config.sequence_length, config.embedding_dim))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.transformer_blocks))
        self.ln_f = nn.LayerNorm(config.embedding_dim)
        outputs = NUM_BUTTONS if config.head == "buttons" else NUM_ACTIONS
        self.head = nn.Linear(config.embedding_dim, outputs)
        self.register_buffer("button_weights", torch.ones(2, NUM_BUTTONS))  # (neg, pos) per button
        self.register_buffer("class_weights", torch.ones(NUM_ACTIONS))
        self.apply(self._init_weights)
        nn.init.normal_(self.position, std=0.02)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.transformer_blocks))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def set_class_weights(self, weights: torch.Tensor) -> None:
        """(2, 8) (negative, positive) per-button weights, or (256,) per-byte weights; see
        `class_weights` in swag.data for their meaning."""
        if self.config.head == "buttons":
            self.button_weights.copy_(weights)
        else:
            self.class_weights.copy_(weights)

    def forward(self, frames, targets=None, weights=None, previous=None):
        """frames (B, T, H, W, 3) uint8; targets (B, T) pad bytes (int); weights (B, T) float or None;
        previous (B, T) the pad byte held before each frame (models with `previous_buttons` only).

        Returns logits (B, T, 8 or 256) and the weighted mean loss (None without targets).
        """
        logits = self.head(self.transform(self.add_previous(self.encode(frames), previous)))  # (B, T, 8 or 256)
        if targets is None:
            return logits, None
        return logits, self.loss(logits, targets, weights)

    def encode(self, frames):
        """frames (B, T, H, W, 3) uint8 -> per-frame embeddings (B, T, E).

        Frame t's embedding depends on frames t-k//2 … t+k//2 (IDM) or t-k+1 … t (causal) only,
        so a policy can encode one new frame at a time from the last `temporal_kernel` frames.
        """
        B, T, H, W, C = frames.shape
        if (H, W) != (self.config.dimensions.y, self.config.dimensions.x):
            raise ValueError(f"frames are {W}x{H}, the model expects "
                             f"{self.config.dimensions.x}x{self.config.dimensions.y}")
        if T > self.config.sequence_length:
            raise ValueError(f"window of {T} frames is longer than sequence_length {self.config.sequence_length}")
        x = frames.permute(0, 4, 1, 2, 3).float() / 255.0  # (B, 3, T, H, W)
        x = self.temporal(x)  # (B, S, T, H, W)
        x = x.transpose(1, 2).reshape(B * T, -1, H, W)  # (B*T, S, H, W)
        x = self.cnn(x)  # (B*T, F, H', W')
        x = F.relu(self.embed(x.flatten(1)))  # (B*T, E)
        return x.view(B, T, -1)  # (B, T, E)

    def add_previous(self, x, previous):
        """Frame embeddings (B, T, E) plus, with `previous_buttons`, the embedding of which of them
        were held at t-1, from previous (B, T) pad bytes; unchanged without it."""
        if self.previous is None:
            return x
        if previous is None:
            raise ValueError("this policy reads the action held before each frame: pass `previous`")
        bits = (previous.long().unsqueeze(-1) >> self.previous_bits) & 1  # (B, T, P)
        return x + self.previous(bits.to(x.dtype))  # (B, T, E)

    def transform(self, x):
        """Per-frame embeddings (B, T, E) -> features (B, T, E) the action head (and, when
        fine-tuning by RL, a value head) reads; position 0 is the window's first frame."""
        x = x + self.position[:, : x.shape[1]]  # (B, T, E)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)  # (B, T, E)

    def loss(self, logits, targets, weights=None):
        """Class-weighted cross entropy, averaged over frames (each frame weighted by `weights`)."""
        targets = targets.long()
        logits = logits.float()
        if self.config.head == "buttons":
            pressed = ((targets.unsqueeze(-1) >> torch.arange(NUM_BUTTONS, device=targets.device)) & 1).float()
            # per-(frame, button) weight: the negative or positive class weight of that button
            element_weight = torch.where(pressed > 0, self.button_weights[1], self.button_weights[0])
            per_frame = (F.binary_cross_entropy_with_logits(logits, pressed, reduction="none")
                         * element_weight).sum(-1)  # (B, T)
        else:
            per_frame = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none",
                                        weight=self.class_weights).view(targets.shape)  # (B, T)
        if weights is None:
            return per_frame.mean()
        return (per_frame * weights).sum() / weights.sum().clamp_min(1e-8)

    def button_probs(self, logits):
        """(B, T, 8) press probability of each button, in swag.actions bit order."""
        logits = logits.float()
        if self.config.head == "buttons":
            return torch.sigmoid(logits)
        probs = logits.softmax(-1)  # (B, T, 256)
        bits = ((torch.arange(NUM_ACTIONS, device=logits.device).unsqueeze(-1)
                 >> torch.arange(NUM_BUTTONS, device=logits.device)) & 1).float()  # (256, 8)
        return probs @ bits

    def predict(self, logits):
        """(B, T) uint8 pad bytes and (B, T) float confidence (probability of that exact byte)."""
        logits = logits.float()
        if self.config.head == "buttons":
            probs = torch.sigmoid(logits)  # (B, T, 8)
            pressed = probs > 0.5
            weights = (1 << torch.arange(NUM_BUTTONS, device=logits.device))
            actions = (pressed.long() * weights).sum(-1)
            # buttons are independent under this head, so the byte's probability is a product
            confidence = torch.where(pressed, probs, 1 - probs).prod(-1)
        else:
            probs = logits.softmax(-1)
            confidence, actions = probs.max(-1)
        return actions.to(torch.uint8), confidence


PRECISIONS = ("auto", "bf16", "fp32")


def uses_bf16(device, precision: str = "auto") -> bool:
    """Whether the model computes in bf16 on `device`, for a stage's `training.precision`:

    - "auto" and "bf16": bf16 wherever the hardware computes it natively: CUDA GPUs that have it
      and CPUs with AVX512-BF16, where it trains and labels about 1.6-2x faster than fp32 with no
      quality cost measured over 3 training seeds (docs/experiments.md, "bf16 on the CPU"). Elsewhere emulated
      bf16 would be slower than fp32, so fp32. "bf16" names the choice in a config, so that a
      later change of "auto" leaves its results alone.
    - "fp32": always fp32: results that do not depend on whether the CPU has AVX512-BF16.

    SWAG_PRECISION in the environment, when set, overrides it for every command (labelling and
    rollouts have no config of their own)."""
    device = torch.device(device)
    precision = os.environ.get("SWAG_PRECISION") or precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()


def autocast(device, precision: str = "auto") -> torch.autocast:
    """The context the model runs in on `device`: bf16 autocast where `uses_bf16`, else a no-op.
    Losses, softmaxes and layer norms stay fp32 under autocast; only convolutions and matmuls drop."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(device, precision))
