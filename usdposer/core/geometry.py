"""Geometry shared by every part of usdposer (pure torch, and numpy for mesh bookkeeping and the rotation between two
directions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
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


def concat_meshes(points: Sequence[np.ndarray], faces: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Several meshes as one surface: (points (V, 3) float64, faces (F, 3) int64 re-indexed into them, offsets (M+1,):
    mesh m's points are ``points[offsets[m]:offsets[m + 1]]``)."""
    offsets = np.cumsum([0] + [len(p) for p in points])
    P = np.concatenate([np.asarray(p, np.float64).reshape(-1, 3) for p in points])
    F = np.concatenate([np.asarray(f, np.int64).reshape(-1, 3) + o for f, o in zip(faces, offsets)])
    return P, F, offsets


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation taking direction ``a`` (3,) onto ``b`` (3,) (column vectors)."""
    a = a / (np.linalg.norm(a) or 1.0)
    b = b / (np.linalg.norm(b) or 1.0)
    v = np.cross(a, b)
    c = float(a @ b)
    if c < -1 + 1e-9:  # opposite: half a turn about any axis normal to a
        axis = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + K + K @ K / (1 + c)
