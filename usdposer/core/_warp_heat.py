"""Warp kernel for bone-heat visibility, with its torch twin in ``usdposer.core.heat``:

    segment_visible_kernel  <->  _segment_visible_ref

One thread per (vertex, target) query casts a ray through Warp's mesh BVH from the vertex towards the target and
ignores hits on the triangles that use the vertex itself (the ray starts on them); any other hit closer than the
target means the target is not visible.
"""

from __future__ import annotations

import numpy as np

from usdposer.core._warp import get_warp

wp = get_warp()

MAX_SKIPS = 16  # own-triangle hits skipped per ray before giving up (a vertex has a handful of incident triangles)


@wp.kernel
def segment_visible_kernel(
    mesh: wp.uint64,  # BVH of the mesh
    points: wp.array(dtype=wp.vec3),  # (V,) mesh points
    faces: wp.array2d(dtype=wp.int32),  # (F, 3) triangles
    vertex: wp.array(dtype=wp.int32),  # (N,) ray origins (vertex indices)
    target: wp.array(dtype=wp.vec3),  # (N,) ray ends
    eps: float,  # step past a skipped hit, in mesh units
    out: wp.array(dtype=wp.int32),  # (N,) 1 visible, 0 blocked
):
    i = wp.tid()
    v = vertex[i]
    p = points[v]
    d = target[i] - p
    length = wp.length(d)
    out[i] = 1
    if length > 0.0:
        dirn = d / length
        start = float(0.0)
        for _k in range(MAX_SKIPS):
            q = wp.mesh_query_ray(mesh, p + dirn * start, dirn, length - start)
            if not q.result:
                break
            f = q.face
            if faces[f, 0] == v or faces[f, 1] == v or faces[f, 2] == v:
                start = start + q.t + eps
                if start >= length:
                    break
            else:
                out[i] = 0
                break


class SegmentVisibility:
    """Warp path of :func:`usdposer.core.heat.segment_visibility`: the BVH is built once, then every call
    ``(vertex (N,), target (N, 3)) -> bool (N,)`` launches one thread per query (float32, mesh normalised to its
    bounding box)."""

    def __init__(self, points: np.ndarray, faces: np.ndarray, device: str = "cpu"):
        self.scale = float(np.linalg.norm(points.max(0) - points.min(0))) or 1.0
        self.origin = points.mean(0)  # float32 precision: work relative to the mesh centre
        self.device = device
        self.points = wp.array(((points - self.origin) / self.scale).astype(np.float32), dtype=wp.vec3, device=device)
        self.faces = wp.array(faces.astype(np.int32).reshape(-1, 3), dtype=wp.int32, device=device)
        self.mesh = wp.Mesh(points=self.points,
                            indices=wp.array(faces.astype(np.int32).ravel(), dtype=wp.int32, device=device))

    def __call__(self, vertex: np.ndarray, target: np.ndarray) -> np.ndarray:
        if len(vertex) == 0:
            return np.zeros(0, bool)
        tgt = wp.array(((target - self.origin) / self.scale).astype(np.float32), dtype=wp.vec3, device=self.device)
        vid = wp.array(vertex.astype(np.int32), dtype=wp.int32, device=self.device)
        out = wp.zeros(len(vertex), dtype=wp.int32, device=self.device)
        wp.launch(segment_visible_kernel, dim=len(vertex), inputs=[self.mesh.id, self.points, self.faces, vid, tgt, 1e-6],
                  outputs=[out], device=self.device)
        return out.numpy().astype(bool)
