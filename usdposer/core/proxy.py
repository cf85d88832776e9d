"""The smooth self-intersection proxy of a rig: one capsule per bone, pairs of non-neighbouring capsules penalised by
:func:`usdposer.core.intersect.capsule_residual` (the guidance energy beside the exact test of ``selfintersect``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from usdposer.core.intersect import capsule_residual

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor

    from usdposer.types import Rig


@dataclass(frozen=True)
class CapsuleProxy:
    """``P`` capsule pairs: capsule ``k`` spans joints ``ends[k, 0] -> ends[k, 1]`` with ``radius[k]`` (metres);
    pair ``p`` is capsules ``pairs[p]`` with the overlap ``allowance[p]`` they already have at rest."""

    ends: Int[Tensor, "C 2"]
    radius: Float[Tensor, " C"]
    pairs: Int[Tensor, "P 2"]
    allowance: Float[Tensor, " P"]

    @classmethod
    def from_rig(cls, rig: Rig, min_tree_distance: int = 3) -> CapsuleProxy:
        """Capsules along every bone (parent -> child) whose parent dominates skinned vertices; radius = the median
        distance of those vertices to the bone. Pairs: bones whose joints are all ``min_tree_distance`` apart."""
        from usdposer.core.intersect import segment_distance
        from usdposer.core.posespace import tree_distance
        from usdposer.core.posing import joint_transforms
        from usdposer.types import Pose

        rest = joint_transforms(rig.to(torch.float64), Pose.rest(rig.to(torch.float64)))[0, :, :3, 3]  # (J, 3)
        bind = rig.bind_world.double()[:, :3, 3]
        pts = [m.points.double() for m in rig.meshes]
        dom = [m.joint_indices.gather(1, m.joint_weights.argmax(1, keepdim=True))[:, 0] for m in rig.meshes]
        P = torch.cat(pts) if pts else torch.zeros(0, 3, dtype=torch.float64)
        D = torch.cat(dom) if dom else torch.zeros(0, dtype=torch.long)
        ends, radius = [], []
        for c, p in enumerate(rig.parents.tolist()):
            if p < 0:
                continue
            mine = P[D == p]
            if len(mine) < 3 or (bind[c] - bind[p]).norm() < 1e-9:
                continue
            d = segment_distance(mine, mine, bind[p].expand_as(mine), bind[c].expand_as(mine))
            ends.append((p, c))
            radius.append(float(d.median()))
        ends_t = torch.tensor(ends, dtype=torch.long).reshape(-1, 2)
        radius_t = torch.tensor(radius, dtype=torch.float64)
        dist = tree_distance(rig.parents)
        C = len(ends_t)
        i, j = torch.triu_indices(C, C, 1)
        far = dist[ends_t[i][:, :, None], ends_t[j][:, None, :]].flatten(1).amin(1) >= min_tree_distance
        pairs = torch.stack([i[far], j[far]], 1)
        e = ends_t
        d_rest = segment_distance(rest[e[pairs[:, 0], 0]], rest[e[pairs[:, 0], 1]], rest[e[pairs[:, 1], 0]],
                                  rest[e[pairs[:, 1], 1]])
        allowance = (radius_t[pairs[:, 0]] + radius_t[pairs[:, 1]] - d_rest).clamp(min=0)
        return cls(ends_t, radius_t, pairs, allowance)

    def residual(self, positions: Float[Tensor, "B J 3"], scale: float = 1.0,
                 select: Int[Tensor, "B k"] | None = None) -> Float[Tensor, "B P"]:
        """Penetration of every capsule pair (or, per batch element, the pairs ``select`` names) beyond its rest
        overlap, divided by ``scale``."""
        pairs = self.pairs if select is None else self.pairs[select]  # (P, 2) or (B, k, 2)
        a, b = self.ends[pairs[..., 0]], self.ends[pairs[..., 1]]  # (..., 2)
        bi = slice(None) if select is None else torch.arange(len(positions), device=positions.device)[:, None]
        r = self.radius.to(positions)
        allowance = self.allowance.to(positions)
        return capsule_residual(positions[bi, a[..., 0]], positions[bi, a[..., 1]], positions[bi, b[..., 0]],
                                positions[bi, b[..., 1]], r[pairs[..., 0]], r[pairs[..., 1]],
                                allowance if select is None else allowance[select], scale)

    def largest(self, positions: Float[Tensor, "B J 3"], scale: float = 1.0, k: int = 16) -> Float[Tensor, "B k"]:
        """``energy.largest(self.residual(positions, scale), k)`` with a graph through those ``k`` pairs only: the
        pairs are chosen without one, then recomputed with one (same values, same gradients: the others get none)."""
        if len(self.pairs) <= k:
            return self.residual(positions, scale)
        with torch.no_grad():
            top = self.residual(positions, scale).topk(k, 1)  # (B, k)
        if not torch.is_grad_enabled():
            return top.values
        return self.residual(positions, scale, top.indices)
