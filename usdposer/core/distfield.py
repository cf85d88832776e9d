"""The inside of a mesh for auto-rigging: a signed distance field on a grid, its approximate medial surface, packed
spheres and their graph (Baran & Popovic 2007, section 3), in numpy / torch.

    distance   d(x) = |x - c(x)| signed positive inside; c(x) the closest surface point; inside where the
               generalized winding number (Jacobson et al. 2013) is above 1/2, so meshes with holes, several
               overlapping parts and self-intersections still have one inside
    medial     inside grid points where the direction to the closest surface turns by >= 120 degrees between
               neighbours, or where d is a ridge (a local maximum across two grid axes): thin parts a voxel or two
               across keep their medial points
    spheres    medial points largest first; a point becomes a sphere (centre, radius d) unless an earlier sphere
               already contains it
    graph      spheres that overlap (or nearly) and whose centres see each other through the inside are joined,
               weighted by distance; shortest paths in it measure lengths along the body

Shapes: N query points, S spheres; the grid is (X, Y, Z). Lengths are in the mesh's units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MEDIAL_COS = -0.5  # cos(120 degrees)


def closest_signed_ref(points: torch.Tensor, faces: torch.Tensor, query: torch.Tensor,
                       chunk: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch reference of the Warp kernel: (closest point on the mesh (N, 3), inside (N,) bool) by brute force over
    every triangle (Ericson's closest point on a triangle; the exact winding number)."""
    from usdposer.core.heat import winding_number

    T = points[faces]  # (F, 3, 3)
    a, b, c = T[:, 0], T[:, 1], T[:, 2]
    out = torch.empty_like(query)
    step = max(1, chunk // max(len(faces), 1))
    for q0 in range(0, len(query), step):
        p = query[q0:q0 + step, None]  # (q, 1, 3)
        cp = _closest_on_triangles(p, a, b, c)  # (q, F, 3)
        d = (cp - p).square().sum(-1)
        out[q0:q0 + step] = cp[torch.arange(len(p)), d.argmin(1)]
    inside = torch.from_numpy(winding_number(points.double().numpy(), faces.numpy(), query.double().numpy()) > 0.5)
    return out, inside


def _closest_on_triangles(p, a, b, c):
    """Closest points on triangles (a, b, c) (F, 3) to points p (q, 1, 3): (q, F, 3) (Ericson 5.1.5, vectorised by
    evaluating every Voronoi region and keeping the nearest candidate, which is the same point)."""
    ab, ac = b - a, c - a
    n = torch.linalg.cross(ab, ac)
    nn = n.square().sum(-1).clamp_min(1e-30)
    # the projection onto the plane, used where it falls inside the triangle
    ap = p - a
    dist = (ap * n).sum(-1) / nn
    proj = p - dist[..., None] * n
    rel = proj - a
    w1 = (torch.linalg.cross(rel, ac.expand_as(rel)) * n).sum(-1) / nn  # proj = a + w1 ab + w2 ac
    w2 = (torch.linalg.cross(ab.expand_as(rel), rel) * n).sum(-1) / nn
    inside = (w1 >= 0) & (w2 >= 0) & (w1 + w2 <= 1)
    best = torch.where(inside[..., None], proj, torch.full_like(proj, float("inf")))
    for s, e in ((a, b), (b, c), (c, a)):
        se = e - s
        t = (((p - s) * se).sum(-1) / se.square().sum(-1).clamp_min(1e-30)).clamp(0, 1)
        q = s + t[..., None] * se
        closer = (q - p).square().sum(-1) < (best - p).square().sum(-1)
        best = torch.where(closer[..., None], q, best)
    return best


def outward(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``faces`` (F, 3) wound so that the mesh's signed volume is positive (normals out): every triangle reversed
    where it is negative, as for a mesh exported with its normals flipped or a ``leftHanded`` one read as right-handed.
    The winding number inside such a mesh is -1, so without this it would enclose nothing."""
    a, b, c = (points[faces[:, k]].astype(np.float64) for k in range(3))
    volume = np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0
    return np.ascontiguousarray(faces[:, ::-1]) if volume < 0 else faces


def closest_signed(points: np.ndarray, faces: np.ndarray, query: np.ndarray,
                   backend: str = "warp") -> tuple[np.ndarray, np.ndarray]:
    """(closest surface point (N, 3), inside (N,) bool) for ``query`` (N, 3). ``backend`` "warp" uses a BVH and the
    fast winding number (float32); "torch" is the brute-force float64 reference. Either way the faces are first
    wound outward (:func:`outward`), so a mesh with its normals flipped has the same inside."""
    faces = outward(points, faces)
    if backend == "torch":
        c, i = closest_signed_ref(torch.from_numpy(points).double(), torch.from_numpy(faces).long(),
                                  torch.from_numpy(query).double())
        return c.numpy(), i.numpy()
    from usdposer.core._warp_distfield import closest_signed_warp

    return closest_signed_warp(points, faces, query)


@dataclass
class DistanceField:
    """A signed distance field sampled on a regular grid: grid point (i, j, k) sits at ``origin + h (i, j, k)``;
    ``dist`` (X, Y, Z) is positive inside; ``direction`` (X, Y, Z, 3) unit vectors from the closest surface point
    to the grid point (into the body for inside points)."""

    origin: np.ndarray
    h: float
    dist: np.ndarray
    direction: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.dist.shape

    def grid_points(self) -> np.ndarray:
        """(X, Y, Z, 3) positions of the grid points."""
        idx = np.stack(np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij"), -1)
        return self.origin + self.h * idx

    def sample(self, x: np.ndarray) -> np.ndarray:
        """Trilinear signed distance at points (..., 3) (outside the grid: the nearest boundary value)."""
        return self.sample_torch(torch.from_numpy(np.asarray(x, np.float64))).numpy()

    def sample_torch(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable trilinear signed distance at (..., 3) points."""
        D = torch.as_tensor(self.dist, dtype=x.dtype, device=x.device)
        g = (x - torch.as_tensor(self.origin, dtype=x.dtype, device=x.device)) / self.h
        hi = torch.tensor(self.shape, dtype=x.dtype, device=x.device) - 1
        g = torch.minimum(g.clamp_min(0), hi)
        i0 = torch.minimum(g.floor(), hi - 1).clamp_min(0).long()
        f = g - i0
        out = 0
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    w = ((f[..., 0] if dx else 1 - f[..., 0]) * (f[..., 1] if dy else 1 - f[..., 1])
                         * (f[..., 2] if dz else 1 - f[..., 2]))
                    out = out + w * D[i0[..., 0] + dx, i0[..., 1] + dy, i0[..., 2] + dz]
        return out


def distance_field(points: np.ndarray, faces: np.ndarray, resolution: int = 96,
                   backend: str = "warp") -> DistanceField:
    """The signed distance field of a triangle mesh on a grid with ``resolution`` cells along its longest side
    (two cells of margin around the bounding box)."""
    lo, hi = points.min(0), points.max(0)
    h = float((hi - lo).max()) / resolution
    origin = lo - 2 * h
    shape = tuple(int(n) for n in np.ceil((hi - lo) / h).astype(int) + 5)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    query = origin + h * idx
    closest, inside = closest_signed(points, faces, query, backend=backend)
    v = query - closest
    d = np.linalg.norm(v, axis=1)
    direction = v / np.maximum(d, 1e-12)[:, None]
    direction[~inside] *= -1  # outside: the closest surface direction still points into the body
    sd = np.where(inside, d, -d)
    return DistanceField(origin, h, sd.reshape(shape), direction.reshape(*shape, 3))


def medial_points(field: DistanceField, min_dist: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Approximate medial surface: (positions (M, 3), distances (M,)) of inside grid points farther than
    ``min_dist`` from the surface where the closest-surface direction turns by >= 120 degrees towards a neighbour,
    or where the distance is a ridge across two grid axes."""
    D, N = field.dist, field.direction
    inside = D > min_dist
    medial = np.zeros_like(inside)
    ridges = np.zeros(D.shape, np.int8)
    Dp = np.pad(D, 1, constant_values=-np.inf)
    for axis in range(3):
        for step in (1, -1):
            nb_dir = np.roll(N, -step, axis=axis)
            turn = (N * nb_dir).sum(-1) <= MEDIAL_COS
            edge = [slice(None)] * 3
            edge[axis] = slice(-1, None) if step == 1 else slice(0, 1)
            turn[tuple(edge)] = False  # np.roll wraps around
            medial |= turn & (np.roll(D, -step, axis=axis) > 0)
        c = [slice(1, -1)] * 3
        prev = list(c)
        nxt = list(c)
        prev[axis] = slice(0, -2)
        nxt[axis] = slice(2, None)
        ridges += (D >= Dp[tuple(prev)]) & (D >= Dp[tuple(nxt)])
    medial |= ridges >= 2  # a ridge across two axes: the axis of a limb too thin for the turn test
    medial &= inside
    pts = field.grid_points()[medial]
    return pts, D[medial]


@dataclass
class SphereGraph:
    """Packed spheres (centres (S, 3), radii (S,)) with the shortest-path distances ``paths`` (S, S) along their
    graph (inf between parts that do not connect) and ``predecessors`` (S, S) to walk the paths."""

    centers: np.ndarray
    radii: np.ndarray
    paths: np.ndarray
    predecessors: np.ndarray
    edges: np.ndarray  # (E, 2)

    def path(self, a: int, b: int) -> list[int]:
        """Sphere indices along the shortest path from ``a`` to ``b`` (both included; [] when disconnected)."""
        if not np.isfinite(self.paths[a, b]):
            return []
        out = [b]
        while out[-1] != a:
            out.append(int(self.predecessors[a, out[-1]]))
        return out[::-1]


def pack_spheres(centers: np.ndarray, radii: np.ndarray, min_radius: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Greedy packing, largest first: a medial point becomes a sphere unless an earlier sphere contains it.
    Returns (centres (S, 3), radii (S,))."""
    from scipy.spatial import cKDTree

    order = np.argsort(-radii, kind="stable")
    c, r = centers[order], radii[order]
    keep = r > min_radius
    c, r = c[keep], r[keep]
    tree = cKDTree(c)
    alive = np.ones(len(c), bool)
    chosen = []
    for i in range(len(c)):
        if not alive[i]:
            continue
        chosen.append(i)
        alive[tree.query_ball_point(c[i], r[i])] = False
    chosen = np.array(chosen, dtype=np.int64)
    return c[chosen], r[chosen]


def segments_inside(field: DistanceField, a: np.ndarray, b: np.ndarray, samples: int = 12,
                    margin: float = 0.0) -> np.ndarray:
    """(N,) True where the segments a -> b ((N, 3) each) stay inside (signed distance above ``margin`` at
    ``samples`` points along them)."""
    t = np.linspace(0, 1, samples)[None, :, None]
    pts = a[:, None] + t * (b - a)[:, None]  # (N, s, 3)
    return field.sample(pts).min(1) > margin


def sphere_graph(field: DistanceField, centers: np.ndarray, radii: np.ndarray, bridge: float = 2.0) -> SphereGraph:
    """Join spheres that overlap (within a grid cell) and see each other through the inside; then join parts of the
    graph that share one connected inside (a limb attached by a joint thinner than the spheres: a robot's elbow rod)
    or come within ``bridge`` grid cells of each other (a kit-bashed model's arm, leg and torso pieces that touch
    without sharing an inside) by their closest spheres (:func:`_bridges`); all-pairs shortest paths by Dijkstra."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    S = len(centers)
    d = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    near = d < radii[:, None] + radii[None] + field.h
    i, j = np.nonzero(np.triu(near, 1))
    ok = segments_inside(field, centers[i], centers[j], margin=-0.5 * field.h)
    i, j = i[ok], j[ok]
    if bridge > 0:
        from scipy import ndimage

        part, _ = ndimage.label(field.dist > 0)
        cell = np.clip(np.rint((centers - field.origin) / field.h).astype(np.int64), 0, np.array(field.shape) - 1)
        bi, bj = _bridges(d - radii[:, None] - radii[None], i, j, bridge * field.h, part[tuple(cell.T)])
        i, j = np.r_[i, bi], np.r_[j, bj]
    w = np.maximum(d[i, j], 1e-9)
    G = coo_matrix((np.r_[w, w], (np.r_[i, j], np.r_[j, i])), shape=(S, S)).tocsr()
    paths, pred = shortest_path(G, method="D", directed=False, return_predecessors=True)
    return SphereGraph(centers, radii, paths, pred, np.stack([i, j], 1))


def _bridges(gap: np.ndarray, i: np.ndarray, j: np.ndarray, tol: float,
             body: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Edges (a, b) joining the parts of the graph with edges (i, j) whose spheres' surfaces come within ``tol``, or
    whose spheres sit in the same connected part of the inside (``body`` (S,) its label per sphere, 0: none): closest
    pairs first, one edge per pair of parts joined (Kruskal's minimum spanning forest over the parts). ``gap`` (S, S)
    surface gaps between spheres."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    S = len(gap)
    n, label = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(S, S)), directed=False)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    joinable = gap <= tol
    if body is not None:
        joinable |= (body[:, None] == body[None]) & (body[:, None] > 0)
    a, b = np.nonzero(np.triu(joinable, 1) & (label[:, None] != label[None]))
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keep = []
    for k in np.argsort(gap[a, b], kind="stable"):
        ra, rb = find(label[a[k]]), find(label[b[k]])
        if ra != rb:
            parent[ra] = rb
            keep.append(k)
    return a[keep].astype(np.int64), b[keep].astype(np.int64)
