"""Penalty ground contact for the bone boxes, y = 0, added to newton's body wrenches before each solver step.

Each box corner c of body b (box centre m, half-extents e, corner m + s * e for the 8 sign vectors s) at world point
p = X_b c with velocity v = v_com + w x (p - x_com) feels, when below the contact height (depth d = margin - p_y > 0;
``margin`` is the depth that carries the character's weight, so that a body at rest stands on y = 0, not in it):

    f_n = max(ke d - kd v_y, 0)                               normal force (+Y)
    f_t = -v_t min(kf, mu f_n / (|v_t| + eps))                 viscous friction capped by Coulomb (smooth enough for
                                                               gradients: modest ``kf`` keeps first contact usable)
    wrench += (f, (p - x_com) x f)                             newton's (force, torque about the centre of mass)

``ground_wrench_ref`` is the torch twin of ``_warp_contact.ground_contact_kernel`` (tested against each other).
Shapes: B bodies; transforms are newton's (position, quaternion x, y, z, w); twists (linear at the COM, angular).
"""

from __future__ import annotations

import torch
from torch import Tensor

SIGNS = torch.tensor([[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)])
EPS = 1e-6


def _rotate(q: Tensor, v: Tensor) -> Tensor:
    """Rotate (…, 3) by (…, 4) quaternions (x, y, z, w)."""
    u, w = q[..., :3], q[..., 3:]
    t = 2 * torch.linalg.cross(u, v, dim=-1)
    return v + w * t + torch.linalg.cross(u, t, dim=-1)


def box_corners(body_q: Tensor, centers: Tensor, halves: Tensor) -> Tensor:
    """(B, 8, 3) world corners of every body's box."""
    local = centers[:, None] + SIGNS.to(centers) * halves[:, None]  # (B, 8, 3)
    return body_q[:, None, :3] + _rotate(body_q[:, None, 3:].expand(-1, 8, -1), local)


def ground_wrench_ref(body_q: Tensor, body_qd: Tensor, body_com: Tensor, centers: Tensor, halves: Tensor,
                      ke: Tensor, kd: Tensor, kf: Tensor, mu: Tensor, margin: float = 0.0) -> Tensor:
    """(B, 6) contact wrenches (force, torque about the COM) of the module docstring; gains (B,) per body."""
    ke, kd, kf, mu = (x[:, None] for x in (ke, kd, kf, mu))
    p = box_corners(body_q, centers, halves)  # (B, 8, 3)
    x_com = body_q[:, :3] + _rotate(body_q[:, 3:], body_com)  # (B, 3)
    r = p - x_com[:, None]
    v = body_qd[:, None, :3] + torch.linalg.cross(body_qd[:, None, 3:].expand(-1, 8, -1), r, dim=-1)
    depth = margin - p[..., 1]
    fn = torch.clamp(ke * depth - kd * v[..., 1], min=0.0) * (depth > 0)
    vt = v.clone()
    vt[..., 1] = 0
    speed = vt.norm(dim=-1)
    ft = -vt * torch.minimum(kf.expand_as(speed), mu * fn / (speed + EPS))[..., None]
    f = ft.clone()
    f[..., 1] = f[..., 1] + fn
    f = f * (depth > 0)[..., None]
    return torch.cat([f.sum(1), torch.linalg.cross(r, f, dim=-1).sum(1)], 1)


def upright_torque_ref(body_q: Tensor, body_qd: Tensor, root: int, up_local: Tensor, up_a: Tensor, up_b: Tensor,
                       s: float, ke: float, kd: float) -> Tensor:
    """(3,) the virtual torque that keeps the root upright (AKD's "virtual penalty"): a spring pulling the root
    body's rest up direction u = R up_local towards the reference's (interpolated) up direction, and a damper on the
    tilting part of its angular velocity; no torque about u itself, so the heading stays free:

        tau = ke (u x u_ref) - kd (w - (w . u) u)
    """
    u = _rotate(body_q[root, 3:], up_local.to(body_q))
    target = up_a + s * (up_b - up_a)
    target = target / target.norm()
    w = body_qd[root, 3:]
    return ke * torch.linalg.cross(u, target.to(u), dim=-1) - kd * (w - (w * u).sum() * u)
