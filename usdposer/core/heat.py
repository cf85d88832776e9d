"""Bone-heat skinning weights (Baran & Popovic, "Automatic Rigging and Animation of 3D Characters", SIGGRAPH 2007,
section 4; AKD appendix A). numpy / scipy; the visibility test runs on Warp's BVH (``_warp_heat``) with a torch
reference here (``_segment_visible_ref``).

Notation (paper -> code):
    w^i                 ``W[:, i]``        weight of bone i at every vertex
    Delta = M^-1 (-L)   ``L``, ``area``    cotangent Laplacian (stiffness ``L``, positive semi-definite) and lumped
                                           vertex areas ``M``; multiplying the paper's system by ``M`` keeps it symmetric
    H_jj = c / d_j^2    ``H``              heat from the nearest visible bone at distance d_j (0 where none is visible)
    p^i_j               ``Pm``             1 where bone i is the nearest visible bone of vertex j (1/n for n tied bones)

    (-Delta + H) w^i = H p^i   ->   (L + M H) w^i = M H p^i,   one factorisation, every bone a right-hand side.

The bone of joint j is one segment (Blender gives a bone one tail; on the shared assets one segment per joint is
closer to the artists' weights than one segment per child, whose control rigs hang face and tail joints under the
root). Rigs made in Blender keep its convention, every bone along its joint's local +Y axis (:func:`follows_y`); there
the segment runs along that axis for the distance to the nearest child, a leaf's for its parent's length, as
Blender's glTF importer rebuilds bones (on the shared assets: mean L1 to the artists' weights 0.687 -> 0.630, skinned
RMSE median 1.37 -> 1.06 % of height). Other rigs point each bone at the mean of its children; a leaf continues its
parent's direction for the parent's length, and a joint whose children all sit on it has no bone.

A vertex sees a bone when the segment from the vertex to the bone's closest point stays inside the mesh: it leaves
the vertex inwards (against the vertex normal) and crosses no triangle (the triangles around the vertex excepted).
Real rigs carry IK pole targets and other controls that float beside the body; a leaf joint outside the mesh and
away from it is such a control and gets no bone (:func:`control_joints`). A connected component that sees no bone at
all (eyes, buttons, a hat) is made visible to its nearest bone (the paper's extension for disconnected meshes), so the
system is never singular.

A bone that is no vertex's nearest visible bone (hidden by its neighbours) would get no weight; it shares the vertices
that see it and are nearly as close to it as to their own nearest bone (:func:`claim_orphans`), so every bone moves
part of the mesh.

Coincident vertices (UV seams split glTF meshes into patches) are welded before the Laplacian is built, so that heat
flows across seams; the weights are copied back to every original vertex.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from usdposer.core.geometry import vertex_normals

if TYPE_CHECKING:

    from jaxtyping import Bool, Float, Int
    from torch import Tensor

C_WEIGHT = 1.0  # the paper's c (Pinocchio and Blender both use 1)
INWARD = 0.0  # a segment whose direction has a larger cosine with the outward vertex normal leaves the mesh at once
TIE = 1e-6  # bones within this relative distance of the nearest one share a vertex (Blender's DISTANCE_EPSILON)
MIN_WEIGHT = 0.05  # weights below it are dropped (Blender drops those under 0.025-0.05); mean L1 0.630 -> 0.614
CONTROL_DISTANCE = 0.05  # a leaf joint outside the mesh and this far from it (x bounding-box diagonal) is a control


def follows_y(parents: np.ndarray, joint_pos: np.ndarray, axes: np.ndarray, cos: float = 0.98,
              share: float = 0.8) -> bool:
    """Whether the rig keeps Blender's convention, bones along their joint's local +Y: at least ``share`` of the
    joints with one child (not on the joint) have ``axes`` (J, 3) pointing at that child (cosine above ``cos``)."""
    parents = np.asarray(parents, np.int64)
    hits = total = 0
    scale = float(np.ptp(joint_pos, axis=0).max()) if len(joint_pos) > 1 else 1.0
    for j in range(len(parents)):
        kids = np.nonzero(parents == j)[0]
        if len(kids) != 1:
            continue
        d = joint_pos[kids[0]] - joint_pos[j]
        n = np.linalg.norm(d)
        if n <= 1e-6 * scale:
            continue
        total += 1
        hits += float(d @ axes[j]) / (n * max(np.linalg.norm(axes[j]), 1e-30)) > cos
    return total >= 3 and hits >= share * total


def bone_segments(parents: Int[Tensor, " J"] | np.ndarray, joint_pos: np.ndarray,
                  joints: np.ndarray | None = None, controls: np.ndarray = (),
                  axes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments of the skeleton's bones (module docstring): (A (S, 3), B (S, 3), owner (S,) joint index), at most
    one per joint.

    ``joint_pos`` is (J, 3); ``joints`` limits the result to those joint indices (the others still give their parents
    a direction); ``controls`` (pole targets...) are no children for this purpose. ``axes`` (J, 3), the joints'
    bind-pose local +Y axes, is given for rigs that keep Blender's convention (:func:`follows_y`): every bone then
    runs along its axis for the distance to its nearest child (a leaf: its parent's bone length), as Blender's glTF
    importer rebuilds them."""
    parents = np.asarray(parents, dtype=np.int64)
    J = len(parents)
    keep = np.ones(J, bool) if joints is None else np.isin(np.arange(J), joints)
    scale = float(np.ptp(joint_pos, axis=0).max()) if J > 1 else 1.0
    length = np.zeros(J)
    A, B, owner = [], [], []
    for j in range(J):  # parents before children, so a leaf finds its parent's length
        all_kids = [c for c in np.nonzero(parents == j)[0] if c not in controls]
        kids = [c for c in all_kids if np.linalg.norm(joint_pos[c] - joint_pos[j]) > 1e-6 * scale]
        if axes is not None:
            p = parents[j]
            length[j] = (min(np.linalg.norm(joint_pos[c] - joint_pos[j]) for c in kids) if kids
                         else length[p] if p >= 0 else 0.0)
            if keep[j] and (kids or not all_kids) and length[j] > 0:
                ax = axes[j] / max(np.linalg.norm(axes[j]), 1e-30)
                A.append(joint_pos[j]), B.append(joint_pos[j] + length[j] * ax), owner.append(j)
            continue
        if not keep[j]:
            continue
        if kids:
            A.append(joint_pos[j]), B.append(joint_pos[kids].mean(0)), owner.append(j)
        elif all_kids:
            continue  # every child sits on this joint: the child's bone covers the region; this one has none
        else:
            p = parents[j]
            A.append(joint_pos[j]), B.append(2 * joint_pos[j] - joint_pos[p] if p >= 0 else joint_pos[j]), owner.append(j)
    return np.asarray(A, np.float64).reshape(-1, 3), np.asarray(B, np.float64).reshape(-1, 3), np.asarray(owner, np.int64)


