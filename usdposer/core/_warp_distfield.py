"""Warp kernel for the signed distance field of auto-rigging, with its torch twin in ``usdposer.core.distfield``:

    closest_signed_kernel  <->  closest_signed_ref

One thread per query point finds the closest point on the mesh through Warp's BVH and its side by the fast
generalized winding number (Barill et al. 2018, Warp's ``mesh_query_point_sign_winding_number``), so meshes with
holes, several overlapping parts and self-intersections still have an inside.
"""

from __future__ import annotations

import numpy as np

from usdposer.core._warp import get_warp

wp = get_warp()


@wp.kernel
def closest_signed_kernel(
    mesh: wp.uint64,  # BVH of the mesh
    query: wp.array(dtype=wp.vec3),  # (N,) points
    max_dist: float,  # search radius (mesh units)
    closest: wp.array(dtype=wp.vec3),  # (N,) out: closest point on the mesh
    inside: wp.array(dtype=wp.int32),  # (N,) out: 1 where the winding number is above one half
):
    i = wp.tid()
    p = query[i]
    q = wp.mesh_query_point_sign_winding_number(mesh, p, max_dist, 2.0, 0.5)
    if q.result:
        closest[i] = wp.mesh_eval_position(mesh, q.face, q.u, q.v)
        if q.sign < 0.0:
            inside[i] = 1


def closest_signed_warp(points: np.ndarray, faces: np.ndarray, query: np.ndarray,
                        device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Warp path of :func:`usdposer.core.distfield.closest_signed`: (closest (N, 3), inside (N,) bool). Computed in
    float32 relative to the mesh's centre and size, returned in the caller's units."""
    origin = points.mean(0)
    scale = float(np.linalg.norm(points.max(0) - points.min(0))) or 1.0
    pts = wp.array(((points - origin) / scale).astype(np.float32), dtype=wp.vec3, device=device)
    mesh = wp.Mesh(points=pts, indices=wp.array(faces.astype(np.int32).ravel(), dtype=wp.int32, device=device),
                   support_winding_number=True)
    q = wp.array(((query - origin) / scale).astype(np.float32), dtype=wp.vec3, device=device)
    closest = wp.zeros(len(query), dtype=wp.vec3, device=device)
    inside = wp.zeros(len(query), dtype=wp.int32, device=device)
    wp.launch(closest_signed_kernel, dim=len(query), inputs=[mesh.id, q, 1.0e6], outputs=[closest, inside],
              device=device)
    return closest.numpy().astype(np.float64) * scale + origin, inside.numpy().astype(bool)
