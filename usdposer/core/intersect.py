"""Self-intersection: an exact triangle-triangle test for reports and a smooth capsule proxy for guidance. Pure torch.

Exact test (reports). Two non-coplanar triangles intersect iff an edge of one crosses the other; each of the six
edge-triangle tests is Moller-Trumbore restricted to the segment (``0 <= t <= 1``). Coplanar overlaps (measure
zero for skinned meshes) are not reported. The depth of a crossing is how far the vertices of each triangle reach
behind the other's plane (against its face normal), the larger of the two: a local estimate bounded by the size of
the triangles involved.

Smooth proxy (guidance). Each bone is a capsule (segment + radius); a pair of capsules that are not neighbours in the
skeleton penetrates by ``r_a + r_b - d(seg_a, seg_b)``. Penetration already present at rest is allowed, so that the
energy is zero on the rest pose and grows with new overlap. ``d`` is the exact segment-segment distance
(Ericson, Real-Time Collision Detection, 5.1.9), differentiable wherever the closest points are unique.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from jaxtyping import Bool, Float
    from torch import Tensor


def segment_triangle_hit(
    p0: Float[Tensor, "N 3"], p1: Float[Tensor, "N 3"], tri: Float[Tensor, "N 3 3"], eps: float = 1e-12
) -> Bool[Tensor, " N"]:
    """Does segment ``p0 -> p1`` cross triangle ``tri`` (Moller-Trumbore with ``0 <= t <= 1``)? Parallel -> False."""
    v0, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]  # (N, 3) each
    d = p1 - p0  # (N, 3)
    h = torch.linalg.cross(d, e2)  # (N, 3)
    a = (e1 * h).sum(-1)  # (N,)
    ok = a.abs() > eps * (d.norm(dim=-1) * e1.norm(dim=-1) * e2.norm(dim=-1)).clamp(min=1e-30)
    f = 1.0 / torch.where(ok, a, torch.ones_like(a))
    s = p0 - v0
    u = f * (s * h).sum(-1)
    q = torch.linalg.cross(s, e1)  # (N, 3)
    v = f * (d * q).sum(-1)
    t = f * (e2 * q).sum(-1)
    return ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t >= 0) & (t <= 1)


def triangles_intersect(a: Float[Tensor, "N 3 3"], b: Float[Tensor, "N 3 3"]) -> Bool[Tensor, " N"]:
    """Exact test for ``N`` pairs of triangles (non-coplanar crossings): any edge of one crossing the other."""
    hit = torch.zeros(a.shape[0], dtype=torch.bool, device=a.device)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        hit |= segment_triangle_hit(a[:, i], a[:, j], b)
        hit |= segment_triangle_hit(b[:, i], b[:, j], a)
    return hit


def crossing_depth(a: Float[Tensor, "N 3 3"], b: Float[Tensor, "N 3 3"]) -> Float[Tensor, " N"]:
    """Local penetration depth of crossing triangle pairs (module docstring): the farthest any vertex of one triangle
    lies behind the other's plane (against its normal, right-handed winding), the larger of the two."""

    def behind(p: Tensor, tri: Tensor) -> Tensor:
        n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (N, 3)
        n = n / n.norm(dim=-1, keepdim=True).clamp(min=1e-30)
        dist = ((p - tri[:, :1]) * n[:, None]).sum(-1)  # (N, 3) signed distances of p's vertices
        return torch.relu(-dist).amax(-1)  # (N,)

    return torch.maximum(behind(a, b), behind(b, a))


def segment_distance(
    p0: Float[Tensor, "... 3"], p1: Float[Tensor, "... 3"], q0: Float[Tensor, "... 3"], q1: Float[Tensor, "... 3"],
    eps: float = 1e-12,
) -> Float[Tensor, ...]:
    """Distance between segments ``p0 p1`` and ``q0 q1`` (Ericson 5.1.9); degenerate segments are points."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e = (d1 * d1).sum(-1), (d2 * d2).sum(-1)
    f, c, b = (d2 * r).sum(-1), (d1 * r).sum(-1), (d1 * d2).sum(-1)
    safe_a, safe_e = a.clamp(min=eps), e.clamp(min=eps)
    denom = a * e - b * b
    # 1. closest parameter on the first segment for the infinite second line (0 when parallel), clamped
    s = torch.where(denom > eps * (a * e).clamp(min=eps), (b * f - c * e) / denom.clamp(min=eps), torch.zeros_like(a))
    s = torch.where(a > eps, s.clamp(0, 1), torch.zeros_like(s))
    # 2. closest parameter on the second segment for that point; clamp and recompute s when it leaves [0, 1]
    t = torch.where(e > eps, (b * s + f) / safe_e, torch.zeros_like(s))
    s_lo = torch.where(a > eps, (-c / safe_a).clamp(0, 1), torch.zeros_like(s))
    s_hi = torch.where(a > eps, ((b - c) / safe_a).clamp(0, 1), torch.zeros_like(s))
    s = torch.where(t < 0, s_lo, torch.where(t > 1, s_hi, s))
    t = t.clamp(0, 1)
    diff = (p0 + d1 * s[..., None]) - (q0 + d2 * t[..., None])
    return (diff * diff).sum(-1).clamp(min=1e-30).sqrt()


def capsule_residual(
    a0: Float[Tensor, "B P 3"], a1: Float[Tensor, "B P 3"], b0: Float[Tensor, "B P 3"], b1: Float[Tensor, "B P 3"],
    radius_a: Float[Tensor, " P"], radius_b: Float[Tensor, " P"], allowance: Float[Tensor, " P"], scale: float = 1.0,
) -> Float[Tensor, "B P"]:
    """Smooth self-intersection proxy: ``max(0, r_a + r_b - d(a, b) - allowance) / scale`` for ``P`` capsule pairs
    (module docstring). Zero for pairs farther apart than at rest; its square is C1 in the capsule ends."""
    d = segment_distance(a0, a1, b0, b1)  # (B, P)
    return torch.relu(radius_a + radius_b - d - allowance) / scale
