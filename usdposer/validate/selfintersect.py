"""Exact self-intersection of a skinned mesh between parts that are not neighbours in the skeleton.

Every triangle belongs to the joint that dominates its three vertices' skin weights (its *part*). Two parts may
collide when they are at least ``min_tree_distance`` edges apart in the skeleton and do not already cross in the rest
or bind pose (eyes in a head, a tail tucked into a body: what the artist modelled is not an error). Two triangles
whose skin influences (weights above 5%) come within ``min_tree_distance`` of each other are one blend region, not
two parts: linear blend skinning folds such skin at a bending joint, which is a skinning artefact, not a collision.

Per frame: 1. part bounding boxes; 2. pairs of allowed parts whose boxes overlap; 3. for each such pair, the
triangles of one inside the other's box, triangle boxes tested pairwise (or, for large parts, swept along one axis:
:func:`box_pairs`); 4. pairs whose triangles lie on one side of
each other's plane dropped, then the exact test of :func:`usdposer.core.intersect.triangles_intersect` on the
survivors, with :func:`crossing_depth` for the depth. Triangles are sorted by part, so a part's triangles are a slice.
Steps 1-2 run on a whole chunk of frames at once, so frames without a candidate pair cost a few tensor ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import torch

from usdposer.core.intersect import crossing_depth, triangles_intersect

if TYPE_CHECKING:
    from jaxtyping import Bool, Float, Int
    from torch import Tensor

    from usdposer.types import Rig


STATIC_PAIRS = 4_000_000  # part pairs with at most this many triangle pairs keep a dense mask of those that may cross


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
    """Triangles of a rig's meshes grouped by dominant joint, with the part pairs that may not touch. Triangles are
    sorted by part, so that each part's triangles are one contiguous span (slices, not gathers, in :meth:`find`)."""

    faces: Int[Tensor, "F 3"]  # vertex indices into the concatenated points of every mesh, sorted by part
    part: Int[Tensor, " F"]  # dominant joint of each triangle (non-decreasing)
    allowed: Bool[Tensor, "J J"]  # symmetric: parts that must not cross
    spans: dict[int, tuple[int, int]]  # part -> [start, end) of its triangles
    influences: Bool[Tensor, "F J"]  # joints weighing more than 5% on any vertex of the triangle
    near: Float[Tensor, "J J"]  # 1 where joints are closer than min_tree_distance
    _masks: dict = field(default_factory=dict, repr=False)

    @cached_property
    def reach(self) -> Bool[Tensor, "F J"]:
        """Joints near one of each triangle's influences (only large part pairs need it)."""
        F, J = self.influences.shape
        out = torch.zeros(F, J, dtype=torch.bool)
        for k in range(0, F, 65536):  # blocks: a (F, J) float product of a studio mesh would not fit
            out[k:k + 65536] = (self.influences[k:k + 65536].float() @ self.near) > 0
        return out

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
        influences = torch.cat(infl) if infl else torch.zeros(0, J, dtype=torch.bool)
        order = torch.argsort(part, stable=True)
        faces_t, part, influences = faces_t[order], part[order], influences[order]
        ids, counts = torch.unique_consecutive(part, return_counts=True)
        ends = torch.cumsum(counts, 0)
        spans = {int(j): (int(e - n), int(e)) for j, n, e in zip(ids, counts, ends)}
        dist = tree_distance(rig.parents)
        allowed = dist >= min_tree_distance  # (J, J)
        out = cls(faces_t, part, allowed, spans, influences, (dist < min_tree_distance).float())
        # parts that already cross as modelled (bind pose: the mesh's own points) or at rest are allowed to
        bind = torch.cat([m.points for m in rig.meshes]).float()[None] if rig.meshes else None
        if bind is not None and len(faces_t):
            rest = torch.cat(skin(rig, Pose.rest(rig), backend="torch"), 1).float()
            for c in out.find(torch.cat([bind, rest])):
                allowed[c.a, c.b] = allowed[c.b, c.a] = False
        return out

    def _static_mask(self, a: int, b: int) -> tuple[Tensor, Tensor, Tensor] | None:
        """(na, nb) triangle pairs of parts a, b that may cross: no shared vertex, not one blend region; with its
        row and column ``any`` (cached; None when no pair may cross)."""
        key = (a, b)
        if key not in self._masks:
            (sa, ea), (sb, eb) = self.spans[a], self.spans[b]
            fa, fb = self.faces[sa:ea], self.faces[sb:eb]
            blend = (self.influences[sa:ea].float() @ self.near @ self.influences[sb:eb].float().T) > 0  # (na, nb)
            # a shared vertex is one of the few both parts touch: the exact test runs on those triangles only
            common = fa.flatten()[torch.isin(fa.flatten(), fb)]
            ra, rb = torch.isin(fa, common).any(1), torch.isin(fb, common).any(1)
            if ra.any():
                ia, ib = torch.nonzero(ra).flatten(), torch.nonzero(rb).flatten()
                shared = (fa[ia][:, None, :, None] == fb[ib][None, :, None, :]).flatten(2).any(-1)  # (ia, ib)
                blend[ia[:, None], ib[None]] |= shared
            mask = ~blend
            self._masks[key] = (mask, mask.any(1), mask.any(0)) if mask.any() else None
        return self._masks[key]

    def blend_or_touching(self, ia: Int[Tensor, " N"], ib: Int[Tensor, " N"]) -> Bool[Tensor, " N"]:
        """Triangle pairs that may not count as crossing: one blend region (skin influences within
        ``min_tree_distance`` of each other) or sharing a vertex."""
        blend = (self.reach[ia] & self.influences[ib]).any(1)
        shared = (self.faces[ia][:, :, None] == self.faces[ib][:, None, :]).flatten(1).any(1)
        return blend | shared

    def find(self, points: Float[Tensor, "B V 3"], budget: int = 20_000_000) -> list[Contact]:
        """Every crossing of allowed part pairs in every frame of ``points`` (module docstring). ``budget`` bounds
        the triangle-box pairs held at once (:func:`box_pairs`)."""
        if len(self.faces) == 0:
            return []
        J = self.allowed.shape[0]
        p0, p1, p2 = (points[:, self.faces[:, k]] for k in range(3))  # (B, F, 3) each: corners of every triangle
        lo, hi = torch.minimum(torch.minimum(p0, p1), p2), torch.maximum(torch.maximum(p0, p1), p2)  # (B, F, 3)
        del p0, p1, p2
        # 1. part boxes
        idx = self.part[None, :, None].expand_as(lo)
        plo = torch.full((len(points), J, 3), float("inf"), dtype=lo.dtype).scatter_reduce(1, idx, lo, "amin")
        phi = torch.full((len(points), J, 3), float("-inf"), dtype=hi.dtype).scatter_reduce(1, idx, hi, "amax")
        # 2. allowed part pairs whose boxes overlap, grouped by pair so that each pair's frames run together
        overlap = ((plo[:, :, None] <= phi[:, None]) & (plo[:, None] <= phi[:, :, None])).all(-1)  # (B, J, J)
        overlap &= torch.triu(self.allowed, 1)
        cand = torch.nonzero(overlap)  # (C, 3): frame, a, b
        key = cand[:, 1] * J + cand[:, 2]
        order = torch.argsort(key, stable=True)
        pairs, counts = torch.unique_consecutive(key[order], return_counts=True)
        frames_l, ia_l, ib_l, a_l, b_l = [], [], [], [], []
        for k_ab, fs in zip(pairs.tolist(), torch.split(cand[order, 0], counts.tolist())):
            a, b = divmod(k_ab, J)
            (sa, ea), (sb, eb) = self.spans[a], self.spans[b]
            small = (ea - sa) * (eb - sb) <= STATIC_PAIRS  # a cached (na, nb) mask; a large pair filters sparsely
            if small:
                static = self._static_mask(a, b)
                if static is None:
                    continue
                mask, rows, cols = static
            # 3. triangles of a inside b's box (and vice versa) in some frame, then triangle boxes pairwise
            la, ha, lb, hb = lo[:, sa:ea][fs], hi[:, sa:ea][fs], lo[:, sb:eb][fs], hi[:, sb:eb][fs]  # (f, n, 3)
            pla, pha, plb, phb = plo[fs, a][:, None], phi[fs, a][:, None], plo[fs, b][:, None], phi[fs, b][:, None]
            in_a = ((la <= phb) & (ha >= plb)).all(-1).any(0)
            if small:
                in_a &= rows
            if not in_a.any():
                continue
            in_b = ((lb <= pha) & (hb >= pla)).all(-1).any(0)
            if small:
                in_b &= cols
            if not in_b.any():
                continue
            ta, tb = torch.nonzero(in_a).flatten(), torch.nonzero(in_b).flatten()
            la, ha, lb, hb = la[:, in_a], ha[:, in_a], lb[:, in_b], hb[:, in_b]
            for fi, i, j in box_pairs(la, ha, lb, hb, budget):
                keep = mask[ta[i], tb[j]] if small else ~self.blend_or_touching(ta[i] + sa, tb[j] + sb)
                if keep.any():
                    fi, i, j = fi[keep], i[keep], j[keep]
                    frames_l.append(fs[fi]), ia_l.append(ta[i] + sa), ib_l.append(tb[j] + sb)
                    a_l.append(torch.full_like(fi, a)), b_l.append(torch.full_like(fi, b))
        if not frames_l:
            return []
        fr, ia, ib, pa, pb = (torch.cat(x) for x in (frames_l, ia_l, ib_l, a_l, b_l))
        # 4. triangles with all of one's corners strictly on one side of the other's plane cannot cross; one exact
        # test for every other surviving triangle pair of the chunk
        A, B = points[fr[:, None], self.faces[ia]].double(), points[fr[:, None], self.faces[ib]].double()  # (N, 3, 3)
        keep = _straddles(A, B) & _straddles(B, A)
        A, B, fr, pa, pb = A[keep], B[keep], fr[keep], pa[keep], pb[keep]
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


