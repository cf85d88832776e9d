"""Rotations: quaternions ``(w, x, y, z)``, 3x3 matrices, the 6D continuous representation, slerp.

Every function takes ``(..., 4)`` / ``(..., 3, 3)`` / ``(..., 6)`` / ``(..., 3)`` tensors and keeps the batch shape.
Quaternions are ``(w, x, y, z)`` here and everywhere in usdposer; USD's numpy views (``np.asarray(Vt.QuatfArray)``),
Warp and scipy use ``(x, y, z, w)``: convert only at those edges with :func:`wxyz_to_xyzw` / :func:`xyzw_to_wxyz`.
Matrices act on column vectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor


def wxyz_to_xyzw(q: Float[Tensor, "... 4"]) -> Float[Tensor, "... 4"]:
    return torch.cat([q[..., 1:], q[..., :1]], dim=-1)


def xyzw_to_wxyz(q: Float[Tensor, "... 4"]) -> Float[Tensor, "... 4"]:
    return torch.cat([q[..., 3:], q[..., :3]], dim=-1)


def quat_identity(*shape: int, dtype: torch.dtype = torch.float32, device=None) -> Float[Tensor, "... 4"]:
    q = torch.zeros(*shape, 4, dtype=dtype, device=device)
    q[..., 0] = 1.0
    return q


def quat_normalize(q: Float[Tensor, "... 4"], eps: float = 1e-12) -> Float[Tensor, "... 4"]:
    return q / q.norm(dim=-1, keepdim=True).clamp_min(eps)


def quat_conjugate(q: Float[Tensor, "... 4"]) -> Float[Tensor, "... 4"]:
    return torch.cat([q[..., :1], -q[..., 1:]], dim=-1)


def quat_multiply(a: Float[Tensor, "... 4"], b: Float[Tensor, "... 4"]) -> Float[Tensor, "... 4"]:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quat_apply(q: Float[Tensor, "... 4"], v: Float[Tensor, "... 3"]) -> Float[Tensor, "... 3"]:
    """Rotate vectors ``v`` by unit quaternions ``q``."""
    w, xyz = q[..., :1], q[..., 1:]
    t = 2.0 * torch.cross(xyz.expand_as(v), v, dim=-1)
    return v + w * t + torch.cross(xyz.expand_as(v), t, dim=-1)


def quat_to_matrix(q: Float[Tensor, "... 4"], normalize: bool = True) -> Float[Tensor, "... 3 3"]:
    """Quaternion (w, x, y, z) to rotation matrix.

    With ``normalize=False`` the formula is applied to ``q`` as given, as ``UsdSkel.MakeTransform`` does: a slightly
    non-unit quaternion read from a file then gives the same (slightly scaled) matrix that every USD consumer shows.
    """
    w, x, y, z = (quat_normalize(q) if normalize else q).unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    m = torch.stack(
        [
            1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
            2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
            2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
        ],
        dim=-1,
    )
    return m.reshape(*q.shape[:-1], 3, 3)  # (..., 3, 3)


def matrix_to_quat(m: Float[Tensor, "... 3 3"]) -> Float[Tensor, "... 4"]:
    """Rotation matrix to unit quaternion (w >= 0), numerically stable in all four branches (Shepperd)."""
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 1. four candidate quaternions, each well conditioned when its leading component is largest
    cand = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )  # (..., 4, 4)
    # 2. pick the candidate with the largest diagonal term and normalise it
    diag = torch.stack([cand[..., 0, 0], cand[..., 1, 1], cand[..., 2, 2], cand[..., 3, 3]], -1)  # (..., 4)
    best = diag.argmax(-1, keepdim=True)  # (..., 1)
    q = torch.gather(cand, -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)  # (..., 4)
    q = quat_normalize(q)
    return torch.where(q[..., :1] < 0, -q, q)


def axis_angle_to_quat(aa: Float[Tensor, "... 3"]) -> Float[Tensor, "... 4"]:
    """Axis-angle vectors (angle = norm, radians) to quaternions; smooth at zero."""
    angle = aa.norm(dim=-1, keepdim=True)
    half = 0.5 * angle
    # sin(half)/angle with its Taylor series near zero
    small = angle < 1e-6
    k = torch.where(small, 0.5 - angle * angle / 48.0, torch.sin(half) / torch.where(small, torch.ones_like(angle), angle))
    return torch.cat([torch.cos(half), aa * k], dim=-1)


def quat_to_axis_angle(q: Float[Tensor, "... 4"]) -> Float[Tensor, "... 3"]:
    q = quat_normalize(q)
    q = torch.where(q[..., :1] < 0, -q, q)
    s = q[..., 1:].norm(dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(s, q[..., :1])
    k = torch.where(s < 1e-8, 2.0 * torch.ones_like(s), angle / s.clamp_min(1e-12))
    return q[..., 1:] * k


def matrix_to_6d(m: Float[Tensor, "... 3 3"]) -> Float[Tensor, "... 6"]:
    """The 6D continuous representation (Zhou et al. 2019): the first two columns of the matrix."""
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


def sixd_to_matrix(d6: Float[Tensor, "... 6"]) -> Float[Tensor, "... 3 3"]:
    """Gram-Schmidt of the two 3-vectors of a 6D rotation into a rotation matrix (columns b1, b2, b3)."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)  # (..., 3, 3)


def quat_to_6d(q: Float[Tensor, "... 4"]) -> Float[Tensor, "... 6"]:
    return matrix_to_6d(quat_to_matrix(q))


def sixd_to_quat(d6: Float[Tensor, "... 6"]) -> Float[Tensor, "... 4"]:
    return matrix_to_quat(sixd_to_matrix(d6))


def quat_slerp(a: Float[Tensor, "... 4"], b: Float[Tensor, "... 4"], t: Float[Tensor, ...] | float) -> Float[Tensor, "... 4"]:
    """Spherical linear interpolation along the shorter arc; ``t`` broadcasts against the batch shape."""
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    if t.dim() < a.dim():
        t = t[..., None]
    dot = (a * b).sum(-1, keepdim=True)
    b = torch.where(dot < 0, -b, b)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    near = sin_theta < 1e-6
    safe = torch.where(near, torch.ones_like(sin_theta), sin_theta)
    wa = torch.where(near, 1.0 - t, torch.sin((1.0 - t) * theta) / safe)
    wb = torch.where(near, t, torch.sin(t * theta) / safe)
    return quat_normalize(wa * a + wb * b)


def quat_angle(a: Float[Tensor, "... 4"], b: Float[Tensor, "... 4"]) -> Float[Tensor, ...]:
    """Geodesic angle (radians) between two rotations."""
    dot = (quat_normalize(a) * quat_normalize(b)).sum(-1).abs().clamp(max=1.0)
    return 2.0 * torch.acos(dot)
