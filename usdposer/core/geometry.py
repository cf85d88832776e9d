"""Mesh geometry shared by every part of usdposer (pure torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor


def vertex_normals(verts: Float[Tensor, "V 3"], faces: Int[Tensor, "F 3"]) -> Float[Tensor, "V 3"]:
    """Area-weighted unit vertex normals (zero for vertices no triangle uses)."""
    f = faces.long()
    n = torch.linalg.cross(verts[f[:, 1]] - verts[f[:, 0]], verts[f[:, 2]] - verts[f[:, 0]])  # (F, 3)
    out = torch.zeros_like(verts).index_add_(0, f.reshape(-1), n.repeat_interleave(3, 0))  # (V, 3)
    return out / out.norm(dim=1, keepdim=True).clamp(min=1e-30)