def point_segment_closest(P: np.ndarray, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances (V, S) and closest points (V, S, 3) from points ``P`` (V, 3) to segments ``A B`` (S, 3)."""
    d = B - A  # (S, 3)
    dd = np.maximum((d * d).sum(-1), 1e-30)  # (S,)
    t = np.clip(np.einsum("vsk,sk->vs", P[:, None] - A[None], d) / dd, 0.0, 1.0)  # (V, S)
    Q = A[None] + t[..., None] * d[None]  # (V, S, 3)
    return np.linalg.norm(P[:, None] - Q, axis=-1), Q


def joint_distances(P: np.ndarray, A: np.ndarray, B: np.ndarray, owner: np.ndarray, J: int,
                    chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per vertex and joint, the distance to the joint's nearest segment and that closest point:
    (D (V, J) with inf for joints without segments, Q (V, J, 3))."""
    V = len(P)
    D = np.full((V, J), np.inf)
    Q = np.zeros((V, J, 3))
    for s0 in range(0, V, chunk):
        d, q = point_segment_closest(P[s0:s0 + chunk], A, B)  # (v, S), (v, S, 3)
        for s in range(len(owner)):
            j = owner[s]
            better = d[:, s] < D[s0:s0 + chunk, j]
            D[s0:s0 + chunk, j] = np.where(better, d[:, s], D[s0:s0 + chunk, j])
            Q[s0:s0 + chunk, j] = np.where(better[:, None], q[:, s], Q[s0:s0 + chunk, j])
    return D, Q


def winding_number(points: np.ndarray, faces: np.ndarray, query: np.ndarray, chunk: int = 1 << 21) -> np.ndarray:
    """Generalized winding number (Jacobson et al. 2013) of a triangle mesh at ``query`` (Q, 3): (Q,), about 1
    inside a closed outward-oriented mesh and 0 outside (Van Oosterom-Strackee solid angles summed over triangles)."""
    T = points[faces]  # (F, 3, 3)
    out = np.zeros(len(query))
    step = max(1, chunk // max(len(faces), 1))
    for q0 in range(0, len(query), step):
        R = T[None] - query[q0:q0 + step, None, None]  # (q, F, 3, 3)
        a, b, c = R[..., 0, :], R[..., 1, :], R[..., 2, :]  # (q, F, 3) each
        la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
        dot = lambda x, y: np.einsum("qfk,qfk->qf", x, y)  # noqa: E731
        den = la * lb * lc + dot(a, b) * lc + dot(b, c) * la + dot(c, a) * lb
        out[q0:q0 + step] = np.arctan2(dot(a, np.cross(b, c)), den).sum(1) / (2 * np.pi)
    return out


def boundary_fraction(faces: np.ndarray) -> float:
    """Share of the mesh's edges that only one triangle uses (0 for a closed surface)."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)  # (3F, 2)
    _, count = np.unique(e, axis=0, return_counts=True)
    return float(np.mean(count == 1)) if len(count) else 1.0


def control_joints(points: np.ndarray, faces: np.ndarray, parents, joint_pos: np.ndarray,
                   distance: float = CONTROL_DISTANCE) -> np.ndarray:
    """Leaf joints that float outside the mesh, farther than ``distance`` x the mesh's bounding-box diagonal from
    every vertex (IK pole targets and other controls): sorted joint indices. They get no weight by default; on the
    shared assets this picks every pole target and no joint an artist weighted. Only for mostly closed meshes (at
    most 10% boundary edges): the winding number of an open sheet says nothing about inside and outside."""
    parents = np.asarray(parents, dtype=np.int64)
    leaves = np.array([j for j in range(len(parents)) if not (parents == j).any()], np.int64)
    if not len(leaves) or not len(faces) or boundary_fraction(faces) > 0.1:
        return np.zeros(0, np.int64)  # an open sheet has no inside: nothing can be said to float outside it
    diag = float(np.linalg.norm(points.max(0) - points.min(0))) or 1.0
    from scipy.spatial import cKDTree

    far = cKDTree(points).query(joint_pos[leaves])[0] > distance * diag
    if not far.any():
        return np.zeros(0, np.int64)
    outside = np.abs(winding_number(points, faces, joint_pos[leaves[far]])) < 0.5
    return np.sort(leaves[far][outside])


def weld(points: np.ndarray, faces: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge vertices closer than ``tol`` (on a grid): (points (U, 3), faces (F, 3) into them, inverse (V,))."""
    key = np.round(points / max(tol, 1e-30)).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    return points[first], inverse[faces], inverse


def cotangent_laplacian(points: np.ndarray, faces: np.ndarray):
    """(L, area): the cotangent stiffness matrix (V, V) csr, ``L_ij = -(cot a_ij + cot b_ij) / 2``, rows summing
    to 0, and the lumped (barycentric) vertex areas (V,). Degenerate triangles contribute nothing."""
    from scipy import sparse

    V = len(points)
    T = points[faces]  # (F, 3, 3)
    cross = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0])  # (F, 3)
    dbl_area = np.linalg.norm(cross, axis=1)  # (F,)
    ok = dbl_area > 1e-12 * max(float((np.ptp(points, axis=0) ** 2).max()), 1e-30)
    rows, cols, vals = [], [], []
    for k in range(3):  # the angle at corner k is opposite edge (k+1, k+2)
        i, j = faces[:, (k + 1) % 3], faces[:, (k + 2) % 3]
        u, v = T[:, (k + 1) % 3] - T[:, k], T[:, (k + 2) % 3] - T[:, k]
        cot = np.where(ok, (u * v).sum(1) / np.where(ok, dbl_area, 1.0), 0.0) * 0.5  # (F,)
        rows += [i, j]
        cols += [j, i]
        vals += [-cot, -cot]
    Wm = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(V, V)).tocsr()
    L = Wm - sparse.diags(np.asarray(Wm.sum(1)).ravel())
    area = np.bincount(faces.ravel(), weights=np.repeat(np.where(ok, dbl_area / 6.0, 0.0), 3), minlength=V)
    return L.tocsr(), area


