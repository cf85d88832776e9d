"""Joint limits on rotations relative to the rest pose: Euler angles, soft residuals for guidance, hard checks for
reports, and limits learned from a set of poses. Pure torch.

Limits are ``(J, 3, 2)`` radians, ``[..., 0]`` lower and ``[..., 1]`` upper, NaN where a joint or an axis is
unlimited, in the JointLimitsAPI's ``eulerXYZ`` form: extrinsic X, then Y, then Z angles of the joint-local rotation
relative to rest, ``R_rel = Rz(z) @ Ry(y) @ Rx(x)`` (scipy's ``as_euler("xyz")``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from jaxtyping import Bool, Float
    from torch import Tensor


def euler_xyz(R: Float[Tensor, "... 3 3"]) -> Float[Tensor, "... 3"]:
    """Extrinsic XYZ Euler angles (radians) of rotation matrices, ``R = Rz(z) Ry(y) Rx(x)``; differentiable away
    from gimbal lock (``|y| = pi/2``)."""
    x = torch.atan2(R[..., 2, 1], R[..., 2, 2])
    y = torch.atan2(-R[..., 2, 0], torch.sqrt(R[..., 0, 0] ** 2 + R[..., 1, 0] ** 2 + 1e-12))
    z = torch.atan2(R[..., 1, 0], R[..., 0, 0])
    return torch.stack([x, y, z], -1)  # (..., 3)


def limit_residual(
    R_rel: Float[Tensor, "B J 3 3"], limits: Float[Tensor, "J 3 2"], margin: float = 0.0
) -> Float[Tensor, "B R"]:
    """Soft joint-limit residual: radians by which each limited Euler angle leaves ``[lower - margin, upper +
    margin]`` (0 inside), flattened to ``(B, 3J)``. Unlimited (NaN) axes contribute 0 and no gradient."""
    assert R_rel.shape[-3:] == (limits.shape[0], 3, 3), f"R_rel {tuple(R_rel.shape)} vs limits {tuple(limits.shape)}"
    lim = limits.to(R_rel)
    known = torch.isfinite(lim)  # (J, 3, 2)
    lo = torch.where(known[..., 0], lim[..., 0], torch.full_like(lim[..., 0], -math.inf)) - margin  # (J, 3)
    hi = torch.where(known[..., 1], lim[..., 1], torch.full_like(lim[..., 1], math.inf)) + margin  # (J, 3)
    e = euler_xyz(R_rel)  # (B, J, 3)
    below = torch.where(torch.isfinite(lo), torch.relu(lo - e), torch.zeros_like(e))
    above = torch.where(torch.isfinite(hi), torch.relu(e - hi), torch.zeros_like(e))
    return (below + above).flatten(1)  # (B, 3J)


def limit_violations(
    R_rel: Float[Tensor, "B J 3 3"], limits: Float[Tensor, "J 3 2"], tolerance_deg: float = 1.0
) -> Bool[Tensor, "B J"]:
    """Hard check: which joints of each pose have an Euler angle more than ``tolerance_deg`` outside its limits."""
    r = limit_residual(R_rel.detach(), limits, margin=math.radians(tolerance_deg))  # (B, 3J)
    return (r.reshape(R_rel.shape[0], -1, 3) > 0).any(-1)  # (B, J)


def learn_limits(
    R_rel: Float[Tensor, "N J 3 3"], quantile: float = 0.005, pad_deg: float = 5.0, min_poses: int = 20
) -> Float[Tensor, "J 3 2"]:
    """Limits from observed poses: the ``quantile`` / ``1 - quantile`` Euler angles per joint and axis, widened by
    ``pad_deg``. Fewer than ``min_poses`` poses give all-NaN (unknown) limits."""
    J = R_rel.shape[1]
    out = torch.full((J, 3, 2), math.nan, dtype=torch.float64)
    if R_rel.shape[0] < min_poses:
        return out
    e = euler_xyz(R_rel.double())  # (N, J, 3)
    q = torch.tensor([quantile, 1.0 - quantile], dtype=torch.float64)
    bounds = torch.quantile(e, q, dim=0)  # (2, J, 3)
    pad = math.radians(pad_deg)
    out[..., 0] = (bounds[0] - pad).clamp(min=-math.pi)
    out[..., 1] = (bounds[1] + pad).clamp(max=math.pi)
    return out