def _straddles(tri: Float[Tensor, "N 3 3"], other: Float[Tensor, "N 3 3"]) -> Bool[Tensor, " N"]:
    """Do ``other``'s corners not all lie strictly on one side of ``tri``'s plane? (If they do, no edge of ``other``
    reaches ``tri`` and no edge of ``tri``, which lies in that plane, reaches ``other``.)"""
    n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (N, 3)
    d = ((other - tri[:, :1]) * n[:, None]).sum(-1)  # (N, 3)
    return ~((d > 0).all(1) | (d < 0).all(1))


def box_pairs(la: Float[Tensor, "B n 3"], ha: Float[Tensor, "B n 3"], lb: Float[Tensor, "B m 3"],
              hb: Float[Tensor, "B m 3"], budget: int = 20_000_000):
    """The overlapping boxes of two sets per frame: yields ``(frame, i, j)`` index batches, every pair once, with at
    most about ``budget`` candidate pairs in memory. Small sets test every pair (several frames at once); large ones
    (a studio mesh: tens of thousands of triangles per part) sweep along the longest axis of each frame: ``b`` sorted
    by its lower bound, each box of ``a`` meets only the ``b`` boxes that start within its span widened by the
    widest ``b`` box, and the few ``b`` boxes far wider than the rest are tested against every ``a`` box."""
    B, n, m = la.shape[0], la.shape[1], lb.shape[1]
    if n * m <= budget // 8:
        step = max(1, budget // max(1, n * m))
        for k in range(0, B, step):
            s = slice(k, k + step)
            pair = (la[s, :, None, 0] <= hb[s, None, :, 0]) & (lb[s, None, :, 0] <= ha[s, :, None, 0])
            for ax in (1, 2):
                pair &= (la[s, :, None, ax] <= hb[s, None, :, ax]) & (lb[s, None, :, ax] <= ha[s, :, None, ax])
            fi, i, j = torch.nonzero(pair, as_tuple=True)
            if len(fi):
                yield fi + k, i, j
        return
    for f in range(B):
        for i, j in _sweep(la[f], ha[f], lb[f], hb[f], budget):
            yield torch.full_like(i, f), i, j


def _sweep(la, ha, lb, hb, budget: int):
    """:func:`box_pairs` for one frame of two large sets: ``(i, j)`` batches, along the axis that gives the fewest
    candidates."""
    # in this frame, only boxes inside the other set's bounds can meet (the caller's filter spans several frames)
    ia = torch.nonzero(((la <= hb.amax(0)) & (ha >= lb.amin(0))).all(-1)).flatten()
    ib = torch.nonzero(((lb <= ha.amax(0)) & (hb >= la.amin(0))).all(-1)).flatten()
    if not len(ia) or not len(ib):
        return
    for i, j in _sweep_axis(la[ia], ha[ia], lb[ib], hb[ib], budget):
        yield ia[i], ib[j]


def _sweep_axis(la, ha, lb, hb, budget: int):
    """:func:`_sweep` on boxes already inside each other's bounds."""
    best = None
    for ax in range(3):
        width = hb[:, ax] - lb[:, ax]
        wide = width > 8 * width.median() + 1e-12
        narrow = torch.nonzero(~wide).flatten()
        order = narrow[torch.argsort(lb[narrow, ax])]
        starts = lb[order, ax].contiguous()
        reach = float(width[narrow].max()) if len(narrow) else 0.0
        first = torch.searchsorted(starts, (la[:, ax] - reach).contiguous())
        last = torch.searchsorted(starts, ha[:, ax].contiguous(), right=True)
        counts = (last - first).clamp_min(0)
        total = int(counts.sum()) + len(la) * int(wide.sum())
        if best is None or total < best[0]:
            best = (total, wide, order, first, counts)
    _, wide, order, first, counts = best
    ends = torch.cumsum(counts, 0)
    a0 = 0
    while a0 < len(la):  # rows of a in blocks of about `budget` candidate pairs
        done = int(ends[a0 - 1]) if a0 else 0
        a1 = max(a0 + 1, int(torch.searchsorted(ends, torch.tensor(done + budget), right=True)))
        a1 = min(a1, len(la))
        c = counts[a0:a1]
        i = torch.repeat_interleave(torch.arange(a0, a1), c)
        if len(i):
            offset = torch.arange(len(i)) - torch.repeat_interleave(torch.cumsum(c, 0) - c, c)
            j = order[first[i] + offset]
            keep = ((la[i] <= hb[j]) & (lb[j] <= ha[i])).all(-1)
            if keep.any():
                yield i[keep], j[keep]
        a0 = a1
    far = torch.nonzero(wide).flatten()
    for k in range(0, len(far), max(1, budget // max(1, len(la)))):
        jj = far[k:k + max(1, budget // max(1, len(la)))]
        pair = ((la[:, None] <= hb[jj][None]) & (lb[jj][None] <= ha[:, None])).all(-1)
        i, j = torch.nonzero(pair, as_tuple=True)
        if len(i):
            yield i, jj[j]
