"""Joint limits on rotations relative to the rest pose: Euler angles, soft residuals for guidance, hard checks for
reports, and limits learned from a set of poses. Pure torch.

Limits are ``(J, 3, 2)`` radians, ``[..., 0]`` lower and ``[..., 1]`` upper, NaN where a joint or an axis is
unlimited, in the JointLimitsAPI's ``eulerXYZ`` form: extrinsic X, then Y, then Z angles of the joint-local rotation
relative to rest, ``R_rel = Rz(z) @ Ry(y) @ Rx(x)`` (scipy's ``as_euler("xyz")``). Exact for hinges (MJCF, UsdPhysics
revolute and D6 axes).

Swing-twist limits are ``(J, 3)`` radians ``[twist_lower, twist_upper, swing_max]`` about each joint's twist axis (the
bone direction in the joint's rest frame): the twist is the signed rotation about the axis, the swing the angle by
which the axis itself turns (hyperextension is a swing beyond the cone). Learned limits use this form because it does
not depend on how a rig's joint frames happen to be oriented.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from usdposer.core.rotations import matrix_to_quat

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


def euler_xyz_to_matrix(e: Float[Tensor, "... 3"]) -> Float[Tensor, "... 3 3"]:
    """The inverse of :func:`euler_xyz`: ``R = Rz(z) Ry(y) Rx(x)`` from extrinsic XYZ angles (radians)."""
    cx, cy, cz = e.cos().unbind(-1)
    sx, sy, sz = e.sin().unbind(-1)
    rows = [cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx,
            sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx,
            -sy, cy * sx, cy * cx]
    return torch.stack(rows, -1).reshape(*e.shape[:-1], 3, 3)


def clamp_to_limits(R_rel: Float[Tensor, "B J 3 3"], limits: Float[Tensor, "J 3 2"]) -> Float[Tensor, "B J 3 3"]:
    """Rotations with each limited Euler angle clamped into ``limits`` (unlimited, NaN, axes and joints inside their
    limits keep their rotation exactly)."""
    lim = limits.to(R_rel)
    e = euler_xyz(R_rel)  # (B, J, 3)
    c = torch.where(torch.isfinite(lim[..., 0]), torch.maximum(e, lim[..., 0]), e)
    c = torch.where(torch.isfinite(lim[..., 1]), torch.minimum(c, lim[..., 1]), c)
    moved = (c != e).any(-1)[..., None, None]  # (B, J, 1, 1)
    return torch.where(moved, euler_xyz_to_matrix(c), R_rel)


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


def twist_axes(rest_local: Float[Tensor, "J 4 4"], parents: Tensor) -> Float[Tensor, "J 3"]:
    """Unit twist axis of every joint in its own rest frame: towards the mean of its children, or along its own
    offset from the parent for a leaf (+Y for a lone root)."""
    J = rest_local.shape[0]
    offsets = rest_local[:, :3, 3].double()  # (J, 3) child offset in the parent's frame
    axis = torch.zeros(J, 3, dtype=torch.float64)
    count = torch.zeros(J, dtype=torch.float64)
    for j, p in enumerate(parents.tolist()):
        if p >= 0:
            axis[p] += offsets[j]
            count[p] += 1
    for j, p in enumerate(parents.tolist()):
        if count[j] == 0 or axis[j].norm() < 1e-9:
            # leaf: its own offset expressed in its rest frame (R_j^T t_j)
            own = rest_local[j, :3, :3].double().T @ offsets[j] if p >= 0 else torch.zeros(3, dtype=torch.float64)
            axis[j] = own if own.norm() > 1e-9 else torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    return axis / axis.norm(dim=-1, keepdim=True)


def swing_twist(
    R_rel: Float[Tensor, "B J 3 3"], axes: Float[Tensor, "J 3"]
) -> tuple[Float[Tensor, "B J"], Float[Tensor, "B J"]]:
    """(swing, twist) radians of joint-local rotations relative to rest about unit ``axes``: swing = the angle
    between ``a`` and ``R a`` in [0, pi]; twist = the signed angle of the twist quaternion about ``a`` in (-pi, pi]."""
    a = axes.to(R_rel)  # (J, 3)
    Ra = (R_rel @ a[..., None])[..., 0]  # (B, J, 3)
    cos_swing = (Ra * a).sum(-1)
    sin_swing = torch.linalg.cross(a.expand_as(Ra), Ra).norm(dim=-1)
    swing = torch.atan2(sin_swing, cos_swing)  # (B, J)
    # quaternion (w, v) of R_rel; twist angle = 2 atan2(v . a, w)
    q = matrix_to_quat(R_rel)  # (B, J, 4)
    va = (q[..., 1:] * a).sum(-1)
    twist = 2 * torch.atan2(va, q[..., 0])
    twist = torch.remainder(twist + math.pi, 2 * math.pi) - math.pi
    return swing, twist


def swing_twist_residual(
    R_rel: Float[Tensor, "B J 3 3"], axes: Float[Tensor, "J 3"], limits: Float[Tensor, "J 3"], margin: float = 0.0
) -> Float[Tensor, "B R"]:
    """Radians by which each joint's twist leaves ``[lower, upper]`` and its swing exceeds ``swing_max`` (0 inside,
    NaN limits ignored), ``(B, 2J)``: twist excess then swing excess per joint."""
    swing, twist = swing_twist(R_rel, axes)
    lim = limits.to(R_rel)
    lo = torch.nan_to_num(lim[:, 0], nan=-math.inf) - margin
    hi = torch.nan_to_num(lim[:, 1], nan=math.inf) + margin
    sw = torch.nan_to_num(lim[:, 2], nan=math.inf) + margin
    t_ex = torch.where(torch.isfinite(lo), torch.relu(lo - twist), torch.zeros_like(twist)) + torch.where(
        torch.isfinite(hi), torch.relu(twist - hi), torch.zeros_like(twist))
    s_ex = torch.where(torch.isfinite(sw), torch.relu(swing - sw), torch.zeros_like(swing))
    return torch.stack([t_ex, s_ex], -1).flatten(1)  # (B, 2J)


def learn_swing_twist(
    R_rel: Float[Tensor, "N J 3 3"], axes: Float[Tensor, "J 3"], quantile: float = 0.005, pad_deg: float = 5.0,
    min_poses: int = 20,
) -> Float[Tensor, "J 3"]:
    """Swing-twist limits ``[twist_lower, twist_upper, swing_max]`` from observed poses: the ``quantile`` /
    ``1 - quantile`` twist and the ``1 - quantile`` swing per joint, widened by ``pad_deg``. Fewer than
    ``min_poses`` poses give NaN (unknown)."""
    J = R_rel.shape[1]
    out = torch.full((J, 3), math.nan, dtype=torch.float64)
    if R_rel.shape[0] < min_poses:
        return out
    swing, twist = swing_twist(R_rel.double(), axes.double())  # (N, J)
    pad = math.radians(pad_deg)
    out[:, 0] = (torch.quantile(twist, quantile, dim=0) - pad).clamp(min=-math.pi)
    out[:, 1] = (torch.quantile(twist, 1 - quantile, dim=0) + pad).clamp(max=math.pi)
    out[:, 2] = (torch.quantile(swing, 1 - quantile, dim=0) + pad).clamp(max=math.pi)
    return out