def _segment_visible_ref(points: Float[Tensor, "V 3"], faces: Int[Tensor, "F 3"], vertex: Int[Tensor, " N"],
                         target: Float[Tensor, "N 3"], chunk: int = 1 << 22) -> Bool[Tensor, " N"]:
    """Torch twin of ``_warp_heat.segment_visible_kernel``: does the segment from ``points[vertex]`` to ``target``
    cross no triangle of ``faces`` (the triangles that use the vertex excepted)? Brute force over every triangle."""
    from usdposer.core.intersect import segment_triangle_hit

    N, F = len(vertex), len(faces)
    out = torch.ones(N, dtype=torch.bool)
    tri = points[faces]  # (F, 3, 3)
    step = max(1, chunk // max(F, 1))
    for n0 in range(0, N, step):
        v = vertex[n0:n0 + step]  # (n,)
        n = len(v)
        p0 = points[v][:, None].expand(n, F, 3).reshape(-1, 3)
        p1 = target[n0:n0 + step][:, None].expand(n, F, 3).reshape(-1, 3)
        hit = segment_triangle_hit(p0, p1, tri[None].expand(n, F, 3, 3).reshape(-1, 3, 3)).reshape(n, F)
        own = (faces[None] == v[:, None, None]).any(-1)  # (n, F)
        out[n0:n0 + step] = ~(hit & ~own).any(1)
    return out


def segment_visibility(points: np.ndarray, faces: np.ndarray, backend: str = "warp"):
    """A visibility test for one mesh: ``test(vertex (N,), target (N, 3)) -> bool (N,)``, True where the segment
    from ``points[vertex]`` to ``target`` crosses none of ``faces`` (the vertex's own triangles excepted).
    ``backend`` "warp" builds a BVH once (fast); "torch" is the brute-force reference."""
    if backend == "torch":
        Pt, Ft = torch.from_numpy(points), torch.from_numpy(faces)
        return lambda vertex, target: _segment_visible_ref(Pt, Ft, torch.from_numpy(vertex),
                                                           torch.from_numpy(target)).numpy()
    from usdposer.core._warp_heat import SegmentVisibility

    return SegmentVisibility(points, faces)


@dataclass
class HeatResult:
    """Bone-heat weights of one mesh: ``indices`` / ``weights`` (V, K) (rows summing to 1, sorted by weight), the
    nearest visible joint of every vertex (-1 where none was visible), the joints that have a bone (the
    deforming ones), the control joints left out, and counts for the report."""

    indices: np.ndarray
    weights: np.ndarray
    nearest: np.ndarray
    bones: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    controls: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    invisible_vertices: int = 0
    forced_components: int = 0
    components: int = 0
    stats: dict = field(default_factory=dict)

    @property
    def unweighted(self) -> np.ndarray:
        """Joints that have a bone but received no weight on any vertex (sorted)."""
        return np.setdiff1d(self.bones, np.unique(self.indices[self.weights > 0]))


def _inward(P: np.ndarray, normals: np.ndarray, v: np.ndarray, target: np.ndarray, inward: float = INWARD) -> np.ndarray:
    d = target - P[v]  # (n, 3)
    return (d * normals[v]).sum(1) <= inward * np.linalg.norm(d, axis=1)


def heat_sources(P: np.ndarray, D: np.ndarray, Q: np.ndarray, visible, normals: np.ndarray, *,
                 rounds: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The nearest visible joint of every vertex and its distance: (nearest (V,) or -1, dist (V,) or inf).

    Joints are tried nearest first; each round tests, for every vertex still unresolved, its next candidate (one
    batched visibility call per round). Joints farther than the nearest visible one are never tested."""
    V, J = D.shape
    order = np.argsort(D, axis=1, kind="stable")  # (V, J)
    nearest = np.full(V, -1, np.int64)
    pending = np.arange(V)
    for r in range(min(J, rounds or J)):
        if not len(pending):
            break
        cand = order[pending, r]
        finite = np.isfinite(D[pending, cand])
        pending, cand = pending[finite], cand[finite]
        into = _inward(P, normals, pending, Q[pending, cand])
        vis = into.copy()
        vis[into] = visible(pending[into], Q[pending[into], cand[into]])
        nearest[pending[vis]] = cand[vis]
        pending = pending[~vis]
    dist = np.where(nearest >= 0, D[np.arange(V), nearest.clip(0)], np.inf)
    return nearest, dist


def claim_orphans(P: np.ndarray, D: np.ndarray, Q: np.ndarray, nearest: np.ndarray, dist: np.ndarray,
                  bones: np.ndarray, visible, normals: np.ndarray, probe: int = 64, slack: float = 1.05) -> dict:
    """Bones that are nobody's nearest visible bone (hidden by neighbours, or a point-like bone inside a thick body)
    would get no weight at all. Each takes, as a tie with their own nearest bone, the vertices that see it and are
    nearly as close to it as to their nearest bone: of the ``probe`` vertices with the smallest distance ratio
    ``D[v, b] / dist[v]``, the visible ones within ``slack`` of the best visible ratio (the best one when none sees
    it). Returns {bone: vertices}."""
    out = {}
    has = nearest >= 0
    owned = set(nearest[has].tolist())
    for b in bones:
        if b in owned:
            continue
        ratio = np.where(has, D[:, b] / np.maximum(dist, 1e-30), np.inf)
        cand = np.argsort(ratio)[:probe]
        cand = cand[np.isfinite(ratio[cand])]
        if not len(cand):
            continue
        ok = _inward(P, normals, cand, Q[cand, b])
        ok[ok] = visible(cand[ok], Q[cand[ok], b])
        if not ok.any():  # seen from nowhere (buried in a thick body): the nearest vertex in the ratio sense
            ok[:1] = True
        best = ratio[cand[ok]].min()
        out[int(b)] = cand[ok & (ratio[cand] <= best * slack)]
    return out


def bone_heat(points: np.ndarray, faces: np.ndarray, parents, joint_pos: np.ndarray, *, influences: int = 4,
              exclude=(), c: float = C_WEIGHT, min_weight: float = MIN_WEIGHT, axes: np.ndarray | None = None,
              backend: str = "warp") -> HeatResult:
    """Bone-heat skinning weights of one triangle mesh (module docstring).

    Args:
        points: (V, 3) bind-pose points, in the same space (skeleton space) and units as ``joint_pos``.
        faces: (F, 3) triangles.
        parents: (J,) parent of every joint (-1 for roots).
        joint_pos: (J, 3) bind-pose joint positions.
        influences: K, the weights kept per vertex (the largest, renormalised).
        exclude: joint indices that must carry no weight (besides the :func:`control_joints`, which never do).
        c: the heat constant of ``H_jj = c / d_j^2``.
        min_weight: weights below it are dropped before renormalising.
        axes: (J, 3) bind-pose local +Y axes of the joints; bones follow them when the rig keeps that convention
            (:func:`follows_y`), else they point at the children.
        backend: "warp" (BVH visibility) or "torch" (brute-force reference).
    Returns:
        a :class:`HeatResult` with (V, K) indices into the J joints and weights.
    """
    import time

    from scipy.sparse import csgraph, diags
    from scipy.sparse.linalg import splu

    tick = time.perf_counter()
    stats: dict[str, float] = {}
    J = len(joint_pos)
    P0 = np.asarray(points, np.float64)
    faces = np.asarray(faces, np.int64)
    diag = float(np.linalg.norm(P0.max(0) - P0.min(0))) or 1.0

    # 1. weld seams; distances from every vertex to every joint's bones
    P, F, inverse = weld(P0, faces, 1e-7 * diag)
    V = len(P)
    controls = control_joints(P, F, parents, joint_pos)
    joints = np.setdiff1d(np.arange(J), np.union1d(controls, np.asarray(exclude, np.int64)))
    along_y = axes is not None and follows_y(parents, joint_pos, np.asarray(axes, np.float64))
    A, B, owner = bone_segments(parents, joint_pos, joints, controls=set(controls.tolist()),
                                axes=np.asarray(axes, np.float64) if along_y else None)
    stats["along_y"] = float(along_y)
    D, Q = joint_distances(P, A, B, owner, J)  # (V, J), (V, J, 3)
    stats["distances_s"] = time.perf_counter() - tick

    # 2. nearest visible bone per vertex (BVH ray tests), then components that see no bone take their nearest one
    t0 = time.perf_counter()
    visible = segment_visibility(P, F, backend)
    normals = vertex_normals(torch.from_numpy(P), torch.from_numpy(F)).numpy()
    nearest, dist = heat_sources(P, D, Q, visible, normals)
    orphans = claim_orphans(P, D, Q, nearest, dist, np.unique(owner), visible, normals)
    stats["visibility_s"] = time.perf_counter() - t0
    invisible = int((nearest < 0).sum())
    L, area = cotangent_laplacian(P, F)
    adjacency = (L != 0).astype(np.int8)
    n_comp, label = csgraph.connected_components(adjacency, directed=False)
    seen = np.zeros(n_comp, bool)
    seen[label[nearest >= 0]] = True
    forced = np.nonzero(~seen[label])[0]
    if len(forced):
        nearest[forced] = np.argmin(D[forced], axis=1)
        dist[forced] = D[forced, nearest[forced]]
    has = nearest >= 0

    # 3. heat: H_jj = n c / d^2 and p = 1/n over the n bones tied for nearest (sharing the closest point)
    dmin = np.maximum(dist, 1e-4 * diag)
    tied = has[:, None] & (D <= dist[:, None] * (1 + TIE) + 1e-12 * diag)  # (V, J)
    tied &= np.linalg.norm(Q - Q[np.arange(V), nearest.clip(0)][:, None], axis=-1) <= 1e-6 * diag
    tied[np.nonzero(has)[0], nearest[has]] = True
    for b, verts in orphans.items():
        tied[verts, b] = True
    n_tied = tied.sum(1)
    H = np.where(has, n_tied * c / dmin**2, 0.0)  # (V,)
    area = np.maximum(area, 1e-12 * diag**2)
    MH = area * H
    cols = np.nonzero(tied.any(0))[0]
    rhs = (tied[:, cols] / np.maximum(n_tied, 1)[:, None]) * MH[:, None]  # (V, C)

    # 4. one sparse LU of (L + M H) for every bone; weights clipped to [0, 1], top-K, renormalised
    t0 = time.perf_counter()
    system = (L + diags(MH)).tocsc()
    lu = splu(system, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    Wc = np.clip(lu.solve(rhs), 0.0, 1.0)  # (V, C)
    stats["solve_s"] = time.perf_counter() - t0
    K = min(influences, len(cols))
    top = np.argsort(-Wc, axis=1, kind="stable")[:, :K]  # (V, K)
    w = np.take_along_axis(Wc, top, 1)
    idx = cols[top]
    w = np.where(w > max(min_weight, 1e-4), w, 0.0)
    kept = np.zeros(len(cols), bool)
    kept[np.unique(top[w > 0])] = True
    locked = np.zeros_like(w, dtype=bool)
    for c_ in np.nonzero(~kept & (Wc.max(0) > 0))[0]:  # a bone out-voted everywhere keeps its strongest vertex
        order = np.argsort(-Wc[:, c_], kind="stable")[:8]  # its strongest vertices, in case one is taken
        for v in order[Wc[order, c_] > 0]:
            free = ~locked[v]
            if free.any():
                k = int(np.flatnonzero(free)[np.argmin(w[v][free])])
                idx[v, k], w[v, k], locked[v, k] = cols[c_], Wc[v, c_], True
                break
    s = w.sum(1, keepdims=True)
    lost = s[:, 0] <= 0
    if lost.any():  # numerically nothing reached the vertex: give it to its nearest bone
        idx[lost, 0], w[lost, 0], s[lost] = np.argmin(D[lost], axis=1), 1.0, 1.0
    w = w / s
    stats["total_s"] = time.perf_counter() - tick
    return HeatResult(indices=idx[inverse], weights=w[inverse], nearest=nearest[inverse], bones=owner, controls=controls,
                      invisible_vertices=invisible,
                      forced_components=int(len(np.unique(label[forced]))), components=int(n_comp), stats=stats)


def dense_weights(indices: np.ndarray, weights: np.ndarray, J: int) -> np.ndarray:
    """(V, J) dense weights from (V, K) indices and weights (repeated indices add up)."""
    V = len(indices)
    out = np.zeros((V, J))
    np.add.at(out, (np.repeat(np.arange(V), indices.shape[1]), indices.ravel()), weights.ravel())
    return out
