"""The pose denoiser: a transformer over joint tokens, for any skeleton topology.

Each joint is a token: its noisy pose (6D rotation relative to rest, normalised) plus its conditioning features
(rest pose, mesh and name semantics; ``usdposer.core.posespace``). Attention runs over the joints of one skeleton with
a learned per-head bias indexed by the tree distance between joints (the skeleton edges), padding joints masked
out. The diffusion timestep enters every block through adaptive layer norm (shift, scale and gate, DiT-style,
zero-initialised so that each block starts as the identity).

Config-as-constructor: ``register_to_config`` records every ``__init__`` argument, so ``PoseDenoiser(**config)``
rebuilds the architecture from ``config.json``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import Tensor, nn
from usdposer.models import register


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(B,) timesteps -> (B, dim) sinusoidal embedding."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


class Block(nn.Module):
    def __init__(self, d: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False)
        hidden = int(d * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.ada = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)
        self.dropout = dropout

    def forward(self, x: Tensor, c: Tensor, bias: Tensor) -> Tensor:
        """x: (B, J, d) tokens; c: (B or 1, d) timestep condition; bias: (B or 1, H, J, J) additive attention
        bias."""
        B, J, d = x.shape
        s1, b1, g1, s2, b2, g2 = self.ada(c)[:, None].chunk(6, -1)
        h = self.norm1(x) * (1 + s1) + b1
        q, k, v = self.qkv(h).view(B, J, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0)
        x = x + g1 * self.proj(a.transpose(1, 2).reshape(B, J, d))
        h = self.norm2(x) * (1 + s2) + b2
        return x + g2 * self.mlp(h)


@register("pose-denoiser")
class PoseDenoiser(nn.Module, ConfigMixin):
    """epsilon(x_t, t | rig): (B, J, pose_dim) noisy poses -> (B, J, pose_dim) predicted noise.

    Args:
        feature_dim: per-joint conditioning features (``usdposer.core.posespace.FEATURE_DIM``).
        pose_dim: per-joint pose channels (6 for the 6D rotation).
        width, depth, heads: transformer size.
        max_tree_distance: tree distances at or beyond this share one bias (and separate trees use it too).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, feature_dim: int = 51, pose_dim: int = 6, width: int = 128, depth: int = 4, heads: int = 4,
                 mlp_ratio: float = 2.0, max_tree_distance: int = 8, dropout: float = 0.0):
        super().__init__()
        self.pose_in = nn.Linear(pose_dim, width)
        self.cond_in = nn.Sequential(nn.Linear(feature_dim, width), nn.GELU(approximate="tanh"), nn.Linear(width, width))
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.tree_bias = nn.Embedding(max_tree_distance + 1, heads * depth)
        nn.init.zeros_(self.tree_bias.weight)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False)
        self.ada_out = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, pose_dim)
        for m in (self.ada_out, self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, t: Tensor, features: Tensor, tree: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, J, P) noisy normalised poses; t: (B,) or () timesteps; features: (B, J, F); tree: (B, J, J) long
        tree distances; mask: (B, J) bool, True for real joints. Returns (B, J, P).

        One rig and one timestep for the whole batch (sampling): pass ``t`` as a scalar and ``features`` /
        ``tree`` with a batch of 1; the time and rig terms are then computed once and broadcast (the same numbers,
        a third less work per step on 256 poses)."""
        B, J, _ = x.shape
        Bc = tree.shape[0]  # 1 (broadcast) or B
        cfg = self.config
        if t.dim() == 0:
            t = t.reshape(1)
        c = self.time(timestep_embedding(t, cfg.width))  # (B or 1, d)
        h = self.pose_in(x) + self.cond_in(features)
        bias = self.tree_bias(tree.clamp(max=cfg.max_tree_distance))  # (Bc, J, J, H*L)
        bias = bias.view(Bc, J, J, cfg.depth, cfg.heads).permute(3, 0, 4, 1, 2)  # (L, Bc, H, J, J)
        if mask is not None:
            neg = torch.zeros(len(mask), 1, 1, J, dtype=h.dtype, device=h.device).masked_fill(~mask[:, None, None, :],
                                                                                             -1e9)
            bias = bias + neg
        for layer, block in enumerate(self.blocks):
            h = block(h, c, bias[layer].to(h.dtype))
        shift, scale = self.ada_out(c)[:, None].chunk(2, -1)
        return self.out(self.norm_out(h) * (1 + scale) + shift)
