"""Exact self-intersection of a skinned mesh between parts that are not neighbours in the skeleton.

Every triangle belongs to the joint that dominates its three vertices' skin weights (its *part*). Two parts may
collide when they are at least ``min_tree_distance`` edges apart in the skeleton and do not already cross in the rest
or bind pose (eyes in a head, a tail tucked into a body: what the artist modelled is not an error). Two triangles
whose skin influences (weights above 5%) come within ``min_tree_distance`` of each other are one blend region, not
two parts: linear blend skinning folds such skin at a bending joint, which is a skinning artefact, not a collision.

Per frame: 1. part bounding boxes; 2. pairs of allowed parts whose boxes overlap; 3. for each such pair, the
triangles of one inside the other's box, triangle boxes tested pairwise; 4. the exact test of
:func:`usdposer.core.intersect.triangles_intersect` on the survivors, with :func:`crossing_depth` for the depth.
Steps 1-2 run on a whole chunk of frames at once, so frames without a candidate pair cost a few tensor ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from usdposer.core.intersect import crossing_depth, triangles_intersect

if TYPE_CHECKING:
    from jaxtyping import Bool, Float, Int
    from torch import Tensor

    from usdposer.types import Rig


@dataclass(frozen=True)
class Contact:
    """Parts ``a`` < ``b`` (joint indices) of frame ``frame`` (index in the batch) cross at ``crossings`` triangle
    pairs, the deepest by ``depth`` metres."""

    frame: int
    a: int
    b: int
    depth: float
    crossings: int


@dataclass
class TriangleParts:
    """Triangles of a rig's meshes grouped by dominant joint, with the part pairs that may not touch."""

    faces: Int[Tensor, "F 3"]  # vertex indices into the concatenated points of every mesh
    part: Int[Tensor, " F"]  # dominant joint of each triangle
    allowed: Bool[Tensor, "J J"]  # symmetric: parts that must not cross
    members: dict[int, Tensor]  # part -> its triangle indices
    influences: Bool[Tensor, "F J"]  # joints weighing more than 5% on any vertex of the triangle
    near: Float[Tensor, "J J"]  # 1 where joints are closer than min_tree_distance
    _masks: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_rig(cls, rig: Rig, min_tree_distance: int = 3) -> TriangleParts:
        from usdposer.core.posespace import tree_distance
        from usdposer.core.posing import skin
        from usdposer.types import Pose

        faces, parts, infl, offset = [], [], [], 0
        J = rig.num_joints
        for m in rig.meshes:
            F = m.faces.long()
            if len(F):
                w = torch.zeros(len(m.points), J, dtype=torch.float64)
                w.scatter_add_(1, m.joint_indices.long(), m.joint_weights.double())  # (V, J)
                parts.append(w[F].sum(1).argmax(-1))  # (F,)
                infl.append((w[F] > 0.05).any(1))  # (F, J)
                faces.append(F + offset)
            offset += len(m.points)
        faces_t = torch.cat(faces) if faces else torch.zeros(0, 3, dtype=torch.long)
        part = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
        dist = tree_distance(rig.parents)
        allowed = dist >= min_tree_distance  # (J, J)
        members = {int(j): torch.nonzero(part == j).flatten() for j in torch.unique(part)}
        influences = torch.cat(infl) if infl else torch.zeros(0, J, dtype=torch.bool)
        out = cls(faces_t, part, allowed, members, influences, (dist < min_tree_distance).float())
        # parts that already cross as modelled (bind pose: the mesh's own points) or at rest are allowed to
        bind = torch.cat([m.points for m in rig.meshes]).float()[None] if rig.meshes else None
        if bind is not None and len(faces_t):
            rest = torch.cat(skin(rig, Pose.rest(rig), backend="torch"), 1).float()
            for c in out.find(torch.cat([bind, rest])):
                allowed[c.a, c.b] = allowed[c.b, c.a] = False
        return out

    def _static_mask(self, a: int, b: int) -> Tensor:
        """(na, nb) triangle pairs of parts a, b that may cross: no shared vertex, not one blend region (cached)."""
        key = (a, b)
        if key not in self._masks:
            ta, tb = self.members[a], self.members[b]
            shared = (self.faces[ta][:, None, :, None] == self.faces[tb][None, :, None, :]).flatten(2).any(-1)
            blend = (self.influences[ta].float() @ self.near @ self.influences[tb].float().T) > 0  # (na, nb)
            self._masks[key] = ~(shared | blend)
        return self._masks[key]

    def find(self, points: Float[Tensor, "B V 3"], budget: int = 20_000_000) -> list[Contact]:
        """Every crossing of allowed part pairs in every frame of ``points`` (module docstring). ``budget`` bounds
        the triangle-box pairs tested at once."""
        if len(self.faces) == 0:
            return []
        J = self.allowed.shape[0]
        tri = points[:, self.faces]  # (B, F, 3, 3)
        lo, hi = tri.amin(2), tri.amax(2)  # (B, F, 3)
        # 1. part boxes
        idx = self.part[None, :, None].expand_as(lo)
        plo = torch.full((len(points), J, 3), float("inf"), dtype=lo.dtype).scatter_reduce(1, idx, lo, "amin")
        phi = torch.full((len(points), J, 3), float("-inf"), dtype=hi.dtype).scatter_reduce(1, idx, hi, "amax")
        # 2. allowed part pairs whose boxes overlap, grouped by pair so that each pair's frames run together
        overlap = ((plo[:, :, None] <= phi[:, None]) & (plo[:, None] <= phi[:, :, None])).all(-1)  # (B, J, J)
        overlap &= torch.triu(self.allowed, 1)
        cand = torch.nonzero(overlap)  # (C, 3): frame, a, b
        frames_l, ia_l, ib_l, a_l, b_l = [], [], [], [], []
        for a, b in torch.unique(cand[:, 1:], dim=0).tolist():
            mask = self._static_mask(a, b)
            if not mask.any():
                continue
            ta, tb = self.members[a], self.members[b]
            fs = cand[(cand[:, 1] == a) & (cand[:, 2] == b), 0]
            # 3. triangles of a inside b's box (and vice versa) in some frame, then triangle boxes pairwise
            in_a = ((lo[fs][:, ta] <= phi[fs, b][:, None]) & (hi[fs][:, ta] >= plo[fs, b][:, None])).all(-1).any(0)
            in_b = ((lo[fs][:, tb] <= phi[fs, a][:, None]) & (hi[fs][:, tb] >= plo[fs, a][:, None])).all(-1).any(0)
            in_a &= mask.any(1)
            in_b &= mask.any(0)
            if not in_a.any() or not in_b.any():
                continue
            sub = mask[in_a][:, in_b]
            ta, tb = ta[in_a], tb[in_b]
            step = max(1, budget // max(1, len(ta) * len(tb)))
            for k in range(0, len(fs), step):
                f = fs[k:k + step]
                la, ha, lb, hb = lo[f][:, ta], hi[f][:, ta], lo[f][:, tb], hi[f][:, tb]  # (k, n, 3)
                pair = sub & (la[:, :, None, 0] <= hb[:, None, :, 0]) & (lb[:, None, :, 0] <= ha[:, :, None, 0])
                for ax in (1, 2):
                    pair &= (la[:, :, None, ax] <= hb[:, None, :, ax]) & (lb[:, None, :, ax] <= ha[:, :, None, ax])
                # pair: (k, na, nb)
                fi, i, j = torch.nonzero(pair, as_tuple=True)
                if len(fi):
                    frames_l.append(f[fi]), ia_l.append(ta[i]), ib_l.append(tb[j])
                    a_l.append(torch.full_like(fi, a)), b_l.append(torch.full_like(fi, b))
        if not frames_l:
            return []
        fr, ia, ib, pa, pb = (torch.cat(x) for x in (frames_l, ia_l, ib_l, a_l, b_l))
        # 4. one exact test for every surviving triangle pair of the chunk
        A, B = tri[fr, ia].double(), tri[fr, ib].double()
        hit = triangles_intersect(A, B)
        if not hit.any():
            return []
        fr, pa, pb = fr[hit], pa[hit], pb[hit]
        depth = crossing_depth(A[hit], B[hit])
        out = []
        keys = torch.stack([fr, pa, pb], 1)
        uniq, inv = torch.unique(keys, dim=0, return_inverse=True)
        worst = torch.zeros(len(uniq), dtype=depth.dtype).scatter_reduce(0, inv, depth, "amax", include_self=False)
        count = torch.bincount(inv, minlength=len(uniq))
        for (f, a, b), d, n in zip(uniq.tolist(), worst.tolist(), count.tolist()):
            out.append(Contact(f, a, b, d, n))
        return out
